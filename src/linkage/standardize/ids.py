"""Identity documents: number normalisation, Chinese resident identity numbers, document types.

A Chinese resident identity number (居民身份证号码, GB 11643) is 6 digits of region,
8 digits of birth date (YYYYMMDD), a 3-digit sequence whose parity gives the sex
(odd male, even female) and an ISO 7064 MOD 11-2 check character (0-9 or X).
Legacy 15-digit numbers have a 2-digit year and no check character.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache

import polars as pl

from linkage.standardize import InvalidValue, fallback_table

__all__ = [
    "DOCUMENT_TYPES",
    "classify_document_type",
    "guess_document_type",
    "make_resident_id",
    "normalize_document",
    "parse_resident_id",
    "resident_id_checksum",
]

DOCUMENT_TYPES = ("passport", "id_number", "permit_no")

# Weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"  # index: weighted sum mod 11


@lru_cache(maxsize=1 << 18)
def _normalize_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).upper()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def normalize_document(value: object) -> str | None:
    """NFKC, upper case, keep only letters and digits (drops spaces, hyphens, dots, slashes ...).

    Integers are read as their decimal digits. Returns None when nothing is left. Idempotent.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int):
        return None
    text = _normalize_once(str(value))
    while (again := _normalize_once(text)) != text:
        text = again
    return text or None


def resident_id_checksum(first17: str) -> str:
    """The MOD 11-2 check character ("0"-"9" or "X") for the first 17 digits of a resident ID."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError("a resident ID checksum needs exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def make_resident_id(region: str, dob: date, sequence: int) -> str:
    """Build an 18-character resident ID (odd sequence = male, even = female)."""
    if len(region) != 6 or not (region.isascii() and region.isdigit()):
        raise ValueError("region must be 6 digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be 0-999")
    first17 = f"{region}{dob.year:04d}{dob.month:02d}{dob.day:02d}{sequence:03d}"
    return first17 + resident_id_checksum(first17)


def _birth_date(digits8: str) -> date:
    year, month, day = int(digits8[:4]), int(digits8[4:6]), int(digits8[6:])
    if year == 0:
        raise InvalidValue("birth year 0000 is not a year")
    if not 1 <= month <= 12:
        raise InvalidValue(f"birth month {month} is not 1-12")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidValue(f"birth day {day} is out of range for month {month} of {year}") from None


def _upgrade_legacy(number: str) -> str:
    first17 = number[:6] + "19" + number[6:]
    return first17 + resident_id_checksum(first17)


def parse_resident_id(value: object) -> dict[str, object]:
    """Parse a resident ID into {"number": 18 chars, "dob": date, "sex": "M"/"F"}.

    Accepts separators and a lower-case x (normalised away), and 15-digit legacy numbers
    (converted to 18). Raises InvalidValue with the reason: wrong length, non-digit,
    impossible birth date, or the check character that the first 17 digits call for.
    """
    number = normalize_document(value)
    if number is None:
        raise InvalidValue("a resident ID number is empty")
    if len(number) == 15:
        if not (number.isascii() and number.isdigit()):
            raise InvalidValue("a 15-digit resident ID must be all digits")
        _birth_date("19" + number[6:12])
        number = _upgrade_legacy(number)
    if len(number) != 18:
        raise InvalidValue(f"a resident ID has 18 characters, not {len(number)}")
    first17, check = number[:17], number[17]
    if not (first17.isascii() and first17.isdigit()) or check not in "0123456789X":
        raise InvalidValue("a resident ID is 17 digits followed by a digit or X")
    dob = _birth_date(first17[6:14])
    expected = resident_id_checksum(first17)
    if check != expected:
        raise InvalidValue(f"checksum digit should be {expected}")
    sex = "M" if int(first17[16]) % 2 == 1 else "F"
    return {"number": number, "dob": dob, "sex": sex}


def _type_key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


_PASSPORT_LABELS = (
    "护照", "普通护照", "外国护照", "中国护照", "公务护照", "外交护照", "因公护照", "因私护照",
    "passport", "passportno", "passportnumber", "p", "pp", "pass",
)
_ID_LABELS = (
    "居民身份证", "身份证", "二代身份证", "一代身份证", "中华人民共和国居民身份证", "身份证号", "身份证号码",
    "居民身份证号码", "临时身份证", "id", "idcard", "idno", "idnumber", "residentid",
    "residentidentitycard", "nationalid", "nationalidcard", "i",
)
_PERMIT_LABELS = (
    "港澳居民来往内地通行证", "回乡证", "回乡卡", "港澳通行证", "往来港澳通行证", "大陆居民往来港澳通行证",
    "台湾居民来往大陆通行证", "台胞证", "台湾通行证", "大陆居民往来台湾通行证", "往来台湾通行证",
    "外国人永久居留身份证", "外国人永久居留证", "永久居留证", "居留证", "外国人居留许可",
    "港澳台居民居住证", "港澳居民居住证", "台湾居民居住证",
    "permit", "hkmpermit", "homereturnpermit", "mtp", "travelpermit", "residencepermit",
    "permanentresidencecard", "twpermit",
)
_DOCUMENT_LABELS: dict[str, str] = {
    **{_type_key(k): "passport" for k in _PASSPORT_LABELS},
    **{_type_key(k): "id_number" for k in _ID_LABELS},
    **{_type_key(k): "permit_no" for k in _PERMIT_LABELS},
}


def classify_document_type(value: object) -> str | None:
    """Map a document-type label ("护照", "ID card", "回乡证" ...) to passport/id_number/permit_no.

    Case, width, spaces and punctuation do not matter. Unknown labels give None.
    """
    if not isinstance(value, str):
        return None
    return _DOCUMENT_LABELS.get(_type_key(value))


_HK_MACAO_PERMIT = re.compile(r"[HM](\d{8}|\d{10})", re.ASCII)
_TAIWAN_PERMIT = re.compile(r"\d{8}", re.ASCII)
_RESIDENT_ID = re.compile(r"\d{17}[\dX]", re.ASCII)
_LEGACY_RESIDENT_ID = re.compile(r"\d{15}", re.ASCII)
_OLD_PERMANENT_RESIDENCE = re.compile(r"[A-Z]{3}\d{12}", re.ASCII)
_PASSPORT_LIKE = re.compile(r"[A-Z0-9]{5,12}", re.ASCII)


def _is_valid_resident_id(number: str) -> bool:
    try:
        parse_resident_id(number)
    except InvalidValue:
        return False
    return True


def guess_document_type(number: str) -> str | None:
    """Guess the kind of an unlabelled, normalized document number.

    18 characters with a valid check character: "id_number" ("permit_no" when it starts with 9,
    the 2017 foreign permanent-residence card); a valid legacy 15-digit ID: "id_number";
    H/M + 8 or 10 digits (HK/Macao home-return permit), 8 digits (Taiwan permit) or 3 letters +
    12 digits (old permanent-residence card): "permit_no"; otherwise 5-12 letters/digits:
    "passport"; anything else None.
    """
    if _RESIDENT_ID.fullmatch(number) or _LEGACY_RESIDENT_ID.fullmatch(number):
        if _is_valid_resident_id(number):
            return "permit_no" if number.startswith("9") else "id_number"
        return None
    if _HK_MACAO_PERMIT.fullmatch(number) or _TAIWAN_PERMIT.fullmatch(number):
        return "permit_no"
    if _OLD_PERMANENT_RESIDENCE.fullmatch(number):
        return "permit_no"
    if _PASSPORT_LIKE.fullmatch(number):
        return "passport"
    return None


# ---- vectorized --------------------------------------------------------------------------------


def normalize_documents(values: pl.Series) -> pl.Series:
    """`normalize_document` over a Series (ASCII values vectorized, others per distinct value)."""
    text = values.cast(pl.Utf8)
    frame = pl.DataFrame({"raw": text}).with_columns(
        pl.when(pl.col("raw").str.contains(r"^[\x00-\x7f]*$"))
        .then(pl.col("raw").str.to_uppercase().str.replace_all(r"[^A-Z0-9]", ""))
        .alias("fast"))
    frame = frame.with_columns(pl.when(pl.col("fast") != "").then(pl.col("fast")).alias("fast"))
    rest = frame.filter(pl.col("fast").is_null() & pl.col("raw").str.contains(r"[^\x00-\x7f]"))
    slow = fallback_table(rest.get_column("raw"), normalize_document, pl.Utf8)
    joined = frame.join(slow, on="raw", how="left", maintain_order="left")
    return joined.select(pl.coalesce("fast", "slow")).to_series().alias(values.name or "document")


RESIDENT_ID_STRUCT = pl.Struct({"number": pl.Utf8, "dob": pl.Date, "sex": pl.Utf8})


def parse_resident_ids(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`parse_resident_id` over a Series: (struct of number/dob/sex, reasons), equal row by row.

    Clean 18-character numbers are checked vectorized (birth date and MOD 11-2 checksum);
    anything else, and every number that fails, takes the scalar path for its exact reason.
    """
    number = pl.col("raw")
    clean = number.str.contains(r"^\d{17}[\dX]$")
    total = pl.sum_horizontal([number.str.slice(i, 1).cast(pl.Int64, strict=False) * w
                               for i, w in enumerate(_WEIGHTS)])
    check = pl.lit(_CHECK_CHARS).str.slice(total % 11, 1)
    dob = number.str.slice(6, 8).str.strptime(pl.Date, "%Y%m%d", strict=False)
    frame = pl.DataFrame({"raw": values.cast(pl.Utf8)}).with_columns(
        pl.when(clean & (check == number.str.slice(17, 1)) & dob.dt.year().is_between(1800, 2100)
                & dob.is_not_null())
        .then(pl.struct(number.alias("number"), dob.alias("dob"),
                        pl.when(number.str.slice(16, 1).cast(pl.Int64, strict=False) % 2 == 1)
                        .then(pl.lit("M")).otherwise(pl.lit("F")).alias("sex")))
        .alias("fast"))
    rest = frame.filter(pl.col("fast").is_null() & pl.col("raw").is_not_null()).get_column("raw")
    slow = fallback_table(rest, parse_resident_id, RESIDENT_ID_STRUCT)
    joined = frame.join(slow, on="raw", how="left", maintain_order="left")
    result = joined.select(pl.coalesce("fast", "slow").alias("parsed"),
                           pl.when(pl.col("fast").is_null()).then(pl.col("reason")).alias("reason"))
    return result.get_column("parsed"), result.get_column("reason")

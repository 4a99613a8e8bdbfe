"""Contact details: phone numbers to E.164 (via phonenumbers) and e-mail addresses to one spelling.

A phone cell may hold several numbers ("138 1234 5678 / +49 170 1234567"); each is read in the
source's default region, then in the region of the record's nationality (a foreign number
written without its country code), and when neither makes it a valid number, kept as its digits:
unverified, but still evidence for matching (`phone_numbers_many`). Verified numbers are E.164
("+8613812345678"); unverified ones are digits only, so the two never look alike.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

import phonenumbers
import polars as pl

from linkage.standardize import InvalidValue, fallback_table

__all__ = ["normalize_email", "phone_numbers_many", "split_phones", "to_e164", "to_e164_many", "unverified_digits"]


def _phone_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidValue("a true/false value is not a phone number")
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not value.is_integer():
            raise InvalidValue("a fractional number is not a phone number")
        value = int(value)
    if isinstance(value, int):
        return str(value) if value >= 0 else "-"
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        return text or None
    raise InvalidValue("not a phone number")


def to_e164(value: object, region: str | None) -> str | None:
    """Return the number in E.164 form ("+8613800138000"), None when empty.

    Numbers without a country code are read in `region` (ISO 3166-1 alpha-2, e.g. "CN"),
    including the region's international prefix ("0086 ...") and trunk prefix ("(010) ...").
    Raises InvalidValue for a non-empty value that is not a valid number.
    """
    text = _phone_text(value)
    if text is None:
        return None
    default_region = region.strip().upper() if region else None
    # Spellings that differ only in separators ("138 0013 8000", "138-0013-8000") parse once.
    key = _SEPARATORS.sub("", text) if _SIMPLE.fullmatch(text) else text
    result = _parse(key, default_region)
    if result is None:
        where = f" for region {default_region}" if default_region else " (no country code and no default region)"
        raise InvalidValue(f"not a valid phone number{where}")
    return result


_SIMPLE = re.compile(r"\+?[\d\s\-.]+")
_SEPARATORS = re.compile(r"[\s\-.]")


@lru_cache(maxsize=1 << 18)
def _parse(text: str, region: str | None) -> str | None:
    fast = _parse_digits(text, region)
    if fast is not None:
        return fast
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+", re.ASCII)


def _email_form(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).strip().lower())


def normalize_email(value: object) -> str | None:
    """Return the address stripped, NFKC-normalised and lower case; None when empty.

    Raises InvalidValue when the value is not a plausible address
    (exactly one @, no spaces, a domain with a dot and no empty labels).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue("not an e-mail address")
    text = _email_form(value)
    while (again := _email_form(text)) != text:
        text = again
    if not text:
        return None
    if "@" not in text:
        raise InvalidValue("an e-mail address needs an @")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidValue("an e-mail address cannot contain spaces or control characters")
    if _EMAIL.fullmatch(text) is None:
        raise InvalidValue("not a plausible e-mail address (expected name@domain.tld)")
    return text


def _parse_digits(text: str, region: str | None) -> str | None:
    """Fast path for plain digit strings: split off the country code and trunk prefix by the
    region's metadata and validate without phonenumbers' general parser. Returns None when in
    doubt (the general parser then decides), never a different answer than it would give."""
    if not _DIGITS.fullmatch(text):
        return None
    digits = text.lstrip("+")
    if not text.startswith("+"):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
        if meta is None:
            return None
        idd = meta.international_prefix
        if idd and idd.isdigit() and digits.startswith(idd):
            digits = digits[len(idd):]
        else:
            prefix = meta.national_prefix
            if prefix and digits.startswith(prefix):
                digits = digits[len(prefix):]
            return _valid(meta.country_code, digits)
    for size in (1, 2, 3):
        code = int(digits[:size]) if digits[:size] else 0
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return _valid(code, digits[size:])
    return None


def _valid(country_code: int, national: str) -> str | None:
    if not national or national.startswith("0") or len(national) > 17:
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return f"+{country_code}{national}" if phonenumbers.is_valid_number(number) else None


_DIGITS = re.compile(r"\+?\d{4,20}")


# ---- vectorized ------------------------------------------------------------------------------

_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line", "mobile")


def _matches(national: pl.Expr, desc: object) -> pl.Expr:
    """phonenumbers' `_is_number_matching_desc`, as a polars expression."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or pattern is None:
        return pl.lit(False)
    lengths = tuple(getattr(desc, "possible_length", ()) or ())
    fits = national.str.contains(f"^(?:{pattern})$")
    return (national.str.len_chars().is_in(lengths) & fits) if lengths else fits


def _valid_expr(national: pl.Expr, region: str) -> pl.Expr:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    general = _matches(national, meta.general_desc)
    return general & pl.any_horizontal([_matches(national, getattr(meta, d, None)) for d in _TYPE_DESCS])


def to_e164_many(values: pl.Series, region: str | None) -> tuple[pl.Series, pl.Series]:
    """`to_e164` over a Series: (E.164 values, reasons), equal to the scalar function row by row.

    Plain digit strings whose country has one region are validated with phonenumbers' own
    metadata patterns in one vectorized pass; everything else (and anything the fast pass
    rejects) goes through the scalar function, once per distinct value.
    """
    region = region.strip().upper() if region else None
    frame = pl.DataFrame({"raw": values.cast(pl.Utf8)}).with_columns(
        pl.col("raw").str.strip_chars().str.replace_all(r"[\s\-.]", "").alias("key"))
    key = pl.col("key")
    simple = pl.col("raw").str.contains(r"^\s*\+?[\d\s\-.]+\s*$") & key.str.contains(r"^\+?\d{4,20}$")
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    idd = meta.international_prefix if meta is not None and (meta.international_prefix or "").isdigit() else None
    digits = key.str.strip_prefix("+")
    international = key.str.starts_with("+")
    if idd:
        international = international | key.str.starts_with(idd)
        digits = pl.when(key.str.starts_with("+")).then(digits).otherwise(
            pl.when(key.str.starts_with(idd)).then(key.str.slice(len(idd))).otherwise(key))
    frame = frame.with_columns(simple.alias("simple"), international.alias("intl"), digits.alias("digits"))
    # Country code: the shortest prefix of 1-3 digits that is a calling code (as phonenumbers does).
    codes = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    cc = pl.lit(None, dtype=pl.Utf8)
    for size in (3, 2, 1):
        head = pl.col("digits").str.slice(0, size)
        cc = pl.when(head.is_in(codes)).then(head).otherwise(cc)
    if meta is not None:
        national_prefix = meta.national_prefix or ""
        local = pl.col("digits")
        if national_prefix:
            local = pl.when(local.str.starts_with(national_prefix)).then(
                local.str.slice(len(national_prefix))).otherwise(local)
        cc = pl.when(pl.col("intl")).then(cc).otherwise(pl.lit(str(meta.country_code)))
        national = pl.when(pl.col("intl")).then(pl.col("digits").str.slice(cc.str.len_chars())).otherwise(local)
    else:
        cc = pl.when(pl.col("intl")).then(cc)
        national = pl.col("digits").str.slice(cc.str.len_chars())
    frame = frame.with_columns(cc.alias("cc")).with_columns(national.alias("national"))
    valid = pl.lit(False)
    for code in frame.filter(pl.col("simple")).get_column("cc").drop_nulls().unique().to_list():
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ())
        if len(regions) != 1 or regions[0] == "001":
            continue
        valid = valid | ((pl.col("cc") == code) & _valid_expr(pl.col("national"), regions[0]))
    usable = pl.col("simple") & pl.col("national").is_not_null() & ~pl.col("national").str.starts_with("0") \
        & (pl.col("national").str.len_chars().is_between(1, 17))
    frame = frame.with_columns(pl.when(usable & valid).then(pl.format("+{}{}", pl.col("cc"), pl.col("national")))
                               .alias("fast"))
    rest = frame.filter(pl.col("fast").is_null() & pl.col("raw").is_not_null()).get_column("raw")
    slow = fallback_table(rest, lambda value: to_e164(value, region), pl.Utf8)
    joined = frame.join(slow, on="raw", how="left", maintain_order="left")
    result = joined.select(pl.coalesce("fast", "slow").alias(values.name or "phone"),
                           pl.when(pl.col("fast").is_null()).then(pl.col("reason")).alias("reason"))
    return result.get_column(values.name or "phone"), result.get_column("reason")


# ---- a cell of numbers, with unverified ones kept --------------------------------------------

MAX_PHONES = 3            # numbers kept per record (the first ones in the cell)
UNVERIFIED_DIGITS = (6, 17)
_PHONE_SEPARATORS = r"[/;,|\n\u3001\uff0c\uff1b]|\s+(?:or|OR|Or)\s+|\u6216"
UNVERIFIED_NOTE = "not a valid phone number for the source's region or the nationality's region; kept as digits (unverified)"


def split_phones(text: str) -> list[str]:
    """The numbers of one cell: split on / ; , | 、 ， ； newlines, "or" and 或 (spaces and hyphens
    inside one number are kept: "+86 138 1234 5678" is one number)."""
    return [part.strip() for part in re.split(_PHONE_SEPARATORS, text) if part.strip()]


def unverified_digits(text: str) -> str | None:
    """The digits of a number no region validates (NFKC first), or None when too short or too long
    to be a phone number at all."""
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit() and ch.isascii())
    low, high = UNVERIFIED_DIGITS
    return digits if low <= len(digits) <= high else None


def phone_numbers_many(values: pl.Series, region: str | None,
                       nationality_regions: pl.Series | None = None) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(numbers per row as a list, reason per row a value was dropped, note per row a value was kept
    unverified). Each number of a cell is E.164 when the source's region or the row's nationality
    region (ISO alpha-2, may be null) makes it valid, else its digits; at most MAX_PHONES per row,
    distinct, in the cell's order."""
    n = len(values)
    nat = nationality_regions if nationality_regions is not None else pl.Series([None] * n, dtype=pl.Utf8)
    frame = pl.DataFrame({"row": pl.int_range(n, eager=True), "raw": values.cast(pl.Utf8), "nat": nat.cast(pl.Utf8)})
    # Only cells with a separator need splitting; the rest are one number each.
    multi = frame["raw"].str.contains(_PHONE_SEPARATORS).fill_null(False)
    single = frame.filter(~multi).select("row", "nat", part=pl.col("raw"))
    split = frame.filter(multi)
    split = split.with_columns(part=pl.Series([split_phones(v) for v in split["raw"].to_list()],
                                              dtype=pl.List(pl.Utf8))).explode("part").select("row", "nat", "part")
    parts = pl.concat([single, split]).filter(pl.col("part").is_not_null())
    strict, _ = to_e164_many(parts["part"], region)
    parts = parts.with_columns(strict=strict)
    retry = parts.filter(pl.col("strict").is_null() & pl.col("nat").is_not_null()).select("part", "nat").unique()
    if retry.height:
        again = [_again(part, nat) for part, nat in retry.iter_rows()]
        retry = retry.with_columns(again=pl.Series(again, dtype=pl.Utf8))
        parts = parts.join(retry, on=["part", "nat"], how="left", nulls_equal=False)
    else:
        parts = parts.with_columns(again=pl.lit(None, dtype=pl.Utf8))
    failed = parts.filter(pl.col("strict").is_null() & pl.col("again").is_null())
    digits = fallback_table(failed["part"], unverified_digits, pl.Utf8).rename({"slow": "digits"})
    parts = parts.join(digits.select("raw", "digits"), left_on="part", right_on="raw", how="left")
    parts = parts.with_columns(number=pl.coalesce("strict", "again", "digits"),
                               unverified=pl.col("strict").is_null() & pl.col("again").is_null()
                               & pl.col("digits").is_not_null(),
                               dropped=pl.col("strict").is_null() & pl.col("again").is_null()
                               & pl.col("digits").is_null())
    where = f" for region {region.strip().upper()}" if region else " (no country code and no default region)"
    per_row = parts.sort("row", maintain_order=True).group_by("row", maintain_order=True).agg(
        numbers=pl.col("number").drop_nulls().unique(maintain_order=True).head(MAX_PHONES),
        dropped=pl.col("dropped").any(), unverified=pl.col("unverified").any())
    out = frame.select("row").join(per_row, on="row", how="left", maintain_order="left")
    numbers = out["numbers"].fill_null(pl.Series([[]], dtype=pl.List(pl.Utf8)).first())
    reasons = out.select(pl.when(pl.col("dropped")).then(pl.lit(f"not a valid phone number{where}"))).to_series()
    notes = out.select(pl.when(pl.col("unverified")).then(pl.lit(UNVERIFIED_NOTE))).to_series()
    name = values.name or "phone"
    return numbers.alias(name), reasons.alias("reason"), notes.alias("note")


@lru_cache(maxsize=1 << 16)
def _again(part: str, nationality_region: str) -> str | None:
    """The number read in the nationality's region, if that makes it valid."""
    try:
        return to_e164(part, nationality_region)
    except InvalidValue:
        return None

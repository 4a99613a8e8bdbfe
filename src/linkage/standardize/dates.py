"""Dates and times: strptime-style formats (unpadded fields accepted), Excel serial numbers.

Every format is compiled once into one regular expression that both Python (scalar
`parse_date` / `parse_datetime`) and polars (vectorized `parse_dates`) run, so the two paths
agree row by row. Supported directives: %Y %y %m %b %B %d %H %I %p %M %S %f %a %A %%.
Numeric fields accept one or two digits unless another numeric field follows or precedes
without a separator ("%Y%m%d" needs "19850307"). %y follows POSIX: 69-99 -> 19xx, 00-68 -> 20xx.
Month and weekday names are English (any case); %p accepts AM/PM and 上午/下午.
polars' own strptime (chrono) is not used: it accepts values Python's rules reject
("+1985-03-07", 3-digit years), so the two paths would disagree.
Values are NFKC-normalised (full-width digits) and stripped of surrounding spaces first.
"""

from __future__ import annotations

import calendar
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import polars as pl

from linkage.standardize import InvalidValue, map_distinct

__all__ = ["EXCEL", "check_format", "parse_date", "parse_dates", "parse_datetime"]

EXCEL = "excel"
EXCEL_MAX_SERIAL = 2958465  # 9999-12-31

_SPACES = " \t\r\n\f\v"
_MONTH_NAMES = tuple(
    (name.lower(), number)
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
) + (("sept", 9),)
_MONTH_NUMBERS = dict(_MONTH_NAMES)
_WEEKDAY_NAMES = tuple(calendar.day_name) + tuple(calendar.day_abbr)
_MERIDIEMS = {"am": 0, "pm": 12, "上午": 0, "下午": 12}

# directive letter -> (field it sets, group name, regex when unpadded fields are allowed)
_DIRECTIVES: dict[str, tuple[str, str, str]] = {
    "Y": ("year", "year4", "[0-9]{4}"),
    "y": ("year", "year2", "[0-9]{2}"),
    "m": ("month", "month", "[0-9]{1,2}"),
    "b": ("month", "monthname", ""),
    "B": ("month", "monthname", ""),
    "d": ("day", "day", "[0-9]{1,2}"),
    "H": ("hour", "hour", "[0-9]{1,2}"),
    "I": ("hour", "hour12", "[0-9]{1,2}"),
    "p": ("meridiem", "ampm", ""),
    "M": ("minute", "minute", "[0-9]{1,2}"),
    "S": ("second", "second", "[0-9]{1,2}"),
    "f": ("fraction", "fraction", "[0-9]{1,6}"),
    "a": ("weekday", "weekday", ""),
    "A": ("weekday", "weekday", ""),
}
_FIXED_WIDTH = {"m": 2, "d": 2, "H": 2, "I": 2, "M": 2, "S": 2, "f": 6}
_NUMERIC = frozenset("YymdHIMSf")


def _ascii_insensitive(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() else c for c in word)


def _alternatives(words: Sequence[str]) -> str:
    ordered = sorted(set(words), key=lambda w: (-len(w), w))
    return "(?:" + "|".join(_ascii_insensitive(w) for w in ordered) + ")"


_WORD_REGEX = {
    "b": _alternatives([name for name, _ in _MONTH_NAMES]),
    "B": _alternatives([name for name, _ in _MONTH_NAMES]),
    "a": _alternatives(_WEEKDAY_NAMES),
    "A": _alternatives(_WEEKDAY_NAMES),
    "p": _alternatives(list(_MERIDIEMS)),
}


@dataclass(frozen=True)
class _Format:
    """One compiled format: the regex (shared by Python and polars) and its directives."""

    text: str
    pattern: str
    regex: re.Pattern[str]
    directives: tuple[str, ...]


def _tokens(fmt: str) -> list[str]:
    """Split a format into directives ("%Y") and literal characters; ValueError on a bad %."""
    tokens, i = [], 0
    while i < len(fmt):
        if fmt[i] != "%":
            tokens.append(fmt[i])
            i += 1
            continue
        if i + 1 == len(fmt):
            raise ValueError("format ends with a lone %")
        directive = fmt[i + 1]
        if directive in "zZ":
            raise ValueError("time zones (%z, %Z) are not supported")
        if directive != "%" and directive not in _DIRECTIVES:
            known = " ".join(f"%{d}" for d in _DIRECTIVES)
            raise ValueError(f"unknown directive %{directive} (known: {known} %%)")
        tokens.append("%" if directive == "%" else "%" + directive)
        i += 2
    return tokens


def _check_fields(directives: list[str]) -> None:
    fields: dict[str, str] = {}
    for d in directives:
        field = _DIRECTIVES[d][0]
        if field in fields:
            raise ValueError(f"%{fields[field]} and %{d} both give the {field}")
        fields[field] = d
    needs = (("year", "%Y or %y"), ("month", "%m, %b or %B"), ("day", "%d"))
    for field, spelled in needs:
        if field not in fields:
            raise ValueError(f"a date format needs a {field} ({spelled})")
    if ("I" in directives) != ("p" in directives):
        raise ValueError("%I (12-hour clock) and %p (AM/PM) go together")
    order = (("minute", "hour", "%M needs an hour"), ("second", "minute", "%S needs %M"),
             ("fraction", "second", "%f needs %S"))
    for field, required, message in order:
        if field in fields and required not in fields:
            raise ValueError(message)


def check_format(fmt: str) -> None:
    """Raise ValueError naming the problem when `fmt` is not a usable format for this module."""
    if not isinstance(fmt, str) or not fmt.strip():
        raise ValueError("a date format must be a non-empty string")
    if fmt == EXCEL:
        return
    tokens = _tokens(unicodedata.normalize("NFKC", fmt))
    directives = [t[1] for t in tokens if len(t) == 2 and t[0] == "%"]
    if not directives:
        raise ValueError("format has no % directive")
    _check_fields(directives)


def _literal_regex(ch: str) -> str:
    if ch in _SPACES:
        return "[\\x20\\x09]+"
    if ch.isascii() and not ch.isalnum():
        return f"\\x{ord(ch):02x}"
    return ch


def _directive_regex(tokens: list[str], i: int) -> str:
    d = tokens[i][1]
    _, group, regex = _DIRECTIVES[d]
    if d in _WORD_REGEX:
        regex = _WORD_REGEX[d]
    neighbours = [tokens[j] for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
    if d in _FIXED_WIDTH and any(len(t) == 2 and t[1] in _NUMERIC for t in neighbours):
        regex = f"[0-9]{{{_FIXED_WIDTH[d]}}}"
    return f"(?P<{group}>{regex})"


@lru_cache(maxsize=256)
def _compile(fmt: str) -> _Format:
    check_format(fmt)
    tokens = _tokens(unicodedata.normalize("NFKC", fmt))
    parts = []
    for i, token in enumerate(tokens):
        is_directive = len(token) == 2 and token[0] == "%"
        parts.append(_directive_regex(tokens, i) if is_directive else _literal_regex(token))
    pattern = "".join(parts)
    directives = tuple(t[1] for t in tokens if len(t) == 2 and t[0] == "%")
    return _Format(fmt, pattern, re.compile(pattern), directives)


# ---- scalar path -------------------------------------------------------------------------


def _clean_text(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip(_SPACES)


def _year(groups: dict[str, str]) -> int:
    if "year4" in groups:
        year = int(groups["year4"])
        if year == 0:
            raise InvalidValue("year 0 is not 1-9999")
        return year
    short = int(groups["year2"])
    return short + (1900 if short >= 69 else 2000)


def _month(groups: dict[str, str]) -> int:
    if "monthname" in groups:
        return _MONTH_NUMBERS[groups["monthname"].lower()]
    month = int(groups["month"])
    if not 1 <= month <= 12:
        raise InvalidValue(f"month {month} is not 1-12")
    return month


def _day(groups: dict[str, str], year: int, month: int) -> int:
    day = int(groups["day"])
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise InvalidValue(f"day {day} is out of range for {calendar.month_name[month]} {year}")
    return day


def _hour(groups: dict[str, str]) -> int:
    if "hour12" in groups:
        hour12 = int(groups["hour12"])
        if not 1 <= hour12 <= 12:
            raise InvalidValue(f"hour {hour12} is not 1-12 on a 12-hour clock")
        return hour12 % 12 + _MERIDIEMS[groups["ampm"].lower()]
    hour = int(groups.get("hour", 0))
    if hour > 23:
        raise InvalidValue(f"hour {hour} is not 0-23")
    return hour


def _sixty(groups: dict[str, str], name: str) -> int:
    value = int(groups.get(name, 0))
    if value > 59:
        raise InvalidValue(f"{name} {value} is not 0-59")
    return value


def _build(groups: dict[str, str]) -> datetime:
    year = _year(groups)
    month = _month(groups)
    day = _day(groups, year, month)
    hour = _hour(groups)
    minute = _sixty(groups, "minute")
    second = _sixty(groups, "second")
    micro = int(groups.get("fraction", "0").ljust(6, "0"))
    return datetime(year, month, day, hour, minute, second, micro)


_EXCEL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]*)?")


def _excel(number: float) -> datetime:
    """Excel 1900 date system: serial 1 = 1900-01-01, 60 = the non-existent 1900-02-29."""
    if not math.isfinite(number) or not 1 <= number < EXCEL_MAX_SERIAL + 1:
        raise InvalidValue(f"an Excel serial day number must be 1-{EXCEL_MAX_SERIAL}")
    serial = math.floor(number)
    if serial == 60:
        raise InvalidValue("Excel serial day 60 is 1900-02-29, which does not exist")
    base = date(1899, 12, 31) if serial < 60 else date(1899, 12, 30)
    millis = round((number - serial) * 86_400_000)
    try:
        return datetime.combine(base + timedelta(days=serial), time()) + timedelta(milliseconds=millis)
    except OverflowError:
        raise InvalidValue(f"an Excel serial day number must be 1-{EXCEL_MAX_SERIAL}") from None


def _parse_text(text: str, formats: Sequence[str]) -> datetime:
    problem: InvalidValue | None = None
    for fmt in formats:
        try:
            if fmt == EXCEL:
                if _EXCEL_TEXT.fullmatch(text):
                    return _excel(float(text))
                continue
            match = _compile(fmt).regex.fullmatch(text)
            if match:
                return _build(match.groupdict())
        except InvalidValue as error:
            problem = problem or error
    if problem is not None:
        raise problem
    raise InvalidValue(f"does not match any of the formats {', '.join(formats)}")


def _to_datetime(value: object, formats: Sequence[str]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidValue("a true/false value is not a date")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return None
        if EXCEL not in formats:
            raise InvalidValue("a number is read as a date only with the excel format")
        return _excel(float(value))
    if isinstance(value, str):
        text = _clean_text(value)
        return _parse_text(text, formats) if text else None
    raise InvalidValue("not a date or text")


def _as_date(bound: date | None) -> date | None:
    return bound.date() if isinstance(bound, datetime) else bound


def _check_bounds(day: date, earliest: date | None, latest: date | None) -> None:
    earliest, latest = _as_date(earliest), _as_date(latest)
    if earliest is not None and day < earliest:
        raise InvalidValue(f"date is before {earliest.isoformat()}")
    if latest is not None and day > latest:
        raise InvalidValue(f"date is after {latest.isoformat()}")


def parse_datetime(
    value: object,
    formats: Sequence[str],
    *,
    earliest: date | None = None,
    latest: date | None = None,
) -> datetime | None:
    """Parse a date-time; None for None/blank. date objects become midnight.

    Strings are tried against each format in order; numbers need the EXCEL format.
    Raises InvalidValue with the specific reason (impossible date, no format matched,
    outside earliest/latest, compared by calendar day).
    """
    result = _to_datetime(value, formats)
    if result is not None:
        _check_bounds(result.date(), earliest, latest)
    return result


def parse_date(
    value: object,
    formats: Sequence[str],
    *,
    earliest: date | None = None,
    latest: date | None = None,
) -> date | None:
    """Parse a calendar date (a time of day in the value is validated and dropped); see parse_datetime."""
    result = _to_datetime(value, formats)
    if result is None:
        return None
    _check_bounds(result.date(), earliest, latest)
    return result.date()


# ---- vectorized path ---------------------------------------------------------------------

_KINDS = {"date": pl.Date(), "datetime": pl.Datetime("us")}


def _clean_series(values: pl.Series) -> pl.Series:
    """The vector form of _clean_text; NFKC runs in Python so both paths use one Unicode version."""
    non_ascii = values.str.contains(r"[^\x00-\x7F]").fill_null(False)
    if non_ascii.any():
        subset = pl.select(pl.when(non_ascii).then(values)).to_series()
        nfkc = map_distinct(subset, lambda s: unicodedata.normalize("NFKC", s), pl.String())
        values = nfkc.fill_null(values)
    cleaned = values.str.strip_chars(_SPACES)
    return pl.select(pl.when(cleaned.str.len_chars() > 0).then(cleaned)).to_series()


def _int(group: str) -> pl.Expr:
    return pl.col("g").struct.field(group).cast(pl.Int32)


def _days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    leap = ((year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))).cast(pl.Int32)
    return (
        pl.when(month == 2).then(28 + leap)
        .when(month.is_in([4, 6, 9, 11])).then(30)
        .otherwise(31)
    )


def _component_exprs(directives: tuple[str, ...]) -> dict[str, pl.Expr]:
    field = pl.col("g").struct.field
    zero = pl.lit(0, pl.Int32)
    if "Y" in directives:
        year = _int("year4")
    else:
        year = _int("year2") + pl.when(_int("year2") >= 69).then(1900).otherwise(2000)
    if "m" in directives:
        month = _int("month")
    else:
        month = field("monthname").str.to_lowercase().replace_strict(_MONTH_NUMBERS, return_dtype=pl.Int32)
    if "I" in directives:
        meridiem = field("ampm").str.to_lowercase().replace_strict(_MERIDIEMS, return_dtype=pl.Int32)
        hour = _int("hour12") % 12 + meridiem
    else:
        hour = _int("hour") if "H" in directives else zero
    return {
        "year": year,
        "month": month,
        "day": _int("day"),
        "hour": hour,
        "hour12": _int("hour12") if "I" in directives else pl.lit(1, pl.Int32),
        "minute": _int("minute") if "M" in directives else zero,
        "second": _int("second") if "S" in directives else zero,
        "micro": field("fraction").str.pad_end(6, "0").cast(pl.Int32) if "f" in directives else zero,
    }


def _parse_with_format(text: pl.Series, fmt: _Format) -> pl.Series:
    """Datetime for rows that `fmt` matches and that form a valid date-time, else null."""
    groups = text.str.extract_groups(f"^(?:{fmt.pattern})$")
    first_group = next(iter(fmt.regex.groupindex))
    c = _component_exprs(fmt.directives)
    frame = pl.DataFrame({"g": groups}).select(
        pl.col("g").struct.field(first_group).is_not_null().alias("matched"), **c
    )
    year, month, day = pl.col("year"), pl.col("month"), pl.col("day")
    valid = (
        pl.col("matched")
        & (year >= 1)
        & month.is_between(1, 12)
        & (day >= 1)
        & (day <= _days_in_month(year, month))
        & (pl.col("hour") <= 23)
        & pl.col("hour12").is_between(1, 12)
        & (pl.col("minute") <= 59)
        & (pl.col("second") <= 59)
    )
    # Components of invalid rows are nulled first: `when/then` evaluates the datetime for every row,
    # and polars raises on a day the month lacks (FEBRL4's B holds 31 September) instead of giving null.
    stamp = pl.datetime(
        *(pl.when(valid).then(pl.col(c)) for c in ("year", "month", "day", "hour", "minute", "second", "micro")),
        time_unit="us",
    )
    return frame.select(pl.when(valid).then(stamp).alias("t")).get_column("t")


def _parse_excel_rows(text: pl.Series) -> pl.Series:
    numeric = text.str.contains(f"^(?:{_EXCEL_TEXT.pattern})$").fill_null(False)

    def excel_or_null(s: str) -> datetime | None:
        try:
            return _excel(float(s))
        except InvalidValue:
            return None

    candidates = pl.select(pl.when(numeric).then(text)).to_series()
    return map_distinct(candidates, excel_or_null, pl.Datetime("us"))


def _scalar_outcome(formats: Sequence[str], earliest: date | None, latest: date | None):
    def outcome(text: str) -> dict[str, object]:
        try:
            return {"value": parse_datetime(text, formats, earliest=earliest, latest=latest), "reason": None}
        except InvalidValue as error:
            return {"value": None, "reason": str(error)}

    return outcome


_OUTCOME = pl.Struct({"value": pl.Datetime("us"), "reason": pl.String()})


def _in_bounds(parsed: pl.Series, earliest: date | None, latest: date | None) -> pl.Series:
    day = pl.col("t").dt.date()
    keep = pl.lit(True)
    if (earliest := _as_date(earliest)) is not None:
        keep = keep & (day >= earliest)
    if (latest := _as_date(latest)) is not None:
        keep = keep & (day <= latest)
    frame = pl.DataFrame({"t": parsed})
    return frame.select(pl.when(keep.fill_null(True)).then(pl.col("t")).alias("t")).get_column("t")


def swapped_formats(formats: Sequence[str]) -> list[str]:
    """The formats that hold both a day and a month, with the two exchanged ("%d/%m/%Y" ->
    "%m/%d/%Y"): for reading a date whose writer swapped them ("07/14/1977" in a %d/%m/%Y column)."""
    out = []
    for fmt in formats:
        if fmt != EXCEL and "%d" in fmt and "%m" in fmt:
            out.append(fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m"))
    return out


def parse_dates(
    values: pl.Series,
    formats: Sequence[str],
    kind: str = "date",
    earliest: date | None = None,
    latest: date | None = None,
) -> tuple[pl.Series, pl.Series]:
    """Vectorized parse_date / parse_datetime: (parsed Date or Datetime series, reason series).

    The reason is null where the value parsed or was blank. Gives exactly the scalar
    functions' results; only rows that no format parses reach the scalar code (for the reason).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}")
    for fmt in formats:
        check_format(fmt)
    if values.dtype == pl.String:
        outcome = _vector_outcome(values, formats, earliest, latest)
    else:
        outcome = map_distinct(values, _scalar_outcome(formats, earliest, latest), _OUTCOME)
    parsed = outcome.struct.field("value")
    if kind == "date":
        parsed = parsed.dt.date()
    return parsed.alias(values.name), outcome.struct.field("reason").alias("reason")


def _vector_outcome(
    values: pl.Series, formats: Sequence[str], earliest: date | None, latest: date | None
) -> pl.Series:
    text = _clean_series(values)
    parsed = pl.Series("value", [None] * len(text), dtype=pl.Datetime("us"))
    for fmt in formats:
        pending = pl.select(pl.when(parsed.is_null()).then(text)).to_series()
        if fmt == EXCEL:
            found = _parse_excel_rows(pending)
        else:
            found = _parse_with_format(pending, _compile(fmt))
        parsed = parsed.fill_null(found)
    parsed = _in_bounds(parsed, earliest, latest)
    leftover = pl.select(pl.when(parsed.is_null()).then(text)).to_series()
    outcome = map_distinct(leftover, _scalar_outcome(formats, earliest, latest), _OUTCOME)
    frame = pl.DataFrame({"parsed": parsed, "outcome": outcome})
    return frame.select(
        pl.struct(
            pl.coalesce(pl.col("parsed"), pl.col("outcome").struct.field("value")).alias("value"),
            pl.col("outcome").struct.field("reason").alias("reason"),
        ).alias("outcome")
    ).get_column("outcome")

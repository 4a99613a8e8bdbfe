"""Dates and times: formats, reasons, Excel serials, the vectorized path, map_distinct."""

from __future__ import annotations

import calendar
from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize import InvalidValue, map_distinct
from linkage.standardize.dates import EXCEL, check_format, parse_date, parse_dates, parse_datetime

DATE_FORMATS = [
    "%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%Y年%m月%d日", "%d.%m.%Y",
    "%d %b %Y", "%d-%b-%y", "%B %d, %Y", "%a %d %B %Y",
]
DATETIME_FORMATS = [
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y/%m/%d %H:%M", "%d/%m/%Y %I:%M %p",
    "%Y%m%d%H%M%S", "%Y年%m月%d日 %H时%M分",
]
COMPACT = {"%Y%m%d", "%Y%m%d%H%M%S"}  # adjacent numeric fields: always padded


def render(moment: datetime, fmt: str, pad: bool = True) -> str:
    """Format like strftime (English names, no locale), optionally without zero padding."""
    hour12 = moment.hour % 12 or 12
    unpadded = not pad and fmt not in COMPACT

    def two(n: int) -> str:
        return str(n) if unpadded else f"{n:02d}"

    fraction = f"{moment.microsecond:06d}"
    parts = {
        "Y": f"{moment.year:04d}", "y": f"{moment.year % 100:02d}", "m": two(moment.month),
        "d": two(moment.day), "H": two(moment.hour), "I": two(hour12), "M": two(moment.minute),
        "S": two(moment.second), "f": (fraction.rstrip("0") or "0") if unpadded else fraction,
        "p": "PM" if moment.hour >= 12 else "AM", "b": calendar.month_abbr[moment.month],
        "B": calendar.month_name[moment.month], "a": calendar.day_abbr[moment.weekday()],
        "A": calendar.day_name[moment.weekday()], "%": "%",
    }
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%":
            out.append(parts[fmt[i + 1]])
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def truncate(moment: datetime, fmt: str) -> datetime:
    """What a format can express: drop the fields it lacks."""
    fields = {"hour": ("%H", "%I"), "minute": ("%M",), "second": ("%S",), "microsecond": ("%f",)}
    return moment.replace(**{f: 0 for f, ds in fields.items() if not any(d in fmt for d in ds)})


def excel_serial(moment: datetime) -> float:
    base = datetime(1899, 12, 31) if moment < datetime(1900, 3, 1) else datetime(1899, 12, 30)
    delta = moment - base
    return delta.days + (delta.seconds * 1000 + delta.microseconds // 1000) / 86_400_000


def reason(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs), None
    except InvalidValue as error:
        return None, str(error)


# ---- literal examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "formats", "expected"),
    [
        ("1985-3-7", ["%Y-%m-%d"], date(1985, 3, 7)),
        ("1985-03-07", ["%Y-%m-%d"], date(1985, 3, 7)),
        ("19850307", ["%Y%m%d"], date(1985, 3, 7)),
        ("1985年3月7日", ["%Y年%m月%d日"], date(1985, 3, 7)),
        ("7/3/1985", ["%d/%m/%Y"], date(1985, 3, 7)),
        ("３/７/１９８５", ["%m/%d/%Y"], date(1985, 3, 7)),
        ("  1985-03-07\t", ["%Y-%m-%d"], date(1985, 3, 7)),
        ("7 Mar 1985", ["%d %b %Y"], date(1985, 3, 7)),
        ("7 march 1985", ["%d %B %Y"], date(1985, 3, 7)),
        ("07-SEP-85", ["%d-%b-%y"], date(1985, 9, 7)),
        ("07-Sept-85", ["%d-%b-%y"], date(1985, 9, 7)),
        ("1/2/03", ["%d/%m/%y"], date(2003, 2, 1)),
        ("1985-03-07 23:59:59", ["%Y-%m-%d %H:%M:%S"], date(1985, 3, 7)),
        ("1985-03-07", ["%Y%m%d", "%Y-%m-%d"], date(1985, 3, 7)),
        ("13/02/2020", ["%m/%d/%Y", "%d/%m/%Y"], date(2020, 2, 13)),
        ("31115", [EXCEL], date(1985, 3, 9)),
        ("31115.0", [EXCEL], date(1985, 3, 9)),
        ("43831", [EXCEL], date(2020, 1, 1)),
        ("59", [EXCEL], date(1900, 2, 28)),
        ("61", [EXCEL], date(1900, 3, 1)),
        (31115, [EXCEL], date(1985, 3, 9)),
        (31115.75, [EXCEL], date(1985, 3, 9)),
        (date(1985, 3, 7), ["%Y"], date(1985, 3, 7)),
        (datetime(1985, 3, 7, 10, 30), [], date(1985, 3, 7)),
        (None, ["%Y-%m-%d"], None),
        ("", ["%Y-%m-%d"], None),
        (" \u3000 ", ["%Y-%m-%d"], None),
        (float("nan"), [EXCEL], None),
    ],
)
def test_parse_date_examples(value, formats, expected):
    assert parse_date(value, formats) == expected


@pytest.mark.parametrize(
    ("value", "formats", "expected"),
    [
        ("2020/3/1 2:30 PM", ["%Y/%m/%d %I:%M %p"], datetime(2020, 3, 1, 14, 30)),
        ("2020/3/1 12:05 am", ["%Y/%m/%d %I:%M %p"], datetime(2020, 3, 1, 0, 5)),
        ("2020/3/1 2:30 下午", ["%Y/%m/%d %I:%M %p"], datetime(2020, 3, 1, 14, 30)),
        ("2020-03-01T08:09:10.5", ["%Y-%m-%dT%H:%M:%S.%f"], datetime(2020, 3, 1, 8, 9, 10, 500000)),
        ("2020-03-01  8:09", ["%Y-%m-%d %H:%M"], datetime(2020, 3, 1, 8, 9)),
        ("2020年3月1日 8时9分", ["%Y年%m月%d日 %H时%M分"], datetime(2020, 3, 1, 8, 9)),
        ("43831.5", [EXCEL], datetime(2020, 1, 1, 12, 0)),
        (43831.25, [EXCEL], datetime(2020, 1, 1, 6, 0)),
        (date(2020, 1, 1), [], datetime(2020, 1, 1)),
        ("2020-01-01 100%", ["%Y-%m-%d 100%%"], datetime(2020, 1, 1)),
    ],
)
def test_parse_datetime_examples(value, formats, expected):
    assert parse_datetime(value, formats) == expected


@pytest.mark.parametrize(
    ("value", "formats", "message"),
    [
        ("2021-02-30", ["%Y-%m-%d"], "day 30 is out of range for February 2021"),
        ("1985-02-29", ["%Y-%m-%d"], "day 29 is out of range for February 1985"),
        ("1985-13-01", ["%Y-%m-%d"], "month 13 is not 1-12"),
        ("1985-00-01", ["%Y-%m-%d"], "month 0 is not 1-12"),
        ("0000-01-01", ["%Y-%m-%d"], "year 0 is not 1-9999"),
        ("2020-01-01 24:00", ["%Y-%m-%d %H:%M"], "hour 24 is not 0-23"),
        ("2020-01-01 10:60", ["%Y-%m-%d %H:%M"], "minute 60 is not 0-59"),
        ("2020-01-01 13:00 PM", ["%Y-%m-%d %I:%M %p"], "hour 13 is not 1-12 on a 12-hour clock"),
        ("hello", ["%Y%m%d", "%d/%m/%Y"], "does not match any of the formats %Y%m%d, %d/%m/%Y"),
        ("1985307", ["%Y%m%d"], "does not match any of the formats %Y%m%d"),
        ("2021-02-30", ["%d/%m/%Y", "%Y-%m-%d"], "day 30 is out of range for February 2021"),
        ("60", [EXCEL], "Excel serial day 60 is 1900-02-29, which does not exist"),
        ("0", [EXCEL], "an Excel serial day number must be 1-2958465"),
        ("2958466", [EXCEL], "an Excel serial day number must be 1-2958465"),
        (31115, ["%Y%m%d"], "a number is read as a date only with the excel format"),
        (True, [EXCEL], "a true/false value is not a date"),
        (object(), ["%Y"], "not a date or text"),
    ],
)
def test_invalid_dates_give_the_reason(value, formats, message):
    with pytest.raises(InvalidValue) as error:
        parse_datetime(value, formats)
    assert str(error.value) == message


def test_bounds():
    formats = ["%Y-%m-%d"]
    bounds = {"earliest": date(1900, 1, 1), "latest": date(2030, 12, 31)}
    assert parse_date("1900-01-01", formats, **bounds) == date(1900, 1, 1)
    with pytest.raises(InvalidValue, match="^date is before 1900-01-01$"):
        parse_date("1899-12-31", formats, **bounds)
    with pytest.raises(InvalidValue, match="^date is after 2030-12-31$"):
        parse_datetime("2031-01-01", formats, **bounds)
    assert parse_datetime("2030-12-31", formats, latest=datetime(2030, 12, 31, 1)) == datetime(2030, 12, 31)


@pytest.mark.parametrize(
    "fmt", [EXCEL, "%Y-%m-%d", "%Y%m%d", "%Y年%m月%d日", "%d/%m/%Y %I:%M %p", "%Y-%m-%dT%H:%M:%S.%f", "%a %d %b %y"]
)
def test_check_format_accepts(fmt):
    check_format(fmt)


@pytest.mark.parametrize(
    ("fmt", "problem"),
    [
        ("", "non-empty"),
        ("YYYY-MM-DD", "no % directive"),
        ("%Y-%m-%Q", "unknown directive %Q"),
        ("%Y-%m", "needs a day"),
        ("%m-%d", "needs a year"),
        ("%Y-%d", "needs a month"),
        ("%Y-%m-%d %z", "time zones"),
        ("%Y-%m-%d %", "lone %"),
        ("%Y-%m-%d %Y", "%Y and %Y both give the year"),
        ("%Y-%m-%d %I:%M", "%I (12-hour clock) and %p"),
        ("%Y-%m-%d %M", "%M needs an hour"),
    ],
)
def test_check_format_rejects(fmt, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check_format(fmt)


def test_parse_dates_vectorized_examples():
    values = pl.Series("dob", ["1985-3-7", None, "", "2021-02-30", "19850307", "x", " 1985-03-07 "])
    parsed, reasons = parse_dates(values, ["%Y%m%d", "%Y-%m-%d"])
    assert parsed.dtype == pl.Date
    assert parsed.name == "dob"
    assert parsed.to_list() == [date(1985, 3, 7), None, None, None, date(1985, 3, 7), None, date(1985, 3, 7)]
    assert reasons.to_list() == [
        None, None, None, "day 30 is out of range for February 2021", None,
        "does not match any of the formats %Y%m%d, %Y-%m-%d", None,
    ]


def test_parse_dates_non_string_series_and_kinds():
    dates = pl.Series([date(2020, 1, 1), None])
    parsed, reasons = parse_dates(dates, [], kind="datetime")
    assert parsed.dtype == pl.Datetime("us")
    assert parsed.to_list() == [datetime(2020, 1, 1), None]
    assert reasons.to_list() == [None, None]
    serials = pl.Series([43831, 60, None])
    parsed, reasons = parse_dates(serials, [EXCEL])
    assert parsed.to_list() == [date(2020, 1, 1), None, None]
    assert reasons.to_list() == [None, "Excel serial day 60 is 1900-02-29, which does not exist", None]
    assert parse_dates(pl.Series([], dtype=pl.String), ["%Y%m%d"])[0].to_list() == []
    assert parse_dates(pl.Series([None, None], dtype=pl.String), ["%Y%m%d"])[1].to_list() == [None, None]
    with pytest.raises(ValueError):
        parse_dates(pl.Series(["x"]), ["%Y%m%d"], kind="time")
    with pytest.raises(ValueError):
        parse_dates(pl.Series(["x"]), ["%Q"])


# ---- properties --------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))


@settings(max_examples=300, deadline=None)
@given(MOMENTS, st.sampled_from(DATE_FORMATS + DATETIME_FORMATS), st.booleans())
def test_formatted_values_parse_back(moment, fmt, pad):
    if "%y" in fmt:
        moment = moment.replace(year=1969 + moment.year % 100, day=min(moment.day, 28))  # no 29 Feb
    text = render(moment, fmt, pad)
    assert parse_datetime(text, [fmt]) == truncate(moment, fmt)
    assert parse_date(text, [fmt]) == moment.date()


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_excel_serials_parse_back(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if moment.date() == date(1900, 2, 28) or moment.date() == date(9999, 12, 31):
        moment = moment.replace(hour=0)
    serial = excel_serial(moment)
    assert parse_datetime(serial, [EXCEL]) == moment
    assert parse_datetime(repr(serial), [EXCEL]) == moment


ANY_FORMAT = DATE_FORMATS + DATETIME_FORMATS + [EXCEL]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), st.text(), st.integers(), st.floats(), st.booleans(), st.dates(), st.datetimes()),
    st.lists(st.sampled_from(ANY_FORMAT), max_size=3),
)
def test_parsers_only_raise_invalid_value(value, formats):
    for fn in (parse_date, parse_datetime):
        try:
            fn(value, formats, earliest=date(1900, 1, 1))
        except InvalidValue:
            pass


def date_like_text():
    numbers = st.integers(min_value=0, max_value=40)
    shaped = st.builds(
        lambda y, m, d, sep: f"{y}{sep}{m}{sep}{d}",
        st.integers(min_value=0, max_value=3000), numbers, numbers, st.sampled_from(["-", "/", ""]),
    )
    rendered = st.builds(
        render, MOMENTS, st.sampled_from(DATE_FORMATS + DATETIME_FORMATS), st.booleans()
    )
    serial = st.one_of(st.integers(min_value=-5, max_value=3_000_000).map(str),
                       st.floats(min_value=0, max_value=3e6, allow_nan=False).map(repr))
    spaced = rendered.map(lambda s: f" \u3000{s}\t")
    return st.one_of(shaped, rendered, serial, spaced, st.text(max_size=12), st.just(""), st.none())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(date_like_text(), max_size=25),
    st.lists(st.sampled_from(ANY_FORMAT), min_size=1, max_size=4),
    st.sampled_from(["date", "datetime"]),
    st.sampled_from([None, date(1900, 1, 1)]),
    st.sampled_from([None, date(2030, 12, 31)]),
)
def test_vectorized_equals_scalar(values, formats, kind, earliest, latest):
    parsed, reasons = parse_dates(pl.Series(values, dtype=pl.String), formats, kind, earliest, latest)
    scalar = parse_date if kind == "date" else parse_datetime
    expected = [reason(scalar, v, formats, earliest=earliest, latest=latest) for v in values]
    assert list(zip(parsed.to_list(), reasons.to_list(), strict=True)) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["a", "b", "张"])), max_size=30))
def test_map_distinct_equals_a_plain_map(values):
    calls: list[str] = []

    def fn(v: str) -> int:
        calls.append(v)
        return len(v) * 7 + ord(v[0]) if v else -1

    series = pl.Series("col", values, dtype=pl.String)
    result = map_distinct(series, fn, pl.Int64())
    assert result.name == "col"
    assert result.to_list() == [None if v is None else fn(v) for v in values]
    assert None not in calls
    assert len(calls) - len(values) + values.count(None) <= len({v for v in values if v is not None})


def test_map_distinct_calls_each_distinct_value_once():
    calls: list[object] = []
    series = pl.Series(["a", "b", "a", None, "a"])
    out = map_distinct(series, lambda v: calls.append(v) or v.upper(), pl.String())
    assert out.to_list() == ["A", "B", "A", None, "A"]
    assert calls == ["a", "b"]


def test_day_before_and_after_every_month_end():
    # every month of a leap and a common year, last valid day and the day after
    for year in (2019, 2020, 1900, 2000):
        for month in range(1, 13):
            last = calendar.monthrange(year, month)[1]
            assert parse_date(f"{year}-{month}-{last}", ["%Y-%m-%d"]) == date(year, month, last)
            with pytest.raises(InvalidValue, match="out of range"):
                parse_date(f"{year}-{month}-{last + 1}", ["%Y-%m-%d"])


def test_impossible_components_give_a_reason_not_an_error():
    """Components no calendar has (day 93, month 13, hour 25) are a reason per row; the vectorized
    parser built every row's date-time and raised on them (a FEBRL4 file failed to load)."""
    values = pl.Series("dob", ["19450493", "19451305", "19450405", "1945-04-93"])
    parsed, reasons = parse_dates(values, ["%Y%m%d", "%Y-%m-%d"])
    assert parsed.to_list() == [None, None, date(1945, 4, 5), None]
    assert all(reasons[i] for i in (0, 1, 3)) and reasons[2] is None
    stamps, why = parse_dates(pl.Series(["2026/03/20 25:10", "2026/03/20 10:61", "2026/03/20 10:10"]),
                              ["%Y/%m/%d %H:%M"], "datetime")
    assert stamps.null_count() == 2 and why.null_count() == 1

"""Phone numbers (E.164) and e-mail addresses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize import InvalidValue
from linkage.standardize.phones import normalize_email, to_e164


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+86 138-0013-8000", "CN", "+8613800138000"),
        ("0086 13800138000", "CN", "+8613800138000"),
        ("138 0013 8000", "CN", "+8613800138000"),
        ("13800138000", "cn", "+8613800138000"),
        ("(010) 6552 9988", "CN", "+861065529988"),
        ("＋８６ １３８００１３８０００", "CN", "+8613800138000"),
        (13800138000, "CN", "+8613800138000"),
        (13800138000.0, "CN", "+8613800138000"),
        ("+44 20 7946 0958", "CN", "+442079460958"),
        ("+8613800138000", None, "+8613800138000"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("", "CN", None),
        ("   ", "CN", None),
        (None, "CN", None),
    ],
)
def test_to_e164(value, region, expected):
    assert to_e164(value, region) == expected


@pytest.mark.parametrize(
    ("value", "region", "message"),
    [
        ("12", "CN", "not a valid phone number for region CN"),
        ("hello", "CN", "not a valid phone number for region CN"),
        ("13800138000", None, "not a valid phone number (no country code and no default region)"),
        (True, "CN", "a true/false value is not a phone number"),
        (1.5, "CN", "a fractional number is not a phone number"),
        (-13800138000, "CN", "not a valid phone number for region CN"),
        (object(), "CN", "not a phone number"),
    ],
)
def test_to_e164_rejects(value, region, message):
    with pytest.raises(InvalidValue) as error:
        to_e164(value, region)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Zhang.Wei@Example.COM ", "zhang.wei@example.com"),
        ("ｗｅｉ＠ｅｘａｍｐｌｅ．ｃｎ", "wei@example.cn"),
        ("a+tag@mail.co.uk", "a+tag@mail.co.uk"),
        ("用户@例子.中国", "用户@例子.中国"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_email(value, expected):
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value", ["no-at-sign", "two@@example.com", "a b@example.com", "a@localhost", "a@.com", "a@b.", "@b.com", 42]
)
def test_normalize_email_rejects(value):
    with pytest.raises(InvalidValue):
        normalize_email(value)


PHONE_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("0123456789+-() ０８６　x")), max_size=20),
    st.from_regex(r"\+?(86|0086)? ?1[3-9][0-9]{9}", fullmatch=True),
    st.from_regex(r"0[1-9][0-9]{1,2}-?[2-8][0-9]{6,7}", fullmatch=True),
)
REGION = st.sampled_from(["CN", "US", "GB", "DE", "HK", None])


@settings(max_examples=300, deadline=None)
@given(st.one_of(PHONE_TEXT, st.integers(), st.floats(), st.none()), REGION)
def test_to_e164_only_raises_invalid_value_and_is_idempotent(value, region):
    try:
        e164 = to_e164(value, region)
    except InvalidValue:
        return
    if e164 is not None:
        assert e164.startswith("+")
        assert to_e164(e164, region) == e164
        assert to_e164(e164, None) == e164


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.emails(), st.none(), st.integers()))
def test_normalize_email_only_raises_invalid_value_and_is_idempotent(value):
    try:
        email = normalize_email(value)
    except InvalidValue:
        return
    assert normalize_email(email) == email


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["CN", "HK", "US", "GB", "DE", "KR"]), st.integers(min_value=0, max_value=10**11),
       st.sampled_from(["{n}", "+{cc}{n}", "00{cc}{n}", "0{n}", "+{cc} {n}"]))
def test_fast_path_agrees_with_the_general_parser(region, number, shape):
    import phonenumbers

    from linkage.standardize.phones import _parse_digits

    cc = phonenumbers.country_code_for_region(region)
    text = shape.format(cc=cc, n=number)
    fast = _parse_digits(text.replace(" ", ""), region)
    if fast is None:
        return
    parsed = phonenumbers.parse(text, region)
    assert phonenumbers.is_valid_number(parsed)
    assert fast == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize("text", ["13800138000", "+8613800138000", "008613800138000", "01065529988", "+85291234567"])
def test_fast_path_on_common_shapes(text):
    import phonenumbers

    from linkage.standardize.phones import _parse_digits

    parsed = phonenumbers.parse(text, "CN")
    expected = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    assert to_e164(text, "CN") == expected
    assert _parse_digits(text, "CN") in (None, expected)
    if text.startswith(("1", "+")):
        assert _parse_digits(text, "CN") == expected


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["CN", "HK", "US", "GB", "DE", "KR", "JP", None]),
       st.lists(st.one_of(
           st.integers(min_value=0, max_value=10**12).map(str),
           st.integers(min_value=0, max_value=10**12).map(lambda n: f"+86 {n}"),
           st.integers(min_value=0, max_value=10**11).map(lambda n: f"0086-{n}"),
           st.integers(min_value=10**9, max_value=10**10).map(lambda n: f"+1 {n}"),
           st.sampled_from(["138 0013 8000", "+86-138-0013-8000", "(010) 6552 9988", "+852 9123 4567",
                            "+44 20 7946 0958", "abc", "", " ", "＋８６ １３８００１３８０００"]),
           st.none()), max_size=40))
def test_vectorized_phones_equal_the_scalar_function(region, values):
    import polars as pl

    from linkage.standardize.phones import to_e164_many

    got, reasons = to_e164_many(pl.Series("p", values, dtype=pl.Utf8), region)
    for value, out, reason in zip(values, got.to_list(), reasons.to_list()):
        try:
            expected, expected_reason = to_e164(value, region), None
        except InvalidValue as exc:
            expected, expected_reason = None, str(exc)
        assert (out, reason) == (expected, expected_reason), value

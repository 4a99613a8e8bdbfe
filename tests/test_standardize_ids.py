"""Identity documents: normalisation, Chinese resident IDs, document types."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize import InvalidValue
from linkage.standardize.ids import (
    classify_document_type,
    guess_document_type,
    make_resident_id,
    normalize_document,
    parse_resident_id,
    resident_id_checksum,
)

# A published sample number (GB 11643 examples): 11010519491231002X, female, 1949-12-31.
SAMPLE_ID = "11010519491231002X"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("e 1234-5678", "E12345678"),
        ("G.123/456.78", "G12345678"),
        ("ｅ１２３４５６７８", "E12345678"),
        ("  h123 456 78 ", "H12345678"),
        ("110105 19491231 002x", SAMPLE_ID),
        (12345678, "12345678"),
        (12345678.0, "12345678"),
        ("", None),
        (" - / . ", None),
        (None, None),
        (True, None),
    ],
)
def test_normalize_document(value, expected):
    assert normalize_document(value) == expected


def test_checksum_known_numbers():
    assert resident_id_checksum(SAMPLE_ID[:17]) == "X"
    assert resident_id_checksum("11010519850307123") == "0"
    with pytest.raises(ValueError):
        resident_id_checksum("123")


def test_parse_resident_id_examples():
    assert parse_resident_id(SAMPLE_ID) == {"number": SAMPLE_ID, "dob": date(1949, 12, 31), "sex": "F"}
    assert parse_resident_id("110105 1949 1231 002x")["number"] == SAMPLE_ID
    legacy = parse_resident_id("110105491231002")
    assert legacy == {"number": SAMPLE_ID, "dob": date(1949, 12, 31), "sex": "F"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("11010519491231002", "a resident ID has 18 characters, not 17"),
        ("1101051949123100211", "a resident ID has 18 characters, not 19"),
        ("11010519491231002A", "a resident ID is 17 digits followed by a digit or X"),
        ("1101051949123100A9", "a resident ID is 17 digits followed by a digit or X"),
        ("110105194902300021", "birth day 30 is out of range for month 2 of 1949"),
        ("110105194913310021", "birth month 13 is not 1-12"),
        ("110105000001010021", "birth year 0000 is not a year"),
        ("110105194912310021", "checksum digit should be X"),
        ("11010549123100A", "a 15-digit resident ID must be all digits"),
        ("", "a resident ID number is empty"),
        (None, "a resident ID number is empty"),
    ],
)
def test_parse_resident_id_reasons(value, message):
    with pytest.raises(InvalidValue) as error:
        parse_resident_id(value)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("护照", "passport"), ("普通护照", "passport"), ("外国护照", "passport"), ("passport", "passport"),
        ("Passport", "passport"), ("P", "passport"), ("pp", "passport"), (" PASSPORT ", "passport"),
        ("居民身份证", "id_number"), ("身份证", "id_number"), ("二代身份证", "id_number"),
        ("ID", "id_number"), ("ID card", "id_number"), ("id-card", "id_number"),
        ("中华人民共和国居民身份证", "id_number"), ("ＩＤ", "id_number"),
        ("港澳居民来往内地通行证", "permit_no"), ("回乡证", "permit_no"),
        ("台湾居民来往大陆通行证", "permit_no"), ("台胞证", "permit_no"), ("往来港澳通行证", "permit_no"),
        ("外国人永久居留身份证", "permit_no"), ("外国人永久居留证", "permit_no"),
        ("permit", "permit_no"), ("HKM permit", "permit_no"), ("hkm  PERMIT", "permit_no"),
        ("军官证", None), ("", None), (None, None), (3, None),
    ],
)
def test_classify_document_type(label, kind):
    assert classify_document_type(label) == kind


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        (SAMPLE_ID, "id_number"),
        ("110105491231002", "id_number"),
        ("110105194912310021", None),  # 18 digits, wrong checksum
        ("H12345678", "permit_no"),
        ("M1234567890", "permit_no"),
        ("12345678", "permit_no"),
        ("ABC123456789012", "permit_no"),
        ("E12345678", "passport"),
        ("G1234567", "passport"),
        ("C01X00T47", "passport"),
        ("1234", None),
        ("ABCDEFGHIJKLM", None),
    ],
)
def test_guess_document_type(number, kind):
    assert guess_document_type(number) == kind


def test_foreign_permanent_residence_card_2017():
    number = make_resident_id("933100", date(1980, 1, 2), 5)
    assert guess_document_type(number) == "permit_no"


# ---- properties --------------------------------------------------------------------------

REGIONS = st.text(alphabet="0123456789", min_size=6, max_size=6)
DOBS = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
SEQUENCES = st.integers(min_value=0, max_value=999)
ANY = st.one_of(st.none(), st.text(), st.integers(), st.floats(), st.booleans(), st.binary())


@settings(max_examples=300, deadline=None)
@given(REGIONS, DOBS, SEQUENCES)
def test_resident_id_round_trip(region, dob, sequence):
    number = make_resident_id(region, dob, sequence)
    assert len(number) == 18
    parsed = parse_resident_id(number)
    assert parsed == {"number": number, "dob": dob, "sex": "M" if sequence % 2 else "F"}
    assert guess_document_type(number) == ("permit_no" if region.startswith("9") else "id_number")


@settings(max_examples=300, deadline=None)
@given(REGIONS, DOBS, SEQUENCES, st.integers(min_value=0, max_value=17), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_breaks_the_checksum(region, dob, sequence, position, shift):
    number = make_resident_id(region, dob, sequence)
    alphabet = "0123456789X" if position == 17 else "0123456789"
    old = alphabet.index(number[position])
    changed = number[:position] + alphabet[(old + shift) % len(alphabet)] + number[position + 1:]
    with pytest.raises(InvalidValue):
        parse_resident_id(changed)


@settings(max_examples=300, deadline=None)
@given(ANY)
def test_id_functions_only_raise_invalid_value(value):
    normalized = normalize_document(value)
    assert normalize_document(normalized) == normalized
    assert classify_document_type(value) in (None, "passport", "id_number", "permit_no")
    if normalized is not None:
        assert guess_document_type(normalized) in (None, "passport", "id_number", "permit_no")
    try:
        parse_resident_id(value)
    except InvalidValue:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789Xx -./　０１２ＡＢ")), max_size=22))
def test_id_shaped_text(text):
    normalized = normalize_document(text)
    assert normalize_document(normalized) == normalized
    try:
        parsed = parse_resident_id(text)
    except InvalidValue:
        return
    assert parse_resident_id(parsed["number"]) == parsed


_id_values = st.one_of(
    st.builds(lambda d, s, r: make_resident_id(r, d, s), st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 1, 1)),
              st.integers(0, 999), st.sampled_from(["110105", "310101", "440305"])),
    st.text(alphabet="0123456789X", min_size=15, max_size=18),
    st.text(max_size=20), st.none(),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_id_values, max_size=30))
def test_vectorized_resident_ids_equal_the_scalar_function(values):
    import polars as pl

    from linkage.standardize.ids import parse_resident_ids

    parsed, reasons = parse_resident_ids(pl.Series("id", values, dtype=pl.Utf8))
    for value, got, reason in zip(values, parsed.to_list(), reasons.to_list()):
        if value is None:
            assert got is None and reason is None
            continue
        try:
            assert (got, reason) == (parse_resident_id(value), None)
        except InvalidValue as exc:
            assert (got, reason) == (None, str(exc))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=15), st.text(alphabet="AbC-12 ./３", max_size=12), st.none()), max_size=30))
def test_vectorized_normalize_equals_the_scalar_function(values):
    import polars as pl

    from linkage.standardize.ids import normalize_documents

    got = normalize_documents(pl.Series("d", values, dtype=pl.Utf8)).to_list()
    assert got == [normalize_document(v) for v in values]

"""Sex codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize import InvalidValue
from linkage.standardize.sex import to_sex


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("M", "M"), ("m", "M"), ("MALE", "M"), ("Male", "M"), ("Man", "M"), ("男", "M"), ("男性", "M"),
        ("1", "M"), (1, "M"), (1.0, "M"), (" Ｍ ", "M"),
        ("F", "F"), ("f", "F"), ("FEMALE", "F"), ("female", "F"), ("Woman", "F"), ("女", "F"),
        ("女性", "F"), ("2", "F"), (2, "F"),
        (None, None), ("", None), ("  ", None), ("U", None), ("X", None), ("未知", None), ("0", None),
        ("9", None), (0, None), ("unknown", None), (float("nan"), None),
    ],
)
def test_to_sex(value, expected):
    assert to_sex(value) == expected


@pytest.mark.parametrize("value", ["Q", "3", 3, "males", "男女", True, 1.5, object()])
def test_to_sex_rejects(value):
    with pytest.raises(InvalidValue):
        to_sex(value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_to_sex_only_raises_invalid_value_and_is_idempotent(value):
    try:
        sex = to_sex(value)
    except InvalidValue:
        return
    assert sex in ("M", "F", None)
    assert to_sex(sex) == sex

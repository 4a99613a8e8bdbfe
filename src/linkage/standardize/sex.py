"""Sex codes: every spelling in the exports (M/F, 男/女, GB/T 2261 digits ...) to "M", "F" or None."""

from __future__ import annotations

import math
import unicodedata

from linkage.standardize import InvalidValue

__all__ = ["to_sex"]

_MALE = ("M", "MALE", "MAN", "男", "男性", "1")
_FEMALE = ("F", "FEMALE", "WOMAN", "女", "女性", "2")
# GB/T 2261.1: 0 = unknown, 9 = not stated. Unknown is not an error.
_UNKNOWN = ("U", "X", "UNKNOWN", "UNK", "N/A", "NA", "-", "?", "0", "9", "未知", "不详", "未说明", "未知的性别", "未说明的性别")

_CODES: dict[str, str | None] = {
    **{k: "M" for k in _MALE},
    **{k: "F" for k in _FEMALE},
    **{k: None for k in _UNKNOWN},
}


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        raise InvalidValue("a true/false value is not a sex code")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | str):
        return str(value)
    raise InvalidValue("not a sex code")


def to_sex(value: object) -> str | None:
    """Return "M", "F", or None for empty or explicitly unknown values; raise InvalidValue otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = unicodedata.normalize("NFKC", _as_text(value)).strip().upper()
    if not text:
        return None
    if text in _CODES:
        return _CODES[text]
    raise InvalidValue("not a recognised sex code (expected M/F, 男/女 or 1/2)")

"""Contact details: phone numbers to E.164 (via phonenumbers) and e-mail addresses to one spelling."""

from __future__ import annotations

import math
import re
import unicodedata

import phonenumbers

from linkage.standardize import InvalidValue

__all__ = ["normalize_email", "to_e164"]


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
    where = f" for region {default_region}" if default_region else " (no country code and no default region)"
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidValue(f"not a valid phone number{where}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(f"not a valid phone number{where}")
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

"""The officer's language: words, sentence templates, times, countries and phone numbers of the
district files, read from a language file (linkage/locales/LANG.toml shipped, or the site's own
CONFIG_DIR/i18n/LANG.toml, which then replaces it whole).

Owns the keys every language file must hold (a missing one is a ConfigError naming the file and
the key) and the fixed list of officers' outcomes; the words themselves are in the files only.
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
import pycountry

from .config import read_toml
from .errors import ConfigError

LANGUAGES = ("zh", "en")
SHIPPED = Path(__file__).parent / "locales"

# The officers' answers, in the order of the drop-down (the words are in the language files).
OUTCOMES = ("confirmed", "not_same_person", "record_elsewhere", "resolved", "cannot_reach", "other")

FLAG_CODES = ("MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE", "DISTRICT_MISMATCH",
              "IDENTITY_CONFLICT")
ANSWER_COLUMNS = ("previous_answer", "outcome", "resolved_on", "comment", "answered_by", "flag_key")

# section -> (required keys, the placeholders each template may use; None: plain words)
REQUIRED: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]] | None]] = {
    "headers": (("person_id", "code", "code_text", "stage", "status", "severity", "district", "confidence", "review",
                 "reason", "due", "first_seen", "name", "dob", "sex", "nationality", "phone", "passport",
                 "id_number", "permit_no", "evidence", *ANSWER_COLUMNS), None),
    "code": (FLAG_CODES, None),
    "status": (("new", "open", "resolved"), None),
    "severity": (("critical", "high", "medium", "low"), None),
    "stage": ((), None),          # stages are the site's (chain.toml): each one used must be there
    "sex": (("M", "F"), None),
    "yes_no": (("yes", "no"), None),
    "field": (("id_number", "passport", "permit_no", "dob"), None),
    "sources": ((), None),        # optional: a source not listed is shown by its name
    "units": (("m", "h", "d"), {"m": ("n",), "h": ("n",), "d": ("n",)}),
    "outcome": (OUTCOMES, None),
    "reason": (("missing_stage", "missing_stage_no_anchor", "due", "later_stage", "out_of_order", "gap_exceeded",
                "early_release", "district_mismatch", "identity_conflict", "identity_conflict_withheld",
                "identity_conflict_link", "low_confidence", "join_review"), {
        "missing_stage": ("after_stage", "anchor_time", "anchor_record", "stage"),
        "missing_stage_no_anchor": ("stage",),
        "due": ("due",),
        "later_stage": (),
        "out_of_order": ("stage", "time", "record", "earlier_stage", "earlier_time"),
        "gap_exceeded": ("stage", "time", "record", "after_stage", "anchor_time", "elapsed", "allowed"),
        "early_release": ("stage", "time", "record", "after_stage", "anchor_time", "elapsed", "allowed"),
        "district_mismatch": ("stage", "time", "record", "district", "destination"),
        "identity_conflict": ("field", "value_a", "value_b", "records"),
        "identity_conflict_withheld": ("field", "records"),
        "identity_conflict_link": ("records",),
        "low_confidence": ("confidence",),
        "join_review": ("other",)}),
    "review": (("low_confidence", "join_review", "identity"),
               {"low_confidence": ("confidence",), "join_review": ("other",), "identity": ()}),
}
TOP_LEVEL = {"time_format": ("t",), "date_format": ("t",), "phone_home_region": None, "separator": None}
_PLACEHOLDER = re.compile(r"\{([^{}:!.\[]*)")


def _placeholders(template: str) -> set[str]:
    return {name for name in _PLACEHOLDER.findall(template.replace("{{", "").replace("}}", ""))}


@dataclass(frozen=True)
class Language:
    """One language file, checked: every key there, every template with known placeholders only."""

    code: str
    path: Path
    data: dict[str, Any]

    def word(self, section: str, key: Any) -> str:
        """The word for `key` in `section`; a ConfigError naming the file and key when it is missing."""
        if key is None:
            return ""
        words = self.data.get(section, {})
        if str(key) not in words:
            raise ConfigError(f"{self.path}: key '{section}.{key}' missing (the {self.code} words of the district "
                              "files); add it")
        return words[str(key)]

    def header(self, column: str) -> str:
        return self.word("headers", column)

    def source(self, name: str) -> str:
        return self.data.get("sources", {}).get(name, name)

    def template(self, section: str, key: str, **parts: Any) -> str:
        return self.word(section, key).format(**parts)

    def time(self, value: datetime | None) -> str:
        return "" if value is None else self.data["time_format"].format(t=value)

    def date(self, value: date | datetime | None) -> str:
        return "" if value is None else self.data["date_format"].format(t=value)

    @property
    def separator(self) -> str:
        return self.data["separator"]

    def yes_no(self, value: bool) -> str:
        return self.word("yes_no", "yes" if value else "no")

    def duration(self, seconds: float) -> str:
        """A duration in the largest unit that fits (days from 2 days, hours from 1 hour), one decimal."""
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size * (2 if unit == "d" else 1) or unit == "m":
                n = round(seconds / size, 1)
                return self.template("units", unit, n=int(n) if n == int(n) else n)
        raise AssertionError("unreachable")

    def country(self, alpha3: str | None) -> str:
        """The country of an ISO alpha-3 code in this language (pycountry's names and locales)."""
        if not alpha3:
            return ""
        country = pycountry.countries.get(alpha_3=alpha3)
        if country is None:
            return alpha3
        english = getattr(country, "common_name", None) or country.name
        if self.code == "en":
            return english
        return _country_translation(self.code).gettext(country.name)

    def phone(self, e164: str | None) -> str:
        """A phone number as dialled here: the home region's numbers in their national format
        (138 0013 8000), others with the international prefix 00 (00 1 212-555-0100). Never a
        leading '+', so no spreadsheet reads it as a formula; spaces keep it text."""
        if not e164:
            return ""
        try:
            number = phonenumbers.parse(e164, self.data["phone_home_region"])
        except phonenumbers.NumberParseException:
            return e164
        if phonenumbers.region_code_for_number(number) == self.data["phone_home_region"]:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return "00 " + text[1:] if text.startswith("+") else text

    def outcome_labels(self) -> dict[str, str]:
        return {key: self.word("outcome", key) for key in OUTCOMES}


@lru_cache(maxsize=4)
def _country_translation(code: str) -> gettext.NullTranslations:
    locale = {"zh": "zh_CN"}.get(code, code)
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale])
    except OSError:
        return gettext.NullTranslations()


def language_file(code: str, config_dir: Path | None) -> Path:
    """The site's CONFIG_DIR/i18n/LANG.toml when there is one, else the shipped file."""
    if config_dir is not None:
        own = Path(config_dir) / "i18n" / f"{code}.toml"
        if own.is_file():
            return own
    return SHIPPED / f"{code}.toml"


def load_language(code: str, config_dir: Path | None = None, stages: tuple[str, ...] = ()) -> Language:
    """The checked language file of `code` (and a word for each of `stages`)."""
    if code not in LANGUAGES:
        raise ConfigError(f"unknown language '{code}'; languages: {', '.join(LANGUAGES)}")
    path = language_file(code, config_dir)
    data = read_toml(path)
    for key, names in TOP_LEVEL.items():
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{path}: key '{key}' missing or not a string")
        if names is not None:
            _check_template(path, key, data[key], names)
    for section, (keys, templates) in REQUIRED.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: key '{section}' must be a table ([{section}])")
        for key in (*keys, *(stages if section == "stage" else ())):
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise ConfigError(f"{path}: key '{section}.{key}' missing (the {code} words of the district files)")
            if templates is not None:
                _check_template(path, f"{section}.{key}", table[key], templates.get(key, ()))
    labels = [data["outcome"][k].strip().casefold() for k in OUTCOMES]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{path}: key 'outcome': two outcomes have the same words")
    return Language(code, path, data)


def _check_template(path: Path, key: str, template: str, allowed: tuple[str, ...]) -> None:
    unknown = sorted(_placeholders(template) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: key '{key}': unknown placeholder {{{unknown[0]}}}; "
                          f"this template may use {', '.join('{' + a + '}' for a in allowed) or 'none'}")


def outcome_of(text: str, languages: list[Language]) -> str | None:
    """The outcome id a cell names, in any of the languages (its words or the id itself); None if none."""
    wanted = " ".join(text.split()).casefold()
    for language in languages:
        for key, label in language.outcome_labels().items():
            if wanted in (" ".join(label.split()).casefold(), key):
                return key
    return None

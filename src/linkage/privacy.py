"""Privacy: what a file the workspace writes may show of a personal value.

Owns the masking modes of export profiles and their spelling in configs/export.toml (`keep`,
`lastN`, `pseudonym`, `drop`; the old spellings `none` = keep and `hidden` = an empty cell),
`mask_last` (only the last N characters shown, never the first: the first 6 and last 4 digits of
a resident ID leave a few thousand possible birth dates), keyed pseudonyms and where their key
comes from. Everything here is a pure function except `load_pseudonym_key`, which reads the
environment and the key file.

Pseudonyms are HMAC-SHA256 under a secret key over the standardized value (as the workspace
stores it), separated by kind of identifier (a passport and a phone with the same characters get
different pseudonyms), truncated to 80 bits and written in Crockford base32 behind a fixed prefix:
`PSN-XXXX-XXXX-XXXX-XXXX`. The same value and key give the same pseudonym in every export and
profile, so two exports can be joined on it; without the key nobody can enumerate the numbers
back (a plain hash of a passport or a phone number is reversed by hashing every possible number,
so none is ever offered). 80 bits are enough: among n = 10 million values of one kind the chance
that any two share a pseudonym is about n^2 / 2^81 = 4e-11 (64 bits would give 3e-6).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

Mode = Literal["keep", "mask", "pseudonym", "drop", "hidden"]
MAX_SHOWN = 9
MASK_CHAR = "*"
ALIASES = {"none": "keep"}          # the old spellings; "hidden" and "last4" keep their meaning
MASK_CHOICES = (f"keep, last1 ... last{MAX_SHOWN} (only the last N characters shown), pseudonym (keyed, see "
                "LINKAGE_PSEUDONYM_KEY), drop (the column is not written); old spellings: none = keep, "
                "hidden = an empty cell")
_LAST_N = re.compile(r"^last([1-9])$")


@dataclass(frozen=True)
class ColumnMask:
    """How one column is written: `shown` is the number of last characters a `mask` shows."""

    mode: Mode
    shown: int = 0

    def __str__(self) -> str:
        return f"last{self.shown}" if self.mode == "mask" else self.mode


KEEP = ColumnMask("keep")
HIDDEN = ColumnMask("hidden")


def parse_mask(text: str) -> ColumnMask:
    """A mask as configs/export.toml spells it; a ValueError listing the valid spellings otherwise."""
    if isinstance(text, ColumnMask):
        return text
    if not isinstance(text, str):
        raise ValueError(f"a mask is a string; valid masks: {MASK_CHOICES}")
    spelling = ALIASES.get(text, text)
    if spelling in ("keep", "pseudonym", "drop", "hidden"):
        return ColumnMask(spelling)
    found = _LAST_N.match(spelling)
    if found:
        return ColumnMask("mask", int(found.group(1)))
    raise ValueError(f"unknown mask '{text}'; valid masks: {MASK_CHOICES}")


def mask_last(text: str, shown: int) -> str:
    """Only the last `shown` characters, every other one as '*' (the length is kept). A value of
    `shown` characters or fewer is all '*': no value is ever shown whole."""
    if not text:
        return ""
    if len(text) <= shown:
        return MASK_CHAR * len(text)
    return MASK_CHAR * (len(text) - shown) + text[len(text) - shown:]


# ---- keyed pseudonyms --------------------------------------------------------------------------

KEY_ENV = "LINKAGE_PSEUDONYM_KEY"
KEY_FILE_ENV = "LINKAGE_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16
PREFIX = "PSN-"
PSEUDONYM_BYTES = 10            # 80 bits -> 16 base32 characters
DOMAIN = b"linkage pseudonym v1"
# the domain of each column a pseudonym is offered for; sex and nationality have a handful of
# values, so a consistent code for them is read back from its frequency: not offered
PSEUDONYM_KINDS = {"passport": "passport", "id_number": "id_number", "permit_no": "permit", "phone": "phone",
                   "name": "name", "dob": "dob"}
_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def crockford_base32(data: bytes) -> str:
    """Crockford's base32 (digits and capitals without I, L, O, U), no padding; 5 bytes -> 8 characters."""
    if len(data) % 5:
        raise ValueError("crockford_base32 encodes whole groups of 5 bytes")
    return base64.b32encode(data).decode("ascii").translate(_CROCKFORD)


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """`PSN-XXXX-XXXX-XXXX-XXXX`: HMAC-SHA256(key, domain | kind | value) cut to 80 bits; '' for no value."""
    if not value:
        return ""
    if kind not in PSEUDONYM_KINDS.values():
        raise ValueError(f"unknown kind of identifier '{kind}'; kinds: {', '.join(PSEUDONYM_KINDS.values())}")
    text = unicodedata.normalize("NFC", value).strip()
    message = DOMAIN + b"\x00" + kind.encode("ascii") + b"\x00" + text.encode("utf-8")
    code = crockford_base32(hmac.new(key, message, hashlib.sha256).digest()[:PSEUDONYM_BYTES])
    return PREFIX + "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def key_id(key: bytes) -> str:
    """A short public name of a key (HMAC of a fixed text, not the key): two exports whose manifests
    show the same key id can be joined on their pseudonyms."""
    return crockford_base32(hmac.new(key, DOMAIN + b"\x00key id", hashlib.sha256).digest()[:5])


def render_cell(text: str, mask: ColumnMask, column: str, key: bytes | None = None) -> str:
    """The cell of `column` as `mask` writes it (a dropped column has no cell; callers skip it)."""
    if mask.mode == "keep" or not text:
        return text
    if mask.mode == "mask":
        return mask_last(text, mask.shown)
    if mask.mode == "pseudonym":
        if key is None:
            raise ValueError("a pseudonym needs the key")
        return pseudonym(key, PSEUDONYM_KINDS[column], text)
    return ""


def load_pseudonym_key(purpose: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The pseudonym key from LINKAGE_PSEUDONYM_KEY or the owner-only file LINKAGE_PSEUDONYM_KEY_FILE
    names (a trailing newline is not part of it). A ConfigError (exit 2) when it is missing, weak,
    or in a file that others can read; the messages name the variable or the file, never the key."""
    environ = os.environ if environ is None else environ
    value, file = environ.get(KEY_ENV), environ.get(KEY_FILE_ENV)
    how = (f"set {KEY_ENV} or {KEY_FILE_ENV} (a file only its owner can read, holding a random key "
           f"of at least {MIN_KEY_BYTES} bytes, e.g. 32 from a password generator)")
    if value and file:
        raise ConfigError(f"{purpose}: both {KEY_ENV} and {KEY_FILE_ENV} are set; set one of them")
    if file:
        key = _read_key_file(file)
        source = f"{KEY_FILE_ENV} ({file})"
    elif value:
        key = value.encode("utf-8")
        source = KEY_ENV
    else:
        raise ConfigError(f"{purpose} needs a pseudonym key: {how}")
    key = key.rstrip(b"\r\n")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{purpose}: the key in {source} is shorter than {MIN_KEY_BYTES} bytes; {how}")
    return key


def _read_key_file(name: str) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"{KEY_FILE_ENV}: {name}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{KEY_FILE_ENV}: cannot read {name}: {exc.strerror or type(exc).__name__}") from None
    try:
        info = os.fstat(fd)     # of the file opened, not of a name that could be swapped meanwhile
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{KEY_FILE_ENV}: {name} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(f"{KEY_FILE_ENV}: {name} can be read or written by others (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}); make it owner-only: chmod 600 {name}")
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise ConfigError(f"{KEY_FILE_ENV}: {name} belongs to another user; the key file must be your own")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    finally:
        os.close(fd)

"""Workspace encryption keys: where they come from and the rules they must meet.

A key comes from an environment variable (`LINKAGE_KEY`) or from a file named by one
(`LINKAGE_KEY_FILE`) that only its owner can read; `linkage rekey` reads the new key the same way
from `LINKAGE_NEW_KEY` / `LINKAGE_NEW_KEY_FILE`. Never from the command line. A `Key` never shows
its secret (not in repr, str or any message): messages name where a key came from, not what it is.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import WorkspaceError

KEY_ENV, KEY_FILE_ENV = "LINKAGE_KEY", "LINKAGE_KEY_FILE"
NEW_KEY_ENV, NEW_KEY_FILE_ENV = "LINKAGE_NEW_KEY", "LINKAGE_NEW_KEY_FILE"
# A new key (init --encrypt, rekey) must be at least this long; DuckDB derives the AES-256 key from it.
MIN_KEY_CHARS = 16
KEY_HINT = "e.g. the output of 'openssl rand -base64 32'"


@dataclass(frozen=True)
class Key:
    """A key and where it came from (`origin`, e.g. 'LINKAGE_KEY'); the secret is never shown."""

    secret: str = field(repr=False)
    origin: str

    def __str__(self) -> str:
        return f"the key from {self.origin}"


def read_key(env: str = KEY_ENV, file_env: str = KEY_FILE_ENV) -> Key | None:
    """The key in `env` or in the owner-only file named by `file_env`; None when neither is set."""
    value, file_name = os.environ.get(env), os.environ.get(file_env)
    if value and file_name:
        raise WorkspaceError(f"both {env} and {file_env} are set; set only one of them")
    if value:
        return Key(value, env)
    if file_name:
        return Key(_read_key_file(Path(file_name), file_env), f"{file_env} ({file_name})")
    if value is not None:   # set but empty
        raise WorkspaceError(f"{env} is set but empty; give it the key, or unset it")
    return None


def workspace_key() -> Key | None:
    """The key of the workspace: LINKAGE_KEY or LINKAGE_KEY_FILE."""
    return read_key(KEY_ENV, KEY_FILE_ENV)


def key_for_new_workspace() -> Key:
    """The key `init --encrypt` encrypts with: LINKAGE_KEY or LINKAGE_KEY_FILE (required, strong)."""
    key = workspace_key()
    if key is None:
        raise WorkspaceError(f"init --encrypt needs a key: set {KEY_ENV}, or {KEY_FILE_ENV} to a file only you can "
                             f"read (mode 0600), {KEY_HINT}")
    return require_strong(key)


def new_key() -> Key:
    """The new key for `linkage rekey`: LINKAGE_NEW_KEY or LINKAGE_NEW_KEY_FILE (required, strong)."""
    key = read_key(NEW_KEY_ENV, NEW_KEY_FILE_ENV)
    if key is None:
        raise WorkspaceError(f"linkage rekey needs the new key: set {NEW_KEY_ENV} or {NEW_KEY_FILE_ENV} "
                             f"(a file only you can read, mode 0600), {KEY_HINT}")
    return require_strong(key)


def require_strong(key: Key) -> Key:
    """Refuse a key shorter than MIN_KEY_CHARS characters (for keys that encrypt something new)."""
    if len(key.secret) < MIN_KEY_CHARS:
        raise WorkspaceError(f"{key} is too short: a workspace key needs at least {MIN_KEY_CHARS} characters, "
                             f"{KEY_HINT}")
    return key


def _read_key_file(path: Path, file_env: str) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise WorkspaceError(f"cannot read the key file {path} ({file_env}): {exc.strerror or type(exc).__name__}") \
            from None
    if not stat.S_ISREG(info.st_mode):
        raise WorkspaceError(f"the key file {path} ({file_env}) is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise WorkspaceError(f"the key file {path} ({file_env}) has mode {mode:04o}, readable by others; "
                             f"it must be owner-only (mode 0600 or 0400): chmod 600 {path}")
    if info.st_uid != os.getuid():
        raise WorkspaceError(f"the key file {path} ({file_env}) belongs to another user; "
                             "it must be owned by the user running linkage, with mode 0600 or 0400")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot read the key file {path} ({file_env}): {exc.strerror or type(exc).__name__}") \
            from None
    except UnicodeDecodeError:
        raise WorkspaceError(f"the key file {path} ({file_env}) is not UTF-8 text") from None
    secret = text.strip()
    if not secret:
        raise WorkspaceError(f"the key file {path} ({file_env}) is empty")
    return secret

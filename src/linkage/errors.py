"""Typed exceptions. The CLI boundary (cli.py) is the only place that renders them."""

from __future__ import annotations


class LinkageError(Exception):
    """Base class: a failure the user can understand. `exit_code` is what the CLI returns.

    The message names files, rows, columns and keys, never a personal value. `values` may hold
    the values themselves (e.g. the cells of a first row that looks like data): the CLI shows
    them only with `--show-values` on a terminal.
    """

    exit_code = 1

    def __init__(self, message: str = "", *, values: str | None = None):
        super().__init__(message)
        self.values = values


class InputError(LinkageError):
    """Bad input: a missing or malformed file, a wrong option, an unknown source (exit 2)."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file is invalid (exit 2). The message names the file and the key."""


class WorkspaceError(InputError):
    """The workspace is missing, unreadable or of an unknown schema version (exit 2)."""


class DatabaseError(LinkageError):
    """DuckDB failed while running one named step; carries the step and its SQL (exit 1).

    The message names the step and the kind of DuckDB error only: DuckDB's own text can quote the
    values it was working on (names, document numbers), so it stays on `cause`, which the CLI shows
    (as a traceback) only with LINKAGE_DEBUG=1.
    """

    def __init__(self, step: str, sql: str, cause: Exception):
        self.step = step
        self.sql = sql
        self.cause = cause
        super().__init__(f"database step '{step}' failed ({type(cause).__name__})")


class LockedError(LinkageError):
    """Another writing command holds the workspace (exit 4). The message names the holder."""

    exit_code = 4


class TamperedError(LinkageError):
    """`linkage audit verify` found the audit log edited, cut or reordered (exit 5). The message names
    the first entry or line found wrong."""

    exit_code = 5

"""SQL text helpers shared by every module that builds SQL: identifier and literal quoting."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote a DuckDB identifier (table or column name), escaping embedded quotes."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal for the rare place a parameter cannot be used (e.g. LOAD)."""
    return "'" + str(value).replace("'", "''") + "'"

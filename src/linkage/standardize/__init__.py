"""Standardization of raw field values: the shared error type and the distinct-value mapper.

The modules of this package (names, dates, ids, phones, countries, sex) hold pure functions
that turn one raw value into its canonical form or raise `InvalidValue` with a short reason.
`map_distinct` runs such a scalar function over a polars Series, once per distinct value;
`standardize_distinct` does the same and turns InvalidValue into a per-row reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

__all__ = ["InvalidValue", "fallback_table", "map_distinct", "standardize_distinct"]


class InvalidValue(ValueError):
    """A non-empty value that cannot be standardized.

    The message is a short plain-English reason that never contains the value itself
    (values are personal data and reasons end up in logs and reject tables).
    """


def map_distinct(
    values: pl.Series, fn: Callable[[Any], Any], return_dtype: pl.DataType
) -> pl.Series:
    """Apply `fn` once to each distinct non-null value and broadcast back in the original order.

    Null stays null and `fn` is never called on null. The result has the name of `values`.
    """
    distinct = values.drop_nulls().unique(maintain_order=True)
    results = pl.Series("value", [fn(v) for v in distinct.to_list()], dtype=return_dtype)
    lookup = pl.DataFrame({"key": distinct, "value": results})
    frame = pl.DataFrame({"key": values})
    joined = frame.join(lookup, on="key", how="left", maintain_order="left")
    return joined.get_column("value").alias(values.name)


def standardize_distinct(values: pl.Series, fn: Callable[[Any], Any],
                         return_dtype: pl.DataType) -> tuple[pl.Series, pl.Series]:
    """(standardized value, reason) per row, calling `fn` once per distinct non-null value.

    A value `fn` rejects with InvalidValue becomes null with the reason; null stays null.
    """
    table = fallback_table(values, fn, return_dtype)
    joined = pl.DataFrame({"raw": values}).join(table, on="raw", how="left", maintain_order="left")
    return joined.get_column("slow"), joined.get_column("reason")


def fallback_table(values: pl.Series, fn: Callable[[Any], Any], return_dtype: pl.DataType) -> pl.DataFrame:
    """Distinct values `raw` with `fn`'s result `slow` and the `reason` it failed (else null)."""
    distinct = values.drop_nulls().unique(maintain_order=True)
    outputs: list[Any] = []
    reasons: list[str | None] = []
    for value in distinct.to_list():
        try:
            outputs.append(fn(value))
            reasons.append(None)
        except InvalidValue as exc:
            outputs.append(None)
            reasons.append(str(exc))
    return pl.DataFrame({"raw": distinct, "slow": pl.Series(outputs, dtype=return_dtype),
                         "reason": pl.Series(reasons, dtype=pl.Utf8)})

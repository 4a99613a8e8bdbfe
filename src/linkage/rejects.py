"""Rejects: what ingest did not load as written, per source, and the CSV of it (`linkage rejects`).

Owns reading the `rejects` table that ingest writes (nothing here writes to the workspace):
a summary per source of rejected rows by reason (kind `row`: the row did not load) and of value
issues by column and reason (kind `value`: the value was dropped from its record; kind `note`:
it was kept in a normalized form, e.g. a phone kept as unverified digits or a birth date read
with day and month swapped), and `--out`: one CSV line per rejected row and per value issue,
the value masked (only its last 2 characters shown, privacy.mask_last), UTF-8 with BOM,
written atomically.

A value-issue reason can quote parts of the value ("day 31 is out of range for February 1980"),
so in value-issue reasons every run of digits is shown as '#'; row reasons quote line numbers
and field counts only and are shown as stored.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .export import atomic_path, neutralize_formula
from .privacy import mask_last
from .status import REASON_STEM
from .workspace import Workspace

KINDS = ("row", "value", "note")
KIND_LABELS = {"row": "row rejected", "value": "value not standardized", "note": "value kept, noted"}
CSV_HEADER = ["source", "batch", "file", "row", "kind", "column", "reason", "value_masked"]
KEEP_CHARS = 2
FETCH_ROWS = 10_000
SHOWN_VALUES = 200

# The reason as shown: value-issue reasons with their digits hidden (see the module docstring).
SHOWN_REASON = "CASE WHEN kind = 'row' THEN reason ELSE regexp_replace(reason, '[0-9]+', '#', 'g') END"
KIND_ORDER = "CASE kind WHEN 'row' THEN 0 WHEN 'value' THEN 1 ELSE 2 END"


@dataclass(frozen=True)
class IssueCount:
    """How many values of one column a source reported for one reason."""

    column: str
    kind: str        # 'value' (dropped) or 'note' (kept normalized)
    reason: str
    count: int


@dataclass
class SourceRejects:
    rows_rejected: int = 0
    values_not_standardized: int = 0
    values_noted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    value_issues: list[IssueCount] = field(default_factory=list)


@dataclass
class RejectsReport:
    sources: dict[str, SourceRejects]
    out_file: Path | None = None
    lines_written: int | None = None
    values: list[dict[str, Any]] | None = None   # only when asked for (--show-values on a terminal)

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"sources": {name: asdict(s) for name, s in self.sources.items()}}
        if self.values is not None:
            payload["values"] = self.values
        if self.out_file is not None:
            payload["out"] = {"file": str(self.out_file), "lines": self.lines_written}
        return payload


def mask_value(text: str | None) -> str:
    """Only the last KEEP_CHARS characters shown, the rest '*'; a value that short is all '*'."""
    return mask_last(text or "", KEEP_CHARS)


def rejects_report(ws: Workspace, source: str | None = None, out_file: Path | None = None,
                   values: bool = False) -> RejectsReport:
    """The summary of every ingested source (or of `source` only) and, with `out_file`, the CSV.

    `values` (the CLI's --show-values on a terminal) adds the first SHOWN_VALUES value issues with
    their file, row, column, reason and the value itself, unmasked."""
    names = _sources(ws)
    if source is not None and source not in names:
        known = ", ".join(names) if names else "none (ingest exports first)"
        raise InputError(f"unknown source '{source}'; sources in the workspace: {known}")
    chosen = [source] if source is not None else names
    report = RejectsReport({name: SourceRejects() for name in chosen})
    where, params = ("WHERE source = ?", [source]) if source is not None else ("", [])
    for name, kind, column, reason, n in ws.rows("rejects: summary", f"""
            SELECT source, kind, column_name, {REASON_STEM} AS stem, count(*) AS n
            FROM (SELECT source, kind, column_name, {SHOWN_REASON} AS reason FROM rejects {where})
            GROUP BY source, kind, column_name, stem ORDER BY source, {KIND_ORDER}, n DESC, column_name, stem""", params):
        counts = report.sources[name]
        if kind == "row":
            counts.rows_rejected += n
            counts.rejected_by_reason[reason] = counts.rejected_by_reason.get(reason, 0) + n
            continue
        if kind == "note":
            counts.values_noted += n
        else:
            counts.values_not_standardized += n
        counts.value_issues.append(IssueCount(column or "", kind, reason, n))
    if values:
        value_where = f"{where} {'AND' if where else 'WHERE'} kind <> 'row'"
        report.values = [
            {"source": name, "file": file_name, "row": row_no, "column": column, "reason": reason, "value": value}
            for name, file_name, row_no, column, reason, value in ws.rows("rejects: values", f"""
                SELECT source, file_name, row_no, column_name, reason, value FROM rejects {value_where}
                ORDER BY source, batch_id, row_no, column_name LIMIT {SHOWN_VALUES}""", params)]
    if out_file is not None:
        report.out_file = Path(out_file)
        report.lines_written = _write_csv(ws, report.out_file, where, params)
    return report


def _sources(ws: Workspace) -> list[str]:
    return [name for (name,) in ws.rows("rejects: sources",
                                        "SELECT DISTINCT source FROM batches WHERE finished_at IS NOT NULL ORDER BY 1")]


def _write_csv(ws: Workspace, target: Path, where: str, params: list[Any]) -> int:
    """Every rejected row and value issue, one line each; the temp file is renamed only when complete."""
    lines = 0
    try:
        with atomic_path(target) as temp, open(temp, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(CSV_HEADER)
            cursor = ws.run("rejects: lines", f"""
                SELECT source, batch_id, file_name, row_no, kind, column_name, {SHOWN_REASON}, value FROM rejects {where}
                ORDER BY source, batch_id, row_no NULLS FIRST, {KIND_ORDER}, column_name NULLS FIRST""", params)
            while batch := cursor.fetchmany(FETCH_ROWS):
                for name, batch_id, file_name, row_no, kind, column, reason, value in batch:
                    writer.writerow([neutralize_formula(str(cell)) for cell in (
                        name, batch_id, file_name, "" if row_no is None else row_no, kind, column or "", reason,
                        mask_value(value))])
                lines += len(batch)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    return lines

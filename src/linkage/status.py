"""Workspace status: per-source counts of records, events, batches and rejects by reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .workspace import SCHEMA_VERSION, Workspace


@dataclass
class SourceStatus:
    records: int = 0
    rejects: int = 0
    events: int = 0
    batches: int = 0
    value_issues: int = 0
    value_notes: int = 0      # kept in a normalized form (unverified phone, swapped day/month), still reported
    rows_read: int = 0
    events_by_stage: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    value_issues_by_column: dict[str, int] = field(default_factory=dict)


@dataclass
class WorkspaceStatus:
    schema_version: int
    sources: dict[str, SourceStatus]
    feedback: dict[str, Any] | None = None    # officers' answers per district (feedback.answer_summary)

    def to_json(self) -> dict[str, Any]:
        out = {"schema_version": self.schema_version, "sources": {k: asdict(v) for k, v in self.sources.items()}}
        if self.feedback is not None:
            out["feedback"] = self.feedback
        return out


# Reasons carry row-specific details after a ';' or '(' ("first seen at row 12"); group on the stem.
REASON_STEM = "trim(regexp_replace(reason, '\\s*[;(].*$|\\s+at line \\d+.*$|, found \\d+.*$', ''))"


def workspace_status(ws: Workspace) -> WorkspaceStatus:
    sources: dict[str, SourceStatus] = {}

    def get(name: str) -> SourceStatus:
        return sources.setdefault(name, SourceStatus())

    for source, batches, rows_read in ws.rows("status: batches",
                                              "SELECT source, count(*), coalesce(sum(rows_read), 0) FROM batches "
                                              "WHERE finished_at IS NOT NULL GROUP BY source"):
        get(source).batches, get(source).rows_read = batches, int(rows_read)
    for source, n in ws.rows("status: records", "SELECT source, count(*) FROM records GROUP BY source"):
        get(source).records = n
    for source, stage, n in ws.rows("status: events",
                                    "SELECT source, stage, count(*) FROM events GROUP BY ALL ORDER BY ALL"):
        get(source).events += n
        get(source).events_by_stage[stage] = n
    for source, kind, stem, n in ws.rows("status: rejects",
                                         f"SELECT source, kind, {REASON_STEM}, count(*) FROM rejects "
                                         "GROUP BY ALL ORDER BY 4 DESC, 3"):
        if kind == "row":
            get(source).rejects += n
            get(source).rejects_by_reason[stem] = get(source).rejects_by_reason.get(stem, 0) + n
        elif kind == "note":
            get(source).value_notes += n
        else:
            get(source).value_issues += n
    for source, column, n in ws.rows("status: value issues",
                                     "SELECT source, column_name, count(*) FROM rejects WHERE kind = 'value' "
                                     "GROUP BY ALL ORDER BY 3 DESC"):
        get(source).value_issues_by_column[column] = n
    return WorkspaceStatus(SCHEMA_VERSION, dict(sorted(sources.items())))

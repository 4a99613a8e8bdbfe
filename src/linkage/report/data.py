"""What the report shows, read from the workspace: counts, weights and codes only.

Every function here takes an open Workspace, runs read-only SQL through its methods and returns a
polars frame (or a small dataclass of frames); aggregation happens in SQL, so a workspace of
millions of records gives frames of a few hundred rows. Nothing returned carries a personal value:
no name, birth date, document or phone number, no record id and no person id. Reasons of value
issues are shown with their digits hidden (they can quote part of a value), as `linkage rejects`
shows them. A step that has not run yet (no match, no chain, no nightly run, no officers' answers)
gives None or an empty frame, never an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from ..config import ExportConfig
from ..match.store import latest_model
from ..rejects import SHOWN_REASON
from ..sql import quote_ident
from ..status import REASON_STEM
from ..workspace import Workspace

FEEDBACK_TABLE = "feedback"            # written by `linkage feedback import` (officers' answers)
# a current flag first seen longer ago than this without an answer is "overdue": export.toml's
# unanswered_after_days (this is its built-in default; `linkage report` passes the configured one)
UNANSWERED_AFTER_DAYS = ExportConfig.model_fields["unanswered_after_days"].default
WEIGHT_BIN = 1.0                       # width of a bin of the pair-weight histogram (match weight, bits)
TREND_RUNS = 365                       # trends show at most this many of the latest runs of each kind

# Field completeness: (label, SQL that is true when a record holds the field).
FIELDS: list[tuple[str, str]] = [
    ("name", "coalesce(full_name, family_name, given_name, local_name) IS NOT NULL"),
    ("local_name", "local_name IS NOT NULL"),
    ("sex", "sex IS NOT NULL"),
    ("dob", "dob IS NOT NULL"),
    ("nationality", "nationality IS NOT NULL"),
    ("documents", "len(coalesce(doc_numbers, [])) > 0"),
    ("phone", "len(coalesce(phones, [])) > 0"),
    ("email", "email IS NOT NULL"),
    ("address", "address IS NOT NULL"),
    ("district", "district IS NOT NULL"),
    ("employer", "employer IS NOT NULL"),
]


def table_exists(ws: Workspace, name: str) -> bool:
    """Does the workspace hold a table (or view) of this name?"""
    return bool(ws.scalar("report: table exists", "SELECT count(*) FROM information_schema.tables "
                                                  "WHERE table_catalog = 'ws' AND table_name = ?", [name]))


def table_columns(ws: Workspace, name: str) -> set[str]:
    return {row[0] for row in ws.rows("report: table columns", "SELECT column_name FROM information_schema.columns "
                                                               "WHERE table_catalog = 'ws' AND table_name = ?", [name])}


def _frame(ws: Workspace, step: str, sql: str, params: list | None = None) -> pl.DataFrame:
    return ws.run(f"report: {step}", sql, params).pl()


# ---- ingest ------------------------------------------------------------------------------------

def source_counts(ws: Workspace) -> pl.DataFrame:
    """Per source: rows read, records, rows rejected, values not standardized / kept noted, events, batches."""
    return _frame(ws, "source counts", """
        WITH b AS (SELECT source, count(*) AS batches, coalesce(sum(rows_read), 0) AS rows_read FROM batches
                   WHERE finished_at IS NOT NULL GROUP BY source),
             r AS (SELECT source, count(*) AS records FROM records GROUP BY source),
             e AS (SELECT source, count(*) AS events FROM events GROUP BY source),
             j AS (SELECT source, count(*) FILTER (WHERE kind = 'row') AS rows_rejected,
                          count(*) FILTER (WHERE kind = 'value') AS values_not_standardized,
                          count(*) FILTER (WHERE kind = 'note') AS values_noted
                   FROM rejects GROUP BY source)
        SELECT b.source, b.rows_read::BIGINT AS rows_read, coalesce(r.records, 0) AS records,
               coalesce(j.rows_rejected, 0) AS rows_rejected,
               coalesce(j.values_not_standardized, 0) AS values_not_standardized,
               coalesce(j.values_noted, 0) AS values_noted, coalesce(e.events, 0) AS events, b.batches
        FROM b LEFT JOIN r USING (source) LEFT JOIN e USING (source) LEFT JOIN j USING (source)
        ORDER BY b.source""")


def rejects_by_reason(ws: Workspace) -> pl.DataFrame:
    """Rejected rows and value issues per source, kind (row / value / note), column and reason."""
    return _frame(ws, "rejects by reason", f"""
        SELECT source, kind, coalesce(column_name, '') AS column_name, {REASON_STEM} AS reason, count(*) AS count
        FROM (SELECT source, kind, column_name, {SHOWN_REASON} AS reason FROM rejects)
        GROUP BY ALL ORDER BY count DESC, source, kind, column_name, reason""")


def field_completeness(ws: Workspace) -> pl.DataFrame:
    """Per source and field: records holding it, of all records (share 0..1); extra fields by their name."""
    canonical = " UNION ALL ".join(
        f"SELECT source, {i} AS position, '{label}' AS field, count(*) FILTER (WHERE {condition}) AS filled, "
        f"count(*) AS records FROM records GROUP BY source" for i, (label, condition) in enumerate(FIELDS))
    frame = _frame(ws, "field completeness", f"""
        WITH extras AS (
            SELECT source, 'extra.' || k AS field, count(*) AS filled FROM (
                SELECT source, unnest(map_keys(extra)) AS k FROM records) GROUP BY ALL),
        totals AS (SELECT source, count(*) AS records FROM records GROUP BY source),
        extra_fields AS (SELECT DISTINCT field FROM extras),
        extra_grid AS (SELECT t.source, {len(FIELDS)} AS position, f.field, coalesce(x.filled, 0) AS filled, t.records
                       FROM totals t CROSS JOIN extra_fields f LEFT JOIN extras x ON x.source = t.source AND x.field = f.field)
        SELECT source, field, filled, records, filled / records AS share FROM (
            {canonical} UNION ALL SELECT * FROM extra_grid)
        ORDER BY position, field, source""")
    return frame


# ---- match -------------------------------------------------------------------------------------

@dataclass
class ModelSummary:
    """The latest trained model: one row per comparison level (m, u, weight), the prior and threshold."""

    run_id: int
    threshold: float
    prior: float
    prior_weight: float
    random_pairs: int
    levels: pl.DataFrame      # comparison, position, level, level_no, m, u, weight, tf_adjusted

    @property
    def threshold_weight(self) -> float:
        return math.log2(self.threshold / (1 - self.threshold))


def latest_match_run(ws: Workspace) -> int | None:
    return ws.scalar("report: latest match run", "SELECT max(run_id) FROM match_runs WHERE finished_at IS NOT NULL")


def model_summary(ws: Workspace) -> ModelSummary | None:
    """The model of the latest finished match run (as `linkage model show` reads it); None before any match."""
    run_id = latest_match_run(ws)
    model = latest_model(ws)
    if run_id is None or model is None:
        return None
    threshold = ws.scalar("report: threshold", "SELECT threshold FROM match_runs WHERE run_id = ?", [run_id])
    weights = model.weights()
    rows = [{"comparison": name, "position": k, "level": model.labels[k][level], "level_no": level,
             "m": float(model.m[k][level]), "u": float(model.u[k][level]), "weight": float(weights[k][level]),
             "tf_adjusted": model.tf_levels[k] == level}
            for k, name in enumerate(model.comparisons) for level in range(1, len(model.labels[k]))]
    return ModelSummary(run_id, float(threshold), model.prior, model.prior_weight, model.random_pairs,
                        pl.DataFrame(rows, schema={"comparison": pl.String, "position": pl.Int64, "level": pl.String,
                                                   "level_no": pl.Int64, "m": pl.Float64, "u": pl.Float64,
                                                   "weight": pl.Float64, "tf_adjusted": pl.Boolean}))


def pair_weights(ws: Workspace, bin_width: float = WEIGHT_BIN) -> pl.DataFrame:
    """Histogram of the stored pairs' match weights (bins of `bin_width`) by outcome: linked,
    below threshold, refused (identity guard), kept with a conflict. Stored pairs are those with
    probability >= 0.01."""
    return _frame(ws, "pair weights", """
        SELECT floor(weight / ?) * ? AS bin_start, floor(weight / ?) * ? + ? AS bin_end,
               CASE WHEN refused THEN 'refused by the identity guard'
                    WHEN conflict THEN 'linked, identifiers contradict'
                    WHEN linked THEN 'linked' ELSE 'below the threshold' END AS outcome,
               count(*) AS pairs
        FROM link_pairs GROUP BY ALL ORDER BY bin_start, outcome""",
                  [bin_width, bin_width, bin_width, bin_width, bin_width])


def cluster_sizes(ws: Workspace) -> pl.DataFrame:
    """How many persons hold 1, 2, 3, ... records (the match's persons)."""
    return _frame(ws, "cluster sizes", """
        SELECT records, count(*) AS persons FROM (SELECT person_id, count(*) AS records FROM persons GROUP BY person_id)
        GROUP BY records ORDER BY records""")


# ---- chain -------------------------------------------------------------------------------------

@dataclass
class ChainRun:
    run_id: int
    as_of: datetime
    persons: int


def latest_chain_run(ws: Workspace) -> ChainRun | None:
    rows = ws.rows("report: latest chain run", "SELECT run_id, as_of, persons FROM chain_runs "
                                               "WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT 1")
    return ChainRun(*rows[0]) if rows else None


def chain_funnel(ws: Workspace) -> pl.DataFrame:
    """Per stage of the latest chain run (in chain order): travelers done / pending / missing."""
    return _frame(ws, "chain funnel", """
        SELECT stage, stage_order, status, count(*) AS travelers FROM timelines
        WHERE run_id = (SELECT max(run_id) FROM timelines) GROUP BY ALL ORDER BY stage_order, status""")


def flags_by_district(ws: Workspace, run_id: int) -> pl.DataFrame:
    """Flags of one chain run per responsible district, code and status (new / open / resolved)."""
    return _frame(ws, "flags by district", """
        SELECT coalesce(district, 'unassigned') AS district, code, status, count(*) AS flags FROM flags
        WHERE run_id = ? GROUP BY ALL ORDER BY district, code, status""", [run_id])


# ---- officers' answers -------------------------------------------------------------------------

@dataclass
class Answers:
    """Officers' answers to the latest chain run's flags, when a `feedback` table exists."""

    table_present: bool
    by_district: pl.DataFrame     # district, outcome, answers
    unanswered: pl.DataFrame      # district, unanswered, overdue (current flags without an answer)
    overdue_days: int


def officers_answers(ws: Workspace, chain_run: ChainRun | None, overdue_days: int = UNANSWERED_AFTER_DAYS) -> Answers:
    """Answers per district and outcome, and the current flags still unanswered (overdue: first seen
    more than `overdue_days` before the run's as-of time).

    Reads the `feedback` table of `linkage feedback import` when the workspace has one: a row per
    answer, with at least `flag_key` and `outcome`; its `district` when it has one, else the flag's.
    Without it (`table_present` False) every current flag counts as unanswered.
    """
    empty_answers = pl.DataFrame(schema={"district": pl.String, "outcome": pl.String, "answers": pl.Int64})
    empty_open = pl.DataFrame(schema={"district": pl.String, "unanswered": pl.Int64, "overdue": pl.Int64})
    columns = table_columns(ws, FEEDBACK_TABLE) if table_exists(ws, FEEDBACK_TABLE) else set()
    present = {"flag_key", "outcome"} <= columns
    table = quote_ident(FEEDBACK_TABLE)
    latest_flags = ("(SELECT flag_key, district, status, first_seen_run FROM flags "
                    "WHERE run_id = (SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL))")
    by_district = empty_answers
    if present:
        district = "coalesce(a.district, f.district, 'unassigned')" if "district" in columns \
            else "coalesce(f.district, 'unassigned')"
        newest = (f"(SELECT * FROM {table} QUALIFY row_number() OVER (PARTITION BY flag_key "
                  "ORDER BY imported_at DESC, file_name DESC, row_no DESC) = 1)"
                  if {"imported_at", "file_name", "row_no"} <= columns else table)   # the newest answer per flag
        by_district = _frame(ws, "answers by district", f"""
            SELECT {district} AS district, a.outcome, count(*) AS answers
            FROM {newest} a LEFT JOIN {latest_flags} f USING (flag_key)
            GROUP BY ALL ORDER BY district, outcome""")
    if chain_run is None:
        return Answers(present, by_district, empty_open, overdue_days)
    answered = f"AND f.flag_key NOT IN (SELECT flag_key FROM {table} WHERE flag_key IS NOT NULL)" if present else ""
    unanswered = _frame(ws, "flags unanswered", f"""
        SELECT coalesce(f.district, 'unassigned') AS district, count(*) AS unanswered,
               count(*) FILTER (WHERE first.as_of < ?::TIMESTAMP - to_days(?)) AS overdue
        FROM {latest_flags} f
        LEFT JOIN chain_runs first ON first.run_id = f.first_seen_run
        WHERE f.status IN ('new', 'open') {answered}
        GROUP BY ALL ORDER BY district""", [chain_run.as_of, overdue_days])
    return Answers(present, by_district, unanswered, overdue_days)


# ---- trends ------------------------------------------------------------------------------------

def match_trend(ws: Workspace, last: int = TREND_RUNS) -> pl.DataFrame:
    """Per finished match run (the `last` latest): records, persons, links, candidate pairs, incremental or not."""
    return _frame(ws, "match trend", """
        SELECT * FROM (
            SELECT run_id, finished_at, records, persons, links, candidate_pairs,
                   coalesce(incremental, false) AS incremental
            FROM match_runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT ?)
        ORDER BY run_id""", [last])


def chain_trend(ws: Workspace, last: int = TREND_RUNS) -> pl.DataFrame:
    """Per finished chain run (the `last` latest): as-of time, travelers and flags new / open / resolved."""
    return _frame(ws, "chain trend", """
        SELECT * FROM (
            SELECT run_id, as_of, persons, new_flags AS new, open_flags AS open, resolved_flags AS resolved
            FROM chain_runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT ?)
        ORDER BY run_id""", [last])


def nightly_trend(ws: Workspace, last: int = TREND_RUNS) -> pl.DataFrame:
    """Per nightly run (`linkage run`, the `last` latest) and step: seconds, with the run's status."""
    if not table_exists(ws, "runs"):
        return pl.DataFrame(schema={"run_id": pl.Int64, "status": pl.String, "step": pl.String, "seconds": pl.Float64})
    rows = ws.rows("report: nightly trend", "SELECT * FROM (SELECT run_id, status, seconds FROM runs "
                                            "ORDER BY run_id DESC LIMIT ?) ORDER BY run_id", [last])
    records = [{"run_id": run_id, "status": status, "step": step, "seconds": float(value)}
               for run_id, status, seconds in rows for step, value in (json.loads(seconds) if seconds else {}).items()]
    return pl.DataFrame(records, schema={"run_id": pl.Int64, "status": pl.String, "step": pl.String,
                                         "seconds": pl.Float64})


def nightly_runs(ws: Workspace) -> pl.DataFrame:
    """Per nightly run: status, as-of, files ingested / rejected, records, persons, flags new / open / resolved."""
    if not table_exists(ws, "runs"):
        return pl.DataFrame()
    return _frame(ws, "nightly runs", """
        SELECT run_id, status, as_of, files_ingested, files_rejected, records, persons, flags_new, flags_open,
               flags_resolved FROM runs ORDER BY run_id""")

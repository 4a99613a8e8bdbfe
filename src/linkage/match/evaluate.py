"""Evaluation of the current clusters against a truth file `source,record_id,person_id`.

Pairwise precision / recall / F1 from co-membership counts (never enumerating pairs), B-cubed
precision / recall / F1, and the same broken down by group (nationality, name script) so that
no group is quietly served worse. All arithmetic is in SQL over the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..errors import InputError
from ..workspace import Workspace

TRUTH_COLUMNS = ("source", "record_id", "person_id")


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float


@dataclass
class Evaluation:
    records: int
    truth_records_missing: int
    workspace_records_missing: int
    pairwise: Scores
    bcubed: Scores
    true_pairs: int
    predicted_pairs: int
    by_group: dict[str, dict[str, dict]] = field(default_factory=dict)


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _scores(tp: float, predicted: float, actual: float) -> Scores:
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    return Scores(round(p, 6), round(r, 6), round(_f1(p, r), 6))


def load_truth(path: Path) -> pl.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: truth file not found")
    try:
        truth = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # polars raises several error types for a malformed CSV; its text can quote rows
        raise InputError(f"{path}: not a readable CSV ({type(exc).__name__})") from None
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(TRUTH_COLUMNS)}")
    truth = truth.select(TRUTH_COLUMNS)
    dupes = truth.filter(pl.struct("source", "record_id").is_duplicated())
    if dupes.height:
        first = dupes.row(0)
        raise InputError(f"{path}: record {first[0]}:{first[1]} appears more than once")
    return truth


PAIR_SQL = """
    WITH j AS (SELECT p.person_id AS c, t.person_id AS t FROM linked_persons p JOIN truth t USING (source, record_id)),
    cells AS (SELECT c, t, count(*)::HUGEINT AS n FROM j GROUP BY c, t),
    cs AS (SELECT c, count(*)::HUGEINT AS n FROM j GROUP BY c),
    ts AS (SELECT t, count(*)::HUGEINT AS n FROM j GROUP BY t)
    SELECT (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM cells)::DOUBLE,
           (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM cs)::DOUBLE,
           (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM ts)::DOUBLE,
           (SELECT coalesce(sum(cells.n * cells.n / cs.n), 0) FROM cells JOIN cs USING (c))::DOUBLE,
           (SELECT coalesce(sum(cells.n * cells.n / ts.n), 0) FROM cells JOIN ts USING (t))::DOUBLE,
           (SELECT count(*) FROM j)
"""

GROUP_SQL = """
    CREATE OR REPLACE TEMP TABLE {table} AS
    SELECT person_id, mode(nationality) AS nationality, mode(name_script) AS name_script
    FROM (SELECT x.person_id, r.nationality, r.name_script FROM {source} x JOIN records r USING (source, record_id))
    GROUP BY person_id
"""


def evaluate(ws: Workspace, truth: pl.DataFrame) -> Evaluation:
    ws.register("truth_input", truth.to_arrow())
    ws.run("load truth", "CREATE OR REPLACE TEMP TABLE truth AS SELECT * FROM truth_input")
    ws.unregister("truth_input")
    if not ws.scalar("count persons", "SELECT count(*) FROM persons"):
        raise InputError("no clusters yet; run 'linkage match' first")
    ws.run("truth groups", GROUP_SQL.format(table="truth_groups", source="truth"))
    ws.run("cluster groups", GROUP_SQL.format(table="cluster_groups", source="linked_persons"))
    missing_truth = ws.scalar("records without truth", """
        SELECT count(*) FROM linked_persons p ANTI JOIN truth t USING (source, record_id)""")
    missing_ws = ws.scalar("truth without records", """
        SELECT count(*) FROM truth t ANTI JOIN linked_persons p USING (source, record_id)""")
    tp, predicted, actual, b_p, b_r, n = ws.rows("pairwise scores", PAIR_SQL)[0]
    bp, br = (b_p / n if n else 1.0), (b_r / n if n else 1.0)
    result = Evaluation(int(n), int(missing_ws), int(missing_truth), _scores(tp, predicted, actual),
                        Scores(round(bp, 6), round(br, 6), round(_f1(bp, br), 6)), int(actual), int(predicted))
    for group in ("nationality", "name_script"):
        result.by_group[group] = _by_group(ws, group)
    return result


def _by_group(ws: Workspace, group: str) -> dict[str, dict]:
    """Recall over the true pairs of each group; precision over the predicted pairs of each group."""
    rows = ws.rows(f"scores by {group}", f"""
        WITH j AS (
            SELECT p.person_id AS c, t.person_id AS t, coalesce(tg.{group}, '?') AS tg,
                   coalesce(cg.{group}, '?') AS cg
            FROM linked_persons p JOIN truth t USING (source, record_id)
            LEFT JOIN truth_groups tg ON tg.person_id = t.person_id
            LEFT JOIN cluster_groups cg ON cg.person_id = p.person_id
        ),
        cells AS (SELECT c, t, any_value(tg) AS tg, any_value(cg) AS cg, count(*)::HUGEINT AS n FROM j GROUP BY c, t),
        recall AS (
            SELECT tg AS g, sum(n * (n - 1) / 2) AS tp FROM cells GROUP BY tg),
        actual AS (
            SELECT tg AS g, sum(n * (n - 1) / 2) AS pairs, count(*) AS people
            FROM (SELECT t, any_value(tg) AS tg, count(*)::HUGEINT AS n FROM j GROUP BY t) GROUP BY tg),
        hits AS (SELECT cg AS g, sum(n * (n - 1) / 2) AS tp FROM cells GROUP BY cg),
        predicted AS (
            SELECT cg AS g, sum(n * (n - 1) / 2) AS pairs
            FROM (SELECT c, any_value(cg) AS cg, count(*)::HUGEINT AS n FROM j GROUP BY c) GROUP BY cg)
        SELECT a.g, a.people, a.pairs::DOUBLE, coalesce(recall.tp, 0)::DOUBLE,
               coalesce(predicted.pairs, 0)::DOUBLE, coalesce(hits.tp, 0)::DOUBLE
        FROM actual a LEFT JOIN recall USING (g) LEFT JOIN predicted USING (g) LEFT JOIN hits USING (g)
        ORDER BY a.people DESC""")
    out = {}
    for g, people, actual, tp_r, predicted, tp_p in rows:
        p = tp_p / predicted if predicted else 1.0
        r = tp_r / actual if actual else 1.0
        out[g] = {"people": int(people), "true_pairs": int(actual), "precision": round(p, 6),
                  "recall": round(r, 6), "f1": round(_f1(p, r), 6)}
    return out

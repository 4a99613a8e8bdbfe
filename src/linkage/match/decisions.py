"""Link decisions as constraints of the match: must-link and cannot-link pairs.

`link_decisions` holds people's decisions on record pairs (clerical review, officers' answers).
The decision in force on a pair is its newest row (either order of the two records); 'match' is a
must-link, 'not_match' a cannot-link, 'unsure' changes nothing. A full and an incremental match
read them here alike, so both cluster the same. Owns the temp view `decided_pairs` and the
registered table `decision_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..workspace import Workspace

# The decision in force per pair of records, the two records in (source, record_id) order.
EFFECTIVE_SQL = """
    WITH d AS (
        SELECT *, (source_l < source_r OR (source_l = source_r AND record_id_l <= record_id_r)) AS ordered
        FROM link_decisions)
    SELECT CASE WHEN ordered THEN source_l ELSE source_r END AS source_l,
           CASE WHEN ordered THEN record_id_l ELSE record_id_r END AS record_id_l,
           CASE WHEN ordered THEN source_r ELSE source_l END AS source_r,
           CASE WHEN ordered THEN record_id_r ELSE record_id_l END AS record_id_r,
           decision, origin, decided_by, note, file_name, row_no, imported_at
    FROM d
    QUALIFY row_number() OVER (
        PARTITION BY CASE WHEN ordered THEN source_l ELSE source_r END,
                     CASE WHEN ordered THEN record_id_l ELSE record_id_r END,
                     CASE WHEN ordered THEN source_r ELSE source_l END,
                     CASE WHEN ordered THEN record_id_r ELSE record_id_l END
        ORDER BY imported_at DESC, origin = 'review' DESC, row_no DESC NULLS LAST) = 1"""


def effective_view(ws: Workspace) -> str:
    """The temp view `decided_pairs`: the decision in force per pair (see EFFECTIVE_SQL)."""
    ws.run("decisions in force", f"CREATE OR REPLACE TEMP VIEW decided_pairs AS {EFFECTIVE_SQL}")
    return "decided_pairs"


@dataclass
class Constraints:
    """Must-link and cannot-link pairs as record numbers of one match's arrays (l < r, sorted)."""

    must_l: np.ndarray
    must_r: np.ndarray
    cannot_l: np.ndarray
    cannot_r: np.ndarray

    @staticmethod
    def none() -> Constraints:
        empty = np.empty(0, dtype=np.int64)
        return Constraints(empty, empty, empty, empty)

    @property
    def must_packed(self) -> np.ndarray:
        return (self.must_l << 32) | self.must_r

    @property
    def cannot_packed(self) -> np.ndarray:
        return (self.cannot_l << 32) | self.cannot_r

    def __len__(self) -> int:
        return len(self.must_l) + len(self.cannot_l)


def load_constraints(ws: Workspace, keys: pa.Table) -> Constraints:
    """The decisions in force between records of `keys` (source, record_id; row i is record i)."""
    if not ws.scalar("any decision", "SELECT count(*) FROM link_decisions"):
        return Constraints.none()
    view = effective_view(ws)
    ws.register("decision_keys", pa.table({"source": keys["source"], "record_id": keys["record_id"],
                                           "i": pa.array(np.arange(keys.num_rows, dtype=np.int64))}))
    try:
        found = ws.run("decided pairs of the records matched", f"""
            SELECT least(a.i, b.i) AS l, greatest(a.i, b.i) AS r, d.decision = 'match' AS must
            FROM {view} d
            JOIN decision_keys a ON a.source = d.source_l AND a.record_id = d.record_id_l
            JOIN decision_keys b ON b.source = d.source_r AND b.record_id = d.record_id_r
            WHERE d.decision IN ('match', 'not_match') AND a.i <> b.i
            ORDER BY l, r""").fetchnumpy()
    finally:
        ws.unregister("decision_keys")
    left, right = np.asarray(found["l"], dtype=np.int64), np.asarray(found["r"], dtype=np.int64)
    must = np.asarray(found["must"], dtype=bool)
    return Constraints(left[must], right[must], left[~must], right[~must])


def decision_counts(ws: Workspace) -> dict[str, int]:
    """Decisions in force: must-links and cannot-links applied (both records exist), 'unsure' ones,
    and those naming a record that no longer exists (`missing`, not applied)."""
    view = effective_view(ws)
    rows = ws.rows("count decisions", f"""
        SELECT d.decision,
               (EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_l AND r.record_id = d.record_id_l)
                AND EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_r AND r.record_id = d.record_id_r)) AS found,
               count(*)
        FROM {view} d GROUP BY ALL""")
    counts = {"must_link": 0, "cannot_link": 0, "unsure": 0, "missing": 0}
    for decision, found, n in rows:
        if not found:
            counts["missing"] += int(n)
        elif decision == "match":
            counts["must_link"] += int(n)
        elif decision == "not_match":
            counts["cannot_link"] += int(n)
        else:
            counts["unsure"] += int(n)
    return counts

"""Incremental match: only what a night's new and changed records can change is matched again.

With a stored model and its blocking rules, the records ingested since the last match (new, or a
newer export of a record) are blocked against every record and each other (`pairs_touching`).
Every earlier component of links (above the threshold, before the identity guard; each person's
`component` in `persons`) that those pairs reach, that holds a changed record, or that held a record
now gone, is taken apart and matched again with the new records: its stored links and the new
candidate pairs are compared and scored with the stored model and term frequencies, and decided by
the same `decide` as a full match. Every other person, link and record number stays as it is.
People's decisions (match/decisions.py) are applied to the records matched again as a full match
applies them; a decision recorded since the latest match also takes the earlier components of its
two records apart (a must-link is an edge of a component, so its records are matched again together).

Why that equals a full match with the same model: a pair's weight depends only on its two records,
the model and the stored term frequencies, so links between untouched records are the same; a full
match's components are the earlier components joined by the new links, and the guard works on each
component alone. Record numbers of earlier records are kept; new records get numbers after the
highest. The records of the matched components are numbered in (source, record_id) order, as a
full match numbers them, so ties between equal weights fall the same way.

Blocking uses the keys `match_keys` keeps of every record (match/blocking.py): a night hashes only
its new and changed records. Owns the temp tables `match_ids` (every record's number),
`match_records` (the new and changed records), `match_delta`, `match_stale`, `match_redo` and
`match_affected`, and the views `match_all` and `match_sources`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..config import BlockingRule, ModelConfig
from ..workspace import Workspace
from .blocking import pairs_touching, rules_without_keys, store_keys
from .compare import build_comparisons, group_comparisons, levels_in_batches
from .encoded import encoded_present
from .decisions import decision_counts, load_constraints
from .model import Model, pair_weights
from .prepare import MATCH_COLUMNS, fetch_records, to_arrays
from .run import KEEP_LINKS_ABOVE, Decided, MatchSummary, ModelMismatch, decide
from .store import (assign_person_ids, close_run, open_run, store_links, store_persons, stored_frequencies)

# Above this share of the records to match again, a full match is as quick and simpler.
FULL_ABOVE = 0.5


def latest_mark(ws: Workspace) -> int | None:
    """The newest batch the latest match saw; None when it cannot be continued incrementally (no
    match yet, or one from a version that kept no components)."""
    row = ws.rows("latest match mark", "SELECT batch_mark FROM match_runs WHERE finished_at IS NOT NULL "
                                       "ORDER BY run_id DESC LIMIT 1")
    if not row or row[0][0] is None:
        return None
    if ws.scalar("persons without a component", "SELECT count(*) FROM persons WHERE component IS NULL"):
        return None
    return int(row[0][0])


def run_incremental(ws: Workspace, config: ModelConfig, model: Model, rules: list[BlockingRule],
                    step: Callable[[str], None] | None = None) -> MatchSummary | None:
    """Match the records new or changed since the latest match; None when a full match is needed
    instead (nothing to continue from, no stored term frequencies, or most records to redo)."""
    step = step or (lambda message: None)
    threshold = config.threshold
    clock: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        clock[name] = round(now - started, 3)
        started = now

    mark = latest_mark(ws)
    if mark is None or encoded_present(ws):   # encoded records: always a full match (see match/encoded.py)
        return None
    with ws.transaction():
        step("finding new and changed records")
        decided_since = ws.scalar("latest match end", "SELECT max(finished_at) FROM match_runs WHERE finished_at IS NOT NULL")
        total = _number_records(ws, mark)
        lap("prepare")
        step("blocking new records")
        _update_keys(ws, rules)
        left, right = pairs_touching(ws, rules, config, "match_delta", "match_sources")
        affected = _affected(ws, left, right, decided_since)
        if affected > FULL_ABOVE * total:
            _drop_tables(ws)
            return None
        lap("block")
        run_id = open_run(ws, threshold)
        left, right = _with_stored_links(ws, left, right)   # read before they are dropped below
        previous = ws.run("earlier person ids", """
            SELECT a.local AS rid, p.person_id FROM match_affected a JOIN persons p USING (rid)""").pl()
        # Links between a record matched again and one that is not lie below the threshold (else
        # both were in one component) and keep their weight, unless one record is new, changed or gone.
        ws.run("drop the links decided again", """
            DELETE FROM link_pairs
            WHERE (rid_l IN (SELECT rid FROM match_redo) AND rid_r IN (SELECT rid FROM match_redo))
               OR rid_l IN (SELECT rid FROM match_stale) OR rid_r IN (SELECT rid FROM match_stale)""")
        ws.run("drop persons decided again", "DELETE FROM persons WHERE rid IN (SELECT rid FROM match_redo)")
        linked = refused = kept = pairs = 0
        if affected:   # none: the night's files brought no record (every row rejected), or only removals
            pairs, linked, refused, kept = _match_again(ws, config, model, threshold, run_id, left, right, previous,
                                                        step, lap)
        lap("store")
        links = ws.scalar("links", f"SELECT count(*) FROM link_pairs WHERE probability >= {KEEP_LINKS_ABOVE}")
        persons = ws.scalar("persons", "SELECT count(DISTINCT person_id) FROM persons")
        blocking = [{"rule": rule.name, "on": rule.on, "pairs": None, "largest_blocks": []} for rule in rules]
        batch_mark = ws.scalar("batch mark", "SELECT max(batch_id) FROM records")
        decisions = decision_counts(ws)
        close_run(ws, run_id, total, pairs, links, persons, refused, kept, model, blocking, clock, None, batch_mark,
                  incremental=True, decisions=decisions)
        _drop_tables(ws)
    return MatchSummary(run_id, total, pairs, linked, persons, refused, kept, threshold, model.prior, blocking,
                        [f.__dict__ for f in model.fits], clock, model.households, decisions)


def _match_again(ws: Workspace, config: ModelConfig, model: Model, threshold: float, run_id: int,
                 left: np.ndarray, right: np.ndarray, previous, step: Callable[[str], None],
                 lap: Callable[[str], None]) -> tuple[int, int, int, int]:
    """Compare, score and decide the records of `match_affected` again (the pairs `left`, `right`:
    new candidates and stored links), and store their links and persons (`previous`: their
    earlier person ids by local number); returns how many pairs were scored, linked, refused and
    kept for review."""
    fetched = fetch_records(ws, "(SELECT * EXCLUDE (rid, local), local AS rid FROM match_affected)",
                            extra_names=[r[0] for r in ws.rows(
                                "extra field names", "SELECT DISTINCT unnest(map_keys(extra)) FROM records ORDER BY 1")])
    numbers = np.asarray(ws.run("record numbers", "SELECT rid FROM match_affected ORDER BY local")
                         .fetchnumpy()["rid"], dtype=np.int64)
    data = to_arrays(fetched)
    comparisons = build_comparisons(config, data, names=model.comparisons, kinds=model.kinds)
    if [c.name for c in comparisons] != model.comparisons or [list(c.labels) for c in comparisons] != model.labels:
        raise ModelMismatch("the stored model compares other fields or levels than this workspace gives")
    frozen = stored_frequencies(ws, comparisons, data)
    if frozen is None:
        raise ModelMismatch("no term frequencies are stored with the model")
    data.frequencies = frozen
    left, right = _local(numbers, left, right)
    lap("load")
    step(f"comparing {len(left):,} pairs")
    levels = levels_in_batches(comparisons, data, left, right)
    tf = [c.term_frequencies(data) for c in comparisons]
    base = pair_weights(model, levels, tf, left, include_prior=False)
    lap("compare")
    step("scoring and clustering")

    def store(index: np.ndarray, d: Decided) -> None:
        store_links(ws, run_id, numbers[left[index]], numbers[right[index]], d.weight[index], d.prob[index],
                    d.linked[index] & ~d.refused_mask[index], d.refused_mask[index], d.conflict_mask[index])

    decided = decide(data, left, right, levels, base, model, tf, threshold, config.identity,
                     group_comparisons(data), store=store, constraints=load_constraints(ws, data.keys))
    lap("cluster")
    step("storing persons and links")
    store_persons(ws, run_id, data.keys, assign_person_ids(ws, decided.clusters.labels, previous),
                  decided.components, numbers)
    return len(left), int(decided.linked.sum()), len(decided.refused), len(decided.kept)


def _drop_tables(ws: Workspace) -> None:
    ws.run("drop incremental views", "DROP VIEW IF EXISTS match_all; DROP VIEW IF EXISTS match_sources")
    ws.run("drop incremental tables", "; ".join(f"DROP TABLE IF EXISTS {t}" for t in (
        "match_ids", "match_records", "match_delta", "match_stale", "match_redo", "match_affected")))


def _number_records(ws: Workspace, mark: int) -> int:
    """`match_ids`: every record's row and record number (an earlier record's stored one, new ones
    after the highest) and whether it is new or changed since `mark`; `match_delta` and
    `match_records`: those records (number; number and match columns); `match_stale`: the numbers
    of records new, changed or gone; the views `match_all` (every record as `match_records` shapes
    it) and `match_sources` (number, source). Returns how many records there are."""
    ws.run("drop an earlier version's match records", "DROP TABLE IF EXISTS main.match_records")
    ws.run("number match records", """
        CREATE OR REPLACE TEMP TABLE match_ids AS
        SELECT r.rowid AS record_row, p.rid, r.batch_id > ? AS changed
        FROM records r JOIN persons p USING (source, record_id)
        UNION ALL
        SELECT r.rowid, ((SELECT coalesce(max(rid), -1) FROM persons)
                         + row_number() OVER (ORDER BY r.source, r.record_id))::INTEGER, TRUE
        FROM records r ANTI JOIN persons p USING (source, record_id)""", [mark])
    ws.run("every match record", f"""
        CREATE OR REPLACE TEMP VIEW match_all AS
        SELECT i.rid, {MATCH_COLUMNS} FROM records JOIN match_ids i ON records.rowid = i.record_row""")
    ws.run("sources of match records", """
        CREATE OR REPLACE TEMP VIEW match_sources AS
        SELECT i.rid, r.source FROM records r JOIN match_ids i ON r.rowid = i.record_row""")
    ws.run("new and changed records", "CREATE OR REPLACE TEMP TABLE match_delta AS SELECT rid FROM match_ids WHERE changed")
    ws.run("match records of new and changed records",
           "CREATE OR REPLACE TEMP TABLE match_records AS SELECT * FROM match_all WHERE rid IN (SELECT rid FROM match_delta)")
    ws.run("records new, changed or gone", """
        CREATE OR REPLACE TEMP TABLE match_stale AS
        SELECT rid FROM match_delta
        UNION SELECT rid FROM (SELECT rid, source, record_id FROM persons) ANTI JOIN records USING (source, record_id)""")
    return ws.scalar("count match records", "SELECT count(*) FROM match_ids")


def _update_keys(ws: Workspace, rules: list[BlockingRule]) -> None:
    """Bring the stored blocking keys up to date: those of records new, changed or gone dropped, the
    new and changed records' added; a rule with no stored keys gets every record's."""
    missing = rules_without_keys(ws, rules)
    kept = [rule for rule in rules if rule not in missing]
    if kept:
        ws.run("drop keys of records new, changed or gone",
               "DELETE FROM match_keys WHERE rid IN (SELECT rid FROM match_stale)")
        store_keys(ws, kept, "match_records")
    store_keys(ws, missing, "match_all")


def _affected(ws: Workspace, left: np.ndarray, right: np.ndarray, decided_since=None) -> int:
    """`match_redo`: the record numbers whose persons and links are decided again (the records of
    every earlier component the new pairs reach, that holds a changed record, held a record now
    gone or holds a record of a decision recorded after `decided_since` or of a decision on a new or
    changed record, and the new records);
    `match_affected`: those that still exist, numbered in (source, record_id) order as `local`.
    Returns how many records are matched again."""
    import pyarrow as pa

    ws.register("touched_pairs", pa.table({"l": left, "r": right}))
    ws.run("records matched again", """
        CREATE OR REPLACE TEMP TABLE match_redo AS
        WITH changed AS (SELECT r.source, r.record_id FROM match_ids i JOIN records r ON r.rowid = i.record_row
                         WHERE i.changed),
        decided AS (  -- records of decisions recorded since, and the partners of new and changed records
            SELECT source_l AS source, record_id_l AS record_id FROM link_decisions WHERE imported_at > ?
            UNION SELECT source_r, record_id_r FROM link_decisions WHERE imported_at > ?
            UNION SELECT d.source_l, d.record_id_l FROM link_decisions d
                  JOIN changed c ON c.source = d.source_r AND c.record_id = d.record_id_r
            UNION SELECT d.source_r, d.record_id_r FROM link_decisions d
                  JOIN changed c ON c.source = d.source_l AND c.record_id = d.record_id_l),
        seeds AS (SELECT l AS rid FROM touched_pairs UNION SELECT r FROM touched_pairs
                  UNION SELECT rid FROM match_stale
                  UNION SELECT i.rid FROM match_ids i JOIN records r ON r.rowid = i.record_row
                        SEMI JOIN decided d ON d.source = r.source AND d.record_id = r.record_id),
             components AS (SELECT DISTINCT p.component FROM persons p JOIN seeds USING (rid))
        SELECT rid FROM persons WHERE component IN (SELECT component FROM components)
        UNION SELECT rid FROM seeds""", [decided_since, decided_since])
    ws.unregister("touched_pairs")
    ws.run("records to match again", """
        CREATE OR REPLACE TEMP TABLE match_affected AS
        SELECT (row_number() OVER (ORDER BY source, record_id) - 1)::INTEGER AS local, m.*
        FROM match_all m WHERE rid IN (SELECT rid FROM match_redo)""")
    return ws.scalar("count records to match again", "SELECT count(*) FROM match_affected")


def _with_stored_links(ws: Workspace, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs to score (record numbers): the new candidate pairs and the stored links between
    records matched again, except those of records new, changed or gone (their pairs are among the
    new candidates when blocking still makes them)."""
    stored = ws.run("stored links to score again", """
        SELECT rid_l, rid_r FROM link_pairs
        WHERE rid_l IN (SELECT rid FROM match_affected) AND rid_r IN (SELECT rid FROM match_affected)
          AND rid_l NOT IN (SELECT rid FROM match_stale) AND rid_r NOT IN (SELECT rid FROM match_stale)""").fetchnumpy()
    return (np.concatenate([left, np.asarray(stored["rid_l"])]).astype(np.int64),
            np.concatenate([right, np.asarray(stored["rid_r"])]).astype(np.int64))


def _local(numbers: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of record numbers as local numbers (the position in `numbers`), l < r, sorted, once each."""
    order = np.argsort(numbers)
    a, b = order[np.searchsorted(numbers, left, sorter=order)], order[np.searchsorted(numbers, right, sorter=order)]
    packed = np.unique((np.minimum(a, b).astype(np.int64) << 32) | np.maximum(a, b))
    return (packed >> 32).astype(np.int32), (packed & 0xFFFFFFFF).astype(np.int32)

"""Storing a match run: stable person ids, links, conflicts, the run record, and the term
frequencies the model weighs values by (table `term_frequencies`, all SQL here).

Term frequencies are part of the model: counted when it is trained (or when a model from a file
is applied) and reused with it, so a reused model weighs every pair as it did the night before
and an incremental match gives what a full one gives. A value the count never saw weighs as the
rarest value of its field."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import InputError
from ..workspace import Workspace
from .model import Model

PERSON_PREFIX = "P"
PERSON_DIGITS = 8


def earlier_person_ids(ws: Workspace) -> pl.DataFrame:
    """(rid, person_id) of the records the previous run placed."""
    return ws.run("earlier person ids", """
        SELECT m.rid, p.person_id FROM match_records m
        JOIN persons p ON p.source = m.source AND p.record_id = m.record_id""").pl()


def assign_person_ids(ws: Workspace, labels: np.ndarray, previous: pl.DataFrame | None = None) -> np.ndarray:
    """Person id per record id: each cluster keeps the earlier id most of its records had.

    Votes (cluster, earlier id, records) are taken greedily, most records first and the
    smaller id on ties; a cluster with no earlier id, or whose ids a bigger cluster took,
    gets a fresh id. Fresh ids are numbered in order of the cluster's first record, so the
    same data always gives the same ids.
    """
    previous = earlier_person_ids(ws) if previous is None else previous
    votes = previous.with_columns(cluster=pl.Series(labels)[previous["rid"]]).group_by("cluster", "person_id").len()
    # A vote whose cluster and id both appear in no other vote wins whatever the order; only the
    # contested rest needs the greedy pass.
    alone = (pl.col("cluster").count().over("cluster") == 1) & (pl.col("person_id").count().over("person_id") == 1)
    votes = votes.with_columns(alone=alone)
    n_clusters = int(labels.max()) + 1
    lookup = np.full(n_clusters, None, dtype=object)
    settled = votes.filter("alone")
    lookup[settled["cluster"].to_numpy()] = settled["person_id"].to_numpy()
    contested = votes.filter(~pl.col("alone")).sort(["len", "person_id", "cluster"], descending=[True, False, False])
    taken: set[str] = set()
    for cluster, name in zip(contested["cluster"].to_list(), contested["person_id"].to_list()):
        if lookup[cluster] is None and name not in taken:
            lookup[cluster] = name
            taken.add(name)
    first = np.full(n_clusters, np.iinfo(np.int64).max)
    np.minimum.at(first, labels, np.arange(len(labels)))
    order = np.argsort(first, kind="stable")
    fresh = order[np.equal(lookup[order], None)]
    start = ws.scalar("person id counter", "SELECT value FROM counters WHERE name = 'person_id'")
    numbers = pl.Series(np.arange(start + 1, start + 1 + len(fresh), dtype=np.int64)).cast(pl.String)
    lookup[fresh] = (PERSON_PREFIX + numbers.str.zfill(PERSON_DIGITS)).to_numpy()
    ws.run("advance person id counter", "UPDATE counters SET value = ? WHERE name = 'person_id'",
           [start + len(fresh)])
    return lookup[labels]


def store_persons(ws: Workspace, run_id: int, names: pa.Table, person_ids: np.ndarray, components: np.ndarray,
                  numbers: np.ndarray | None = None) -> None:
    """Replace persons with this run's. `names` holds each record's source and record_id, row i for
    record id i; `numbers` the record number stored for each (`rid`, which link pairs refer to; by
    default i) and `components` each one's component, as record ids. Without `numbers` every person
    is replaced, with them those records' rows only."""
    rid = np.arange(len(person_ids), dtype=np.int32) if numbers is None else numbers.astype(np.int32)
    ws.register("run_persons", _chunked(pa.table({"source": names["source"], "record_id": names["record_id"],
                                                  "person_id": pa.array(person_ids, type=pa.string()),
                                                  "rid": pa.array(rid),
                                                  "component": pa.array(rid[components].astype(np.int32))})))
    if numbers is None:
        ws.run("replace persons", "DELETE FROM persons")
    else:
        ws.run("replace persons of the records matched", "DELETE FROM persons WHERE rid IN (SELECT rid FROM run_persons)")
    ws.run("store persons", "INSERT INTO persons (source, record_id, person_id, run_id, rid, component) "
                            "SELECT source, record_id, person_id, ?, rid, component FROM run_persons", [run_id])
    ws.unregister("run_persons")


def store_frequencies(ws: Workspace, comparisons: list, tf: list[np.ndarray | None], data) -> None:
    """Replace the stored term frequencies with those of `tf` (per comparison, per record of `data`)."""
    frames = []
    for comparison, shares in zip(comparisons, tf):
        if shares is None:
            continue
        values = comparison.tf_values(data)
        # Through Arrow: polars infers an object array's type from its first values, and a run of
        # records without a value (None) at the start made it 'Object', which cannot be cast.
        text = pl.from_arrow(pa.array(values, type=pa.string(), from_pandas=True))
        frames.append(pl.DataFrame({"slot": comparison.tf_slot, "value": text,
                                    "share": shares}).filter(pl.col("share") > 0).unique(["slot", "value"]))
    ws.run("replace term frequencies", "DELETE FROM term_frequencies")
    if frames:
        ws.register("run_frequencies", pl.concat(frames).to_arrow())
        ws.run("store term frequencies", "INSERT INTO term_frequencies SELECT slot, value, share FROM run_frequencies")
        ws.unregister("run_frequencies")


def stored_frequencies(ws: Workspace, comparisons: list, data) -> dict[str, np.ndarray] | None:
    """Per term-frequency comparison (its `tf_slot`), the stored frequency of each record's value
    (0: no value; the rarest stored share: a value not counted then); None when some are not stored
    (a workspace matched by an earlier version)."""
    slots = [c for c in comparisons if getattr(c, "term_frequency", False)]
    stored = {r[0] for r in ws.rows("stored frequency slots", "SELECT DISTINCT slot FROM term_frequencies")}
    if any(c.tf_slot not in stored for c in slots):
        return None
    out: dict[str, np.ndarray] = {}
    for comparison in slots:
        values = comparison.tf_values(data)
        ws.register("frequency_values", pa.table({"i": np.arange(len(values), dtype=np.int64),
                                                  "value": pa.array(values, type=pa.string())}))
        shares = ws.run(f"term frequencies of {comparison.name}", """
            SELECT CASE WHEN v.value IS NULL THEN 0
                        ELSE coalesce(f.share, (SELECT min(share) FROM term_frequencies WHERE slot = ?)) END AS share
            FROM frequency_values v LEFT JOIN term_frequencies f ON f.slot = ? AND f.value = v.value
            ORDER BY v.i""", [comparison.tf_slot, comparison.tf_slot]).fetchnumpy()["share"]
        ws.unregister("frequency_values")
        out[comparison.tf_slot] = np.asarray(shares, dtype=np.float64)
    return out


def clear_links(ws: Workspace) -> None:
    ws.run("replace links", "DELETE FROM link_pairs")


def store_links(ws: Workspace, run_id: int, left: np.ndarray, right: np.ndarray, weight: np.ndarray,
                probability: np.ndarray, linked: np.ndarray, refused: np.ndarray, conflict: np.ndarray) -> None:
    """Add links (record ids left/right with their scores and flags) to this run's link pairs."""
    ws.register("run_links", _chunked(pa.table({
        "rid_l": left.astype(np.int32), "rid_r": right.astype(np.int32), "weight": weight,
        "probability": probability, "linked": linked, "refused": refused, "conflict": conflict})))
    ws.run("store links", """
        INSERT INTO link_pairs SELECT ?, rid_l, rid_r, weight, probability, linked, refused, conflict
        FROM run_links""", [run_id])
    ws.unregister("run_links")


def _chunked(table: pa.Table, rows: int = 250_000) -> pa.Table:
    """The table in batches of `rows`, so that DuckDB scans it on all its threads."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def open_run(ws: Workspace, threshold: float) -> int:
    run_id = ws.scalar("next match run id", "SELECT nextval('match_run_ids')")
    ws.run("open match run", "INSERT INTO match_runs (run_id, started_at, threshold) VALUES (?, ?, ?)",
           [run_id, datetime.now(), threshold])
    return run_id


def close_run(ws: Workspace, run_id: int, records: int, candidate_pairs: int, links: int, persons: int,
              refused: int, conflicts: int, model: Model, blocking: list[dict], seconds: dict[str, float],
              choice: dict | None = None, batch_mark: int | None = None, incremental: bool = False,
              decisions: dict | None = None) -> None:
    """Finish the run record; `choice` is how the blocking rules were chosen (None: model.toml gave
    them), `batch_mark` the newest batch whose records the run matched, `decisions` the people's
    decisions it applied and those naming a record gone (match/decisions.py)."""
    ws.run("close match run", """
        UPDATE match_runs SET finished_at = ?, records = ?, candidate_pairs = ?, links = ?, persons = ?,
               refused = ?, conflicts = ?, model = ?, blocking = ?, seconds = ?, blocking_choice = ?,
               batch_mark = ?, incremental = ?, decisions = ? WHERE run_id = ?""",
           [datetime.now(), records, candidate_pairs, links, persons, refused, conflicts, json.dumps(model.to_json()),
            json.dumps(blocking), json.dumps(seconds), json.dumps(choice) if choice is not None else None,
            batch_mark, incremental, json.dumps(decisions) if decisions is not None else None, run_id])


def latest_model(ws: Workspace) -> Model | None:
    row = ws.rows("latest model", "SELECT model FROM match_runs WHERE finished_at IS NOT NULL "
                                  "ORDER BY run_id DESC LIMIT 1")
    return Model.from_json(json.loads(row[0][0])) if row else None


def require_latest_model(ws: Workspace) -> Model:
    model = latest_model(ws)
    if model is None:
        raise InputError("no trained model yet; run 'linkage match' first")
    return model

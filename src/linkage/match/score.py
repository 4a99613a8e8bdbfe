"""Scoring given record pairs with the latest trained model, outside a match run.

For `explain` (one pair) and the chain's joins of split travelers (pairs the match never stored):
the records are loaded as match arrays, compared with the very functions `linkage match` uses
and weighed with the stored model and the term frequencies stored with it (counted over the whole
workspace as the match counts them, for a workspace matched before they were stored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..config import ModelConfig
from ..errors import InputError
from ..sql import quote_ident, quote_literal
from ..workspace import Workspace
from .compare import Comparison, build_comparisons, comparison_levels
from .model import Model, effective_weights, pair_weights
from .encoded import prepare_encoded
from .prepare import RecordArrays, fetch_records, match_records_select, to_arrays
from .store import require_latest_model, stored_frequencies

KEYS = "score_keys"
RECORDS = "score_records"


@dataclass
class Scored:
    model: Model
    comparisons: list[Comparison]
    data: RecordArrays
    left: np.ndarray          # record numbers in `data` of each pair's records
    right: np.ndarray
    levels: np.ndarray        # (pairs, comparisons)
    weights: np.ndarray       # total weight per pair (with the prior)
    stands: np.ndarray        # the weight the pair's link would stand on (its own evidence if contradicted)
    numbers: pl.DataFrame     # source, record_id, rid: each loaded record's number in `data`


def score_pairs(ws: Workspace, config: ModelConfig, pairs: pl.DataFrame,
                also: pl.DataFrame | None = None) -> Scored:
    """Score pairs given as columns source_l, record_id_l, source_r, record_id_r (each record must
    exist; InputError otherwise). Records in `also` (source, record_id) are loaded into `data` too."""
    model = require_latest_model(ws)
    keys = pl.concat([pairs.select(source="source_l", record_id="record_id_l"),
                      pairs.select(source="source_r", record_id="record_id_r")]
                     + ([also.select("source", "record_id")] if also is not None else [])).unique()
    ws.register(KEYS, keys.to_arrow())
    try:
        missing = ws.scalar("records to score", f"SELECT count(*) FROM {KEYS} k ANTI JOIN records r USING (source, record_id)")
        if missing:
            raise InputError(f"{missing} of the records to score are not in the workspace")
        # Materialized once with a semi join: as a correlated EXISTS, re-evaluated by each query below,
        # DuckDB sometimes planned it as a loop over every record (minutes at 200,000 people).
        ws.run("load records to score", f"CREATE OR REPLACE TEMP TABLE {RECORDS} AS "
                                        + match_records_select(records=f"records SEMI JOIN {KEYS} USING (source, record_id)"))
        relation = RECORDS
        encoded = prepare_encoded(ws, relation, require_key=False)
        fetched = fetch_records(ws, relation)
        fetched.encoded = encoded is not None
        data = to_arrays(fetched)
        data.encoded = encoded
        numbers = ws.run("record numbers", f"SELECT source, record_id, rid FROM {relation}").pl()
        comparisons = build_comparisons(config, data, names=model.comparisons, kinds=model.kinds)
        if [c.name for c in comparisons] != model.comparisons:
            raise InputError("model.toml or the workspace changed since the last match; run 'linkage match' again")
        if [list(c.labels) for c in comparisons] != model.labels:
            raise InputError("the workspace's model was trained on other comparison levels (an earlier version of "
                             "linkage); run 'linkage match' again")
        stored = stored_frequencies(ws, comparisons, data)
        data.frequencies = stored if stored is not None else _frequencies(
            ws, relation, [c for c, level in zip(comparisons, model.tf_levels) if level is not None])
        ws.run("drop records to score", f"DROP TABLE {RECORDS}")
    finally:
        ws.unregister(KEYS)
    ids = pairs.join(numbers.rename({"source": "source_l", "record_id": "record_id_l", "rid": "l"}),
                     on=["source_l", "record_id_l"], how="left", maintain_order="left") \
               .join(numbers.rename({"source": "source_r", "record_id": "record_id_r", "rid": "r"}),
                     on=["source_r", "record_id_r"], how="left", maintain_order="left")
    left, right = ids["l"].to_numpy().astype(np.int32), ids["r"].to_numpy().astype(np.int32)
    levels = comparison_levels(comparisons, data, left, right)
    tf = [c.term_frequencies(data) for c in comparisons]
    weights = pair_weights(model, levels, tf, left)
    stands, _ = effective_weights(model, levels, tf, left, weights)
    return Scored(model, comparisons, data, left, right, levels, weights, stands, numbers)


def _frequencies(ws: Workspace, relation: str, comparisons: list[Comparison]) -> dict[str, np.ndarray]:
    """Workspace-wide frequency of each scored record's own value, per term-frequency comparison,
    computed as the match computes them (keyed as the match's arrays key them)."""
    every = f"({match_records_select()})"

    def shares(value: str) -> str:
        return f"""(SELECT v, count(*) / (SELECT count({value}) FROM {every}) AS f
                    FROM (SELECT {value} AS v FROM {every}) WHERE v IS NOT NULL GROUP BY v)"""

    out: dict[str, np.ndarray] = {}
    for comparison in comparisons:
        if comparison.kind == "name":   # the name key's frequency, else the hanzi name's
            key = "name_key"
            sql = f"""
                SELECT m.rid, coalesce(CASE WHEN m.name_key IS NOT NULL THEN k.f ELSE l.f END, 0)
                FROM {relation} m LEFT JOIN {shares('name_key')} k ON k.v = m.name_key
                                  LEFT JOIN {shares('local_name')} l ON l.v = m.local_name
                ORDER BY m.rid"""
        else:
            field = "dob" if comparison.kind == "date" else (getattr(comparison, "field", "") or comparison.name)
            key = "dob" if comparison.kind == "date" else comparison.name
            value = f"extra[{quote_literal(field[6:])}]" if field.startswith("extra.") else quote_ident(field)
            sql = f"""
                SELECT m.rid, coalesce(s.f, 0) FROM (SELECT rid, {value} AS v FROM {relation}) m
                LEFT JOIN {shares(value)} s ON s.v = m.v ORDER BY m.rid"""
        rows = ws.rows(f"term frequencies of {comparison.name}", sql)
        out[key] = np.array([r[1] for r in rows], dtype=float)
    return out

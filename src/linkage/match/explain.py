"""Explanations: why two records were or were not linked, and what holds a person together.

A pair is scored as `score.py` scores any pair: the very comparisons `linkage match` uses, on
just those two records (term frequencies counted over the whole workspace), and the stored model;
the total is the sum of the terms shown and the prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..config import ModelConfig
from ..errors import InputError
from ..sql import quote_literal
from ..workspace import Workspace
from .model import Model, probability, surprises
from .score import Scored, score_pairs
from .store import require_latest_model


@dataclass
class Term:
    comparison: str
    level: str
    weight: float
    note: str = ""


@dataclass
class PairExplanation:
    left: str
    right: str
    prior_weight: float
    terms: list[Term]
    total_weight: float
    probability: float
    threshold: float
    linked_now: bool
    same_person: bool


@dataclass
class PersonExplanation:
    person_id: str
    records: list[dict]
    edges: list[dict] = field(default_factory=list)


def parse_key(key: str) -> tuple[str, str]:
    source, sep, record_id = key.partition(":")
    if not sep or not source or not record_id:
        raise InputError(f"'{key}' is not a record key; write SOURCE:RECORD_ID, e.g. police:GA20260305001")
    return source, record_id


def _require_model(ws: Workspace) -> tuple[Model, float]:
    model = require_latest_model(ws)
    threshold = ws.scalar("threshold", "SELECT threshold FROM match_runs WHERE finished_at IS NOT NULL "
                                       "ORDER BY run_id DESC LIMIT 1")
    return model, float(threshold)


def explain_pair(ws: Workspace, config: ModelConfig, key_a: str, key_b: str) -> PairExplanation:
    model, threshold = _require_model(ws)
    keys = [parse_key(key_a), parse_key(key_b)]
    if keys[0] == keys[1]:
        raise InputError("name two different records")
    where = " OR ".join(f"(source = {quote_literal(s)} AND record_id = {quote_literal(r)})" for s, r in keys)
    found = {(s, r) for s, r in ws.rows("find records", f"SELECT source, record_id FROM records WHERE {where}")}
    for (s, r), key in zip(keys, (key_a, key_b)):
        if (s, r) not in found:
            raise InputError(f"record {key} is not in the workspace")
    ordered = sorted(keys)
    scored = score_pairs(ws, config, pl.DataFrame({"source_l": [ordered[0][0]], "record_id_l": [ordered[0][1]],
                                                   "source_r": [ordered[1][0]], "record_id_r": [ordered[1][1]]}))
    terms = pair_terms(scored)[0]
    total = float(scored.weights[0])
    persons = dict(((s, r), p) for s, r, p in ws.rows(
        "persons of pair", f"SELECT source, record_id, person_id FROM persons WHERE {where}"))
    same = len(persons) == 2 and len(set(persons.values())) == 1
    return PairExplanation(f"{ordered[0][0]}:{ordered[0][1]}", f"{ordered[1][0]}:{ordered[1][1]}",
                           round(model.prior_weight, 3), terms, round(total, 3),
                           float(probability(np.array([total]))[0]), threshold, total >= _logit(threshold), same)


def pair_terms(scored: Scored) -> list[list[Term]]:
    """Per scored pair, its per-comparison terms (level and weight, the term-frequency adjustment
    included as the match includes it); with the prior they sum to the pair's total weight."""
    model = scored.model
    tf = [c.term_frequencies(scored.data) for c in scored.comparisons]
    tf_levels = [level if tf[k] is not None else None for k, level in enumerate(model.tf_levels)]
    surprise = surprises(tf, model.u, tf_levels)
    weights = model.weights()
    out = []
    for i in range(len(scored.left)):
        left = int(scored.left[i])
        terms = []
        for k, comparison in enumerate(scored.comparisons):
            level = int(scored.levels[i][k])
            w = float(weights[k][level])
            note = ""
            if tf_levels[k] is not None and level == tf_levels[k]:
                # the same adjustment as the match: log2(u) - log2(frequency of the left record's value)
                adjust = float(np.log2(model.u[k][level]) + surprise[k][left])
                w += adjust
                note = (f"term frequency {tf[k][left]:.2e} ({adjust:+.2f})" if tf[k][left] > 0
                        else "no frequency of its own: not adjusted")
            terms.append(Term(comparison.name, model.labels[k][level], round(w, 3), note))
        out.append(terms)
    return out


def _logit(p: float) -> float:
    return math.log2(p / (1 - p))


def explain_person(ws: Workspace, person_id: str, values: bool = False) -> PersonExplanation:
    """A person's records (key, nationality, file and row; name and birth date only with `values`,
    which the CLI sets for --show-values on a terminal) and the links between them."""
    records = ws.rows("person records", """
        SELECT r.source, r.record_id, r.full_name, r.dob, r.nationality, b.file_name, r.row_no
        FROM linked_persons p JOIN records r USING (source, record_id) JOIN batches b ON b.batch_id = r.batch_id
        WHERE p.person_id = ? ORDER BY r.source, r.record_id""", [person_id])
    if not records:
        raise InputError(f"no person {person_id}; person ids look like P00000001 (see 'linkage export clusters')")
    edges = ws.rows("person edges", """
        SELECT a.source || ':' || a.record_id, b.source || ':' || b.record_id, l.weight, l.probability,
               l.linked, l.refused, l.conflict
        FROM link_pairs l JOIN linked_persons a ON a.rid = l.rid_l JOIN linked_persons b ON b.rid = l.rid_r
        WHERE a.person_id = ? OR b.person_id = ?
        ORDER BY l.weight DESC""", [person_id, person_id])
    return PersonExplanation(
        person_id,
        [{"key": f"{s}:{r}", **({"name": n, "dob": str(d) if d else None} if values else {}), "nationality": c,
          "file": f, "row": row} for s, r, n, d, c, f, row in records],
        [{"left": a, "right": b, "weight": round(w, 3), "probability": round(p, 6), "linked": lk,
          "refused": rf, "conflict": cf} for a, b, w, p, lk, rf, cf in edges],
    )

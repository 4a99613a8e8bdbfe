"""Blocking: candidate pairs from the union of configured rules, counted and guarded first.

Functions here return SQL; `candidate_pairs` runs it through the workspace. A pair (l, r)
always has l < r and carries a bit mask of the rules that produced it (used to train the
model per rule). Before any pair is materialized, each rule's pair count is computed from
its block sizes and the run is refused when the total exceeds the configured cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..config import BlockingRule, ModelConfig
from ..errors import InputError
from ..sql import quote_literal
from ..workspace import Workspace

FIELD_SQL = {
    "birth_year": "year(dob)",
    "doc_number": "unnest(doc_numbers)",
    "name_token": "unnest(string_split(name_key, ' '))",
    # Either name's phonetic code, so that a swapped family/given order still shares a key.
    "name_phonetic": "unnest(list_distinct([family_phonetic, given_phonetic]))",
}
# Which comparison a blocking field makes uninformative for pairs of that rule (see model training).
FIELD_COMPARISON = {
    "dob": "dob", "birth_year": "dob", "name_key": "name", "name_token": "name", "family_name": "name",
    "given_name": "name", "local_name": "name", "family_phonetic": "name", "given_phonetic": "name",
    "name_phonetic": "name", "doc_number": "documents", "phone": "phone", "email": "email", "sex": "sex", "nationality": "nationality",
    "address": "address", "district": "district", "employer": "employer",
}


@dataclass(frozen=True)
class RuleCount:
    name: str
    pairs: int
    largest_blocks: list[int]


@dataclass
class Candidates:
    left: np.ndarray      # int32 record ids
    right: np.ndarray
    mask: np.ndarray      # uint32: bit i set when rule i produced the pair
    counts: list[RuleCount]


def key_expression(key: str) -> str:
    field, _, prefix = key.partition(":")
    if field.startswith("extra."):
        expr = f"extra[{quote_literal(field[6:])}]"
    else:
        expr = FIELD_SQL.get(field, field)
    return f"left(CAST({expr} AS VARCHAR), {int(prefix)})" if prefix else f"CAST({expr} AS VARCHAR)"


def rule_keys_sql(rule: BlockingRule) -> str:
    """rid, source and the rule's key columns k0..kn, rows with any key missing left out."""
    keys = ", ".join(f"{key_expression(k)} AS k{i}" for i, k in enumerate(rule.on))
    not_null = " AND ".join(f"k{i} IS NOT NULL AND k{i} <> ''" for i in range(len(rule.on)))
    return f"SELECT * FROM (SELECT DISTINCT rid, source, {keys} FROM match_records) WHERE {not_null}"


def keys_table(bit: int) -> str:
    return f"block_keys_{bit}"


def rule_count_sql(rule: BlockingRule, bit: int) -> str:
    group = ", ".join(f"k{i}" for i in range(len(rule.on)))
    return f"""
        WITH blocks AS (SELECT count(*)::HUGEINT AS n FROM {keys_table(bit)} GROUP BY {group})
        SELECT coalesce(sum(n * (n - 1) / 2), 0)::BIGINT,
               coalesce(list(n ORDER BY n DESC)[1:3], [])
        FROM blocks"""


def source_filter_sql(config: ModelConfig, sources: list[str]) -> str:
    """A SQL condition on a.source / b.source for the configured source pairs ('all' = none)."""
    if config.compare == "all":
        return "TRUE"
    known = set(sources)
    pairs = []
    for pair in config.compare:
        left, _, right = pair.partition("-")
        for name in (left, right):
            if name not in known:
                raise InputError(
                    f"model.toml: key 'compare' names source '{name}', which the workspace does not hold; "
                    f"sources: {', '.join(sources)}"
                )
        pairs.append(f"(a.source = {quote_literal(left)} AND b.source = {quote_literal(right)})")
        pairs.append(f"(a.source = {quote_literal(right)} AND b.source = {quote_literal(left)})")
    return "(" + " OR ".join(pairs) + ")"


def rule_pairs_sql(rule: BlockingRule, bit: int, source_filter: str) -> str:
    on = " AND ".join(f"a.k{i} = b.k{i}" for i in range(len(rule.on)))
    return f"""
        SELECT a.rid AS l, b.rid AS r, {1 << bit}::UINTEGER AS mask
        FROM {keys_table(bit)} a JOIN {keys_table(bit)} b ON {on} AND a.rid < b.rid
        WHERE {source_filter}"""


def count_rules(ws: Workspace, config: ModelConfig) -> list[RuleCount]:
    """Materialize each rule's keys once, then count its pairs from the block sizes."""
    counts = []
    for bit, rule in enumerate(config.blocking):
        ws.run(f"keys of blocking rule '{rule.name}'",
               f"CREATE OR REPLACE TEMP TABLE {keys_table(bit)} AS {rule_keys_sql(rule)}")
        pairs, largest = ws.rows(f"count pairs of blocking rule '{rule.name}'", rule_count_sql(rule, bit))[0]
        counts.append(RuleCount(rule.name, int(pairs), [int(x) for x in largest]))
    return counts


def check_cap(counts: list[RuleCount], cap: int) -> None:
    total = sum(c.pairs for c in counts)
    if total > cap:
        worst = max(counts, key=lambda c: c.pairs)
        sizes = ", ".join(f"{n:,}" for n in worst.largest_blocks)
        raise InputError(
            f"blocking would compare {total:,} pairs, over max_pairs = {cap:,} (configs/model.toml); "
            f"rule '{worst.name}' alone yields {worst.pairs:,} pairs, its largest blocks hold {sizes} records; "
            "make that rule stricter (add a key) or raise max_pairs"
        )


def candidate_pairs(ws: Workspace, config: ModelConfig, sources: list[str]) -> Candidates:
    """The union of every rule's pairs, duplicates merged into one pair with a rule mask."""
    if len(config.blocking) > 32:
        raise InputError("model.toml: at most 32 blocking rules")
    counts = count_rules(ws, config)
    check_cap(counts, config.max_pairs)
    where = source_filter_sql(config, sources)
    union = " UNION ALL ".join(rule_pairs_sql(rule, i, where) for i, rule in enumerate(config.blocking))
    ws.run("candidate pairs", f"""
        CREATE OR REPLACE TEMP TABLE candidate_pairs AS
        SELECT l, r, bit_or(mask) AS mask FROM ({union}) GROUP BY l, r""")
    for bit in range(len(config.blocking)):
        ws.run("drop blocking keys", f"DROP TABLE IF EXISTS {keys_table(bit)}")
    arrays = ws.run("load candidate pairs", "SELECT l, r, mask FROM candidate_pairs").fetchnumpy()
    left = np.asarray(arrays["l"], dtype=np.int32)
    right = np.asarray(arrays["r"], dtype=np.int32)
    # A fixed order (by pair) keeps every later step deterministic whatever order DuckDB returned.
    order = np.argsort(left.astype(np.int64) * (int(right.max(initial=0)) + 1) + right)
    return Candidates(left=left[order], right=right[order], mask=np.asarray(arrays["mask"], dtype=np.uint32)[order],
                      counts=counts)


def blocking_report(ws: Workspace, config: ModelConfig, truth: pl.DataFrame | None) -> dict:
    """Pairs per rule and of their union; with a truth table, the share of true pairs found."""
    from .prepare import match_records_select

    ws.run("prepare match records", f"CREATE OR REPLACE TEMP TABLE match_records AS {match_records_select()}")
    sources = [r[0] for r in ws.rows("sources", "SELECT DISTINCT source FROM match_records ORDER BY 1")]
    if not sources:
        raise InputError("the workspace holds no records; ingest exports first ('linkage ingest')")
    pairs = candidate_pairs(ws, config, sources)
    report: dict = {"candidate_pairs": int(len(pairs.left)),
                    "rules": [{"rule": c.name, "pairs": c.pairs, "largest_blocks": c.largest_blocks}
                              for c in pairs.counts]}
    if truth is None:
        return report
    ws.register("truth_input", truth.to_arrow())
    ws.run("true pairs", f"""
        CREATE OR REPLACE TEMP TABLE true_pairs AS
        WITH t AS (SELECT m.rid, m.source, t.person_id FROM truth_input t
                   JOIN match_records m USING (source, record_id))
        SELECT a.rid AS l, b.rid AS r FROM t a JOIN t b ON a.person_id = b.person_id AND a.rid < b.rid
        WHERE {source_filter_sql(config, sources)}""")
    ws.unregister("truth_input")
    true_pairs, found = ws.rows("blocking recall", """
        SELECT count(*), count(c.l) FROM true_pairs t LEFT JOIN candidate_pairs c USING (l, r)""")[0]
    report["true_pairs"] = int(true_pairs)
    report["recall"] = found / true_pairs if true_pairs else 1.0
    for bit, rule in enumerate(report["rules"]):
        hit = ws.scalar("rule recall", f"""
            SELECT count(*) FROM true_pairs t JOIN candidate_pairs c USING (l, r)
            WHERE (c.mask >> {bit}) & 1 = 1""")
        rule["recall"] = hit / true_pairs if true_pairs else 1.0
    return report

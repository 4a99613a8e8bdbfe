"""Blocking: candidate pairs from the union of configured rules, counted and guarded first.

DuckDB computes each rule's keys (one 64-bit hash per record and key; an unnested field gives a
record several keys); the blocks, their pair counts and the pairs themselves are then numpy work
on sorted key arrays. A pair (l, r) always has l < r and carries a bit mask of the rules that
produced it (used to train the model per rule). Before any pair is materialized, each rule's
pair count is computed from its block sizes and the run is refused when the total exceeds the
configured cap.

For incremental matching, `match_keys` (this module's table) keeps every rule's key hash of every
record (by record number), so a night hashes only its new records and joins them to the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..config import BlockingRule, ModelConfig
from ..errors import InputError
from ..sql import quote_ident, quote_literal
from ..workspace import Workspace

FIELD_SQL = {
    "birth_year": "year(dob)",
    # Both phonetic codes in sorted order: one key whichever name was read as the family name.
    "phonetic_pair": "least(family_phonetic, given_phonetic) || ' ' || greatest(family_phonetic, given_phonetic)",
}
# Fields with several values per record: each value is a key (a record joins several blocks).
FIELD_LIST = {
    "doc_number": "list_distinct(doc_numbers)",
    "name_token": "list_distinct(string_split(name_key, ' '))",
    # Either name's phonetic code, so that a swapped family/given order still shares a key.
    "name_phonetic": "list_distinct([family_phonetic, given_phonetic])",
    # The last 8 digits of each number: the same phone with or without its country code.
    "phone": "list_distinct(list_transform(phones, x -> right(ltrim(x, '+'), 8)))",   # stored as digits, a verified one after a "+"
    "address_token": "list_distinct(list_filter(string_split(lower(address), ' '), x -> length(x) >= 3))",
}
# Which comparison a blocking field makes uninformative for pairs of that rule (see model training).
FIELD_COMPARISON = {
    "dob": "dob", "birth_year": "dob", "name_key": "name", "name_token": "name", "family_name": "name",
    "given_name": "name", "local_name": "name", "family_phonetic": "name", "given_phonetic": "name",
    "name_phonetic": "name", "phonetic_pair": "name", "doc_number": "documents", "phone": "phone",
    "email": "email", "sex": "sex", "nationality": "nationality", "address": "address",
    "address_token": "address", "district": "district", "employer": "employer",
}


def blocked_comparison(key: str) -> str:
    """The comparison a blocking key (`field` or `field:N`) is taken from."""
    field = key.partition(":")[0]
    return FIELD_COMPARISON.get(field, field)


def blocked_comparisons(keys: list[str]) -> set[str]:
    """The comparisons a rule's keys are taken from (a token of an encoded record may combine two,
    e.g. birth date and name: see match/encoded.py)."""
    out: set[str] = set()
    for key in keys:
        if key.startswith("tok."):
            from .encoded import token_comparisons
            out |= token_comparisons(key)
        else:
            out.add(blocked_comparison(key))
    return out


def list_sql(field: str) -> str | None:
    """SQL for a list field's values (each a key), None for a single-valued field. Tokens of
    encoded records (`tok.KIND`, see match/encoded.py) are lists."""
    if field.startswith("tok."):
        return f"list_distinct({quote_ident(field)})"
    return FIELD_LIST.get(field)


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


def key_expression(key: str, value: str | None = None) -> str:
    """SQL for one key of a rule: the field's value (`value`: a list field's unnested element),
    as text, cut to its first N characters for `field:N`."""
    field, _, prefix = key.partition(":")
    if value is not None:
        expr = value
    elif field.startswith("extra."):
        expr = f"extra[{quote_literal(field[6:])}]"
    else:
        expr = FIELD_SQL.get(field, field)
    return f"left(CAST({expr} AS VARCHAR), {int(prefix)})" if prefix else f"CAST({expr} AS VARCHAR)"


def rule_keys_sql(rule: BlockingRule, sources: list[str] | None, relation: str = "match_records") -> str:
    """rid, source index (0 without `sources`) and one hash of the rule's keys, rows with any key
    missing left out. A list field is unnested in a join of its own, so a rule on two list
    fields takes every combination of their values (the cross product)."""
    lists = [(i, key) for i, key in enumerate(rule.on) if list_sql(key.partition(":")[0])]
    if len(lists) == 1:   # one list: unnested in the select list (cheaper than a lateral join)
        i, key = lists[0]
        joins, values = "", {i: f"unnest({list_sql(key.partition(':')[0])})"}
    else:
        joins = "".join(f", unnest({list_sql(key.partition(':')[0])}) AS u{i}(v)" for i, key in lists)
        values = {i: f"u{i}.v" for i, _ in lists}
    keys = ", ".join(f"{key_expression(k, values.get(i))} AS k{i}" for i, k in enumerate(rule.on))
    not_null = " AND ".join(f"k{i} IS NOT NULL AND k{i} <> ''" for i in range(len(rule.on)))
    # Each list is made distinct, so only prefixes of list values can repeat a key.
    distinct = "DISTINCT " if any(":" in key for _, key in lists) else ""
    return f"""
        SELECT rid, {_source_sql(sources)} AS s,
               hash({', '.join(f'k{i}' for i in range(len(rule.on)))}) AS h
        FROM (SELECT {distinct}rid, source, {keys} FROM {relation}{joins}) WHERE {not_null}"""


@dataclass
class Blocks:
    """One rule's records sorted by key: block starts and sizes over `rid` / `source`."""

    rid: np.ndarray
    source: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    def count(self, name: str) -> RuleCount:
        pairs = int((self.sizes * (self.sizes - 1) // 2).sum())
        largest = np.sort(self.sizes)[::-1][:3]
        return RuleCount(name, pairs, [int(x) for x in largest if x > 1] if pairs else [])


def _is_list_rule(rule: BlockingRule) -> bool:
    return any(list_sql(key.partition(":")[0]) for key in rule.on)


def _source_sql(sources: list[str] | None) -> str:
    return (f"(list_position([{', '.join(quote_literal(name) for name in sources)}], source) - 1)::SMALLINT"
            if sources else "0::SMALLINT")


def _blocks_of(rid: np.ndarray, source: np.ndarray, h: np.ndarray) -> Blocks:
    """Blocks from one key hash per (record, key): sorted by hash, blocks of one record dropped."""
    order = pl.Series(h).arg_sort().to_numpy()   # polars sorts on every core
    h = h[order]
    starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]]) if len(h) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(h)])
    multi = sizes > 1  # a block of one record makes no pair
    keep = order[np.repeat(multi, sizes)]
    sizes = sizes[multi]
    return Blocks(rid[keep].astype(np.int32), source[keep], (np.cumsum(sizes) - sizes).astype(np.int64),
                  sizes.astype(np.int64))


def rules_blocks(ws: Workspace, rules: list[BlockingRule], sources: list[str] | None) -> list[Blocks]:
    """Every rule's blocks. Rules on single-valued fields share one scan of the records (one hash
    column each, NULL where a key is missing); a rule on a list field has a query of its own."""
    out: dict[int, Blocks] = {}
    scalar = [i for i, rule in enumerate(rules) if not _is_list_rule(rule)]
    if scalar:
        columns = []
        for i in scalar:
            keys = [key_expression(k) for k in rules[i].on]
            present = " AND ".join(f"{k} IS NOT NULL AND {k} <> ''" for k in keys)
            columns.append(f"CASE WHEN {present} THEN hash({', '.join(keys)}) END AS h{i}")
        table = ws.run("keys of the blocking rules", f"""
            SELECT rid, {_source_sql(sources)} AS s, {', '.join(columns)} FROM match_records""").fetchnumpy()
        rid, source = np.asarray(table["rid"]), np.asarray(table["s"])
        for i in scalar:
            column = table[f"h{i}"]
            if np.ma.isMaskedArray(column):
                present = ~np.ma.getmaskarray(column)
                out[i] = _blocks_of(rid[present], source[present], np.asarray(column.data)[present])
            else:
                out[i] = _blocks_of(rid, source, np.asarray(column))
    for i, rule in enumerate(rules):
        if i not in out:
            keys = ws.run(f"keys of blocking rule '{rule.name}'", rule_keys_sql(rule, sources)).fetchnumpy()
            out[i] = _blocks_of(np.asarray(keys["rid"]), np.asarray(keys["s"]), np.asarray(keys["h"]))
    return [out[i] for i in range(len(rules))]


def block_pairs(blocks: Blocks, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (l < r) within each block whose sources are compared.

    Blocks of one size k are taken together: their members as a (blocks, k) matrix, whose column
    pairs (i < j) are the pairs."""
    lefts, rights = [], []
    for k in np.unique(blocks.sizes):
        members = blocks.starts[blocks.sizes == k][:, None] + np.arange(k)
        rid = blocks.rid[members]
        i, j = np.triu_indices(int(k), 1)
        a, b = rid[:, i].ravel(), rid[:, j].ravel()
        if not allowed.all():
            source = blocks.source[members]
            keep = allowed[source[:, i].ravel(), source[:, j].ravel()]
            a, b = a[keep], b[keep]
        lefts.append(np.minimum(a, b))
        rights.append(np.maximum(a, b))
    if not lefts:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    return np.concatenate(lefts), np.concatenate(rights)


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


def allowed_sources(config: ModelConfig, sources: list[str]) -> np.ndarray:
    """Boolean matrix: are records of source i compared with records of source j?"""
    allowed = np.ones((len(sources), len(sources)), dtype=bool)
    if config.compare != "all":
        allowed[:] = False
        index = {name: i for i, name in enumerate(sources)}
        for pair in config.compare:
            left, _, right = pair.partition("-")
            for name in (left, right):
                if name not in index:
                    raise InputError(
                        f"model.toml: key 'compare' names source '{name}', which the workspace does not hold; "
                        f"sources: {', '.join(sources)}"
                    )
            allowed[index[left], index[right]] = allowed[index[right], index[left]] = True
    return allowed


def rule_signature(rule: BlockingRule) -> str:
    return f"{rule.name}:{'|'.join(rule.on)}"


def clear_stored_keys(ws: Workspace) -> None:
    """Forget the stored keys (a full match numbers the records anew)."""
    ws.run("clear stored blocking keys", "DELETE FROM match_keys")


def store_keys(ws: Workspace, rules: list[BlockingRule], relation: str = "match_records") -> None:
    """Add each rule's keys of the records of `relation` (shaped like `match_records`) to
    `match_keys` (this module's table): what a later night's records are blocked against."""
    for rule in rules:
        ws.run(f"store keys of blocking rule '{rule.name}'",
               f"INSERT INTO match_keys SELECT ?, h, rid FROM ({rule_keys_sql(rule, None, relation)})",
               [rule_signature(rule)])


def rules_without_keys(ws: Workspace, rules: list[BlockingRule]) -> list[BlockingRule]:
    stored = {r[0] for r in ws.rows("rules with stored keys", "SELECT DISTINCT rule FROM match_keys")}
    return [rule for rule in rules if rule_signature(rule) not in stored]


def pairs_touching(ws: Workspace, rules: list[BlockingRule], config: ModelConfig, delta: str,
                   source_of: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct candidate pairs (l < r, record numbers) of the rules with at least one record in
    the relation `delta` (one column, rid), from the stored keys (`match_keys`, which must hold
    every record's): the delta records' keys joined to every record's. The pairs a full blocking
    run makes between those records and all others, without the others' pairs among themselves.
    `source_of` (rid, source) names each record's source, for model.toml's `compare`."""
    lefts, rights = [], []
    for rule in rules:
        found = ws.run(f"pairs of blocking rule '{rule.name}' touching new records", """
            SELECT DISTINCT least(d.rid, k.rid) AS l, greatest(d.rid, k.rid) AS r
            FROM (SELECT h, rid FROM match_keys WHERE rule = ? AND rid IN (SELECT rid FROM {delta})) d
            JOIN (SELECT h, rid FROM match_keys WHERE rule = ?) k ON k.h = d.h AND k.rid <> d.rid"""
                       .replace("{delta}", delta), [rule_signature(rule)] * 2).fetchnumpy()
        lefts.append(np.asarray(found["l"]))
        rights.append(np.asarray(found["r"]))
    if not lefts:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    packed = np.unique((np.concatenate(lefts).astype(np.int64) << 32) | np.concatenate(rights).astype(np.int64))
    left, right = (packed >> 32).astype(np.int32), (packed & 0xFFFFFFFF).astype(np.int32)
    if config.compare != "all" and len(left):
        import pyarrow as pa

        ws.register("touching_pairs", pa.table({"i": np.arange(len(left)), "l": left, "r": right}))
        named = ws.run("sources of the pairs", f"""
            SELECT a.source AS sl, b.source AS sr FROM touching_pairs p
            JOIN {source_of} a ON a.rid = p.l JOIN {source_of} b ON b.rid = p.r ORDER BY p.i""").fetchnumpy()
        ws.unregister("touching_pairs")
        sources = sorted(set(named["sl"].tolist()) | set(named["sr"].tolist()))
        allowed = allowed_sources(config, sources)
        index = {name: i for i, name in enumerate(sources)}
        keep = allowed[[index[x] for x in named["sl"].tolist()], [index[x] for x in named["sr"].tolist()]]
        left, right = left[keep], right[keep]
    return left, right


def candidate_pairs(ws: Workspace, rules: list[BlockingRule], config: ModelConfig, sources: list[str],
                    blocks: dict[str, Blocks] | None = None) -> Candidates:
    """The union of every rule's pairs, duplicates merged into one pair with a rule mask; `blocks`
    may bring some rules' blocks already computed (when the rules were chosen from the data).

    Pairs are packed as (l << (s + 5) | r << 5 | rule), s the bits of a record id, and sorted
    once; runs of one pair OR their rule bits together. The result is ordered by (l, r), whatever
    order DuckDB returned keys in.
    """
    if len(rules) > 32:
        raise InputError("model.toml: at most 32 blocking rules")
    allowed = allowed_sources(config, sources)
    n = ws.scalar("count match records", "SELECT count(*) FROM match_records")
    shift = max(int(n - 1).bit_length(), 1)
    if 2 * shift + 5 > 63:
        raise InputError(f"{n:,} records are more than one match run can pair (at most {2 ** 29:,})")
    every = allowed.all()  # then no pair is filtered by source, and the keys need none
    blocks = blocks or {}
    missing = [rule for rule in rules if rule.name not in blocks]
    computed = dict(zip([r.name for r in missing], rules_blocks(ws, missing, None if every else sources)))
    found = [blocks.get(rule.name) or computed[rule.name] for rule in rules]
    counts = [b.count(rule.name) for b, rule in zip(found, rules)]
    check_cap(counts, config.max_pairs)
    packed = []
    for bit, blocks_ in enumerate(found):
        a, b = block_pairs(blocks_, allowed)
        packed.append((a.astype(np.int64) << (shift + 5)) | (b.astype(np.int64) << 5) | bit)
    del found
    codes = pl.Series(np.concatenate(packed) if packed else np.zeros(0, dtype=np.int64)).sort().to_numpy()
    del packed
    pair = codes >> 5
    first = np.empty(len(pair), dtype=bool)
    first[:1] = True
    np.not_equal(pair[1:], pair[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    bits = np.left_shift(np.uint32(1), (codes & 31).astype(np.uint32))
    mask = np.bitwise_or.reduceat(bits, starts) if len(starts) else np.zeros(0, dtype=np.uint32)
    pair = pair[starts]
    return Candidates(left=(pair >> shift).astype(np.int32), right=(pair & ((1 << shift) - 1)).astype(np.int32),
                      mask=mask.astype(np.uint32), counts=counts)

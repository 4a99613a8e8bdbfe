"""Default blocking rules, chosen from the data when `model.toml` gives none.

Candidates come from the fields the sources map: documents, phones, e-mails, the birth date,
names (keys, phonetic codes, hanzi) and every extra field (identifier-like extras alone,
the others with a name code or the birth year), each alone where it is selective and in
pairs otherwise. Each candidate's pair count comes from its block sizes, before any pair
exists; a candidate over its share of the pair budget is left out.

Then, without labels: a first pass scores the pairs of every remaining candidate for a sample
of records with the match's own comparisons and model, and the pairs it would link are the
pseudo-matches. A greedy weighted set cover picks rules until no candidate pays for its pairs:
a rule's gain is the pseudo-matches it newly covers, plus, for every field, those it newly
covers without using that field (so a match is still found when any one of its fields is
wrong); its cost is its pair count. Finally every comparison that all chosen rules block on
gets the cheapest useful rule that does not, so that EM can estimate its m.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..config import BlockingRule, ModelConfig
from ..errors import InputError
from ..sql import quote_literal
from .blocking import Blocks, allowed_sources, blocked_comparisons, candidate_pairs, rules_blocks
from .compare import Comparison, build_comparisons, group_comparisons, infer_kind, is_identifier, levels_in_batches
from .model import Patterns, estimate_u, train
from .prepare import MISSING_DAY, RecordArrays, build_match_records, fetch_records, to_arrays

SAMPLED_PAIRS = 3_000_000        # pairs the first pass scores at most (records are sampled to fit)
MIN_GAIN_PER_PAIR = 5e-5         # a rule must cover about one more match per 20,000 of its pairs
RULE_OVERHEAD = 0.01             # cost of a rule beyond its pairs, as a share of the records


@dataclass
class Candidate:
    rule: BlockingRule
    pairs: int = 0
    largest_blocks: list[int] = field(default_factory=list)
    covers: float = 0.0          # share of the pseudo-matches it finds
    gain: float = 0.0            # what it added when chosen (share of the pseudo-matches, robust)
    chosen: bool = False
    why: str = ""

    @property
    def fields(self) -> set[str]:
        return blocked_comparisons(self.rule.on)


@dataclass
class Choice:
    rules: list[BlockingRule]
    candidates: list[Candidate]
    blocks: dict[str, Blocks]
    sampled_records: int
    sampled_pairs: int
    pseudo_matches: int


def candidate_rules(data: RecordArrays) -> list[BlockingRule]:
    """Candidate rules from the fields that hold data (see the module docstring)."""
    s = data.strings
    has = {name: bool((coded.codes >= 0).any()) for name, coded in s.items()}
    docs = any(bool((c.codes >= 0).any()) for c in data.docs.values())
    phones = bool(data.phones) and bool((next(iter(data.phones.values())).codes >= 0).any())
    dob = bool((data.dob_days != MISSING_DAY).any())
    name, local = has.get("name_key", False), has.get("local_name", False)
    phonetic = has.get("family_phonetic", False) and has.get("given_phonetic", False)
    out: list[tuple[str, list[str]]] = []
    if docs:
        out.append(("document", ["doc_number"]))
    if phones:
        out.append(("phone", ["phone"]))
    if has.get("email"):
        out.append(("email", ["email"]))
    if name:
        out.append(("name", ["name_key"]))
    if local:
        out.append(("local_name", ["local_name"]))
    if phonetic:
        out.append(("phonetic_names", ["phonetic_pair"]))
    if dob:
        out.append(("dob", ["dob"]))
        if name:
            out.append(("dob_name_prefix", ["dob", "name_key:2"]))
            out.append(("dob_name_token", ["dob", "name_token"]))
        if phonetic:
            out.append(("dob_phonetic", ["dob", "name_phonetic"]))
            out.append(("year_phonetic_names", ["birth_year", "phonetic_pair"]))
        if local:
            out.append(("dob_local_initial", ["dob", "local_name:1"]))
        if has.get("sex"):
            out.append(("dob_sex", ["dob", "sex"]))
    for extra_name in ("nationality", "sex"):
        if has.get(extra_name) and phonetic:
            out.append((f"phonetic_names_{extra_name}", ["phonetic_pair", extra_name]))
    if has.get("address"):
        if phonetic:
            out.append(("address_family", ["address_token", "family_phonetic"]))
        if dob:
            out.append(("address_year", ["address_token", "birth_year"]))
    identifiers, others = [], []
    for extra, coded in data.extras.items():
        if (coded.codes >= 0).any():
            (identifiers if is_identifier(coded) else others).append(extra)
    for extra in identifiers:
        out.append((f"extra_{extra}", [f"extra.{extra}"]))
        if infer_kind(data.extras[extra]) == "text":
            out.append((f"extra_{extra}_prefix", [f"extra.{extra}:6"]))
    for extra in others:
        key = f"extra.{extra}"
        if phonetic:
            out.append((f"{extra}_family", [key, "family_phonetic"]))
            out.append((f"{extra}_given", [key, "given_phonetic"]))
        if dob:
            out.append((f"{extra}_year", [key, "birth_year"]))
            out.append((f"{extra}_dob", [key, "dob"]))
    for i, a in enumerate(others):
        for b in others[i + 1:]:
            out.append((f"{a}_{b}", [f"extra.{a}", f"extra.{b}"]))
    from .encoded import token_rules
    out += token_rules(data)
    return [BlockingRule(name=name, on=on) for name, on in out]


def pair_budget(config: ModelConfig, n: int) -> int:
    """Candidate pairs the chosen rules may produce together."""
    return int(min(config.max_pairs, max(5_000_000, 10 * n)))


@dataclass
class Candidates:
    """The candidate rules with their pair counts, and the blocks of those under the cap."""

    all: list[Candidate]
    blocks: dict[str, Blocks]
    budget: int


def count_candidates(ws, config: ModelConfig, data: RecordArrays, sources: list[str] | None) -> Candidates:
    """Every candidate's blocks and pair count (SQL keys, numpy counts); no pair is built yet."""
    budget = pair_budget(config, data.n)
    candidates = [Candidate(rule) for rule in candidate_rules(data)]
    blocks: dict[str, Blocks] = {}
    for candidate, found in zip(candidates, rules_blocks(ws, [c.rule for c in candidates], sources)):
        count = found.count(candidate.rule.name)
        candidate.pairs, candidate.largest_blocks = count.pairs, count.largest_blocks
        if count.pairs == 0:
            candidate.why = "no pairs"
        elif count.pairs > budget // 2:
            candidate.why = f"too many pairs (over half the budget of {budget:,})"
        else:
            blocks[candidate.rule.name] = found
    return Candidates(candidates, blocks, budget)


def choose_rules(counted: Candidates, config: ModelConfig, data: RecordArrays, comparisons: list[Comparison],
                 u: list, allowed: np.ndarray, threshold: float) -> Choice:
    """The default rules for this data, from the counted candidates (see the module docstring)."""
    candidates, blocks, budget = counted.all, counted.blocks, counted.budget
    u = [np.asarray(x, dtype=np.float64) for x in u]
    usable = [c for c in candidates if c.rule.name in blocks]
    if not usable:
        paired = [c for c in candidates if c.pairs]
        if paired:
            least = min(paired, key=lambda c: c.pairs)
            raise InputError(
                f"every candidate blocking rule would compare more pairs than the budget allows "
                f"(min(max_pairs = {config.max_pairs:,}, 10 per record), halved per rule); the smallest, "
                f"'{least.rule.name}', yields {least.pairs:,} pairs; raise max_pairs or give [[blocking]] rules "
                "in configs/model.toml")
        return Choice([], candidates, {}, 0, 0, 0)
    # The first pass: every usable candidate's pairs that touch a sample of records.
    total = sum(c.pairs for c in usable)
    share = min(1.0, SAMPLED_PAIRS / max(2.0 * total, 1.0))
    sample = _sample(data.n, share)
    left, right, member = _sampled_pairs([blocks[c.rule.name] for c in usable], sample, allowed)
    pseudo = np.zeros(len(left), dtype=bool)
    if len(left):
        levels = levels_in_batches(comparisons, data, left, right)
        sizes = [len(c.labels) for c in comparisons]
        patterns = Patterns.dense(levels, sizes)
        tf = [c.term_frequencies(data) for c in comparisons]
        rules = [(c.rule.name, blocked_comparisons(c.rule.on)) for c in usable]
        comparable = max(int(sample.sum()) * data.n, 1)
        model, base = train(comparisons, levels, np.zeros(len(left), dtype=np.uint32), rules, u, comparable,
                            config.em_max_iterations, config.em_tolerance, tf, left, patterns, membership=member,
                            groups=group_comparisons(data))
        pseudo = base + model.prior_weight >= np.log2(threshold / (1 - threshold))
    covered = member[pseudo]
    for c, column in zip(usable, covered.T):
        c.covers = float(column.mean()) if len(covered) else 0.0
    sampled_share = len(left) / max(total, 1)
    chosen = _greedy(usable, covered, comparisons, budget, sampled_share, data.n)
    return Choice([c.rule for c in chosen], candidates, {c.rule.name: blocks[c.rule.name] for c in chosen},
                  int(sample.sum()), len(left), int(pseudo.sum()))


def _sample(n: int, share: float) -> np.ndarray:
    """A fixed pseudo-random share of the records (the same records for the same n)."""
    if share >= 1.0:
        return np.ones(n, dtype=bool)
    mixed = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return mixed < np.uint64(int(share * (1 << 24)))


def _sampled_pairs(blocks: list[Blocks], sample: np.ndarray,
                   allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct pairs (l < r, between compared sources) of the given rules' blocks that hold a
    sampled record, and per pair which rules produce it (pairs x rules)."""
    packed_all, rule_all = [], []
    for index, b in enumerate(blocks):
        block_of = np.repeat(np.arange(len(b.sizes)), b.sizes)
        positions = np.nonzero(sample[b.rid])[0]
        if not len(positions):
            continue
        owner = block_of[positions]
        counts = b.sizes[owner]
        first = np.repeat(positions, counts)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        other = np.repeat(b.starts[owner], counts) + offsets
        keep = other != first
        first, other = first[keep], other[keep]
        if not allowed.all():
            keep = allowed[b.source[first], b.source[other]]
            first, other = first[keep], other[keep]
        x, y = b.rid[first].astype(np.int64), b.rid[other].astype(np.int64)
        packed_all.append(np.unique((np.minimum(x, y) << 32) | np.maximum(x, y)))
        rule_all.append(np.full(len(packed_all[-1]), index, dtype=np.int32))
    if not packed_all:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, np.zeros((0, len(blocks)), dtype=bool)
    packed, rule = np.concatenate(packed_all), np.concatenate(rule_all)
    pairs, inverse = np.unique(packed, return_inverse=True)
    member = np.zeros((len(pairs), len(blocks)), dtype=bool)
    member[inverse.ravel(), rule] = True
    return (pairs >> 32).astype(np.int32), (pairs & 0xFFFFFFFF).astype(np.int32), member


def _greedy(usable: list[Candidate], covered: np.ndarray, comparisons: list[Comparison], budget: int,
            sampled_share: float, n: int) -> list[Candidate]:
    """Weighted set cover over the pseudo-matches (see the module docstring)."""
    names = [c.name for c in comparisons]
    uses = np.array([[name in c.fields for name in names] for c in usable], dtype=bool)   # rules x fields
    found = np.zeros(len(covered), dtype=bool)
    found_without = np.zeros((len(covered), len(names)), dtype=bool)
    weight_without = 1.0 / max(len(names), 1)
    chosen: list[Candidate] = []
    spent = 0
    overhead = RULE_OVERHEAD * n
    remaining = set(range(len(usable)))
    while remaining and len(chosen) < 32:
        best, best_value, best_gain = None, 0.0, 0.0
        for i in remaining:
            hits = covered[:, i]
            gain = float((hits & ~found).sum())
            gain += weight_without * float(((hits[:, None] & ~uses[i][None, :]) & ~found_without).sum())
            value = gain / (usable[i].pairs + overhead)
            if value > best_value:
                best, best_value, best_gain = i, value, gain
        if best is None:
            break
        candidate = usable[best]
        if spent + candidate.pairs > budget:
            remaining.discard(best)
            candidate.why = "over the pair budget"
            continue
        if best_gain / max(sampled_share, 1e-12) < MIN_GAIN_PER_PAIR * candidate.pairs:
            break
        remaining.discard(best)
        hits = covered[:, best]
        found |= hits
        found_without |= hits[:, None] & ~uses[best][None, :]
        candidate.chosen, candidate.gain = True, best_gain / max(len(covered), 1)
        candidate.why = "chosen"
        chosen.append(candidate)
        spent += candidate.pairs
    for i in remaining:
        if not usable[i].why:
            usable[i].why = "adds too little for its pairs"
    if not len(covered):
        chosen = _without_pseudo_matches(usable, budget)
    return _every_comparison_estimable(chosen, usable, names, budget - sum(c.pairs for c in chosen))


def _without_pseudo_matches(usable: list[Candidate], budget: int) -> list[Candidate]:
    """No pair in the first pass looks like a match: the cheapest candidates that fit."""
    chosen, spent = [], 0
    for candidate in sorted(usable, key=lambda c: c.pairs):
        if spent + candidate.pairs <= budget and len(chosen) < 8:
            candidate.chosen, candidate.why = True, "chosen (no pseudo-matches: cheapest rules)"
            chosen.append(candidate)
            spent += candidate.pairs
    return chosen


def _every_comparison_estimable(chosen: list[Candidate], usable: list[Candidate], names: list[str],
                                left_over: int) -> list[Candidate]:
    """Add, for a comparison every chosen rule blocks on, the cheapest rule that covers something
    and does not block on it (when one fits the rest of the budget)."""
    for name in names:
        if not chosen or not all(name in c.fields for c in chosen):
            continue
        options = [c for c in usable if not c.chosen and name not in c.fields and c.covers > 0
                   and c.pairs <= left_over]
        if options:
            pick = min(options, key=lambda c: c.pairs)
            pick.chosen, pick.why = True, f"chosen so that '{name}' can be estimated"
            chosen.append(pick)
            left_over -= pick.pairs
    return chosen


def choice_report(choice: Choice) -> dict:
    """The choice as JSON-ready data: the sample, and every candidate with its pairs and why."""
    return {
        "sampled_records": choice.sampled_records, "sampled_pairs": choice.sampled_pairs,
        "pseudo_matches": choice.pseudo_matches,
        "candidates": [{"rule": c.rule.name, "on": c.rule.on, "pairs": c.pairs, "largest_blocks": c.largest_blocks,
                        "covers": round(c.covers, 4), "gain": round(c.gain, 4), "chosen": c.chosen, "why": c.why}
                       for c in choice.candidates],
    }


def blocking_report(ws, config: ModelConfig, truth: pl.DataFrame | None, threshold: float | None = None) -> dict:
    """The blocking rules (model.toml's, or chosen from the data, with why), pairs per rule and of
    their union; with a truth table, the share of true pairs found, overall and per rule."""
    from .encoded import prepare_encoded

    build_match_records(ws)
    encoded = prepare_encoded(ws)
    fetched = fetch_records(ws, "match_records")
    fetched.encoded = encoded is not None
    data = to_arrays(fetched)
    data.encoded = encoded
    comparisons = build_comparisons(config, data)
    allowed = allowed_sources(config, data.sources)
    report: dict = {}
    if config.blocking is not None:
        rules, blocks = config.blocking, {}
        report["chosen_by"] = "model.toml"
    else:
        counted = count_candidates(ws, config, data, None if allowed.all() else data.sources)
        u, _ = estimate_u(comparisons, data, config.random_pairs, config.seed, allowed)
        choice = choose_rules(counted, config, data, comparisons, u, allowed,
                              config.threshold if threshold is None else threshold)
        rules, blocks = choice.rules, choice.blocks
        report["chosen_by"] = "the data (no [[blocking]] in model.toml)"
        report["choice"] = choice_report(choice)
    pairs = candidate_pairs(ws, rules, config, data.sources, blocks)
    report["candidate_pairs"] = int(len(pairs.left))
    report["rules"] = [{"rule": c.name, "on": rule.on, "pairs": c.pairs, "largest_blocks": c.largest_blocks}
                       for c, rule in zip(pairs.counts, rules)]
    if truth is None:
        return report
    sources = data.sources
    ws.register("truth_input", truth.to_arrow())
    true_pairs = ws.run("true pairs", f"""
        WITH t AS (SELECT m.rid, (list_position({"[" + ", ".join(quote_literal(x) for x in sources) + "]"},
                                                m.source) - 1)::SMALLINT AS s, t.person_id
                   FROM truth_input t JOIN match_records m USING (source, record_id))
        SELECT a.rid AS l, b.rid AS r, a.s AS sl, b.s AS sr
        FROM t a JOIN t b ON a.person_id = b.person_id AND a.rid < b.rid""").fetchnumpy()
    ws.unregister("truth_input")
    compared = allowed[true_pairs["sl"], true_pairs["sr"]]
    n = np.int64(data.n)
    wanted = true_pairs["l"][compared].astype(np.int64) * n + true_pairs["r"][compared]
    have = pairs.left.astype(np.int64) * n + pairs.right          # sorted: candidate pairs come ordered
    position = np.minimum(np.searchsorted(have, wanted), max(len(have) - 1, 0))
    found = (have[position] == wanted) if len(have) else np.zeros(len(wanted), dtype=bool)
    report["true_pairs"] = int(len(wanted))
    report["recall"] = float(found.mean()) if len(wanted) else 1.0
    for bit, rule in enumerate(report["rules"]):
        hit = found & (((pairs.mask[position] >> np.uint32(bit)) & 1) == 1) if len(have) else found
        rule["recall"] = float(hit.mean()) if len(wanted) else 1.0
    return report

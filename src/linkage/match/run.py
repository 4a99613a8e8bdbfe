"""`linkage match` end to end: prepare, block, compare in batches, train (or load) the model,
score, cluster with the chaining guard, and store persons, links and the run in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import BlockingRule, ModelConfig
from ..errors import InputError
from ..workspace import Workspace
from .blocking import allowed_sources, blocked_comparisons, candidate_pairs, clear_stored_keys, store_keys
from .encoded import prepare_encoded
from .cluster import Clusters, Unseen, guard, identity_fields, suspect_components
from .decisions import Constraints, decision_counts, load_constraints
from .compare import build_comparisons, group_comparisons, levels_in_batches
from .model import (Model, Patterns, comparison_weights, effective_weights, estimate_u, fits_codes, households_seen,
                    own_evidence, own_or_differing, pair_weights, pattern_codes, probability, rarity, surprises,
                    train)
from .prepare import RecordArrays, build_match_records, fetch_records, to_arrays
from .rules import choice_report, choose_rules, count_candidates
from .store import (assign_person_ids, clear_links, close_run, earlier_person_ids, open_run, store_frequencies,
                    store_links, store_persons, stored_frequencies)

KEEP_LINKS_ABOVE = 0.01
# A link that joins contradicting records stands only if its own evidence (without what households
# share) makes the two more likely than not one person.
OWN_EVIDENCE_BITS = 0.0


@dataclass
class MatchSummary:
    run_id: int
    records: int
    candidate_pairs: int
    links: int
    persons: int
    refused: int
    conflicts: int
    threshold: float
    prior: float
    blocking: list[dict]
    fits: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)
    households: bool = True    # the model's: do household fields count as a person's own evidence?
    # People's decisions in force: must_link / cannot_link applied, unsure, missing (a record gone)
    decisions: dict = field(default_factory=dict)


def comparable_pairs(data: RecordArrays, allowed: np.ndarray) -> int:
    sizes = np.bincount(data.source, minlength=len(data.sources)).astype(np.int64)
    total = 0
    for i in range(len(sizes)):
        for j in range(i, len(sizes)):
            if allowed[i, j]:
                total += sizes[i] * (sizes[i] - 1) // 2 if i == j else sizes[i] * sizes[j]
    return int(total)


@dataclass
class Decided:
    """What the scores decide for a set of candidate pairs: links, refusals and clusters."""

    weight: np.ndarray          # per pair: total weight (with the prior)
    prob: np.ndarray
    linked: np.ndarray          # at or above the threshold
    keep: np.ndarray            # stored (probability at least KEEP_LINKS_ABOVE)
    refused_mask: np.ndarray
    conflict_mask: np.ndarray
    clusters: Clusters
    components: np.ndarray      # per record: the first record (index) of its component of links
    refused: np.ndarray         # indices of refused pairs
    kept: np.ndarray            # indices of contradicting links kept for review
    beside: Any = None


def decide(data: RecordArrays, left: np.ndarray, right: np.ndarray, levels: np.ndarray, base: np.ndarray,
           model: Model, tf: list, threshold: float, identity: list[str], groups: set[str],
           store: Callable[[np.ndarray, Decided], None], beside: Callable[[], Any] | None = None,
           constraints: Constraints | None = None) -> Decided:
    """Score the pairs (`base`: their weights without the prior), link those at the threshold, let
    the identity guard rebuild suspect components, and store the links through `store(index, d)`.

    `constraints`: people's decisions between these records. A must-link pair is linked (scored
    or not: every must-link is an edge of its own, before any scored link, that the guard never
    refuses); a cannot-link pair is not, and the guard keeps its records apart.

    The same function for a full match and for an incremental one: given the same pairs of the same
    records it decides the same."""
    weight = base + model.prior_weight
    prob = probability(weight)
    linked = prob >= threshold
    constraints = constraints if constraints is not None else Constraints.none()
    must_pair = np.zeros(len(prob), dtype=bool)
    if len(constraints):
        packed = (np.minimum(left, right).astype(np.int64) << 32) | np.maximum(left, right).astype(np.int64)
        must_pair = np.isin(packed, constraints.must_packed)
        linked = (linked | must_pair) & ~np.isin(packed, constraints.cannot_packed)
    links = np.nonzero(linked & ~must_pair)[0]
    keep = (prob >= KEEP_LINKS_ABOVE) | must_pair
    refused_mask = np.zeros(len(prob), dtype=bool)
    conflict_mask = np.zeros(len(prob), dtype=bool)
    # A link whose records contradict each other on a person's own fields (documents of one kind,
    # birth date, sex, name ...) must be more likely than not on that own evidence alone: what a
    # household shares (a phone, an address, a flight) cannot carry twins or relatives into one.
    if not model.groups:
        model.groups = sorted(groups & set(model.comparisons))   # a model saved before groups were kept
    own = own_evidence(model)
    stands, _ = effective_weights(model, levels[links], tf, left[links], weight[links])
    falls = stands < OWN_EVIDENCE_BITS
    refused_mask[links[falls]] = True
    links, stands = links[~falls], stands[~falls]
    d = Decided(weight, prob, linked, keep, refused_mask, conflict_mask, None, None, None, None)
    # DuckDB work runs in a second thread while the guard works in Python: links it cannot touch
    # (below the threshold, or outside suspect components) are stored first; the links it rebuilds
    # follow with their flags.
    with ThreadPoolExecutor(1) as pool:
        unlinked = pool.submit(store, np.nonzero(keep & ~linked)[0], d)
        names = identity_fields(data, identity)
        # The guard's edges: the scored links, then every must-link (forced, strongest of all).
        edge_l = np.concatenate([left[links], constraints.must_l]).astype(np.int64)
        edge_r = np.concatenate([right[links], constraints.must_r]).astype(np.int64)
        cannot = (constraints.cannot_l, constraints.cannot_r)
        labels, suspects = suspect_components(data, edge_l, edge_r, names, cannot)
        suspect_edge = np.isin(labels[edge_l], suspects)
        in_suspect = suspect_edge[:len(links)]
        guarded = np.zeros(len(prob), dtype=bool)
        guarded[links[in_suspect]] = True
        settled = pool.submit(store, np.nonzero(keep & linked & ~guarded)[0], d)
        earlier = pool.submit(beside) if beside is not None else None
        # The guard weighs a contradicting link's own evidence: never what a household shares.
        identity_weight = np.zeros(len(edge_l))
        identity_weight[:len(links)][in_suspect] = pair_weights(model, np.where(own, levels[links[in_suspect]], 0),
                                                                tf, left[links[in_suspect]])
        forced = np.zeros(len(edge_l), dtype=bool)
        forced[len(links):] = True
        # The pairs below the threshold inside suspect components speak too: what they hold that a
        # contradicting link's records lack (a phone on both sides) is weighed with it (see `guard`).
        inside = ~linked & np.isin(labels[left], suspects) & (labels[left] == labels[right])
        against = np.nonzero(inside)[0]
        seen = Unseen(left[against], right[against], comparison_weights(model, own_or_differing(model, levels[against]),
                                                                        tf, left[against]),
                      np.vstack([levels[links] == 0, np.ones((len(edge_l) - len(links), levels.shape[1]), dtype=bool)]))
        # Strongest first by the weight each link stands on: a link whose records say "two people"
        # (twins: one name part, the same birth date, passports one digit apart) waits for its own.
        clusters = guard(data, edge_l, edge_r, np.concatenate([stands, np.full(len(constraints.must_l), np.inf)]),
                         identity_weight, OWN_EVIDENCE_BITS, labels, suspects, names, forced, cannot, against=seen)
        unlinked.result()
        settled.result()
        d.beside = earlier.result() if earlier is not None else None
    d.refused = np.concatenate([links[clusters.refused], np.nonzero(refused_mask)[0]])
    d.kept = links[clusters.kept]
    refused_mask[d.refused] = True
    conflict_mask[d.kept] = True
    first = np.full(int(labels.max(initial=-1)) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, labels, np.arange(len(labels)))
    d.clusters, d.components = clusters, first[labels]
    store(np.nonzero(keep & guarded)[0], d)
    return d


class ModelMismatch(InputError):
    """A saved or stored model does not fit the comparisons this workspace and version give."""


def run_match(ws: Workspace, config: ModelConfig, threshold: float | None = None, model_file: Path | None = None,
              save_model: Path | None = None, step: Callable[[str], None] | None = None,
              model: Model | None = None, rules: list[BlockingRule] | None = None,
              keep_keys: bool = False) -> MatchSummary:
    """Match every record; with `model_file` or `model` score with that model instead of training,
    with `rules` block by those rules instead of model.toml's or choosing them from the data; with
    `keep_keys` keep every record's blocking keys for the incremental matches of later nights."""
    step = step or (lambda message: None)
    threshold = config.threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise InputError(f"--threshold must be between 0 and 1 (got {threshold})")
    clock: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        clock[name] = round(now - started, 3)
        started = now

    loaded = model if model is not None else Model.load(model_file) if model_file else None
    origin = model_file if model_file else "the stored model"
    with ws.transaction():
        step("preparing records")
        build_match_records(ws)
        encoded = prepare_encoded(ws)   # None unless records came encoded (linkage encode)
        batch_mark = ws.scalar("batch mark", "SELECT max(batch_id) FROM records")
        fetched = fetch_records(ws, "match_records")
        fetched.encoded = encoded is not None
        lap("prepare")

        def arrays():
            """The arrays and comparisons: no DuckDB, so they can run beside blocking."""
            data = to_arrays(fetched)
            data.encoded = encoded
            comparisons = (build_comparisons(config, data) if loaded is None
                           else build_comparisons(config, data, names=loaded.comparisons, kinds=loaded.kinds))
            if loaded and loaded.comparisons != [c.name for c in comparisons]:
                raise ModelMismatch(f"{origin}: the saved model compares {', '.join(loaded.comparisons)}, "
                                 f"this workspace and model.toml give {', '.join(c.name for c in comparisons)}")
            if loaded and loaded.labels != [list(c.labels) for c in comparisons]:
                raise ModelMismatch(f"{origin}: the saved model has other comparison levels than this version of "
                                 "linkage computes; train it again ('linkage match' without it)")
            return data, comparisons, allowed_sources(config, data.sources)

        def u_of(data, comparisons, allowed):
            if loaded is not None:
                return loaded.u, loaded.random_pairs
            return estimate_u(comparisons, data, config.random_pairs, config.seed, allowed)

        step("blocking")
        with ThreadPoolExecutor(1) as pool:
            if rules is not None or config.blocking is not None:
                beside = pool.submit(lambda: (lambda d, c, a: (d, c, a, u_of(d, c, a)))(*arrays()))
                rules, choice = rules if rules is not None else config.blocking, None
                pairs = candidate_pairs(ws, rules, config, fetched.sources)
                data, comparisons, allowed, u_sample = beside.result()
            else:
                data, comparisons, allowed = arrays()
                beside = pool.submit(u_of, data, comparisons, allowed)
                counted = count_candidates(ws, config, data, None if allowed.all() else data.sources)
                u_sample = beside.result()
                step("choosing blocking rules")
                choice = choose_rules(counted, config, data, comparisons, u_sample[0], allowed, threshold)
                rules = choice.rules
                pairs = candidate_pairs(ws, rules, config, data.sources, choice.blocks)
        del fetched
        lap("block")
        groups = group_comparisons(data)
        constraints = load_constraints(ws, data.keys)
        decisions = decision_counts(ws)
        step(f"comparing {len(pairs.left):,} candidate pairs")
        sizes = [len(c.labels) for c in comparisons]
        codes = np.empty(len(pairs.left), dtype=np.int32) if fits_codes(sizes) else None
        # A reused model weighs values by the frequencies it was trained with (see match/store.py).
        frozen = stored_frequencies(ws, comparisons, data) if model is not None else None
        data.frequencies = frozen if frozen is not None else {}
        tf = [c.term_frequencies(data) for c in comparisons]
        if frozen is None:
            store_frequencies(ws, comparisons, tf, data)
        tf_levels = [c.tf_level for c in comparisons]
        u_known = u_sample[0]
        surprise = surprises(tf, u_known, loaded.tf_levels if loaded is not None else tf_levels)
        rare = np.empty(len(pairs.left), dtype=np.float64)

        def encode(rows: slice, block: np.ndarray) -> None:
            """Per finished batch, in its thread: pattern codes and the TF adjustment's per-pair part."""
            if codes is not None:
                codes[rows] = pattern_codes(block, sizes)
            rare[rows] = rarity(block, pairs.left[rows], surprise, tf_levels)

        levels = levels_in_batches(comparisons, data, pairs.left, pairs.right, then=encode)
        patterns = Patterns(codes, sizes) if codes is not None else Patterns.dense(levels, sizes)
        if loaded is not None and loaded.tf_levels != tf_levels:
            rare = None  # the saved model adjusts other levels: computed from its own
        lap("compare")
        if loaded is None:
            step("training the model")
            u, sampled = u_sample
            blocked = [(rule.name, blocked_comparisons(rule.on)) for rule in rules]
            model, base = train(comparisons, levels, pairs.mask, blocked, u, comparable_pairs(data, allowed),
                                config.em_max_iterations, config.em_tolerance, tf, pairs.left, patterns, rare,
                                groups=groups)
            model.random_pairs = sampled
            seen = households_seen(model, levels, data.source[pairs.left] == data.source[pairs.right])
            model.households = True if seen is None else seen
        else:
            model = loaded
            base = pair_weights(model, levels, tf, pairs.left, include_prior=False, patterns=patterns, rare=rare)
        del codes, patterns, rare
        lap("train")
        step("scoring and clustering")
        run_id = open_run(ws, threshold)
        clear_links(ws)

        def store(index: np.ndarray, d: Decided) -> None:
            store_links(ws, run_id, pairs.left[index], pairs.right[index], d.weight[index], d.prob[index],
                        d.linked[index] & ~d.refused_mask[index], d.refused_mask[index], d.conflict_mask[index])

        decided = decide(data, pairs.left, pairs.right, levels, base, model, tf, threshold, config.identity, groups,
                         store=store, beside=lambda: earlier_person_ids(ws), constraints=constraints)
        del base
        lap("cluster")
        step("storing persons and links")
        store_persons(ws, run_id, data.keys, assign_person_ids(ws, decided.clusters.labels, decided.beside),
                      decided.components)
        clear_stored_keys(ws)   # the records are numbered anew
        if keep_keys:
            store_keys(ws, rules)
        keep, refused, kept = decided.keep, decided.refused, decided.kept
        stored = int(keep.sum())
        lap("store")
        blocking = [{"rule": c.name, "on": rule.on, "pairs": c.pairs, "largest_blocks": c.largest_blocks}
                    for c, rule in zip(pairs.counts, rules)]
        persons = int(decided.clusters.labels.max()) + 1
        chosen = choice_report(choice) if choice is not None else None
        close_run(ws, run_id, data.n, len(pairs.left), stored, persons, len(refused), len(kept), model, blocking,
                  clock, chosen, batch_mark, decisions=decisions)
    if save_model:
        model.save(save_model)
    return MatchSummary(run_id, data.n, len(pairs.left), int(decided.linked.sum()), persons, len(refused), len(kept),
                        threshold, model.prior, blocking, [f.__dict__ for f in model.fits], clock,
                        model.households, decisions)

"""`linkage match` end to end: prepare, block, compare in batches, train (or load) the model,
score, cluster with the chaining guard, and store persons, links and the run in one transaction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..errors import InputError
from ..workspace import Workspace
from .blocking import FIELD_COMPARISON, allowed_sources, candidate_pairs
from .cluster import guard, suspect_components
from .compare import build_comparisons, levels_in_batches
from .model import (Model, estimate_u, fits_codes, pair_weights, pattern_codes, probability, rarity, surprises,
                    train)
from .prepare import RecordArrays, build_match_records, fetch_records, to_arrays
from .store import (assign_person_ids, clear_links, close_run, earlier_person_ids, open_run, store_links,
                    store_persons)

# A person's own identifiers, as opposed to what a household shares (phone, address, email).
IDENTITY_COMPARISONS = {"name", "dob", "documents", "sex", "nationality"}
KEEP_LINKS_ABOVE = 0.01


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


def comparable_pairs(data: RecordArrays, allowed: np.ndarray) -> int:
    sizes = np.bincount(data.source, minlength=len(data.sources)).astype(np.int64)
    total = 0
    for i in range(len(sizes)):
        for j in range(i, len(sizes)):
            if allowed[i, j]:
                total += sizes[i] * (sizes[i] - 1) // 2 if i == j else sizes[i] * sizes[j]
    return int(total)


def run_match(ws: Workspace, config: ModelConfig, threshold: float | None = None, model_file: Path | None = None,
              save_model: Path | None = None, step: Callable[[str], None] | None = None) -> MatchSummary:
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

    loaded = Model.load(model_file) if model_file else None
    with ws.transaction():
        step("preparing records")
        build_match_records(ws)
        fetched = fetch_records(ws, "match_records")
        lap("prepare")

        def arrays_and_u():
            """The arrays, comparisons and (when training) u: no DuckDB, so they run beside blocking."""
            data = to_arrays(fetched)
            comparisons = build_comparisons(config, data)
            if loaded and loaded.comparisons != [c.name for c in comparisons]:
                raise InputError(f"{model_file}: the saved model compares {', '.join(loaded.comparisons)}, "
                                 f"this workspace and model.toml give {', '.join(c.name for c in comparisons)}")
            allowed = allowed_sources(config, data.sources)
            u_sample = estimate_u(comparisons, data, config.random_pairs, config.seed, allowed) if loaded is None else None
            return data, comparisons, allowed, u_sample

        step("blocking")
        with ThreadPoolExecutor(1) as pool:
            beside = pool.submit(arrays_and_u)
            pairs = candidate_pairs(ws, config, fetched.sources)
            data, comparisons, allowed, u_sample = beside.result()
        del fetched
        lap("block")
        step(f"comparing {len(pairs.left):,} candidate pairs")
        sizes = [len(c.labels) for c in comparisons]
        codes = np.empty(len(pairs.left), dtype=np.int32) if fits_codes(sizes) else None
        tf = [c.term_frequencies(data) for c in comparisons]
        tf_levels = [c.tf_level for c in comparisons]
        surprise = surprises(tf)
        rare = np.empty(len(pairs.left), dtype=np.float64)

        def encode(rows: slice, block: np.ndarray) -> None:
            """Per finished batch, in its thread: pattern codes and the TF adjustment's per-pair part."""
            if codes is not None:
                codes[rows] = pattern_codes(block, sizes)
            rare[rows] = rarity(block, pairs.left[rows], surprise, tf_levels)

        levels = levels_in_batches(comparisons, data, pairs.left, pairs.right, then=encode)
        if loaded is not None and loaded.tf_levels != tf_levels:
            rare = None  # the saved model adjusts other levels: computed from its own
        lap("compare")
        if loaded is None:
            step("training the model")
            u, sampled = u_sample
            rules = [(rule.name, {FIELD_COMPARISON.get(key.partition(":")[0], key.partition(":")[0])
                                  for key in rule.on}) for rule in config.blocking]
            model, base = train(comparisons, levels, pairs.mask, rules, u, comparable_pairs(data, allowed),
                                config.em_max_iterations, config.em_tolerance, tf, pairs.left, codes, rare)
            model.random_pairs = sampled
        else:
            model = loaded
            base = pair_weights(model, levels, tf, pairs.left, include_prior=False, codes=codes, rare=rare)
        del codes, rare
        lap("train")
        step("scoring and clustering")
        weight = base + model.prior_weight
        del base
        prob = probability(weight)
        linked = prob >= threshold
        links = np.nonzero(linked)[0]
        run_id = open_run(ws, threshold)
        clear_links(ws)
        keep = prob >= KEEP_LINKS_ABOVE
        refused_mask = np.zeros(len(prob), dtype=bool)
        conflict_mask = np.zeros(len(prob), dtype=bool)

        def store(index: np.ndarray) -> None:
            store_links(ws, run_id, pairs.left[index], pairs.right[index], weight[index], prob[index],
                        linked[index] & ~refused_mask[index], refused_mask[index], conflict_mask[index])

        # DuckDB work runs in a second thread while the guard works in Python: links it cannot touch
        # (below the threshold, or outside suspect components) are stored first, then the earlier
        # person ids are read; the links it rebuilds follow with their flags.
        with ThreadPoolExecutor(1) as pool:
            unlinked = pool.submit(store, np.nonzero(keep & ~linked)[0])
            labels, suspects = suspect_components(data, pairs.left[links], pairs.right[links])
            in_suspect = np.isin(labels[pairs.left[links]], suspects)
            guarded = np.zeros(len(prob), dtype=bool)
            guarded[links[in_suspect]] = True
            settled = pool.submit(store, np.nonzero(keep & linked & ~guarded)[0])
            earlier = pool.submit(earlier_person_ids, ws)
            # The guard weighs a contradicting link's identity evidence alone (never phone or address).
            identity = [name in IDENTITY_COMPARISONS for name in model.comparisons]
            identity_weight = np.zeros(len(links))
            identity_weight[in_suspect] = pair_weights(model, np.where(identity, levels[links[in_suspect]], 0), tf,
                                                       pairs.left[links[in_suspect]])
            clusters = guard(data, pairs.left[links], pairs.right[links], weight[links], identity_weight,
                             math.log2(threshold / (1 - threshold)), labels, suspects)
            unlinked.result()
            settled.result()
            previous = earlier.result()
        refused = links[clusters.refused]
        kept = links[clusters.kept]
        refused_mask[refused] = True
        conflict_mask[kept] = True
        lap("cluster")
        step("storing persons and links")
        store(np.nonzero(keep & guarded)[0])
        store_persons(ws, run_id, data.keys, assign_person_ids(ws, clusters.labels, previous))
        stored = int(keep.sum())
        lap("store")
        blocking = [{"rule": c.name, "pairs": c.pairs, "largest_blocks": c.largest_blocks} for c in pairs.counts]
        persons = int(clusters.labels.max()) + 1
        close_run(ws, run_id, data.n, len(pairs.left), stored, persons, len(refused), len(kept), model, blocking,
                  clock)
    if save_model:
        model.save(save_model)
    return MatchSummary(run_id, data.n, len(pairs.left), int(linked.sum()), persons, len(refused), len(kept),
                        threshold, model.prior, blocking, [f.__dict__ for f in model.fits], clock)

"""The Fellegi–Sunter model: u from random pairs, m by EM on agreement-pattern counts, the prior,
term-frequency adjustments, and scoring.

EM never sees individual pairs: the candidate pairs of each blocking rule are reduced to counts
of distinct agreement patterns first. Per rule, the comparisons that rule blocks on are left out
(all its pairs agree on them, so they carry no information there), u stays fixed at the
random-pair estimate, and m and the rule's match share are estimated; the m of a comparison is
the average over the rules that estimated it, weighted by their expected matches. The prior
(probability that two random records match) is the fixed point of "expected matches among the
candidates / all comparable pairs".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .compare import Comparison, levels_in_batches
from .prepare import RecordArrays

EPS = 1e-12
# No level is impossible among matches: a level EM never saw among them keeps this much m,
# so one unusual disagreement cannot veto a pair that agrees on everything else.
M_FLOOR = 1e-4


@dataclass
class RuleFit:
    rule: str
    pairs: int
    match_share: float
    iterations: int
    converged: bool
    excluded: list[str]


@dataclass
class Model:
    comparisons: list[str]
    labels: list[list[str]]
    m: list[list[float]]
    u: list[list[float]]
    prior: float
    tf_levels: list[int | None]
    fits: list[RuleFit] = field(default_factory=list)
    random_pairs: int = 0

    def weights(self) -> list[np.ndarray]:
        """log2(m/u) per comparison and level; level 0 (missing) weighs 0."""
        out = []
        for m, u in zip(self.m, self.u):
            w = np.log2(np.maximum(m, EPS) / np.maximum(u, EPS))
            w[0] = 0.0
            out.append(w)
        return out

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Model:
        fits = [RuleFit(**f) for f in data.pop("fits", [])]
        return cls(**data, fits=fits)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Model:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{path}: not a saved linkage model ({exc})") from None


# ---- u from random pairs ------------------------------------------------------------------

def random_pairs(data: RecordArrays, count: int, seed: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random record pairs (l != r) between source pairs that are compared."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, data.n, size=count * 2, dtype=np.int64)
    right = rng.integers(0, data.n, size=count * 2, dtype=np.int64)
    keep = (left != right) & allowed[data.source[left], data.source[right]]
    return left[keep][:count].astype(np.int32), right[keep][:count].astype(np.int32)


def estimate_u(comparisons: list[Comparison], data: RecordArrays, count: int, seed: int,
               allowed: np.ndarray) -> tuple[list[np.ndarray], int]:
    left, right = random_pairs(data, count, seed, allowed)
    levels = levels_in_batches(comparisons, data, left, right)
    u = []
    for j, comparison in enumerate(comparisons):
        n_levels = len(comparison.labels)
        counts = np.bincount(levels[:, j], minlength=n_levels).astype(np.float64)
        counts[0] = 0.0
        # Half a pair of pseudo-count keeps levels never seen among random pairs finite.
        u.append((counts + 0.5) / (counts.sum() + 0.5 * (n_levels - 1)))
        u[-1][0] = 1.0
    return u, len(left)


# ---- EM on pattern counts -----------------------------------------------------------------

def strides(sizes: list[int]) -> np.ndarray:
    return np.cumprod([1] + sizes[:-1]).astype(np.int64)


def fits_codes(sizes: list[int]) -> bool:
    """Do the level patterns of comparisons with these level counts fit an int32 code?"""
    return float(np.prod(sizes, dtype=np.float64)) < 2**31


def pattern_codes(levels: np.ndarray, sizes: list[int]) -> np.ndarray:
    """One int32 code per pair for its whole row of levels (see `fits_codes`)."""
    code = np.zeros(len(levels), dtype=np.int32)
    for k, stride in enumerate(strides(sizes)):
        code += levels[:, k].astype(np.int32) * np.int32(stride)
    return code


def decode(codes: np.ndarray, sizes: list[int]) -> np.ndarray:
    """(codes, comparisons) levels of pattern codes."""
    return ((codes.astype(np.int64)[:, None] // strides(sizes)[None, :]) % np.array(sizes)[None, :]).astype(np.int8)


def pattern_counts(levels: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of the level matrix and how often each occurs."""
    codes = levels.astype(np.int64) @ strides(sizes)
    unique, counts = np.unique(codes, return_counts=True)
    return decode(unique, sizes), counts.astype(np.float64)


def rule_patterns(codes: np.ndarray, mask: np.ndarray, n_rules: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (pattern code, rule mask) of all pairs with their counts: one pass over the pairs,
    after which every rule's pattern counts are a filter of this small table."""
    key = (codes.astype(np.int64) << n_rules) | mask.astype(np.int64)
    table = pl.DataFrame({"key": key}).group_by("key").len().sort("key")
    keys = table["key"].to_numpy()
    return keys >> n_rules, keys & ((1 << n_rules) - 1), table["len"].to_numpy().astype(np.float64)


def _initial_m(n_levels: int) -> np.ndarray:
    m = np.array([0.0] + [2.0 ** (3 * i) for i in range(n_levels - 1)])
    m[1:] /= m[1:].sum()
    m[0] = 1.0
    return m


def em(patterns: np.ndarray, counts: np.ndarray, u: list[np.ndarray], active: list[bool],
       max_iterations: int, tolerance: float) -> tuple[list[np.ndarray], float, int, bool]:
    """EM for m and the match share with u fixed; inactive comparisons are ignored."""
    m = [_initial_m(len(uk)) for uk in u]
    share = 0.1
    log_u = sum(np.log(np.maximum(u[k][patterns[:, k]], EPS)) * (patterns[:, k] > 0)
                for k in range(len(u)) if active[k])
    for iteration in range(1, max_iterations + 1):
        log_m = sum(np.log(np.maximum(m[k][patterns[:, k]], EPS)) * (patterns[:, k] > 0)
                    for k in range(len(u)) if active[k])
        logit = math.log(share / (1 - share)) + log_m - log_u
        post = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        weighted = counts * post
        new_share = float(np.clip(weighted.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        change = abs(new_share - share)
        new_m = []
        for k in range(len(u)):
            mk = m[k].copy()
            if active[k]:
                sums = np.bincount(patterns[:, k], weights=weighted, minlength=len(u[k]))
                sums[0] = 0.0
                total = sums.sum()
                if total > 0:
                    mk[1:] = np.maximum(sums[1:] / total, M_FLOOR)
                    mk[1:] /= mk[1:].sum()
                change = max(change, float(np.abs(mk - m[k]).max()))
            new_m.append(mk)
        m, share = new_m, new_share
        if change < tolerance:
            return m, share, iteration, True
    return m, share, max_iterations, False


# ---- training -------------------------------------------------------------------------------

def train(comparisons: list[Comparison], levels: np.ndarray, mask: np.ndarray, rules: list[tuple[str, set[str]]],
          u: list[np.ndarray], total_pairs: int, max_iterations: int, tolerance: float,
          tf: list[np.ndarray | None], left: np.ndarray, codes: np.ndarray | None = None,
          rare: np.ndarray | None = None) -> tuple[Model, np.ndarray]:
    """The trained model, and each pair's match weight without the prior (for scoring)."""
    names = [c.name for c in comparisons]
    sizes = [len(c.labels) for c in comparisons]
    sums = [np.zeros(s) for s in sizes]
    weights = np.zeros(len(comparisons))
    fits = []
    table = rule_patterns(codes, mask, len(rules)) if codes is not None else None
    for bit, (rule, blocked) in enumerate(rules):
        active = [name not in blocked for name in names]
        if table is not None:
            chosen = ((table[1] >> bit) & 1).astype(bool)
            pairs = int(table[2][chosen].sum())
            if pairs < 10:
                continue
            rows = np.where(active, decode(table[0][chosen], sizes), 0)
            patterns, inverse = np.unique(rows, axis=0, return_inverse=True)
            counts = np.bincount(inverse.ravel(), weights=table[2][chosen], minlength=len(patterns))
        else:
            chosen = ((mask >> np.uint32(bit)) & 1).astype(bool)
            pairs = int(chosen.sum())
            if pairs < 10:
                continue
            patterns, counts = pattern_counts(np.where(active, levels[chosen], 0), sizes)
        m, share, iterations, converged = em(patterns, counts, u, active, max_iterations, tolerance)
        expected = share * float(pairs)
        fits.append(RuleFit(rule, pairs, share, iterations, converged, [n for n, a in zip(names, active) if not a]))
        for k, is_active in enumerate(active):
            if is_active:
                sums[k] += expected * m[k]
                weights[k] += expected
    m_final = []
    for k, size in enumerate(sizes):
        if weights[k] > 0:
            mk = sums[k] / weights[k]
        else:
            mk = _initial_m(size)  # no rule could estimate it: a neutral-ish default, reported by model show
        mk[0] = 1.0
        m_final.append(mk)
    model = Model(names, [list(c.labels) for c in comparisons], [list(map(float, x)) for x in m_final],
                  [list(map(float, x)) for x in u], 1e-6, [c.tf_level for c in comparisons], fits)
    base = pair_weights(model, levels, tf, left, include_prior=False, codes=codes, rare=rare)
    model.prior = estimate_prior(base, total_pairs)
    return model, base


def estimate_prior(base: np.ndarray, total_pairs: int, iterations: int = 50) -> float:
    """Fixed point of prior = (expected matches among candidates) / (all comparable pairs).

    The pairs' weights are binned to 1/256 bit first (each bin at its pairs' mean weight), so the
    iterations run over a few thousand bins, not over every candidate pair.
    """
    if not len(base):
        return min(0.5, 1.0 / max(total_pairs, 1))
    steps = (base * 256).astype(np.int64)
    steps -= steps.min()
    counts = np.bincount(steps)
    filled = counts > 0
    sums = np.bincount(steps, weights=base)[filled]
    counts = counts[filled].astype(np.float64)
    centers = sums / counts
    prior = min(0.5, max(len(base) * 0.1, 1.0) / max(total_pairs, 1))
    for _ in range(iterations):
        logit = centers + math.log2(prior / (1 - prior))
        expected = float((counts / (1.0 + np.exp2(-np.clip(logit, -1000, 1000)))).sum())
        new = min(0.5, max(expected, 1.0) / max(total_pairs, 1))
        if abs(new - prior) <= prior * 1e-6:
            return new
        prior = new
    return prior


# ---- scoring --------------------------------------------------------------------------------

def rarity(levels: np.ndarray, left: np.ndarray, surprise: list[np.ndarray | None],
           tf_levels: list[int | None]) -> np.ndarray:
    """The per-pair half of the term-frequency adjustment: for each comparison agreeing at its TF
    level, -log2 of how common the left record's value is (`surprise`, per record, from
    `surprises`). Independent of the model's m and u, so it can be computed with the levels."""
    out = np.zeros(len(levels), dtype=np.float64)
    for k, level in enumerate(tf_levels):
        if level is not None and surprise[k] is not None:
            hit = np.flatnonzero(levels[:, k] == level)
            out[hit] += surprise[k][left[hit]]
    return out


def surprises(tf: list[np.ndarray | None]) -> list[np.ndarray | None]:
    """-log2 of each record's value frequency, per comparison with term frequencies."""
    return [None if t is None else -np.log2(np.maximum(t, EPS)) for t in tf]


def pair_weights(model: Model, levels: np.ndarray, tf: list[np.ndarray | None], left: np.ndarray,
                 include_prior: bool = True, codes: np.ndarray | None = None,
                 rare: np.ndarray | None = None) -> np.ndarray:
    """Total match weight (log2 Bayes factor, plus the prior's log2 odds) of each pair.

    Agreeing on a common value is weaker evidence than agreeing on a rare one: at a comparison's
    TF level the weight is log2(m / frequency of the value) = log2(m / u) + log2(u) - log2(freq).
    With `codes` (see `pattern_codes`), everything but the last term is summed once per distinct
    pattern and looked up per pair; `rare` (see `rarity`) may bring the last term precomputed.
    """
    weights = model.weights()
    tf_levels = [level if tf[k] is not None else None for k, level in enumerate(model.tf_levels)]
    for k, level in enumerate(tf_levels):
        if level is not None:
            weights[k] = weights[k].copy()
            weights[k][level] += np.log2(model.u[k][level])
    if codes is not None:
        sizes = [len(w) for w in weights]
        present = pl.Series(codes).unique().to_numpy()
        rows = decode(present, sizes)
        table = np.zeros(int(present.max(initial=0)) + 1, dtype=np.float64)
        table[present] = sum(w[rows[:, k]] for k, w in enumerate(weights))
        total = table[codes]
    else:
        total = np.zeros(len(levels), dtype=np.float64)
        for k, w in enumerate(weights):
            total += w[levels[:, k]]
    total += rare if rare is not None else rarity(levels, left, surprises(tf), tf_levels)
    if include_prior:
        total += model.prior_weight
    return total


def probability(weight: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))

"""The Fellegi–Sunter model: u from random pairs, m by EM on agreement-pattern counts, the prior,
term-frequency adjustments, and scoring.

EM never sees individual pairs: the candidate pairs of each blocking rule are reduced to counts
of distinct agreement patterns first. Per rule, the comparisons that rule blocks on are left out
(all its pairs agree on them, so they carry no information there), u stays fixed at the
random-pair estimate, and m and the rule's match share are estimated; the m of a comparison is
the average over the rules that estimated it, weighted by their expected matches. The prior
(probability that two random records match) is the fixed point of "expected matches among the
candidates / all comparable pairs". Levels are ordered from least to most alike, so after EM
the weights are made non-decreasing in the level (adjacent violators pooled): "within a year"
never weighs less than "different". A comparison that every blocking rule blocks on cannot be
estimated; it keeps a default m, and the model says so (`m_estimated`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from .compare import LABELS, Comparison, distinct, levels_in_batches
from .prepare import RecordArrays

EPS = 1e-12
# No level is impossible among matches: a level EM never saw among them keeps this much m,
# so one unusual disagreement cannot veto a pair that agrees on everything else.
M_FLOOR = 1e-4
U_PRIOR_PAIRS = 100.0


@dataclass
class RuleFit:
    rule: str
    pairs: int
    match_share: float
    iterations: int
    converged: bool
    excluded: list[str]
    note: str = ""            # why the rule did not train m (then its other figures are 0)


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
    kinds: dict[str, str] = field(default_factory=dict)        # comparison -> kind (extras: inferred)
    m_estimated: list[bool] = field(default_factory=list)      # False: no rule could estimate m
    groups: list[str] = field(default_factory=list)            # comparisons of what households share
    households: bool = True    # False: the data shows no households (`households_seen`): groups count as own evidence

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
        data = dict(data)
        fits = [RuleFit(**f) for f in data.pop("fits", [])]
        model = cls(**data, fits=fits)
        if not model.m_estimated:
            model.m_estimated = [True] * len(model.comparisons)
        return model

    def save(self, path: Path) -> None:
        """Write the model as JSON, atomically (InputError naming the path when it cannot be written)."""
        from ..export import atomic_path

        with atomic_path(Path(path)) as temp:
            temp.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

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
    """One int32 code per pair for its whole row of levels; sizes that do not fit (`fits_codes`)
    are refused (the codes would wrap around): their patterns take `Patterns.dense`."""
    if not fits_codes(sizes):
        raise ValueError(f"level patterns of {len(sizes)} comparisons do not fit an int32 code; use Patterns.dense")
    code = np.zeros(len(levels), dtype=np.int32)
    for k, stride in enumerate(strides(sizes)):
        code += levels[:, k].astype(np.int32) * np.int32(stride)
    return code


@dataclass
class Patterns:
    """Pattern codes of the pairs and how to turn a code back into its levels: mixed-radix codes
    when every pattern fits an int32 (`fits_codes`), else dense codes numbered in order of first
    appearance with a table of their rows (any number of comparisons, no overflow)."""

    codes: np.ndarray
    sizes: list[int]
    rows: np.ndarray | None = None

    def levels_of(self, codes: np.ndarray) -> np.ndarray:
        if self.rows is not None:
            return self.rows[codes]
        return decode(codes, self.sizes)

    @classmethod
    def dense(cls, levels: np.ndarray, sizes: list[int]) -> Patterns:
        """Dense codes of a level matrix, built one column at a time (each step keeps the codes
        below the number of distinct partial rows, so nothing overflows)."""
        code = np.zeros(len(levels), dtype=np.int64)
        for k, size in enumerate(sizes):
            _, code = distinct(code * size + levels[:, k])
            code = code.astype(np.int64)
        first = np.full(int(code.max(initial=-1)) + 1, -1, dtype=np.int64)
        first[code[::-1]] = np.arange(len(code))[::-1]
        return cls(code.astype(np.int32), sizes, levels[first].copy())


def decode(codes: np.ndarray, sizes: list[int]) -> np.ndarray:
    """(codes, comparisons) levels of mixed-radix pattern codes."""
    return ((codes.astype(np.int64)[:, None] // strides(sizes)[None, :]) % np.array(sizes)[None, :]).astype(np.int8)


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
    """EM for m and the match share of one rule's pairs; inactive comparisons are ignored.

    u is estimated too, within the block, starting from the random-pair u: the non-matches of a
    block are not random pairs (namesakes in a block of one name share sex and nationality,
    relatives in a block of one phone share an address), and a u held at the random-pair value
    would push them into the match class. The block's u is drawn towards the random-pair u by
    U_PRIOR_PAIRS pseudo-pairs (a block of almost only matches has too few non-matches to tell
    their u). Only m is kept; scoring uses the random-pair u."""
    m = [_initial_m(len(uk)) for uk in u]
    v = [np.asarray(uk, dtype=np.float64).copy() for uk in u]
    share = 0.1
    for iteration in range(1, max_iterations + 1):
        log_m = sum(np.log(np.maximum(m[k][patterns[:, k]], EPS)) * (patterns[:, k] > 0)
                    for k in range(len(u)) if active[k])
        log_u = sum(np.log(np.maximum(v[k][patterns[:, k]], EPS)) * (patterns[:, k] > 0)
                    for k in range(len(u)) if active[k])
        logit = math.log(share / (1 - share)) + log_m - log_u
        post = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        weighted = counts * post
        unweighted = counts * (1.0 - post)
        new_share = float(np.clip(weighted.sum() / counts.sum(), 1e-9, 1 - 1e-9))
        change = abs(new_share - share)
        new_m, new_v = [], []
        for k in range(len(u)):
            mk, vk = m[k].copy(), v[k].copy()
            if active[k]:
                for table, w, prior in ((mk, weighted, None), (vk, unweighted, u[k])):
                    sums = np.bincount(patterns[:, k], weights=w, minlength=len(u[k]))
                    sums[0] = 0.0
                    if prior is not None:
                        sums[1:] += U_PRIOR_PAIRS * np.asarray(prior[1:]) / max(float(np.sum(prior[1:])), EPS)
                    if sums.sum() > 0:
                        table[1:] = np.maximum(sums[1:] / sums.sum(), M_FLOOR)
                        table[1:] /= table[1:].sum()
                change = max(change, float(np.abs(mk - m[k]).max()))
            new_m.append(mk)
            new_v.append(vk)
        m, v, share = new_m, new_v, new_share
        if change < tolerance:
            return m, share, iteration, True
    return m, share, max_iterations, False


# ---- training -------------------------------------------------------------------------------

def train(comparisons: list[Comparison], levels: np.ndarray, mask: np.ndarray, rules: list[tuple[str, set[str]]],
          u: list[np.ndarray], total_pairs: int, max_iterations: int, tolerance: float,
          tf: list[np.ndarray | None], left: np.ndarray, patterns: Patterns,
          rare: np.ndarray | None = None, membership: np.ndarray | None = None,
          groups: set[str] = frozenset()) -> tuple[Model, np.ndarray]:
    """The trained model, and each pair's match weight without the prior (for scoring).

    A pair's rules are the bits of `mask`, or the columns of `membership` (pairs x rules, for
    any number of rules). m is estimated only from rules that block on none of `groups` (what
    households and travel groups share): the non-matches in such a block are strangers, as EM
    with u from random pairs assumes; in a block of one phone or one flight they are relatives
    and co-travellers, who agree on everything else a household shares, and EM would take them
    for matches. Without any such rule, every rule trains."""
    names = [c.name for c in comparisons]
    sizes = [len(c.labels) for c in comparisons]
    sums = [np.zeros(s) for s in sizes]
    weights = np.zeros(len(comparisons))
    fits = []
    table = rule_patterns(patterns.codes, mask, len(rules)) if membership is None else None

    def rule_counts(bit: int, active: list[bool]) -> tuple[np.ndarray, np.ndarray, int]:
        """The distinct level rows (inactive comparisons as missing) of a rule's pairs, with counts."""
        if table is not None:
            chosen = ((table[1] >> bit) & 1).astype(bool)
            codes, weight = table[0][chosen], table[2][chosen]
        else:
            codes, weight = np.unique(patterns.codes[membership[:, bit]], return_counts=True)
            weight = weight.astype(np.float64)
        rows = np.where(active, patterns.levels_of(codes), 0)
        distinct_rows, inverse = np.unique(rows, axis=0, return_inverse=True)
        return distinct_rows, np.bincount(inverse.ravel(), weights=weight, minlength=len(distinct_rows)), int(weight.sum())

    strangers = [not (blocked & groups) for _, blocked in rules]
    for bit, (rule, blocked) in enumerate(rules):
        active = [name not in blocked for name in names]
        if any(strangers) and not strangers[bit]:
            keyed = ", ".join(sorted(blocked & groups))
            fits.append(RuleFit(rule, 0, 0.0, 0, True, [n for n, a in zip(names, active) if not a],
                                f"not trained: keyed on {keyed}, which households and groups share"))
            continue
        rows, counts, pairs = rule_counts(bit, active)
        if pairs < 10:
            continue
        m, share, iterations, converged = em(rows, counts, u, active, max_iterations, tolerance)
        expected = share * float(pairs)
        fits.append(RuleFit(rule, pairs, share, iterations, converged, [n for n, a in zip(names, active) if not a]))
        for k, is_active in enumerate(active):
            if is_active:
                sums[k] += expected * m[k]
                weights[k] += expected
    m_final = []
    for k, size in enumerate(sizes):
        # no rule could estimate it: a default, disclosed by m_estimated (and in order like the rest)
        mk = monotone_m(sums[k] / weights[k] if weights[k] > 0 else _initial_m(size), u[k])
        mk[0] = 1.0
        m_final.append(mk)
    model = Model(names, [list(c.labels) for c in comparisons], [list(map(float, x)) for x in m_final],
                  [list(map(float, x)) for x in u], 1e-6, [c.tf_level for c in comparisons], fits,
                  kinds={c.name: c.kind for c in comparisons}, m_estimated=[bool(w > 0) for w in weights],
                  groups=sorted(groups & set(names)))
    base = pair_weights(model, levels, tf, left, include_prior=False, patterns=patterns, rare=rare)
    model.prior = estimate_prior(base, total_pairs)
    return model, base


def monotone_m(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """m adjusted so that log2(m/u) does not decrease from level 1 upwards: adjacent levels that
    violate the order are pooled (their m and u summed) until it holds. Level 0 is left alone;
    the m of each pooled run keeps its total, so m still sums to 1."""
    m = np.asarray(m, dtype=np.float64).copy()
    blocks: list[list[float | int]] = []      # [m sum, u sum, first level, last level]
    for level in range(1, len(m)):
        blocks.append([m[level], u[level], level, level])
        while len(blocks) > 1 and (blocks[-2][0] / max(blocks[-2][1], EPS)) > (blocks[-1][0] / max(blocks[-1][1], EPS)):
            top = blocks.pop()
            blocks[-1] = [blocks[-1][0] + top[0], blocks[-1][1] + top[1], blocks[-1][2], top[3]]
    for m_sum, u_sum, first, last in blocks:
        if last > first:
            ratio = m_sum / max(u_sum, EPS)
            m[first:last + 1] = np.asarray(u[first:last + 1]) * ratio
    return m


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
    `surprises`). Computed with the levels, before the model's m is known."""
    out = np.zeros(len(levels), dtype=np.float64)
    for k, level in enumerate(tf_levels):
        if level is not None and surprise[k] is not None:
            hit = np.flatnonzero(levels[:, k] == level)
            out[hit] += surprise[k][left[hit]]
    return out


def surprises(tf: list[np.ndarray | None], u: list, tf_levels: list[int | None]) -> list[np.ndarray | None]:
    """-log2 of each record's value frequency, per comparison with term frequencies. A record with
    no frequency of its own (no name key, say, while its hanzi name agreed) gets -log2 of the
    level's u instead, i.e. no adjustment at all."""
    out: list[np.ndarray | None] = []
    for k, t in enumerate(tf):
        if t is None or tf_levels[k] is None:
            out.append(None)
            continue
        fallback = -math.log2(max(float(u[k][tf_levels[k]]), EPS))
        out.append(np.where(t > 0, -np.log2(np.maximum(t, EPS)), fallback))
    return out


def _summed(weights: list[np.ndarray], model: Model, tf: list[np.ndarray | None], levels: np.ndarray,
            patterns: Patterns | None) -> np.ndarray:
    """Per pair, the sum of its levels' weights, each term-frequency level also carrying log2(u)
    (the pair's own -log2(frequency) comes from `rarity`). With `patterns`, summed once per
    distinct pattern and looked up per pair."""
    weights = [w.copy() for w in weights]
    for k, level in enumerate(model.tf_levels):
        if level is not None and tf[k] is not None:
            weights[k][level] += np.log2(model.u[k][level])
    if patterns is not None:   # a table per distinct code present, not one as long as the largest code
        present, inverse = distinct(patterns.codes)
        rows = patterns.levels_of(present)
        return sum(w[rows[:, k]] for k, w in enumerate(weights))[inverse]
    total = np.zeros(len(levels), dtype=np.float64)
    for k, w in enumerate(weights):
        total += w[levels[:, k]]
    return total


def pair_weights(model: Model, levels: np.ndarray, tf: list[np.ndarray | None], left: np.ndarray,
                 include_prior: bool = True, patterns: Patterns | None = None,
                 rare: np.ndarray | None = None) -> np.ndarray:
    """Total match weight (log2 Bayes factor, plus the prior's log2 odds) of each pair.

    Agreeing on a common value is weaker evidence than agreeing on a rare one: at a comparison's
    TF level the weight is log2(m / frequency of the value) = log2(m / u) + log2(u) - log2(freq).
    With `patterns`, everything but the last term is summed once per distinct pattern and looked
    up per pair; `rare` (see `rarity`) may bring the last term precomputed.
    """
    tf_levels = [level if tf[k] is not None else None for k, level in enumerate(model.tf_levels)]
    if rare is None:
        rare = rarity(levels, left, surprises(tf, model.u, tf_levels), tf_levels)
    total = _summed(model.weights(), model, tf, levels, patterns) + rare
    if include_prior:
        total = total + model.prior_weight
    return total


DOCUMENTS_ONE_EDIT = LABELS["documents"].index("one edit apart")
# The levels at which two values are the same (what a household shares, at its top).
AGREEING_LABELS = {"exact", "shared", "unverified number shared"}
# Households are held to be absent when fewer than this share of the candidate pairs of one
# source look like household members (FEBRL4: 2 in 34,903; the bundled sample: 4,591 in 13,329),
# and only judged on at least HOUSEHOLD_MIN_PAIRS such pairs.
HOUSEHOLD_SHARE = 0.001
HOUSEHOLD_MIN_PAIRS = 1000


def contradictions(model: Model, levels: np.ndarray, columns: list[bool]) -> np.ndarray:
    """Per pair: do the records say "two people" on what tells the members of one household apart:
    their names (different, or only one part alike), their sex, or their birth dates ("different")?
    (Another passport is no such sign: passports are re-issued; relatives have their own anyway.)"""
    out = np.zeros(len(levels), dtype=bool)
    for k, name in enumerate(model.comparisons):
        if not columns[k]:
            continue
        kind = model.kinds.get(name, "")
        if kind == "name":
            out |= (levels[:, k] == 1) | (levels[:, k] == 2)
        elif kind == "date" or name == "sex":
            out |= levels[:, k] == 1
    return out


def households_seen(model: Model, levels: np.ndarray, same_source: np.ndarray) -> bool | None:
    """Does the data hold households? Counted on the candidate pairs of records of one source: those
    that say "two people" on their own fields yet agree on every household field they both hold (at
    least one) are members of one household or travel group, as each agency's own export shows
    them. None when too few such pairs were compared to tell (then households are assumed)."""
    group = [k for k, name in enumerate(model.comparisons) if name in model.groups]
    if not group or int(same_source.sum()) < HOUSEHOLD_MIN_PAIRS:
        return None
    rows = levels[same_source]
    own = [name not in model.groups for name in model.comparisons]
    contradicted = contradictions(model, rows, own)
    present = np.zeros(len(rows), dtype=bool)
    agree = np.ones(len(rows), dtype=bool)
    for k in group:
        top = [i for i, label in enumerate(model.labels[k]) if label in AGREEING_LABELS]
        held = rows[:, k] > 0
        present |= held
        agree &= ~held | np.isin(rows[:, k], top)
    return int((contradicted & present & agree).sum()) >= HOUSEHOLD_SHARE * len(rows)


def own_evidence(model: Model) -> list[bool]:
    """Per comparison: is it a person's own evidence? What households share is not, where the data
    holds households (`Model.households`)."""
    return [not (model.households and name in model.groups) for name in model.comparisons]


def own_or_differing(model: Model, levels: np.ndarray) -> np.ndarray:
    """The levels of pairs as evidence that two records are two people: a person's own fields as
    they are, and what a household shares only where it differs (level 1). Two relatives sharing a
    phone says nothing of who is who, but two different phones, flights or addresses still count
    against one person, as much as the model learned they do."""
    own = np.asarray(own_evidence(model), dtype=bool)
    return np.where(own | (levels == 1), levels, 0).astype(levels.dtype)


def comparison_weights(model: Model, levels: np.ndarray, tf: list[np.ndarray | None], left: np.ndarray) -> np.ndarray:
    """Per pair and comparison, that comparison's weight (no prior; 0 where the level is missing)."""
    out = np.zeros(levels.shape, dtype=np.float64)
    if len(levels):
        for k in range(levels.shape[1]):
            alone = np.zeros_like(levels)
            alone[:, k] = levels[:, k]
            out[:, k] = pair_weights(model, alone, tf, left, include_prior=False)
    return out


def effective_weights(model: Model, levels: np.ndarray, tf: list[np.ndarray | None], left: np.ndarray,
                      weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight a link stands on, contradicted) per pair: a pair whose records say "two people" (see
    `contradictions`) stands on its own evidence alone (`own_evidence`: without what a household
    shares, the model's `groups`: phones, addresses, flights); any other on `weight`."""
    own = own_evidence(model)
    contradicted = contradictions(model, levels, own)
    out = weight.copy()
    if contradicted.any():
        mine = np.where(own, levels[contradicted], 0)
        # Relatives' passports are often issued together, numbered in sequence: one edit apart is no
        # evidence of one person between records that say "two people".
        for k, name in enumerate(model.comparisons):
            if model.kinds.get(name) == "documents":
                mine[:, k] = np.where(mine[:, k] == DOCUMENTS_ONE_EDIT, 0, mine[:, k])
        out[contradicted] = pair_weights(model, mine, tf, left[contradicted])
    return out, contradicted


def probability(weight: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))

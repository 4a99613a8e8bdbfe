"""Clustering: connected components of the links above the threshold, with an identity guard.

The guard keeps transitive chaining from joining records whose identifiers contradict. Which
fields are identifiers comes from `model.toml` (`identity`, by default the resident ID and the
birth date; an extra field such as `extra.soc_sec_id` can be one). Two records contradict on
an identity field when both hold it and the values differ: two different valid resident IDs,
birth dates at the date comparison's "different" level (not the same date up to a typo, a
day/month swap or a year), or other identifiers more than one edit apart.

A component holding such a contradiction is rebuilt edge by edge, strongest first. A merge
that would bring a new contradicting pair into one group is refused, unless the link itself
joins the two contradicting records and its evidence without what a household shares (phone,
address, e-mail, employer, district, group extras) makes them more likely than not one person:
then it is one person whose records disagree, kept together and marked `conflict` for review,
unless another scored pair of the two groups' records contradicts directly and what it holds where
the link's records hold nothing (counting what households share where it differs: two phones)
turns the link's evidence to "two people": namesakes born on one day, with two IDs and two phones,
joined through a record that carries no phone. A contradiction already inside a group is not new:
a group that holds two IDs still accepts a record with one of them. Components without a
contradiction (the vast majority) are taken as they are, so the Python loop runs only over the
few that need it.

People's decisions (match/decisions.py) are constraints here: a must-link is an edge of its own,
taken before every scored link and never refused (`forced`); a cannot-link makes its component
suspect, and a merge that would bring its two records into one group is refused like a merge of
contradicting identifiers (never kept for review).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from rapidfuzz.distance import OSA
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import ConfigError
from .blocking import Blocks, block_pairs
from .compare import differing_date_levels
from .prepare import MISSING_DAY, RecordArrays, date_digits

DEFAULT_IDENTITY = ("id_number", "dob")


@dataclass
class Clusters:
    labels: np.ndarray            # int64 cluster label per record id (0..k-1)
    refused: np.ndarray           # indices into the link arrays: links the guard refused
    kept: np.ndarray              # indices into the link arrays: contradicting links kept for review


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _several(labels: np.ndarray, codes: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Labels of components holding two or more distinct codes among the records `where` selects
    (sorted): those whose smallest and largest code differ."""
    low, high = _spans(labels, codes, where)
    return np.nonzero(high > low)[0]


def _spans(labels: np.ndarray, values: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the smallest and largest of the values `where` selects (for a label with none
    selected, high < low)."""
    size = int(labels.max(initial=-1)) + 1
    low = np.full(size, np.iinfo(np.int64).max)
    high = np.full(size, np.iinfo(np.int64).min)
    chosen, values = labels[where], values[where].astype(np.int64)   # one dtype: ufunc.at's fast path
    np.minimum.at(low, chosen, values)
    np.maximum.at(high, chosen, values)
    return low, high


@dataclass
class _Field:
    """One identity field as the guard sees it: a code per record (-1 = none) and how two
    different codes are judged (`differ(x, y)`: do they contradict?)."""

    name: str
    codes: np.ndarray
    values: np.ndarray | None = None    # the strings behind the codes (for the one-edit test)
    judge: object = None                # a differ(x, y) of its own (encoded fields: match/encoded.py)

    def differ(self, x: int, y: int) -> bool:
        if self.judge is not None:
            return self.judge(x, y)
        if self.values is None:
            return True                  # valid resident IDs: a checksum already rules out typos
        return OSA.distance(str(self.values[x]), str(self.values[y]), score_cutoff=2) > 1


def identity_fields(data: RecordArrays, names: list[str] | tuple[str, ...]) -> list[str]:
    """The configured identity fields, checked against the data (an unknown field is a ConfigError)."""
    valid = ["id_number", "dob", "passport"] + [f"extra.{e}" for e in data.extras]
    for name in names:
        if name not in valid:
            raise ConfigError(f"model.toml: key 'identity' names '{name}', which no source maps; "
                              f"valid: {', '.join(valid)}")
    return list(names)


def _code_fields(data: RecordArrays, names: list[str]) -> list[_Field]:
    fields = []
    for name in names:
        if name == "id_number":
            ids = data.docs["id_any"].codes
            fields.append(_Field(name, np.where(data.id_valid, ids, -1)))
        elif name == "passport":
            coded = data.docs["passport"]
            fields.append(_Field(name, coded.codes, coded.values))
        elif name.startswith("extra."):
            coded = data.extras[name[6:]]
            fields.append(_Field(name, coded.codes, coded.values))
    from .encoded import identity_codes
    fields += [_Field(name, codes, None, judge) for name, codes, judge in identity_codes(data, names)]
    return fields


def _conflicting_components(data: RecordArrays, labels: np.ndarray, names: list[str]) -> np.ndarray:
    """Labels of components that may hold contradicting identifiers: two distinct codes of an
    identity field, or (with `dob`) birth dates more than a year apart."""
    found = np.zeros(0, dtype=np.int64)
    for field in _code_fields(data, names):
        found = np.union1d(found, _several(labels, field.codes, field.codes >= 0))
    if "dob" in names:
        low, high = _spans(labels, data.dob_days, data.dob_days != MISSING_DAY)
        found = np.union1d(found, np.nonzero((high > low) & (high - low > 365))[0])
    return found


@dataclass
class _Group:
    """What the guard knows of a group of records: per identity field, the set of its values."""

    values: tuple[frozenset, ...]
    bound: frozenset = frozenset()    # its records that have a cannot-link

    def __or__(self, other: _Group) -> _Group:
        return _Group(tuple(a | b for a, b in zip(self.values, other.values)), self.bound | other.bound)


class _Guard:
    """Contradiction checks between groups of records, on per-group sets (not record pairs)."""

    def __init__(self, data: RecordArrays, labels: np.ndarray, suspects: np.ndarray, names: list[str],
                 cannot: tuple[np.ndarray, np.ndarray] | None = None):
        self.data = data
        self.apart: dict[int, set[int]] = {}      # record -> the records it must not share a person with
        if cannot is not None:
            for x, y in zip(cannot[0].tolist(), cannot[1].tolist()):
                self.apart.setdefault(int(x), set()).add(int(y))
                self.apart.setdefault(int(y), set()).add(int(x))
        self.fields = _code_fields(data, names)
        self.use_dob = "dob" in names
        self._dob_different = _dob_pairs_different(data, labels, suspects) if self.use_dob else {}
        self._differ: list[dict[tuple[int, int], bool]] = [{} for _ in self.fields]

    def group(self, record: int) -> _Group:
        """The group of one record alone."""
        values = [frozenset([int(f.codes[record])]) if f.codes[record] >= 0 else frozenset() for f in self.fields]
        dob = int(self.data.dob_days[record])
        values.append(frozenset([dob]) if self.use_dob and dob != MISSING_DAY else frozenset())
        return _Group(tuple(values), frozenset([record]) if record in self.apart else frozenset())

    def separated(self, a: _Group, b: _Group) -> bool:
        """Would joining a and b put two records of a cannot-link into one group?"""
        if not a.bound or not b.bound:
            return False
        return any(not self.apart[x].isdisjoint(b.bound) for x in a.bound)

    def contradict(self, a: _Group, b: _Group) -> bool:
        """Would joining a and b bring a new contradicting pair of values into one group? A pair
        already inside a or inside b is not new."""
        for k, (xs, ys) in enumerate(zip(a.values, b.values)):
            if not xs or not ys or xs == ys:
                continue
            judge = self.dob_different if k == len(self.fields) else self._field_judge(k)
            for x in xs - ys:
                for y in ys - xs:
                    if judge(x, y):
                        return True
        return False

    def _field_judge(self, k: int):
        field, memo = self.fields[k], self._differ[k]

        def judge(x: int, y: int) -> bool:
            key = (x, y) if x < y else (y, x)
            if key not in memo:
                memo[key] = field.differ(x, y)
            return memo[key]

        return judge

    def dob_different(self, x: int, y: int) -> bool:
        """Are two birth dates (days) at the date comparison's 'different' level? (memoized)"""
        if x == y:
            return False
        key = (x, y) if x < y else (y, x)
        if key not in self._dob_different:
            self._dob_different.update(_dates_different(np.array([key[0]]), np.array([key[1]])))
        return self._dob_different[key]


class IdentityGuard:
    """The guard's contradiction test outside a match run (the chain's joins of split travelers):
    groups of records, given by their numbers in `data`, judged exactly as the match judges them."""

    def __init__(self, data: RecordArrays, identity: list[str] | tuple[str, ...]):
        names = identity_fields(data, identity)
        self._guard = _Guard(data, np.zeros(data.n, dtype=np.int64), np.zeros(0, dtype=np.int64), names)

    def group(self, records) -> _Group:
        """The group of the given records."""
        groups = [self._guard.group(int(r)) for r in records]
        out = groups[0]
        for other in groups[1:]:
            out = out | other
        return out

    def contradict(self, a: _Group, b: _Group) -> bool:
        """Would joining a and b bring a new contradicting pair of identifiers into one group?"""
        return self._guard.contradict(a, b)


def _dates_different(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], bool]:
    """{(a, b): are the dates at the 'different' level} for pairs of different days, a < b."""
    level = differing_date_levels(a, b, date_digits(a), date_digits(b))
    return dict(zip(zip(a.tolist(), b.tolist()), (level == 1).tolist()))


def _dob_pairs_different(data: RecordArrays, labels: np.ndarray, suspects: np.ndarray,
                         most: int = 5_000_000) -> dict[tuple[int, int], bool]:
    """`_dates_different` of every two birth dates met within one suspect component, computed in
    one vectorized pass (skipped when there would be more than `most` pairs: then per query)."""
    if not len(suspects):
        return {}
    inside = np.isin(labels, suspects) & (data.dob_days != MISSING_DAY)
    table = pl.DataFrame({"label": labels[inside], "dob": data.dob_days[inside]}).unique().sort("label", "dob")
    sizes = table.group_by("label", maintain_order=True).len()["len"].to_numpy().astype(np.int64)
    if int((sizes * (sizes - 1) // 2).sum()) > most:
        return {}
    multi = sizes > 1
    keep = np.repeat(multi, sizes)
    sizes = sizes[multi]
    blocks = Blocks(table["dob"].to_numpy()[keep].astype(np.int32), np.zeros(int(keep.sum()), dtype=np.int16),
                    np.cumsum(sizes) - sizes, sizes)
    a, b = block_pairs(blocks, np.ones((1, 1), dtype=bool))
    return _dates_different(a, b)


def cluster(data: RecordArrays, left: np.ndarray, right: np.ndarray, weight: np.ndarray,
            identity_weight: np.ndarray, threshold_weight: float,
            identity: list[str] | tuple[str, ...] = DEFAULT_IDENTITY,
            against: Unseen | None = None) -> Clusters:
    """Cluster records joined by the given links (already above the threshold)."""
    names = identity_fields(data, identity)
    labels, suspects = suspect_components(data, left, right, names)
    return guard(data, left, right, weight, identity_weight, threshold_weight, labels, suspects, names,
                 against=against)


def suspect_components(data: RecordArrays, left: np.ndarray, right: np.ndarray, identity: list[str],
                       cannot: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Component labels of the links, and the labels of components the guard must rebuild (those
    with contradicting identifiers or holding both records of a cannot-link): a link outside those
    is final as it is."""
    labels = components(data.n, left, right)
    suspects = _conflicting_components(data, labels, identity)
    if cannot is not None and len(cannot[0]):
        same = labels[cannot[0]] == labels[cannot[1]]
        suspects = np.union1d(suspects, labels[cannot[0][same]])
    return labels, suspects


@dataclass
class Unseen:
    """What scored pairs below the threshold know that a link's records do not: per pair (left,
    right) its weight per comparison as evidence of two people (`model.own_or_differing`), and per
    link which comparisons its records leave missing."""

    left: np.ndarray
    right: np.ndarray
    weights: np.ndarray          # pairs x comparisons
    link_missing: np.ndarray     # links x comparisons (bool)

    def weight(self, pair: int, link: int) -> float:
        return float(self.weights[pair][self.link_missing[link]].sum())


def guard(data: RecordArrays, left: np.ndarray, right: np.ndarray, weight: np.ndarray,
          identity_weight: np.ndarray, threshold_weight: float, labels: np.ndarray,
          suspects: np.ndarray, identity: list[str], forced: np.ndarray | None = None,
          cannot: tuple[np.ndarray, np.ndarray] | None = None, against: Unseen | None = None) -> Clusters:
    """Rebuild the suspect components edge by edge, strongest first (see the module docstring);
    `forced` marks must-links (merged whatever they bring together), `cannot` the cannot-link pairs.

    `against`: the scored pairs below the threshold inside suspect components. A contradicting link
    is kept for review only if, for every such pair between the two groups that contradicts directly,
    its own evidence plus what that pair holds where the link's records hold nothing still clears
    `threshold_weight`: namesakes joined through a record without a phone are told apart by two
    other records of theirs that both hold one, while a person with a second phone, whose link
    already weighed the phones, is not."""
    none = np.empty(0, dtype=np.int64)
    if not len(suspects):
        return Clusters(labels, none, none)
    contrary: dict[int, list[tuple[int, int, int]]] = {}
    if against is not None:
        for j, (x, y) in enumerate(zip(against.left.tolist(), against.right.tolist())):
            contrary.setdefault(int(labels[x]), []).append((x, y, j))
    in_suspect = np.isin(labels[left], suspects)
    parent = list(range(data.n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    checks = _Guard(data, labels, suspects, identity, cannot)
    groups: dict[int, _Group] = {}
    refused, kept = [], []
    for index in np.nonzero(in_suspect)[0][np.argsort(-weight[in_suspect], kind="stable")]:
        u, v = int(left[index]), int(right[index])
        a, b = find(u), find(v)
        if a == b:
            continue
        group_a = groups.pop(a) if a in groups else checks.group(a)
        group_b = groups.pop(b) if b in groups else checks.group(b)
        if forced is not None and forced[index]:
            pass   # a person's decision: one person, whatever the identifiers say
        elif checks.separated(group_a, group_b):
            refused.append(index)
            groups[a], groups[b] = group_a, group_b
            continue
        elif checks.contradict(group_a, group_b):
            direct = checks.contradict(checks.group(u), checks.group(v))
            if direct and identity_weight[index] >= threshold_weight and not any(
                    identity_weight[index] + against.weight(j, index) < threshold_weight
                    and {find(x), find(y)} == {a, b} and checks.contradict(checks.group(x), checks.group(y))
                    for x, y, j in contrary.get(int(labels[u]), ())):
                kept.append(index)
            else:
                refused.append(index)
                groups[a], groups[b] = group_a, group_b
                continue
        parent[b] = a
        groups[a] = group_a | group_b
    kept_array = np.asarray(kept, dtype=np.int64)
    if not refused:
        return Clusters(labels, none, kept_array)
    # Records outside suspect components keep their component; inside, their guarded root.
    rebuilt = labels.copy()
    inside = np.nonzero(np.isin(labels, suspects))[0]
    rebuilt[inside] = np.array([find(int(i)) for i in inside]) + labels.max() + 1
    used = np.zeros(int(rebuilt.max()) + 1, dtype=bool)
    used[rebuilt] = True
    dense = np.cumsum(used) - 1   # labels renumbered 0..k-1 in the same order
    return Clusters(dense[rebuilt].astype(np.int64), np.asarray(refused, dtype=np.int64), kept_array)

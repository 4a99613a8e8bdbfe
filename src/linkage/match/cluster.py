"""Clustering: connected components of the links above the threshold, with a chaining guard.

A component that would hold two records with contradicting strong identifiers (two different
valid resident IDs; two different passports together with two different phones; or birth dates
that are not the same date up to a typo, a day/month swap or a year) is rebuilt edge by edge,
strongest first. A merge that would join contradicting records
is refused, unless the link itself joins the two contradicting records and still stands on its
own (see `_direct_ok`): then it is one person whose records disagree, kept together and
reported for review. Components without a conflict (the vast
majority) are taken as they are, so the Python loop runs only over the few that need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .blocking import Blocks, block_pairs
from .compare import differing_date_levels
from .prepare import MISSING_DAY, RecordArrays, date_digits


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


def _conflicting_components(data: RecordArrays, labels: np.ndarray) -> np.ndarray:
    """Labels of components holding two valid resident IDs, two passports and two phones, or birth
    dates more than a year apart."""
    ids = data.docs["id_any"].codes
    id_conflict = _several(labels, ids, data.id_valid & (ids >= 0))
    passports, phones = _passport_phone(data)
    if passports is not None:
        both = np.intersect1d(_several(labels, passports, passports >= 0), _several(labels, phones, phones >= 0))
        id_conflict = np.union1d(id_conflict, both)
    low, high = _spans(labels, data.dob_days, data.dob_days != MISSING_DAY)
    dob_suspect = np.nonzero((high > low) & (high - low > 365))[0]
    return np.union1d(id_conflict, dob_suspect)


@dataclass
class _Group:
    """What the guard needs to know of a group of records: its valid resident IDs, its
    (passport, phone) pairs and its birth dates, as small sets."""

    ids: frozenset
    documents: frozenset
    dobs: frozenset

    def __or__(self, other: _Group) -> _Group:
        return _Group(self.ids | other.ids, self.documents | other.documents, self.dobs | other.dobs)


class _Guard:
    """Contradiction checks between groups of records, on per-group sets (not record pairs)."""

    def __init__(self, data: RecordArrays, labels: np.ndarray, suspects: np.ndarray):
        self.data = data
        self.ids = data.docs["id_any"].codes
        self.passports, self.phones = _passport_phone(data)
        self._dob_different = _dob_pairs_different(data, labels, suspects)

    def group(self, record: int) -> _Group:
        """The group of one record alone."""
        data = self.data
        ids = frozenset([int(self.ids[record])]) if data.id_valid[record] and self.ids[record] >= 0 else frozenset()
        documents = frozenset()
        if self.passports is not None and self.passports[record] >= 0 and self.phones[record] >= 0:
            documents = frozenset([(int(self.passports[record]), int(self.phones[record]))])
        dob = int(data.dob_days[record])
        return _Group(ids, documents, frozenset([dob]) if dob != MISSING_DAY else frozenset())

    def contradict(self, a: _Group, b: _Group) -> bool:
        """Do any record of a and any record of b carry contradicting identifiers?"""
        if a.ids and b.ids and (len(a.ids) > 1 or a.ids != b.ids):
            return True
        if self.documents_differ(a, b):
            return True
        return any(self.dob_different(x, y) for x in a.dobs for y in b.dobs)

    @staticmethod
    def documents_differ(a: _Group, b: _Group) -> bool:
        """Two different passports together with two different phones: a namesake born the same day,
        not one person (a re-issued passport comes with the same phone)."""
        return any(pa != pb and ha != hb for pa, ha in a.documents for pb, hb in b.documents)

    def dob_different(self, x: int, y: int) -> bool:
        """Are two birth dates (days) at the date comparison's 'different' level? (memoized)"""
        if x == y:
            return False
        key = (x, y) if x < y else (y, x)
        if key not in self._dob_different:
            self._dob_different.update(_dates_different(np.array([key[0]]), np.array([key[1]])))
        return self._dob_different[key]


def _dates_different(a: np.ndarray, b: np.ndarray) -> dict[tuple[int, int], bool]:
    """{(a, b): are the dates at the 'different' level} for pairs of different days, a < b."""
    level = differing_date_levels(a, b, date_digits(a), date_digits(b))
    return dict(zip(zip(a.tolist(), b.tolist()), (level == 1).tolist()))


def _dob_pairs_different(data: RecordArrays, labels: np.ndarray, suspects: np.ndarray,
                         most: int = 5_000_000) -> dict[tuple[int, int], bool]:
    """`_dates_different` of every two birth dates met within one suspect component, computed in
    one vectorized pass (skipped when there would be more than `most` pairs: then per query)."""
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


def _passport_phone(data: RecordArrays) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "passport" not in data.docs or "phone" not in data.strings:
        return None, None
    return data.docs["passport"].codes, data.strings["phone"].codes


def _direct_ok(data: RecordArrays, guard: _Guard, u: int, v: int, identity_clears: bool) -> bool:
    """May a link that itself joins contradicting records stand (kept, marked for review)?

    Birth dates far apart on a link that still clears the threshold: the model has already
    weighed that disagreement, so the link stands. Two valid resident IDs that differ: only
    when the pair's own identity evidence clears the threshold (relatives share phones and
    addresses) and a contact or document of the pair's own agrees as well (the same phone or
    passport): namesakes born on the same day are common in a large population, one person
    holding two valid ID numbers is not. A link whose own records do not contradict (the
    contradiction comes from others it would chain in) never stands.
    """
    a, b = guard.group(u), guard.group(v)
    if not guard.contradict(a, b) or guard.documents_differ(a, b):
        return False
    ids = data.docs["id_any"].codes
    id_conflict = bool(data.id_valid[u] and data.id_valid[v] and ids[u] != ids[v])
    return not id_conflict or (identity_clears and _corroborated(data, u, v))


def _corroborated(data: RecordArrays, u: int, v: int) -> bool:
    """Do the two records share a phone number or a passport number?"""
    return any(codes is not None and codes[u] >= 0 and codes[u] == codes[v] for codes in _passport_phone(data))


def cluster(data: RecordArrays, left: np.ndarray, right: np.ndarray, weight: np.ndarray,
            identity_weight: np.ndarray, threshold_weight: float) -> Clusters:
    """Cluster records joined by the given links (already above the threshold)."""
    labels, suspects = suspect_components(data, left, right)
    return guard(data, left, right, weight, identity_weight, threshold_weight, labels, suspects)


def suspect_components(data: RecordArrays, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Component labels of the links, and the labels of components the guard must rebuild: a link
    outside those is final as it is."""
    labels = components(data.n, left, right)
    return labels, _conflicting_components(data, labels)


def guard(data: RecordArrays, left: np.ndarray, right: np.ndarray, weight: np.ndarray,
          identity_weight: np.ndarray, threshold_weight: float, labels: np.ndarray,
          suspects: np.ndarray) -> Clusters:
    """Rebuild the suspect components edge by edge, strongest first (see the module docstring)."""
    none = np.empty(0, dtype=np.int64)
    if not len(suspects):
        return Clusters(labels, none, none)
    in_suspect = np.isin(labels[left], suspects)
    parent = list(range(data.n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    guard = _Guard(data, labels, suspects)
    groups: dict[int, _Group] = {}
    refused, kept = [], []
    for index in np.nonzero(in_suspect)[0][np.argsort(-weight[in_suspect], kind="stable")]:
        u, v = int(left[index]), int(right[index])
        a, b = find(u), find(v)
        if a == b:
            continue
        group_a = groups.pop(a) if a in groups else guard.group(a)
        group_b = groups.pop(b) if b in groups else guard.group(b)
        if guard.contradict(group_a, group_b):
            if _direct_ok(data, guard, u, v, identity_weight[index] >= threshold_weight):
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

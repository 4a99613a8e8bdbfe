"""Comparisons: for pairs of records (two arrays of record ids) the agreement level of each field.

Pure and vectorized: every function takes the record arrays and index arrays and returns an
int8 level per pair, computed with numpy and rapidfuzz `process.cpdist` over distinct value
pairs, never a Python loop per pair. Level 0 is always "missing" (either side has no value):
it is neutral in the model, never counted as disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler

from ..config import ComparisonConfig, ModelConfig
from ..errors import ConfigError
from .prepare import MISSING_DAY, STRING_COLUMNS, Coded, RecordArrays

MISSING = 0
BATCH_PAIRS = 1_000_000
COMPARE_THREADS = 2


def similarity(coded_a: Coded, left: np.ndarray, coded_b: Coded, right: np.ndarray, scorer,
               missing: float = np.nan, same: float | None = None) -> np.ndarray:
    """scorer(a[left], b[right]) per pair (float32), computed once per distinct pair of values.

    With `same` (the scorer's value for two equal strings; both columns must then share a
    dictionary), pairs holding the same value take it without being scored.
    """
    return scores(coded_a.codes[left], coded_b.codes[right], coded_a.values, coded_b.values, scorer, missing, same)


def scores(ca: np.ndarray, cb: np.ndarray, values_a: np.ndarray, values_b: np.ndarray, scorer,
           missing: float = np.nan, same: float | None = None) -> np.ndarray:
    """`similarity` on codes already taken per pair (ca[i] against cb[i])."""
    valid = (ca >= 0) & (cb >= 0)
    out = np.full(len(ca), missing, dtype=np.float32)
    if same is not None:
        identical = valid & (ca == cb)
        out[identical] = same
        valid &= ~identical
    if not valid.any():
        return out
    a, b = ca[valid], cb[valid]
    if values_a is values_b:  # one dictionary, and every scorer here is symmetric: (x, y) is (y, x)
        a, b = np.minimum(a, b), np.maximum(a, b)
    width = np.int64(len(values_b))
    unique, inverse = distinct(a.astype(np.int64) * width + b)
    result = process.cpdist(values_a[unique // width], values_b[unique % width], scorer=scorer, workers=-1)
    out[valid] = result.astype(np.float32)[inverse]
    return out


def distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys and, per key, its index among them (Arrow's hash dictionary: no sort)."""
    encoded = pc.dictionary_encode(pa.array(keys))
    return encoded.dictionary.to_numpy(), encoded.indices.to_numpy()


def equal(coded_a: Coded, left: np.ndarray, coded_b: Coded, right: np.ndarray) -> np.ndarray:
    """Both present and equal (the two columns must share a dictionary)."""
    return same_code(coded_a.codes[left], coded_b.codes[right])


def same_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`equal` on codes already taken per pair."""
    return (a >= 0) & (a == b)


def both(coded: Coded, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return (coded.codes[left] >= 0) & (coded.codes[right] >= 0)


def select_levels(conditions: list[tuple[int, np.ndarray]], present: np.ndarray) -> np.ndarray:
    """The first matching (level, condition) wins; present pairs default to level 1, others 0."""
    out = np.where(present, 1, MISSING).astype(np.int8)
    for level, condition in reversed(conditions):
        out[condition & present] = level
    return out


@dataclass
class Comparison:
    """One comparison: its name, level labels (0 = missing) and the level that takes TF adjustment."""

    name: str
    labels: tuple[str, ...]
    tf_level: int | None = None

    def levels(self, data: RecordArrays, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def term_frequencies(self, data: RecordArrays) -> np.ndarray | None:
        return None


@dataclass
class NameComparison(Comparison):
    """Order-independent, hanzi/pinyin and transliteration aware full-name comparison.

    Family and given names are compared part by part, straight and swapped, and the better
    orientation counts; both parts must agree for the upper levels, so a shared family name
    alone (siblings, common surnames) is its own, weak level.
    """

    high: float = 0.95
    mid: float = 0.88
    term_frequency: bool = True
    _parts: tuple = field(default=(), repr=False, compare=False)

    def levels(self, data, left, right):
        s = data.strings
        kl, kr = s["name_key"].codes[left], s["name_key"].codes[right]
        ll, lr = s["local_name"].codes[left], s["local_name"].codes[right]
        present = ((kl >= 0) & (kr >= 0)) | ((ll >= 0) & (lr >= 0))
        exact = same_code(kl, kr) | same_code(ll, lr)
        out = np.where(exact, 6, np.where(present, 1, MISSING)).astype(np.int8)
        # Exact names are settled; the rest are scored once per pair of distinct name-part sets (the
        # level is symmetric): at scale most pairs repeat one, e.g. a person's records in four sources.
        todo = np.nonzero(present & ~exact)[0]
        code, parts = self.parts(data)
        a, b = code[left[todo]], code[right[todo]]
        width = np.int64(len(parts))
        unique, inverse = distinct(np.minimum(a, b).astype(np.int64) * width + np.maximum(a, b))
        out[todo] = self.part_levels(s["family_name"].values, parts[unique // width], parts[unique % width])[inverse]
        return out

    def parts(self, data: RecordArrays) -> tuple[np.ndarray, np.ndarray]:
        """Per record, a code for its (family, given, family phonetic, given phonetic) name codes, and
        per such code the four as a row. Computed once per set of records."""
        s = data.strings
        columns = [s[c].codes for c in ("family_name", "given_name", "family_phonetic", "given_phonetic")]
        if not self._parts or self._parts[0] is not columns[0]:
            code = np.zeros(len(columns[0]), dtype=np.int64)
            for column in columns:
                _, code = distinct(code.astype(np.int64) * (int(column.max(initial=-1)) + 2) + column + 1)
            rows = np.empty((int(code.max(initial=-1)) + 1, len(columns)), dtype=np.int32)
            rows[code] = np.stack(columns, axis=1)
            self._parts = (columns[0], code, rows)
        return self._parts[1], self._parts[2]

    def part_levels(self, names: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Levels of pairs of different names, each side a row of `parts` (family, given and their
        phonetic codes; family and given names share the dictionary `names`)."""
        fl, gl, pl_, ql = a.T
        fr, gr, pr, qr = b.T
        # The four part-by-part scores (straight and swapped) in one pass over distinct value pairs.
        k = len(a)
        both_scores = scores(np.concatenate([fl, gl, fl, gl]), np.concatenate([fr, gr, gr, fr]), names, names,
                             JaroWinkler.normalized_similarity, 0.0, same=1.0)
        ff, gg, fg, gf = (both_scores[i * k:(i + 1) * k] for i in range(4))
        # Where one side has a single name part only, that part alone decides.
        one_part = ~((fl >= 0) & (fr >= 0) & (gl >= 0) & (gr >= 0))
        straight = np.where(one_part, np.maximum(ff, gg), np.minimum(ff, gg))
        swapped = np.where(one_part, np.maximum(fg, gf), np.minimum(fg, gf))
        score = np.maximum(straight, swapped)
        part = np.maximum.reduce([ff, gg, fg, gf]) >= self.high
        phonetic = (same_code(pl_, pr) & same_code(ql, qr)) | (same_code(pl_, qr) & same_code(ql, pr))
        return select_levels([(5, score >= self.high), (4, score >= self.mid), (3, phonetic), (2, part)],
                             np.ones(k, dtype=bool))

    def term_frequencies(self, data):
        return data.tf("name_key") if self.term_frequency else None


@dataclass
class DateComparison(Comparison):
    """Birth dates: exact, day and month swapped, one digit off (or two adjacent swapped), within a year."""

    term_frequency: bool = True

    def levels(self, data, left, right):
        a, b = data.dob_days[left], data.dob_days[right]
        present = (a != MISSING_DAY) & (b != MISSING_DAY)
        out = np.where(present, np.where(a == b, 5, 1), MISSING).astype(np.int8)
        todo = np.nonzero(present & (a != b))[0]   # the same date settles the pair
        out[todo] = differing_date_levels(a[todo], b[todo], data.dob_digits[left[todo]], data.dob_digits[right[todo]])
        return out

    def term_frequencies(self, data):
        return data.dob_tf() if self.term_frequency else None


def differing_date_levels(a: np.ndarray, b: np.ndarray, da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Levels of two different birth dates (days since 1970, and their YYYYMMDD digits): day and
    month swapped 4, one digit off or two adjacent digits swapped 3, within a year 2, else 1."""
    diff = da != db
    ndiff = diff.sum(axis=1)
    transposed = np.zeros(len(a), dtype=bool)
    for i in range(7):
        transposed |= (diff[:, i] & diff[:, i + 1] & (da[:, i] == db[:, i + 1]) & (da[:, i + 1] == db[:, i]))
    typo = (ndiff == 1) | ((ndiff == 2) & transposed)
    month_a, day_a = da[:, 4] * 10 + da[:, 5], da[:, 6] * 10 + da[:, 7]
    month_b, day_b = db[:, 4] * 10 + db[:, 5], db[:, 6] * 10 + db[:, 7]
    same_year = (da[:, :4] == db[:, :4]).all(axis=1)
    swapped = same_year & (month_a == day_b) & (day_a == month_b) & (month_a != day_a)
    near = np.abs(a.astype(np.int64) - b.astype(np.int64)) <= 365
    return select_levels([(4, swapped), (3, typo), (2, near)], np.ones(len(a), dtype=bool))


@dataclass
class DocumentComparison(Comparison):
    """All document numbers of a record as one set: shared, one edit apart, two valid resident IDs
    that differ, other documents of the same kind that differ. Different kinds are not comparable."""

    _ends: dict = field(default_factory=dict, repr=False, compare=False)

    def levels(self, data, left, right):
        slots = list(data.docs.values())
        a = [coded.codes[left] for coded in slots]
        b = [coded.codes[right] for coded in slots]
        shared = np.zeros(len(left), dtype=bool)
        for x in a:
            for y in b:
                shared |= same_code(x, y)
        comparable = np.zeros(len(left), dtype=bool)
        one_edit = np.zeros(len(left), dtype=bool)
        for coded, x, y in zip(slots, a, b):
            same_kind = (x >= 0) & (y >= 0)
            comparable |= same_kind
            todo = np.nonzero(same_kind & ~shared)[0]  # a shared number settles the pair
            head, tail, short = self.ends(coded)
            xa, yb = x[todo], y[todo]
            todo = todo[(head[xa] == head[yb]) | (tail[xa] == tail[yb]) | short[xa] | short[yb]]
            if len(todo):
                distance = similarity(coded, left[todo], coded, right[todo], OSA.distance, missing=99)
                one_edit[todo] |= distance <= 1
        ids = data.docs["id_any"]
        conflict = data.id_valid[left] & data.id_valid[right] & ~equal(ids, left, ids, right)
        present = comparable | shared
        return select_levels([(4, shared), (3, one_edit), (2, conflict)], present)

    def ends(self, coded: Coded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per value: hashes of its first and its last 4 characters, and whether it is shorter than 9.

        Two numbers one edit apart (substitution, insertion, deletion, adjacent swap), both at
        least 9 long, keep their first 4 or their last 4 characters: only such pairs, and short
        numbers, need the edit distance."""
        key = id(coded.values)
        if key not in self._ends:
            values = pl.Series(coded.values, dtype=pl.String)
            self._ends[key] = (values.str.slice(0, 4).hash().to_numpy(), values.str.slice(-4).hash().to_numpy(),
                               (values.str.len_chars() < 9).to_numpy())
        return self._ends[key]


@dataclass
class PhoneComparison(Comparison):
    """E.164 numbers: exact, the same last 8 digits (a different country prefix), different."""

    _tail: Coded | None = None

    def levels(self, data, left, right):
        phone = data.strings["phone"]
        if self._tail is None or len(self._tail.codes) != len(phone.codes):
            self._tail = _tails(phone)
        a, b = phone.codes[left], phone.codes[right]
        present = (a >= 0) & (b >= 0)
        tail = self._tail.codes
        return select_levels([(3, a == b), (2, tail[left] == tail[right])], present)


def _tails(phone: Coded) -> Coded:
    """The phone column re-coded by the last 8 digits of each number."""
    tails = pl.Series(phone.values, dtype=pl.String).str.slice(-8)
    index = tails.rank("dense").to_numpy().astype(np.int32) - 1 if len(tails) else np.zeros(0, dtype=np.int32)
    codes = np.where(phone.codes >= 0, index[np.maximum(phone.codes, 0)] if len(index) else -1, -1).astype(np.int32)
    return Coded(codes, np.asarray(tails.unique().sort().to_list(), dtype=object))


@dataclass
class ExactComparison(Comparison):
    column: Coded | None = None

    def levels(self, data, left, right):
        a, b = self.column.codes[left], self.column.codes[right]
        present = (a >= 0) & (b >= 0)
        return select_levels([(2, a == b)], present)


@dataclass
class CodeComparison(Comparison):
    """Codes and identifiers: exact, one edit (or one transposition) apart, different."""

    column: Coded | None = None

    def levels(self, data, left, right):
        present = both(self.column, left, right)
        distance = similarity(self.column, left, self.column, right, OSA.distance, missing=99, same=0)
        return select_levels([(3, distance == 0), (2, distance <= 1)], present)


@dataclass
class TextComparison(Comparison):
    """Free text (addresses, employers): exact, token-sorted similarity above high / mid, different."""

    column: Coded | None = None
    high: float = 0.92
    mid: float = 0.8

    def levels(self, data, left, right):
        present = both(self.column, left, right)
        score = similarity(self.column, left, self.column, right, fuzz.token_sort_ratio, missing=0, same=100) / 100.0
        return select_levels([(4, equal(self.column, left, self.column, right)), (3, score >= self.high),
                              (2, score >= self.mid)], present)


LABELS = {
    "name": ("missing", "different", "one part agrees", "phonetic", "similar", "close", "exact"),
    "date": ("missing", "different", "within a year", "one digit off", "day/month swapped", "exact"),
    "documents": ("missing", "different", "resident IDs differ", "one edit apart", "shared"),
    "phone": ("missing", "different", "same last 8 digits", "exact"),
    "exact": ("missing", "different", "exact"),
    "code": ("missing", "different", "one edit apart", "exact"),
    "text": ("missing", "different", "similar", "close", "exact"),
}
DEFAULT_KINDS = {
    "name": "name", "dob": "date", "documents": "documents", "sex": "exact", "nationality": "exact",
    "phone": "phone", "email": "exact", "address": "text", "district": "exact", "employer": "text",
}


def _column(data: RecordArrays, field: str, key: str, lenient: bool = False) -> Coded:
    if field.startswith("extra."):
        if field[6:] in data.extras:
            return data.extras[field[6:]]
        if lenient:  # explaining two records that lack an extra field the model compares
            return Coded(np.full(data.n, -1, dtype=np.int32), np.array([], dtype=object))
    elif field in data.strings:
        return data.strings[field]
    valid = ", ".join([c for c in STRING_COLUMNS] + [f"extra.{e}" for e in data.extras])
    raise ConfigError(f"model.toml: comparison '{key}' uses unknown field '{field}'; fields: {valid}")


def _has_data(data: RecordArrays, name: str) -> bool:
    if name == "name":
        return bool((data.strings["name_key"].codes >= 0).any() or (data.strings["local_name"].codes >= 0).any())
    if name == "dob":
        return bool((data.dob_days != MISSING_DAY).any())
    if name == "documents":
        return any(bool((c.codes >= 0).any()) for c in data.docs.values())
    return bool((data.strings[name].codes >= 0).any())


def build_comparisons(config: ModelConfig, data: RecordArrays, names: list[str] | None = None) -> list[Comparison]:
    """The default comparison for every field that has data, overridden by model.toml.

    With `names` (a trained model's comparisons), exactly those, in that order, whatever data
    the given records hold.
    """
    specs: dict[str, ComparisonConfig | None] = {}
    for name, kind in DEFAULT_KINDS.items():
        if (names is not None and name in names) or (names is None and _has_data(data, name)):
            specs[name] = ComparisonConfig(kind=kind, field=None if kind in ("name", "date", "documents") else name)
    extras = [n[6:] for n in names if n.startswith("extra.")] if names is not None else list(data.extras)
    for extra in extras:
        specs[f"extra.{extra}"] = ComparisonConfig(kind="code", field=f"extra.{extra}")
    for name, override in config.comparisons.items():
        if override is False:
            specs.pop(name, None)
            continue
        if override.field is None and name not in specs and override.kind not in ("name", "date", "documents"):
            raise ConfigError(f"model.toml: comparison '{name}' is not a default one; give it a 'field'")
        base = specs.get(name)
        field = override.field or (base.field if base else name)
        specs[name] = ComparisonConfig(kind=override.kind, field=field, thresholds=override.thresholds,
                                       term_frequency=override.term_frequency)
    if names is not None:
        specs = {name: specs[name] for name in names if name in specs}
    comparisons = [_make(name, spec, data, lenient=names is not None) for name, spec in specs.items()]
    if not comparisons:
        raise ConfigError("model.toml: no comparisons left; the sources map no comparable field")
    return comparisons


def _make(name: str, spec: ComparisonConfig, data: RecordArrays, lenient: bool = False) -> Comparison:
    labels = LABELS[spec.kind]
    thresholds = sorted(spec.thresholds or [], reverse=True)
    if spec.kind == "name":
        hi, mid = (thresholds + [0.95, 0.88])[:2] if len(thresholds) != 1 else (thresholds[0], thresholds[0])
        tf = True if spec.term_frequency is None else spec.term_frequency
        return NameComparison(name, labels, 6 if tf else None, high=hi, mid=mid, term_frequency=tf)
    if spec.kind == "date":
        tf = True if spec.term_frequency is None else spec.term_frequency
        return DateComparison(name, labels, 5 if tf else None, term_frequency=tf)
    if spec.kind == "documents":
        return DocumentComparison(name, labels)
    if spec.kind == "phone":
        return PhoneComparison(name, labels)
    column = _column(data, spec.field or name, name, lenient)
    if spec.kind == "exact":
        return ExactComparison(name, labels, column=column)
    if spec.kind == "code":
        return CodeComparison(name, labels, column=column)
    hi, mid = (thresholds + [0.92, 0.8])[:2] if len(thresholds) != 1 else (thresholds[0], thresholds[0])
    return TextComparison(name, labels, column=column, high=hi, mid=mid)


def comparison_levels(comparisons: list[Comparison], data: RecordArrays, left: np.ndarray,
                      right: np.ndarray) -> np.ndarray:
    """(pairs, comparisons) int8 matrix of levels."""
    out = np.empty((len(left), len(comparisons)), dtype=np.int8)
    for j, comparison in enumerate(comparisons):
        out[:, j] = comparison.levels(data, left, right)
    return out


def levels_in_batches(comparisons: list[Comparison], data: RecordArrays, left: np.ndarray,
                      right: np.ndarray, then: Callable[[slice, np.ndarray], None] | None = None) -> np.ndarray:
    """The level matrix, batches compared on two threads (numpy and rapidfuzz release the GIL);
    `then(rows, levels)` runs on each finished batch in its thread."""
    out = np.empty((len(left), len(comparisons)), dtype=np.int8)

    def batch(start: int) -> None:
        rows = slice(start, start + BATCH_PAIRS)
        out[rows] = comparison_levels(comparisons, data, left[rows], right[rows])
        if then is not None:
            then(rows, out[rows])

    with ThreadPoolExecutor(COMPARE_THREADS) as pool:
        list(pool.map(batch, range(0, len(left), BATCH_PAIRS)))
    return out

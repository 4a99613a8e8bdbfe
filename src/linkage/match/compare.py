"""Comparisons: for pairs of records (two arrays of record ids) the agreement level of each field.

Pure and vectorized: every function takes the record arrays and index arrays and returns an
int8 level per pair, computed with numpy and rapidfuzz `process.cpdist` over distinct value
pairs, never a Python loop per pair. Level 0 is always "missing" (either side has no value):
it is neutral in the model, never counted as disagreement.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import phonenumbers
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler

from ..config import ComparisonConfig, ModelConfig
from ..errors import ConfigError
from ..standardize.romanization import readings, syllables
from .prepare import MISSING_DAY, STRING_COLUMNS, Coded, RecordArrays, date_digits, value_frequencies

MISSING = 0
BATCH_PAIRS = 1_000_000
COMPARE_THREADS = 2


def similarity(coded_a: Coded, left: np.ndarray, coded_b: Coded, right: np.ndarray, scorer,
               missing: float = np.nan, same: float | None = None, cutoff: float | None = None) -> np.ndarray:
    """scorer(a[left], b[right]) per pair (float32), computed once per distinct pair of values.

    With `same` (the scorer's value for two equal strings; both columns must then share a
    dictionary), pairs holding the same value take it without being scored. With `cutoff`, a
    similarity below it may come back as 0 (a distance above it as cutoff + 1): rapidfuzz stops
    early, and no level here looks below its lowest threshold.
    """
    return scores(coded_a.codes[left], coded_b.codes[right], coded_a.values, coded_b.values, scorer, missing, same,
                  cutoff)


def scores(ca: np.ndarray, cb: np.ndarray, values_a: np.ndarray, values_b: np.ndarray, scorer,
           missing: float = np.nan, same: float | None = None, cutoff: float | None = None) -> np.ndarray:
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
    extra = {} if cutoff is None else {"score_cutoff": cutoff}
    result = process.cpdist(values_a[unique // width], values_b[unique % width], scorer=scorer, workers=-1, **extra)
    out[valid] = result.astype(np.float32)[inverse]
    return out


def _pick(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """values[codes] as objects, None where a code is -1."""
    out = np.full(len(codes), None, dtype=object)
    present = codes >= 0
    out[present] = values[codes[present]]
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


def select_levels(conditions: list[tuple[int, np.ndarray]], present: np.ndarray, default: int = 1) -> np.ndarray:
    """The first matching (level, condition) wins; present pairs default to `default`, others 0."""
    out = np.where(present, default, MISSING).astype(np.int8)
    for level, condition in reversed(conditions):
        out[condition & present] = level
    return out


@dataclass
class Comparison:
    """One comparison: its name, level labels (0 = missing) and the level that takes TF adjustment."""

    name: str
    labels: tuple[str, ...]
    tf_level: int | None = None
    kind: str = ""

    def levels(self, data: RecordArrays, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def term_frequencies(self, data: RecordArrays) -> np.ndarray | None:
        return None

    @property
    def tf_slot(self) -> str:
        """The key of this comparison's frequencies in `RecordArrays.frequencies`."""
        return self.name

    def tf_values(self, data: RecordArrays) -> np.ndarray:
        """Per record, the value its term frequency is the frequency of (None: no value), as text."""
        raise NotImplementedError


@dataclass
class NameComparison(Comparison):
    """Order-independent, hanzi/pinyin and transliteration aware full-name comparison.

    Family and given names are compared part by part, straight and swapped, and the better
    orientation counts; both parts must agree for the upper levels, so a shared family name
    alone (siblings, common surnames) is its own, weak level. "Words alike" is a level too: every
    word of one name (two or more) is found in the other, equal, alike, or the same syllable in
    another romanization: a middle name or second family name one source leaves out ("Maria
    Torres" in "Maria Torres Gonzalez"), a typo in one of three words, Wade-Giles or Hong Kong
    Cantonese against pinyin or hanzi (CHAN WING SZE, 陈咏诗).
    """

    high: float = 0.95
    mid: float = 0.88
    term_frequency: bool = True

    def levels(self, data, left, right):
        s = data.strings
        kl, kr = s["name_key"].codes[left], s["name_key"].codes[right]
        ll, lr = s["local_name"].codes[left], s["local_name"].codes[right]
        present = ((kl >= 0) & (kr >= 0)) | ((ll >= 0) & (lr >= 0))
        exact = same_code(kl, kr) | same_code(ll, lr)
        out = np.where(exact, 7, np.where(present, 1, MISSING)).astype(np.int8)
        # Exact names are settled; the rest are scored once per pair of distinct name-part sets (the
        # level is symmetric): at scale most pairs repeat one, e.g. a person's records in four sources.
        todo = np.nonzero(present & ~exact)[0]
        code, parts, keys = self.parts(data)
        a, b = code[left[todo]], code[right[todo]]
        width = np.int64(len(parts))
        unique, inverse = distinct(np.minimum(a, b).astype(np.int64) * width + np.maximum(a, b))
        levels = self.part_levels(s["family_name"].values, parts[unique // width], parts[unique % width])
        weak = np.nonzero(levels <= 2)[0]
        if len(weak):
            ka, kb = keys[unique[weak] // width], keys[unique[weak] % width]
            both_keys = (ka >= 0) & (kb >= 0)
            within = words_within(name_words(data), ka[both_keys], kb[both_keys], self.mid)
            levels[weak[np.nonzero(both_keys)[0][within]]] = 3
        out[todo] = levels[inverse]
        return out

    @staticmethod
    def parts(data: RecordArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per record, a code for its (family, given, family phonetic, given phonetic) name codes;
        per such code the four as a row, and the name key they make. Computed once per set of records."""
        def build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            s = data.strings
            columns = [s[c].codes for c in ("family_name", "given_name", "family_phonetic", "given_phonetic")]
            code = np.zeros(len(columns[0]), dtype=np.int64)
            for column in columns:
                _, code = distinct(code.astype(np.int64) * (int(column.max(initial=-1)) + 2) + column + 1)
            rows = np.empty((int(code.max(initial=-1)) + 1, len(columns)), dtype=np.int32)
            rows[code] = np.stack(columns, axis=1)
            keys = np.full(len(rows), -1, dtype=np.int32)
            keys[code] = s["name_key"].codes
            return code, rows, keys

        return data.derived("name_parts", build)

    def part_levels(self, names: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Levels of pairs of different names, each side a row of `parts` (family, given and their
        phonetic codes; family and given names share the dictionary `names`)."""
        fl, gl, pl_, ql = a.T
        fr, gr, pr, qr = b.T
        # The four part-by-part scores (straight and swapped) in one pass over distinct value pairs.
        k = len(a)
        both_scores = scores(np.concatenate([fl, gl, fl, gl]), np.concatenate([fr, gr, gr, fr]), names, names,
                             JaroWinkler.normalized_similarity, 0.0, same=1.0, cutoff=min(self.mid, self.high))
        ff, gg, fg, gf = (both_scores[i * k:(i + 1) * k] for i in range(4))
        # Where one side has a single name part only, that part alone decides.
        one_part = ~((fl >= 0) & (fr >= 0) & (gl >= 0) & (gr >= 0))
        straight = np.where(one_part, np.maximum(ff, gg), np.minimum(ff, gg))
        swapped = np.where(one_part, np.maximum(fg, gf), np.minimum(fg, gf))
        score = np.maximum(straight, swapped)
        part = np.maximum.reduce([ff, gg, fg, gf]) >= self.high
        phonetic = (same_code(pl_, pr) & same_code(ql, qr)) | (same_code(pl_, qr) & same_code(ql, pr))
        return select_levels([(6, score >= self.high), (5, score >= self.mid), (4, phonetic), (2, part)],
                             np.ones(k, dtype=bool))

    def term_frequencies(self, data):
        return data.name_tf() if self.term_frequency else None

    tf_slot = "name_key"

    def tf_values(self, data):
        key, local = data.strings["name_key"], data.strings["local_name"]
        keys = np.char.add("k", key.values.astype(str)) if len(key.values) else key.values
        locals_ = np.char.add("l", local.values.astype(str)) if len(local.values) else local.values
        return np.where(key.codes >= 0, _pick(keys, key.codes), _pick(locals_, local.codes))


@dataclass
class Words:
    """The words of each name key: per key code the offsets of its words and their codes; per word
    code its text, the bit of the word itself (if it is a pinyin syllable) and a bit mask of its
    readings (the pinyin syllables it may write, see standardize/romanization.py); per key the OR
    of its words' bits and masks, and a 64-bit hash signature of its words (for a quick test of
    whether two keys may share a word)."""

    starts: np.ndarray
    counts: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    selves: np.ndarray         # (words, lanes) uint64: the word's own bit
    masks: np.ndarray          # (words, lanes) uint64: its readings' bits (its own included)
    key_selves: np.ndarray     # (keys, lanes) uint64
    key_masks: np.ndarray      # (keys, lanes) uint64
    key_hashes: np.ndarray     # (keys,) uint64: one hashed bit per word

    @staticmethod
    def of(keys: np.ndarray) -> Words:
        split = pl.Series(keys, dtype=pl.String).str.split(" ")
        counts = split.list.len().fill_null(0).to_numpy().astype(np.int64)
        codes, values = _encode_words(split.explode().drop_nulls())
        known = syllables()
        read = [readings(word) & known for word in values.tolist()]
        vocabulary = {syllable: i for i, syllable in enumerate(sorted(set().union(*read)) if read else [])}
        lanes = max((len(vocabulary) + 63) // 64, 1)
        own = np.zeros((len(values), lanes * 64), dtype=bool)
        bits = np.zeros((len(values), lanes * 64), dtype=bool)
        for i, (word, its) in enumerate(zip(values.tolist(), read)):
            bits[i, [vocabulary[x] for x in its]] = True
            if word.lower() in vocabulary:
                own[i, vocabulary[word.lower()]] = True

        def pack(table: np.ndarray) -> np.ndarray:
            if not len(table):
                return np.zeros((0, lanes), dtype=np.uint64)
            return np.ascontiguousarray(np.packbits(table, axis=1, bitorder="little")).view(np.uint64)

        selves, masks = pack(own), pack(bits)
        hashes = np.left_shift(np.uint64(1), (pl.Series(values, dtype=pl.String).hash().to_numpy() % np.uint64(64))
                               .astype(np.uint64)) if len(values) else np.zeros(0, dtype=np.uint64)
        starts = np.cumsum(counts) - counts
        key_selves = np.zeros((len(counts), lanes), dtype=np.uint64)
        key_masks = np.zeros((len(counts), lanes), dtype=np.uint64)
        key_hashes = np.zeros(len(counts), dtype=np.uint64)
        filled = counts > 0
        if filled.any():
            key_selves[filled] = np.bitwise_or.reduceat(selves[codes], starts[filled], axis=0)
            key_masks[filled] = np.bitwise_or.reduceat(masks[codes], starts[filled], axis=0)
            key_hashes[filled] = np.bitwise_or.reduceat(hashes[codes], starts[filled])
        return Words(starts, counts, codes, values, selves, masks, key_selves, key_masks, key_hashes)


def name_words(data: RecordArrays) -> Words:
    return data.derived("name_words", lambda: Words.of(data.strings["name_key"].values))


def _encode_words(words: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    if not len(words):
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=object)
    encoded = pc.dictionary_encode(pa.chunked_array([words.to_arrow()])).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32), \
        np.asarray(encoded.dictionary.to_pylist(), dtype=object)


def words_within(words: Words, ka: np.ndarray, kb: np.ndarray, similar: float) -> np.ndarray:
    """Per pair of name keys: are all the words of one name (two or more) found in the other, each
    equal, a writing of the same syllable in another romanization (pinyin, Wade-Giles, Hong Kong
    Cantonese: bit masks of readings), or alike (Jaro-Winkler >= `similar`; looked at only for
    pairs that share a word exactly)? Vectorized over words: no Python loop per pair."""
    out = np.zeros(len(ka), dtype=bool)
    maybe = np.nonzero(np.minimum(words.counts[ka], words.counts[kb]) >= 2)[0]
    # Pairs whose names share no word (by hash) and no reading at all cannot qualify.
    a, b = ka[maybe], kb[maybe]
    related = (words.key_hashes[a] & words.key_hashes[b]) != 0
    for lane in range(words.key_masks.shape[1]):
        related |= ((words.key_masks[a, lane] & words.key_selves[b, lane]) != 0) \
            | ((words.key_selves[a, lane] & words.key_masks[b, lane]) != 0)
    maybe = maybe[related]
    if not len(maybe):
        return out

    def rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pair index, word code) per word of each pair's name."""
        counts = words.counts[keys[maybe]]
        pair = np.repeat(maybe, counts)
        offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return pair, words.codes[(np.repeat(words.starts[keys[maybe]], counts) + offset).astype(np.int64)]

    found = {}
    for name, own, other in (("a", ka, kb), ("b", kb, ka)):
        pair, word = rows(own)
        # the word writes one of the other name's words, or one of those writes it
        hit = np.zeros(len(pair), dtype=bool)
        partner = other[pair]
        for lane in range(words.masks.shape[1]):
            hit |= ((words.masks[word, lane] & words.key_selves[partner, lane]) != 0) \
                | ((words.selves[word, lane] & words.key_masks[partner, lane]) != 0)
        found[name] = (pair, word, hit)
    # Typos: a word alike (not equal) to one of the other name's, for pairs sharing a word exactly.
    pa_, wa, _ = found["a"]
    pb_, wb, _ = found["b"]
    frame_a = pl.DataFrame({"pair": pa_, "word": wa})
    frame_b = pl.DataFrame({"pair": pb_, "word": wb})
    sharing = frame_a.join(frame_b, on=["pair", "word"], how="semi").select("pair").unique()
    cross = frame_a.join(sharing, on="pair", how="semi").join(frame_b.join(sharing, on="pair", how="semi"),
                                                               on="pair", suffix="_b")
    typo = pl.DataFrame(schema={"pair": pl.Int64, "word": pl.Int32, "side": pl.Utf8})
    if cross.height:
        alike = scores(cross["word"].to_numpy(), cross["word_b"].to_numpy(), words.values, words.values,
                       JaroWinkler.normalized_similarity, 0.0, same=1.0, cutoff=similar) >= similar
        hits = cross.filter(pl.Series(alike))
        typo = pl.concat([hits.select("pair", "word", side=pl.lit("a")),
                          hits.select("pair", word="word_b", side=pl.lit("b"))])
    for name in ("a", "b"):
        pair, word, hit = found[name]
        frame = pl.DataFrame({"pair": pair, "word": word, "hit": hit})
        extra = typo.filter(pl.col("side") == name).select("pair", "word").unique().with_columns(typo=pl.lit(True))
        frame = frame.join(extra, on=["pair", "word"], how="left").with_columns(
            hit=pl.col("hit") | pl.col("typo").fill_null(False))
        complete = frame.group_by("pair").agg(pl.col("hit").all()).filter("hit")["pair"].to_numpy()
        out[complete] = True
    return out


@dataclass
class DateComparison(Comparison):
    """Birth dates: exact, day and month swapped, one digit off (or two adjacent swapped), within a
    year. A record whose resident ID encodes another birth date than its own field holds both, and
    the better of the combinations counts (a typed birth date wrong, the ID right)."""

    term_frequency: bool = True

    def levels(self, data, left, right):
        out = self._levels(data.dob_days, data.dob_days, data, left, right)
        second = data.dob2_days
        if second is not None and (second != MISSING_DAY).any():
            for a, b in ((second, data.dob_days), (data.dob_days, second), (second, second)):
                np.maximum(out, self._levels(a, b, data, left, right), out=out)
        return out

    @staticmethod
    def _levels(days_a, days_b, data, left, right):
        a, b = days_a[left], days_b[right]
        present = (a != MISSING_DAY) & (b != MISSING_DAY)
        out = np.where(present, np.where(a == b, 5, 1), MISSING).astype(np.int8)
        todo = np.nonzero(present & (a != b))[0]   # the same date settles the pair
        if len(todo):
            out[todo] = differing_date_levels(a[todo], b[todo], date_digits(a[todo]), date_digits(b[todo]))
        return out

    def term_frequencies(self, data):
        return data.dob_tf() if self.term_frequency else None

    tf_slot = "dob"

    def tf_values(self, data):
        return np.where(data.dob_days != MISSING_DAY, data.dob_days.astype(str).astype(object), None)


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
    """All document numbers of a record as one set, compared by kind (passport, resident ID, travel
    permit, permanent-residence card): a number shared in any kinds, one edit apart within a kind,
    different within a kind, two valid resident IDs that differ. Numbers of different kinds only are
    not comparable (missing): a passport and a residence card are no contradiction."""

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
        for name, coded, x, y in zip(data.docs, slots, a, b):
            same_kind = (x >= 0) & (y >= 0)
            comparable |= same_kind
            todo = np.nonzero(same_kind & ~shared)[0]  # a shared number settles the pair
            head, tail, short = document_ends(data, name)
            xa, yb = x[todo], y[todo]
            todo = todo[(head[xa] == head[yb]) | (tail[xa] == tail[yb]) | short[xa] | short[yb]]
            if len(todo):
                distance = similarity(coded, left[todo], coded, right[todo], OSA.distance, missing=99, cutoff=1)
                one_edit[todo] |= distance <= 1
        ids = data.docs["id_any"]
        conflict = data.id_valid[left] & data.id_valid[right] & ~equal(ids, left, ids, right)
        present = comparable | shared
        return select_levels([(4, shared), (3, one_edit), (1, conflict)], present, default=2)


def document_ends(data: RecordArrays, slot: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per value of a document slot's dictionary: hashes of its first and its last 4 characters,
    and whether it is shorter than 9 (once per RecordArrays; see `number_ends`)."""
    return data.derived(f"document_ends:{slot}", lambda: number_ends(data.docs[slot].values))


def number_ends(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the first and the last 4 characters of each value, and whether it is shorter than 9.

    Two numbers one edit apart (substitution, insertion, deletion, adjacent swap), both at least 9
    long, keep their first 4 or their last 4 characters: only such pairs, and short numbers, need
    the edit distance."""
    series = pl.Series(values, dtype=pl.String)
    return (series.str.slice(0, 4).hash().to_numpy(), series.str.slice(-4).hash().to_numpy(),
            (series.str.len_chars() < 9).to_numpy())


@dataclass
class PhoneComparison(Comparison):
    """A record's phones as a set (up to three): a verified number (E.164) shared, an unverified one
    (digits as written) shared, the same last 8 digits (a different or missing country prefix),
    national numbers one digit apart (a digit mistyped, dropped, doubled or two swapped), or none
    of them alike."""

    def levels(self, data, left, right):
        phones, tails = list(data.phones.values()), list(data.tails.values())
        if not phones or not len(phones[0].values):
            return np.zeros(len(left), dtype=np.int8)
        verified = data.derived("phone_verified", lambda: np.array(
            [str(v).startswith("+") for v in phones[0].values], dtype=bool) if phones else np.zeros(0, dtype=bool))
        a = [c.codes[left] for c in phones]
        b = [c.codes[right] for c in phones]
        present = (a[0] >= 0) & (b[0] >= 0)       # slots fill from the first
        shared = np.zeros(len(left), dtype=bool)
        shared_verified = np.zeros(len(left), dtype=bool)
        for x in a:
            for y in b:
                same = same_code(x, y)
                shared |= same
                shared_verified |= same & verified[np.maximum(x, 0)]
        tail = np.zeros(len(left), dtype=bool)
        ta = [c.codes[left] for c in tails]
        tb = [c.codes[right] for c in tails]
        for x in ta:
            for y in tb:
                tail |= same_code(x, y)
        one_digit = np.zeros(len(left), dtype=bool)
        national = data.derived("phone_national", lambda: national_numbers(phones[0].values))
        head, end, short = data.derived("phone_national_ends", lambda: number_ends(national))
        for x in a:
            for y in b:
                todo = np.nonzero(present & ~shared & ~tail & ~one_digit & (x >= 0) & (y >= 0))[0]
                xa, yb = x[todo], y[todo]
                todo = todo[(head[xa] == head[yb]) | (end[xa] == end[yb]) | short[xa] | short[yb]]
                if len(todo):
                    distance = scores(x[todo], y[todo], national, national, OSA.distance, missing=99, cutoff=1)
                    one_digit[todo] |= distance <= 1
        return select_levels([(5, shared_verified), (4, shared), (3, tail), (2, one_digit)], present)


def national_numbers(values: np.ndarray) -> np.ndarray:
    """Each phone's national number: a verified one (E.164) without its country calling code
    (calling codes are prefix-free, so at most one matches), an unverified one without leading
    zeros (a trunk prefix)."""
    codes = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    series = pl.Series(values, dtype=pl.String)
    digits = series.str.strip_prefix("+")
    cut = pl.lit(0)
    for n in (3, 2, 1):
        cut = pl.when(pl.col("d").str.slice(0, n).is_in([c for c in codes if len(c) == n])).then(n).otherwise(cut)
    frame = pl.DataFrame({"d": digits, "verified": series.str.starts_with("+")})
    national = frame.select(pl.when(pl.col("verified")).then(pl.col("d").str.slice(cut))
                            .otherwise(pl.col("d").str.strip_chars_start("0")).alias("n"))["n"]
    return national.to_numpy().astype(object)


@dataclass
class ColumnComparison(Comparison):
    """A comparison of one string column; with `term_frequency`, agreement at its top level weighs
    log2(m / frequency of the value), so a common value (a big city's postcode) counts less."""

    column: Coded | None = None
    term_frequency: bool = False
    field: str = ""

    def term_frequencies(self, data):
        if not self.term_frequency:
            return None
        if self.name in data.frequencies:
            return data.frequencies[self.name]
        return data.derived(f"tf:{self.name}", lambda: value_frequencies(self.column))

    def tf_values(self, data):
        return _pick(self.column.values, self.column.codes)


@dataclass
class ExactComparison(ColumnComparison):
    def levels(self, data, left, right):
        a, b = self.column.codes[left], self.column.codes[right]
        present = (a >= 0) & (b >= 0)
        return select_levels([(2, a == b)], present)


@dataclass
class CodeComparison(ColumnComparison):
    """Codes and identifiers: exact, one edit (or one transposition) apart, different."""

    def levels(self, data, left, right):
        present = both(self.column, left, right)
        distance = similarity(self.column, left, self.column, right, OSA.distance, missing=99, same=0, cutoff=1)
        return select_levels([(3, distance == 0), (2, distance <= 1)], present)


@dataclass
class NumberComparison(ColumnComparison):
    """Numbers (a street number, a count): exact, close (one typing edit, or within 5% / 1), different."""

    def levels(self, data, left, right):
        present = both(self.column, left, right)
        values = data.derived(f"numbers:{self.name}", lambda: pl.Series(self.column.values, dtype=pl.String)
                              .str.replace_all(",", "").cast(pl.Float64, strict=False).to_numpy())
        a, b = self.column.codes[left], self.column.codes[right]
        x, y = values[np.maximum(a, 0)], values[np.maximum(b, 0)]
        with np.errstate(invalid="ignore"):
            near = np.abs(x - y) <= np.maximum(1.0, 0.05 * np.maximum(np.abs(x), np.abs(y)))
        distance = similarity(self.column, left, self.column, right, OSA.distance, missing=99, same=0, cutoff=1)
        return select_levels([(3, distance == 0), (2, (distance <= 1) | near)], present)


@dataclass
class TextComparison(ColumnComparison):
    """Free text (addresses, employers): exact, token-sorted similarity above high / mid, different."""

    high: float = 0.92
    mid: float = 0.8

    def levels(self, data, left, right):
        present = both(self.column, left, right)
        score = similarity(self.column, left, self.column, right, fuzz.token_sort_ratio, missing=0, same=100,
                           cutoff=100 * min(self.mid, self.high)) / 100.0
        return select_levels([(4, equal(self.column, left, self.column, right)), (3, score >= self.high),
                              (2, score >= self.mid)], present)


def infer_kind(coded: Coded) -> str:
    """How to compare a field nobody configured, from its distinct values: `number` (digits of
    varying, short length: a street number), `code` (identifiers, codes, short labels: exact or
    one edit), or `text` (several words or long strings: token similarity)."""
    values = pl.Series(coded.values, dtype=pl.String).drop_nulls()
    if not len(values):
        return "code"
    lengths = values.str.len_chars()
    if values.str.contains(r"^\d+$").mean() >= 0.95:
        low, high = lengths.quantile(0.01), lengths.quantile(0.99)
        return "number" if (high - low >= 2 and lengths.median() <= 4) else "code"
    tokens = values.str.split(" ").list.len()
    return "text" if (tokens.mean() >= 1.15 or lengths.median() >= 12) else "code"


LABELS = {
    "name": ("missing", "different", "one part agrees", "words alike", "phonetic", "similar", "close", "exact"),
    "date": ("missing", "different", "within a year", "one digit off", "day/month swapped", "exact"),
    "documents": ("missing", "resident IDs differ", "different", "one edit apart", "shared"),
    "phone": ("missing", "different", "one digit apart", "same last 8 digits", "unverified number shared", "shared"),
    "exact": ("missing", "different", "exact"),
    "code": ("missing", "different", "one edit apart", "exact"),
    "number": ("missing", "different", "close", "exact"),
    "text": ("missing", "different", "similar", "close", "exact"),
}
# What a household or a travel group shares, as opposed to a person's own identifiers.
HOUSEHOLD_COMPARISONS = {"phone", "address", "email", "employer", "district"}
# An extra field is a person's identifier when its distinct values are at least this share of its
# values (a social security number); below, a value many people share (a postcode, a flight).
IDENTIFIER_SHARE = 0.3


def is_identifier(coded: Coded) -> bool:
    """Does an extra field identify a person (few records per value) rather than a group?"""
    present = coded.codes >= 0
    if not present.any():
        return False
    return len(np.unique(coded.codes[present])) >= IDENTIFIER_SHARE * int(present.sum())


def group_comparisons(data: RecordArrays) -> set[str]:
    """Comparisons of what many people share (household fields, and extras that are no identifier):
    a link must not rest on them alone, and blocks keyed on them hold households, not strangers."""
    from .encoded import encoded_groups
    return (HOUSEHOLD_COMPARISONS | {f"extra.{name}" for name, coded in data.extras.items() if not is_identifier(coded)}
            | encoded_groups(data))
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
    if name == "phone":
        return bool(data.phones) and bool((next(iter(data.phones.values())).codes >= 0).any())
    return bool((data.strings[name].codes >= 0).any())


def build_comparisons(config: ModelConfig, data: RecordArrays, names: list[str] | None = None,
                      kinds: dict[str, str] | None = None) -> list[Comparison]:
    """The default comparison for every field that has data, overridden by model.toml. An extra
    field is compared by the kind its values show (`infer_kind`).

    With `names` and `kinds` (a trained model's comparisons), exactly those, in that order and of
    those kinds, whatever data the given records hold.
    """
    specs: dict[str, ComparisonConfig] = {}
    for name, kind in DEFAULT_KINDS.items():
        if (names is not None and name in names) or (names is None and _has_data(data, name)):
            specs[name] = ComparisonConfig(kind=kind, field=None if kind in ("name", "date", "documents") else name)
    extras = [n[6:] for n in names if n.startswith("extra.")] if names is not None else list(data.extras)
    for extra in extras:
        key = f"extra.{extra}"
        kind = (kinds or {}).get(key) or infer_kind(data.extras[extra])
        specs[key] = ComparisonConfig(kind=kind, field=key)
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
    comparisons += _encoded(config, data, names, kinds)
    if not comparisons:
        raise ConfigError("model.toml: no comparisons left; the sources map no comparable field")
    return comparisons


def _encoded(config: ModelConfig, data: RecordArrays, names: list[str] | None,
             kinds: dict[str, str] | None) -> list[Comparison]:
    """The comparisons of encoded records (match/encoded.py): by name with `names`, after the
    plaintext ones; model.toml may turn one off (`"encoded.name" = false`)."""
    from .encoded import comparison_for, encoded_comparisons

    if names is not None:
        return [comparison_for(name, (kinds or {}).get(name, "dice")) for name in names
                if name.startswith("encoded.") and (kinds or {}).get(name) in ("dice", "token", None)]
    return [c for c in encoded_comparisons(data) if config.comparisons.get(c.name, True) is not False]


def comparison_kinds(comparisons: list[Comparison]) -> dict[str, str]:
    """name -> kind of each comparison (stored with a trained model)."""
    return {c.name: c.kind for c in comparisons}


def _make(name: str, spec: ComparisonConfig, data: RecordArrays, lenient: bool = False) -> Comparison:
    labels = LABELS[spec.kind]
    thresholds = sorted(spec.thresholds or [], reverse=True)
    if spec.kind == "name":
        hi, mid = (thresholds + [0.95, 0.88])[:2] if len(thresholds) != 1 else (thresholds[0], thresholds[0])
        tf = True if spec.term_frequency is None else spec.term_frequency
        return NameComparison(name, labels, 7 if tf else None, "name", high=hi, mid=mid, term_frequency=tf)
    if spec.kind == "date":
        tf = True if spec.term_frequency is None else spec.term_frequency
        return DateComparison(name, labels, 5 if tf else None, "date", term_frequency=tf)
    if spec.kind == "documents":
        return DocumentComparison(name, labels, kind="documents")
    if spec.kind == "phone":
        return PhoneComparison(name, labels, kind="phone")
    column = _column(data, spec.field or name, name, lenient)
    tf = bool(spec.term_frequency)
    top = len(labels) - 1
    common = dict(tf_level=top if tf else None, kind=spec.kind, column=column, term_frequency=tf,
                  field=spec.field or name)
    if spec.kind == "exact":
        return ExactComparison(name, labels, **common)
    if spec.kind == "code":
        return CodeComparison(name, labels, **common)
    if spec.kind == "number":
        return NumberComparison(name, labels, **common)
    hi, mid = (thresholds + [0.92, 0.8])[:2] if len(thresholds) != 1 else (thresholds[0], thresholds[0])
    return TextComparison(name, labels, **common, high=hi, mid=mid)


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

"""Match input: the `match_records` table (one integer id per record) and its in-memory arrays.

Strings are dictionary-encoded once (int32 codes into an array of distinct values), so exact
comparisons are integer comparisons and fuzzy ones run once per distinct pair of values.
Documents are sorted into slots by kind (passport, resident ID, travel permit, permanent-residence
card), so numbers are compared within one kind; a record's phones fill up to three slots.
Values derived from the arrays (name-part codes, phone tails, document ends) are computed once
per RecordArrays through `derived`, which is safe to call from the compare threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..sql import quote_ident, quote_literal
from ..workspace import Workspace

MISSING_DAY = np.iinfo(np.int32).min
STRING_COLUMNS = (
    "family_name", "given_name", "local_name", "name_key", "family_phonetic", "given_phonetic",
    "sex", "nationality", "email", "address", "district", "employer",
)
# Columns encoded with one shared dictionary, so a value can be compared across them (swapped names).
SHARED = (("family_name", "given_name"), ("family_phonetic", "given_phonetic"))
# Document slots by kind; a number is compared with numbers of its own kind (and found in any).
DOC_SLOTS = ("passport", "id_any", "permit_no", "pr_card")
PHONE_SLOTS = ("phone_1", "phone_2", "phone_3")
TAIL_SLOTS = ("tail_1", "tail_2", "tail_3")
PHONE_TAIL_DIGITS = 8
# A foreign permanent-residence card: 3 letters + 12 digits (before 2017), or 18 characters from 9.
PR_CARD = "regexp_full_match({x}, '[A-Z]{{3}}[0-9]{{12}}|9[0-9]{{16}}[0-9X]')"


MATCH_COLUMNS = """
    source, record_id, full_name, family_name, given_name, local_name, name_key, family_phonetic,
    given_phonetic, sex, coalesce(dob, id_dob) AS dob,
    CASE WHEN dob IS NOT NULL AND id_dob IS DISTINCT FROM dob THEN id_dob END AS id_dob, nationality, passport, id_number,
    coalesce(id_number, list_filter(doc_numbers, x -> x IS DISTINCT FROM passport
                                                 AND x IS DISTINCT FROM permit_no)[1]) AS id_any,
    permit_no, doc_numbers, phone, coalesce(phones, []::VARCHAR[]) AS phones, email, address, district, employer,
    extra"""
RECORD_NUMBER = "(row_number() OVER (ORDER BY source, record_id) - 1)::INTEGER AS rid"


def match_records_select(where: str = "TRUE", records: str = "records") -> str:
    """One row per record (of `records`: the table, or a join that keeps its columns) with a dense
    integer id; DOB falls back to the one a resident ID encodes."""
    return f"SELECT {RECORD_NUMBER}, {MATCH_COLUMNS} FROM {records} WHERE {where}"


@dataclass
class Coded:
    """A dictionary-encoded string column: codes (-1 = missing) into `values`."""

    codes: np.ndarray
    values: np.ndarray

    def present(self) -> np.ndarray:
        return self.codes >= 0


@dataclass
class RecordArrays:
    n: int
    sources: list[str]
    source: np.ndarray                       # int16 index into `sources`
    strings: dict[str, Coded]
    docs: dict[str, Coded]                   # passport / id_any / permit_no, one shared dictionary
    id_valid: np.ndarray                     # bool: id_any is a checksum-valid resident ID
    dob_days: np.ndarray                     # int32 days since 1970-01-01, MISSING_DAY if none
    dob2_days: np.ndarray | None = None      # a second birth date: the one the record's resident ID encodes
    phones: dict[str, Coded] = field(default_factory=dict)   # phone_1..3, one shared dictionary
    tails: dict[str, Coded] = field(default_factory=dict)    # their last 8 digits, one shared dictionary
    extras: dict[str, Coded] = field(default_factory=dict)
    keys: pa.Table | None = None             # source, record_id per rid (for storing results)
    frequencies: dict[str, np.ndarray] = field(default_factory=dict)  # given, instead of counted here
    encoded: Any = None                      # match/encoded.py's EncodedArrays when records came encoded
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def derived(self, name: str, build: Callable[[], Any]) -> Any:
        """A value computed from these arrays once (`build()`), shared by every caller and thread."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = build()
            return self._derived[name]

    def tf(self, name: str) -> np.ndarray:
        """Per-record relative frequency of the record's own value of a string column (0 = no value)."""
        if name in self.frequencies:
            return self.frequencies[name]
        return value_frequencies(self.strings[name])

    def name_tf(self) -> np.ndarray:
        """Frequency of the record's name: its name key, else its hanzi name (0 = no name at all)."""
        if "name_key" in self.frequencies:
            return self.frequencies["name_key"]
        key, local = self.tf("name_key"), self.tf("local_name")
        return np.where(self.strings["name_key"].codes >= 0, key, local)

    def dob_tf(self) -> np.ndarray:
        if "dob" in self.frequencies:
            return self.frequencies["dob"]
        present = self.dob_days != MISSING_DAY
        out = np.zeros(self.n, dtype=np.float64)
        if present.any():
            days = self.dob_days[present].astype(np.int64)
            days -= days.min()
            out[present] = np.bincount(days)[days] / int(present.sum())
        return out


def value_frequencies(coded: Coded) -> np.ndarray:
    """Per record, the share of records with a value that hold the record's own value (0 = none)."""
    present = coded.codes >= 0
    counts = np.bincount(coded.codes[present], minlength=len(coded.values)).astype(np.float64)
    out = np.zeros(len(coded.codes), dtype=np.float64)
    out[present] = counts[coded.codes[present]] / max(int(present.sum()), 1)
    return out


def prepare(ws: Workspace) -> RecordArrays:
    """Build `match_records` and load it as arrays (raise InputError when there is nothing to match)."""
    build_match_records(ws)
    return load_arrays(ws, "match_records")


def build_match_records(ws: Workspace) -> None:
    ws.run("drop an earlier version's match records", "DROP TABLE IF EXISTS main.match_records")
    # Numbering the narrow (rowid, source, record_id) first spares sorting the wide rows.
    ws.run("number match records",
           f"CREATE OR REPLACE TEMP TABLE match_ids AS SELECT rowid AS record_row, {RECORD_NUMBER} FROM records")
    ws.run("prepare match records", f"""
        CREATE OR REPLACE TEMP TABLE match_records AS
        SELECT i.rid, {MATCH_COLUMNS} FROM records JOIN match_ids i ON records.rowid = i.record_row""")
    ws.run("drop match ids", "DROP TABLE match_ids")


def load_arrays(ws: Workspace, relation: str) -> RecordArrays:
    """Arrays of a relation shaped like `match_records` (the table, or a subquery of it)."""
    return to_arrays(fetch_records(ws, relation))


@dataclass
class Fetched:
    """The columns the arrays are built from, as DuckDB returned them (rows in any order)."""

    table: pa.Table
    extra_names: list[str]
    encoded: bool = False     # some records came encoded (they have no plaintext fields to compare)

    @property
    def sources(self) -> list[str]:
        return sorted(pc.unique(self.table.column("source")).to_pylist())


def fetch_records(ws: Workspace, relation: str, extra_names: list[str] | None = None) -> Fetched:
    """The relation's records as Arrow columns, with an `extra.NAME` column per extra field (those
    its records hold, or `extra_names`)."""
    n = ws.scalar("count match records", f"SELECT count(*) FROM {relation}")
    if not n:
        raise InputError("the workspace holds no records; ingest exports first ('linkage ingest')")
    if extra_names is None:
        extra_names = [r[0] for r in ws.rows(
            "extra field names", f"SELECT DISTINCT unnest(map_keys(extra)) FROM {relation} ORDER BY 1")]
    extra_cols = ", ".join(f"extra[{quote_literal(name)}] AS {quote_ident('extra.' + name)}" for name in extra_names)
    pr = {c: PR_CARD.format(x=c) for c in ("passport", "permit_no")}
    phones = ", ".join(f"phones[{i + 1}] AS {p}" for i, p in enumerate(PHONE_SLOTS))
    # phones are stored as digits (a verified one after a '+'): the last digits are the last characters
    tails = ", ".join(f"right(ltrim(phones[{i + 1}], '+'), {PHONE_TAIL_DIGITS}) AS {t}" for i, t in enumerate(TAIL_SLOTS))
    table = ws.run("load match records", f"""
        SELECT rid, source, record_id, {', '.join(STRING_COLUMNS)},
               CASE WHEN NOT {pr['passport']} THEN passport END AS passport, id_any,
               CASE WHEN NOT {pr['permit_no']} THEN permit_no END AS permit_no,
               CASE WHEN {pr['permit_no']} THEN permit_no WHEN {pr['passport']} THEN passport END AS pr_card,
               {phones}, {tails},
               id_number IS NOT NULL AS id_valid,
               (dob - DATE '1970-01-01')::INTEGER AS dob_days,
               (id_dob - DATE '1970-01-01')::INTEGER AS dob2_days
               {', ' + extra_cols if extra_cols else ''}
        FROM {relation}""").to_arrow_table()
    return Fetched(table, extra_names)


def to_arrays(fetched: Fetched) -> RecordArrays:
    """Dictionary-encoded arrays indexed by rid (pure Arrow and numpy work: no DuckDB).

    Columns are encoded in the order DuckDB returned the rows, then the codes are put in rid order
    (cheaper than reordering the strings). Only which codes are equal matters downstream, never
    their numbers."""
    table, extra_names, n = fetched.table, fetched.extra_names, fetched.table.num_rows
    rid = table.column("rid").to_numpy()
    order = np.argsort(rid) if (np.diff(rid) != 1).any() else None

    def ordered(coded: Coded) -> Coded:
        return coded if order is None else Coded(coded.codes[order], coded.values)

    comparable = [c for c in STRING_COLUMNS if c not in ("district",)] + list(DOC_SLOTS) + list(PHONE_SLOTS)
    if not fetched.encoded and all(table.column(c).null_count == n for c in comparable) \
            and table.column("dob_days").null_count == n:
        raise InputError("no source maps a comparable field (name, birth date, document, phone, email, address); "
                         "add them to [fields] in configs/sources/*.toml")
    sources = fetched.sources
    source = pc.index_in(table.column("source"), value_set=pa.array(sources)).to_numpy(zero_copy_only=False)
    strings = {c: ordered(_encode(table.column(c))) for c in STRING_COLUMNS if not any(c in group for group in SHARED)}
    for group in SHARED:
        strings.update({c: ordered(coded) for c, coded in _encode_shared(table, group, n).items()})
    dob_days = pc.fill_null(table.column("dob_days"), MISSING_DAY).to_numpy().astype(np.int32)
    dob2_days = pc.fill_null(table.column("dob2_days"), MISSING_DAY).to_numpy().astype(np.int32)
    id_valid = table.column("id_valid").to_numpy(zero_copy_only=False).astype(bool)
    keys = table.select(["source", "record_id"])
    if order is not None:
        source, dob_days, dob2_days, id_valid, keys = (source[order], dob_days[order], dob2_days[order],
                                                       id_valid[order], keys.take(order))
    return RecordArrays(
        n=n,
        sources=sources,
        source=source.astype(np.int16),
        strings=strings,
        docs={c: ordered(coded) for c, coded in _encode_shared(table, DOC_SLOTS, n).items()},
        phones={c: ordered(coded) for c, coded in _encode_shared(table, PHONE_SLOTS, n).items()},
        tails={c: ordered(coded) for c, coded in _encode_shared(table, TAIL_SLOTS, n).items()},
        id_valid=id_valid,
        dob_days=dob_days,
        dob2_days=dob2_days,
        extras={name: ordered(_encode(table.column("extra." + name))) for name in extra_names},
        keys=keys,
    )


def _encode(column: pa.ChunkedArray) -> Coded:
    encoded = pc.dictionary_encode(column.cast(pa.string())).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.null_count:
        codes = np.where(encoded.is_valid().to_numpy(zero_copy_only=False), codes, -1)
    values = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    return Coded(codes.astype(np.int32), values)


def _encode_shared(table: pa.Table, columns: tuple[str, ...], n: int) -> dict[str, Coded]:
    joined = _encode(pa.chunked_array([chunk for c in columns for chunk in table.column(c).cast(pa.string()).chunks]))
    return {c: Coded(joined.codes[i * n:(i + 1) * n], joined.values) for i, c in enumerate(columns)}


def date_digits(days: np.ndarray) -> np.ndarray:
    """(n, 8) digits of YYYYMMDD from days since 1970-01-01; -1 where the date is missing.

    Computed once per day of the range the dates span, then looked up per record.
    """
    present = days != MISSING_DAY
    if not present.any():
        return np.full((len(days), 8), -1, dtype=np.int8)
    low, high = int(days[present].min()), int(days[present].max())
    dates = np.arange(low, high + 1).astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    number = years * 10000 + months * 100 + day
    table = ((number[:, None] // (10 ** np.arange(7, -1, -1))[None, :]) % 10).astype(np.int8)
    digits = table[np.where(present, days.astype(np.int64) - low, 0)]
    digits[~present] = -1
    return digits

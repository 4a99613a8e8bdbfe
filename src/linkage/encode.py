"""Bloom-filter encodings of quasi-identifiers, for linkage without plaintext (privacy-preserving
record linkage).

Owns the encoding itself (pure functions over standardized records, the same values `mapping.py`
gives a plaintext ingest): the key (env `LINKAGE_BLOOM_KEY` or an owner-only file named by
`LINKAGE_BLOOM_KEY_FILE`) and the per-field and per-token keys derived from it with HMAC-SHA256;
field-level Bloom filters of q-grams, k positions per q-gram by keyed double hashing, hardened by
XOR-folding; keyed HMAC tokens of exact identifiers and of the blocking keys; and the encoded file
(`linkage encode`): Parquet with the record id, the columns the source's events need verbatim, the
filters and tokens, and metadata naming the version, parameters and a key check (never the key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

from .config import SourceConfig
from .errors import InputError

VERSION = 1
META_KEY = b"linkage.encoding"
KEY_ENV = "LINKAGE_BLOOM_KEY"
KEY_FILE_ENV = "LINKAGE_BLOOM_KEY_FILE"
MIN_KEY_BYTES = 16
TOKEN_HEX = 16          # 64-bit tokens: collisions negligible at any realistic record count
CHUNK = 65_536          # records encoded at a time (bounds the (records, bits) work matrix)

# Filters: name, local_name, dob, doc.passport / doc.id / doc.permit, phone, email, address,
# employer, extra.NAME. Tokens: see encode_records; a low-entropy value (sex, birth year) never
# travels as a blocking token of its own, only combined with a name or a date.
SALTS = ("none", "sex", "birth_year")


@dataclass(frozen=True)
class Params:
    """Encoding parameters; two sources link only when theirs are equal (and the key is)."""

    bits: int = 1024        # filter length before folding
    hashes: int = 15        # positions per q-gram (k)
    q: int = 2              # q-gram length of text fields
    fold: bool = True       # XOR-fold the filter in half (hardening; the stored length is bits / 2)
    salt: str = "none"      # none | sex | birth_year: name q-grams salted with that field (see README)

    @property
    def stored_bits(self) -> int:
        return self.bits // 2 if self.fold else self.bits

    def to_json(self) -> dict:
        return asdict(self)


DEFAULT = Params()


def load_secret() -> bytes:
    """The shared secret from LINKAGE_BLOOM_KEY or the owner-only file LINKAGE_BLOOM_KEY_FILE."""
    value = os.environ.get(KEY_ENV)
    if value:
        secret = value.encode("utf-8")
    else:
        name = os.environ.get(KEY_FILE_ENV)
        if not name:
            raise InputError(f"no Bloom-filter key: set {KEY_ENV}, or {KEY_FILE_ENV} to a file only its owner can "
                             "read (the same secret at every agency and at the linkage workspace)")
        path = Path(name)
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except OSError as error:
            raise InputError(f"{KEY_FILE_ENV}: cannot read the key file ({error.strerror})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(f"{KEY_FILE_ENV}: the key file is readable by others; make it owner-only (chmod 600)")
        secret = data.strip()
    if len(secret) < MIN_KEY_BYTES:
        raise InputError(f"the Bloom-filter key is shorter than {MIN_KEY_BYTES} bytes; use a long random secret")
    return secret


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"linkage bloom v{VERSION} {purpose}".encode(), hashlib.sha256).digest()


def key_check(secret: bytes) -> str:
    """A short value that tells whether two parties hold the same key without revealing it."""
    return _derive(secret, "key check").hex()[:16]


class Encoder:
    """Filters and tokens under one secret and parameter set (keys and q-gram positions cached)."""

    def __init__(self, secret: bytes, params: Params = DEFAULT):
        self.secret, self.params = secret, params
        self._keys: dict[str, bytes] = {}
        self._positions: dict[tuple[str, str], np.ndarray] = {}

    def key(self, purpose: str) -> bytes:
        if purpose not in self._keys:
            self._keys[purpose] = _derive(self.secret, purpose)
        return self._keys[purpose]

    def positions(self, field: str, gram: str) -> np.ndarray:
        """The k filter positions of one q-gram: (h1 + i * h2) mod bits, h1 and h2 from HMAC-SHA256
        of the q-gram under the field's key (keyed double hashing)."""
        cached = self._positions.get((field, gram))
        if cached is None:
            digest = hmac.new(self.key(f"field {field}"), gram.encode("utf-8"), hashlib.sha256).digest()
            h1 = int.from_bytes(digest[:8], "little")
            h2 = int.from_bytes(digest[8:16], "little") | 1
            bits = self.params.bits
            cached = np.array([(h1 + i * h2) % bits for i in range(self.params.hashes)], dtype=np.int64)
            self._positions[(field, gram)] = cached
        return cached

    def filters(self, field: str, grams: pl.Series) -> np.ndarray:
        """(records, stored_bits / 64) uint64 filters from a List[str] series of q-grams per record
        (all zero where a record has none)."""
        n, words = len(grams), self.params.stored_bits // 64
        out = np.zeros((n, words), dtype=np.uint64)
        for start in range(0, n, CHUNK):
            part = grams.slice(start, CHUNK)
            frame = pl.DataFrame({"i": np.arange(len(part)), "g": part}).explode("g").drop_nulls("g")
            if not frame.height:
                continue
            encoded = pa.compute.dictionary_encode(frame.get_column("g").to_arrow()).combine_chunks() \
                if isinstance(frame.get_column("g").to_arrow(), pa.ChunkedArray) \
                else pa.compute.dictionary_encode(frame.get_column("g").to_arrow())
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            values = encoded.dictionary.to_pylist()
            table = np.stack([self.positions(field, v) for v in values]) if values else np.zeros((0, 1), np.int64)
            rows = np.repeat(frame.get_column("i").to_numpy(), self.params.hashes)
            matrix = np.zeros((len(part), self.params.bits), dtype=bool)
            matrix[rows, table[codes].ravel()] = True
            if self.params.fold:
                half = self.params.bits // 2
                matrix = matrix[:, :half] ^ matrix[:, half:]
            out[start:start + len(part)] = np.packbits(matrix, axis=1, bitorder="little").view(np.uint64)
        return out

    def tokens(self, kind: str, values: pl.Series) -> pl.Series:
        """Keyed HMAC tokens of a string (or list of strings) series; nulls stay null."""
        key = self.key(f"token {kind}")
        if values.dtype == pl.List(pl.Utf8):
            flat = values.explode().drop_nulls().unique()
        else:
            flat = values.drop_nulls().unique()
        mapping = {v: hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_HEX] for v in flat.to_list()}
        if values.dtype == pl.List(pl.Utf8):
            return values.list.eval(pl.element().replace_strict(mapping, default=None, return_dtype=pl.Utf8)
                                    .drop_nulls().unique(maintain_order=True))
        return values.replace_strict(mapping, default=None, return_dtype=pl.Utf8)


# ---- q-grams of standardized values (pure) ---------------------------------------------------

def _text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).lower().split())


def word_grams(words: Iterable[str], q: int = 2) -> list[str]:
    """q-grams of each word padded with '_' at both ends (order-free across words)."""
    grams: set[str] = set()
    for word in words:
        padded = f"_{word}_"
        grams.update(padded[i:i + q] for i in range(max(len(padded) - q + 1, 1)))
    return sorted(grams)


def local_grams(name: str) -> list[str]:
    """Characters and character bigrams of a hanzi name (names are two to four characters)."""
    chars = [c for c in name if not c.isspace()]
    return sorted(set(chars) | {a + b for a, b in zip(["_"] + chars, chars + ["_"])})


def date_grams(iso: str) -> list[str]:
    """Year, month, day and each positioned digit of YYYY-MM-DD: one mistyped digit or a swapped
    day and month still share most of them."""
    digits = iso.replace("-", "")
    return [f"y{iso[:4]}", f"m{iso[5:7]}", f"d{iso[8:10]}"] + [f"{i}:{d}" for i, d in enumerate(digits)]


def digit_grams(number: str) -> list[str]:
    """Positioned digits and bigrams of a phone's last 8 digits (one digit apart shares most)."""
    tail = number.lstrip("+")[-8:]
    return [f"{i}:{d}" for i, d in enumerate(tail)] + [f"b{tail[i:i + 2]}" for i in range(len(tail) - 1)]


def _grams(series: pl.Series, fn) -> pl.Series:
    """fn per distinct value -> List[str] series (null where the value is null)."""
    distinct = series.drop_nulls().unique().to_list()
    mapping = {v: fn(v) for v in distinct}
    return series.replace_strict(mapping, default=None, return_dtype=pl.List(pl.Utf8))


def _list_grams(series: pl.Series, fn) -> pl.Series:
    """The union of fn over each record's list of values."""
    index = pl.DataFrame({"i": np.arange(len(series))})
    frame = index.with_columns(v=series).explode("v")
    grams = _grams(frame.get_column("v"), fn)
    found = (frame.with_columns(g=grams).explode("g").group_by("i")
             .agg(pl.col("g").drop_nulls().unique().sort()))
    return index.join(found, on="i", how="left").sort("i").get_column("g")


def _salted(grams: pl.Series, salt: pl.Series | None) -> pl.Series:
    """Each q-gram prefixed with the record's salt value (the same q-gram under another salt sets
    other bits)."""
    if salt is None:
        return grams
    index = pl.DataFrame({"i": np.arange(len(grams))})
    frame = index.with_columns(g=grams, s=salt.cast(pl.Utf8).fill_null(""))
    found = (frame.explode("g").with_columns(g=pl.concat_str("s", pl.lit("|"), "g"))
             .group_by("i").agg(pl.col("g").drop_nulls()))
    return index.join(found, on="i", how="left").sort("i").get_column("g")


def _doc_kinds(records: pl.DataFrame) -> dict[str, pl.Series]:
    """A record's passport, resident ID (or another number that is neither passport nor permit)
    and travel permit, from the standardized columns."""
    n = records.height

    def col(name: str) -> pl.Series:
        return records.get_column(name) if name in records.columns else pl.Series(name, [None] * n, dtype=pl.Utf8)

    frame = pl.DataFrame({"p": col("passport"), "i": col("id_number"), "t": col("permit_no"),
                          "d": records.get_column("doc_numbers") if "doc_numbers" in records.columns
                          else pl.Series("d", [[]] * n, dtype=pl.List(pl.Utf8))})
    other = frame.select(pl.coalesce("i", pl.col("d").list.set_difference(
        pl.concat_list(pl.col("p").fill_null(""), pl.col("t").fill_null(""))).list.first())).to_series()
    return {"passport": frame.get_column("p"), "id": other, "permit": frame.get_column("t")}


def _combined(words: pl.Series, value: pl.Series) -> pl.Series:
    """Per record, each of its words joined with its value ('word|value'); empty when either is missing."""
    index = pl.DataFrame({"i": np.arange(len(words))})
    frame = index.with_columns(w=words, v=value.cast(pl.Utf8)).explode("w")
    found = (frame.filter(pl.col("w").is_not_null() & pl.col("v").is_not_null()).group_by("i")
             .agg(pl.concat_str("w", pl.lit("|"), "v").unique().sort().alias("t")))
    return index.join(found, on="i", how="left").sort("i").get_column("t")


@dataclass
class Encoded:
    """Per record: one filter per field ((records, words) uint64, zero = no value) and tokens."""

    filters: dict[str, np.ndarray]
    tokens: dict[str, pl.Series]     # kind -> List[str] per record (empty list = none)


def encode_records(records: pl.DataFrame, encoder: Encoder, extra_names: list[str]) -> Encoded:
    """Encode standardized records. Columns used: name_key, local_name, family_phonetic,
    given_phonetic, sex, dob (a date; the resident ID's when the row gives none), nationality,
    id_number (checksum-valid resident ID), doc_numbers, phones, email, address, employer and `extra.NAME` per encoded extra field."""
    p = encoder.params
    n = records.height

    def col(name: str, dtype=pl.Utf8) -> pl.Series:
        if name in records.columns:
            return records.get_column(name)
        return pl.Series(name, [None] * n, dtype=dtype)

    name_key, local = col("name_key"), col("local_name")
    dob = col("dob", pl.Date).cast(pl.Utf8)
    salt = {"sex": col("sex"), "birth_year": dob.str.slice(0, 4)}.get(p.salt)
    grams: dict[str, pl.Series] = {
        "name": _salted(_grams(name_key, lambda v: word_grams(_text(v).split(), p.q)), salt),
        "local_name": _salted(_grams(local, local_grams), salt),
        "dob": _grams(dob, date_grams),
        # Documents by kind, as the plaintext comparison compares them (a passport with a passport).
        **{f"doc.{kind}": _grams(values, lambda v: word_grams([v], p.q)) for kind, values in _doc_kinds(records).items()},
        "phone": _list_grams(col("phones", pl.List(pl.Utf8)), digit_grams),
    }
    for field in ("email", "address", "employer"):
        grams[field] = _grams(col(field), lambda v: word_grams(_text(v).split(), p.q))
    for extra in extra_names:
        grams[f"extra.{extra}"] = _grams(col(f"extra.{extra}"), lambda v: word_grams(_text(v).split(), p.q))
    filters = {field: encoder.filters(field, series) for field, series in grams.items()}

    family, given = col("family_phonetic"), col("given_phonetic")
    pair = pl.DataFrame({"f": family, "g": given}).select(
        pl.when(pl.col("f").is_not_null() & pl.col("g").is_not_null())
        .then(pl.concat_str(pl.min_horizontal("f", "g"), pl.max_horizontal("f", "g"), separator=" "))).to_series()
    frame = pl.DataFrame({"dob": dob, "year": dob.str.slice(0, 4), "pair": pair, "f": family, "g": given,
                          "sex": col("sex")})
    plain: dict[str, pl.Series] = {
        "documents": col("doc_numbers", pl.List(pl.Utf8)),
        "phones": col("phones", pl.List(pl.Utf8)).list.eval(pl.element().str.strip_chars_start("+").str.slice(-8)),
        "email": col("email"), "name": name_key, "local_name": local, "dob": dob,
        "dob_phonetic": frame.select(pl.concat_list(pl.concat_str("dob", "f", separator="|"),
                                                    pl.concat_str("dob", "g", separator="|"))
                                     .list.drop_nulls()).to_series(),
        "year_phonetic": frame.select(pl.concat_str("year", "pair", separator="|")).to_series(),
        "dob_sex": frame.select(pl.concat_str("dob", "sex", separator="|")).to_series(),
        "sex": col("sex"), "nationality": col("nationality"),
        "id_number": col("id_number"),    # checksum-valid resident IDs: two different ones are two people
    }
    # Name words combined with a date or an extra field (one word may be mistyped, the other kept):
    # a combination is nearly unique per person, so its token's frequency says little.
    # The name with the birth date's two-year window, at two offsets a year apart: two records of
    # one name that share neither window were born more than a year apart (the chain's identity
    # conflict), which no token of a date alone would tell without giving the date's era away.
    days = col("dob", pl.Date).cast(pl.Int32)
    windows = pl.DataFrame({"a": days // 730, "b": (days + 365) // 730}).select(
        pl.concat_list(pl.format("a{}", "a"), pl.format("b{}", "b"))).to_series()
    plain["name_era"] = _combined(windows, name_key)
    words = name_key.str.split(" ")
    plain["dob_word"] = _combined(words, dob)
    plain["year_word"] = _combined(words, dob.str.slice(0, 4))
    for extra in extra_names:
        value = col(f"extra.{extra}").map_elements(_text, return_dtype=pl.Utf8, skip_nulls=True)
        plain[f"extra.{extra}"] = value
        plain[f"word_extra.{extra}"] = _combined(words, value)
        phonetic = pl.DataFrame({"f": family, "g": given}).select(pl.concat_list("f", "g").list.drop_nulls()).to_series()
        plain[f"phonetic_extra.{extra}"] = _combined(phonetic, value)
    tokens = {}
    for kind, values in plain.items():
        if values.dtype != pl.List(pl.Utf8):
            values = values.cast(pl.Utf8).to_frame("v").select(
                pl.when(pl.col("v").is_not_null()).then(pl.concat_list("v")).otherwise(pl.lit([], pl.List(pl.Utf8))))
            values = values.to_series()
        tokens[kind] = encoder.tokens(kind, values.fill_null([]))
    return Encoded(filters, tokens)


# ---- the encoded file -------------------------------------------------------------------------

def plaintext_columns(config: SourceConfig, destinations: Iterable[str] = ()) -> list[str]:
    """The export's columns that travel verbatim: those the events and their `when` conditions
    read (times, places, districts, row types), the `district` field, and the extra fields the
    chain reads (a destination district). No name, date of birth, document or phone column."""
    columns: list[str] = []
    for event in config.events:
        columns += [event.time] + [c for c in (event.place, event.district) if c]
        if event.when is not None:
            columns.append(event.when.column)
    fields = config.fields.mapped()
    if "district" in fields:
        columns.append(fields["district"])
    columns += [config.extra[name] for name in destinations if name in config.extra]
    identifying = {fields[f] for f in ("full_name", "family_name", "given_name", "local_name", "dob", "passport",
                                       "id_number", "permit_no", "doc_no", "phone", "email") if f in fields}
    unsafe = sorted(set(columns) & identifying)
    if unsafe:
        raise InputError(f"column(s) {', '.join(unsafe)} are both an identifier and an event column in the source "
                         "config; an encoding would carry them in plaintext")
    return list(dict.fromkeys(c for c in columns if c != config.record_id))


def encoded_extras(config: SourceConfig, destinations: Iterable[str] = ()) -> list[str]:
    """Extra fields encoded as filters: every extra but those the chain reads in plaintext."""
    keep = set(destinations)
    return [name for name in config.extra if name not in keep]


def metadata(config: SourceConfig, encoder: Encoder, plain: list[str], extras: list[str]) -> dict:
    return {"format": "linkage-bloom", "version": VERSION, "source": config.name,
            "params": encoder.params.to_json(), "key_check": key_check(encoder.secret),
            "plaintext_columns": plain, "extras": extras}


def read_metadata(path: Path) -> dict | None:
    """The encoding metadata of a Parquet file, or None if it is not a linkage encoding."""
    try:
        with Path(path).open("rb") as handle:
            if handle.read(4) != b"PAR1":
                return None
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = meta.get(META_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InputError(f"{Path(path).name}: the linkage encoding metadata is not valid JSON") from None


def encoded_table(row_no: pl.Series, record_id: pl.Series, plain: pl.DataFrame, encoded: Encoded,
                  meta: dict) -> pa.Table:
    """The encoded file's table: row number in the export, record id, plaintext event columns,
    `bf.FIELD` (binary filters, null when the record has no value), `tok.KIND` (lists of tokens)."""
    columns: dict[str, pa.Array] = {"row_no": row_no.to_arrow(), "record_id": record_id.cast(pl.Utf8).to_arrow()}
    for name in plain.columns:
        columns[f"col.{name}"] = plain.get_column(name).cast(pl.Utf8).to_arrow()
    for field, bits in encoded.filters.items():
        present = bits.any(axis=1)
        raw = bits.view(np.uint8).reshape(len(bits), -1)
        columns[f"bf.{field}"] = pa.array([raw[i].tobytes() if present[i] else None for i in range(len(bits))],
                                          type=pa.binary())
    for kind, series in encoded.tokens.items():
        columns[f"tok.{kind}"] = series.to_arrow()
    table = pa.table(columns)
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, ensure_ascii=False).encode("utf-8")})


def check_compatible(meta: dict, file: str, others: list[tuple[str, str]], secret: bytes | None) -> None:
    """An encoded file must be of this version, have the parameters and key of the encodings the
    workspace holds (`others`: (params json, key check)), and of the key given, if one is."""
    if meta.get("format") != "linkage-bloom" or meta.get("version") != VERSION:
        raise InputError(f"{file}: linkage encoding version {meta.get('version')!r} is not supported "
                         f"(this version reads {VERSION}); encode the export again")
    params = json.dumps(meta.get("params"), sort_keys=True)
    for other_params, other_check in others:
        if other_params != params:
            raise InputError(f"{file}: encoded with other parameters than the encoded sources in the workspace; "
                             "every agency must encode with the same linkage version and settings")
        if other_check != meta.get("key_check"):
            raise InputError(f"{file}: encoded with another key than the encoded sources in the workspace")
    if secret is not None and key_check(secret) != meta.get("key_check"):
        raise InputError(f"{file}: encoded with another key than {KEY_ENV} / {KEY_FILE_ENV} holds")


def write_encoded(table: pa.Table, out: Path) -> None:
    """Write atomically (a temp file renamed), owner-only."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise InputError(f"--out {out}: cannot write the encoded file ({error.strerror})") from None


# ---- `linkage encode` ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EncodeResult:
    file: str
    out: str
    rows_read: int
    rows_encoded: int
    rows_rejected: int
    fields: list[str]
    plaintext_columns: list[str]


def encode_export(config: SourceConfig, config_path: Path, path: Path, out: Path, secret: bytes,
                  destinations: Iterable[str] = (), params: Params = DEFAULT) -> EncodeResult:
    """Read and standardize an export exactly as `linkage ingest` does, and write its encoding.

    Rows ingest would reject (no record id, a NUL byte) are left out and counted; the encoded file
    holds only record ids, the plaintext columns the events need, filters and tokens."""
    from .mapping import map_chunk
    from .readers import ROW, read_export

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    if out.resolve() == path.resolve():
        raise InputError("--out names the export itself; write the encoding to another file")
    destinations = list(destinations)
    plain = plaintext_columns(config, destinations)
    extras = encoded_extras(config, destinations)
    encoder = Encoder(secret, params)
    meta = metadata(config, encoder, plain, extras)
    tables, read, rejected = [], 0, 0
    for raw in read_export(path, config, config_path):
        read += raw.frame.height + len(raw.rejects)
        mapped = map_chunk(raw.frame, config, typed_dates=config.format != "csv")
        rejected += len(raw.rejects) + mapped.rejects.height
        records = mapped.records
        if records.height == 0:
            continue
        if extras:
            records = records.with_columns([pl.col("extra").struct.field(e).alias(f"extra.{e}") for e in extras])
        records = records.with_columns(pl.coalesce("dob", "id_dob").alias("dob"))
        encoded = encode_records(records, encoder, extras)
        kept = records.select(pl.col("row_no")).join(
            raw.frame.select([pl.col(ROW).alias("row_no"), *[pl.col(c) for c in plain]]), on="row_no", how="left",
            maintain_order="left")
        tables.append(encoded_table(records.get_column("row_no"), records.get_column("record_id"), kept.drop("row_no"),
                                    encoded, meta))
    if not tables:
        raise InputError(f"{path.name}: no row could be encoded (every row was rejected)")
    table = pa.concat_tables(tables).replace_schema_metadata(tables[0].schema.metadata)
    write_encoded(table, out)
    return EncodeResult(path.name, str(out), read, table.num_rows, rejected, sorted(encoded.filters), plain)


def read_encoded(path: Path) -> Iterable[pl.DataFrame]:
    """The encoded file in chunks of rows, as polars frames."""
    try:
        handle = pq.ParquetFile(path)
        for batch in handle.iter_batches(batch_size=CHUNK):
            yield pl.from_arrow(batch)
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{Path(path).name}: cannot read the encoded file ({type(error).__name__})") from None

"""Mapping a raw chunk onto canonical records and events, standardizing every field.

Owns the per-source translation: configured columns -> canonical fields -> standardized
values (via the pure functions in `standardize/`, applied to distinct values), the routing
of document numbers into one set, the events a row carries, and the value-level issues: a
value that could not be standardized is dropped from the record and reported (kind `value`),
one that fails strict validation but is still evidence is kept in a normalized form and
reported too (kind `note`: a phone number kept as digits, a birth date read with day and month
swapped); the row itself still loads. Row-level problems (a NUL byte, an oversized field, an
empty record id) are returned as rejects.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import polars as pl

from .config import SourceConfig
from .readers import MAX_FIELD_CHARS, ROW
from .standardize import standardize_distinct
from .standardize.countries import other_language_note, to_alpha2, to_alpha3
from .standardize.dates import parse_dates, swapped_formats
from .standardize.ids import (
    classify_document_type,
    guess_document_type,
    normalize_documents,
    parse_resident_ids,
)
from .standardize.names import NAME_FIELDS, standardize_name
from .standardize.phones import normalize_email, phone_numbers_many
from .standardize.sex import to_sex

DOB_EARLIEST = date(1900, 1, 1)
ISSUE_COLUMNS = {"row_no": pl.Int64, "record_id": pl.Utf8, "column_name": pl.Utf8, "value": pl.Utf8, "reason": pl.Utf8,
                 "kind": pl.Utf8}
EVENT_COLUMNS = {"row_no": pl.Int64, "record_id": pl.Utf8, "stage": pl.Utf8, "time": pl.Datetime("us"),
                 "place": pl.Utf8, "district": pl.Utf8}
NAME_COLUMNS = {
    "family": "family_name", "given": "given_name", "local": "local_name", "script": "name_script",
    "key": "name_key", "family_phonetic": "family_phonetic", "given_phonetic": "given_phonetic",
}


@dataclass
class MappedChunk:
    records: pl.DataFrame
    events: pl.DataFrame
    issues: pl.DataFrame      # value-level: the row loaded, this value did not
    rejects: pl.DataFrame     # row-level: the row did not load


def map_chunk(raw: pl.DataFrame, config: SourceConfig, typed_dates: bool) -> MappedChunk:
    """Turn one chunk of configured string columns into standardized records and events."""
    raw, rejects = _reject_rows(raw, config)
    raw = raw.with_columns([_clean_text(pl.col(c)).alias(c) for c in raw.columns if c != ROW])
    fields = config.fields.mapped()
    rid = pl.col(config.record_id)
    base = raw.select(pl.col(ROW).alias("row_no"), rid.alias("record_id"))
    issues: list[pl.DataFrame] = []

    def col(field: str) -> pl.Series | None:
        column = fields.get(field)
        return raw.get_column(column) if column else None

    out: dict[str, pl.Series] = {}
    out.update(_names(raw, config))
    out["full_name"] = _display_name(raw, fields)

    for field, fn in (("sex", to_sex), ("nationality", to_alpha3)):
        out[field] = _apply(col(field), fn, pl.Utf8, base, fields.get(field), issues)
    nationality = col("nationality")
    if nationality is not None:
        text = nationality.cast(pl.Utf8)
        seen = {value: other_language_note(value) for value in text.unique().drop_nulls().to_list()}
        notes = text.replace_strict(seen, default=None, return_dtype=pl.Utf8)   # once per distinct value
        issues.append(_issues(base, fields["nationality"], nationality, notes, kind="note"))

    extra_formats = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"] if typed_dates else []
    dob = col("dob")
    if dob is not None:
        out["dob"] = _birth_dates(dob, config.date_formats("dob") + extra_formats, base, fields["dob"], issues)
    else:
        out["dob"] = _nulls(raw.height, pl.Date).alias("dob")

    out.update(_documents(raw, fields, base, issues))
    phone = col("phone")
    if phone is not None:
        regions = out["nationality"].map_elements(to_alpha2, return_dtype=pl.Utf8, skip_nulls=True)
        phones, reasons, notes = phone_numbers_many(phone, config.phone_region, regions)
        issues.append(_issues(base, fields["phone"], phone, reasons))
        issues.append(_issues(base, fields["phone"], phone, notes, kind="note"))
        out["phone"], out["phones"] = phones.list.first().alias("phone"), phones.alias("phones")
    else:
        out["phone"] = _nulls(raw.height, pl.Utf8)
        out["phones"] = pl.repeat(pl.lit([], dtype=pl.List(pl.Utf8)), raw.height, eager=True)
    out["email"] = _apply(col("email"), normalize_email, pl.Utf8, base, fields.get("email"), issues)
    for field in ("address", "district", "employer"):
        series = col(field)
        out[field] = series if series is not None else _nulls(raw.height, pl.Utf8).alias(field)

    records = pl.concat([base, pl.DataFrame([s.alias(k) for k, s in out.items()])], how="horizontal")
    records = records.with_columns(_extra(raw, config), _notes(records))
    events = _events(raw, config, base, issues, extra_formats)
    issue_frame = pl.concat(issues, how="vertical") if issues else pl.DataFrame(schema=ISSUE_COLUMNS)
    return MappedChunk(records, events, issue_frame.filter(pl.col("reason").is_not_null()), rejects)


# ---- row-level checks --------------------------------------------------------------------

def _reject_rows(raw: pl.DataFrame, config: SourceConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with a NUL byte, an oversized field or no record id do not load; say why."""
    columns = [c for c in raw.columns if c != ROW]
    reasons = []
    for c in columns:
        reasons.append(pl.when(pl.col(c).str.contains("\x00", literal=True))
                       .then(pl.lit(f"NUL byte in column '{c}'")))
        reasons.append(pl.when(pl.col(c).str.len_chars() > MAX_FIELD_CHARS)
                       .then(pl.format(f"column '{c}' holds {{}} characters; the limit is {MAX_FIELD_CHARS}",
                                       pl.col(c).str.len_chars())))
    rid = pl.col(config.record_id)
    reasons.append(pl.when(rid.is_null() | (rid.str.strip_chars() == ""))
                   .then(pl.lit(f"record_id column '{config.record_id}' is empty")))
    flagged = raw.with_columns(pl.coalesce(reasons).alias("reason"))
    bad = flagged.filter(pl.col("reason").is_not_null())
    rejects = bad.select(
        pl.col(ROW).alias("row_no"),
        pl.when(pl.col(config.record_id).str.len_chars() <= 200).then(
            pl.col(config.record_id).str.strip_chars()).alias("record_id"),
        pl.lit(None, dtype=pl.Utf8).alias("column_name"),
        pl.lit(None, dtype=pl.Utf8).alias("value"),
        pl.col("reason"),
    )
    return flagged.filter(pl.col("reason").is_null()).drop("reason"), rejects


def _nulls(n: int, dtype: pl.DataType) -> pl.Series:
    """A column of n nulls (for a field the source does not map), built without a Python list."""
    return pl.repeat(None, n, dtype=dtype, eager=True).alias("")


def _clean_text(expr: pl.Expr) -> pl.Expr:
    """Trim; empty and whitespace-only cells become null."""
    stripped = expr.str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


# ---- fields ----------------------------------------------------------------------------------

def _apply(series: pl.Series | None, fn: Callable[[Any], Any], dtype: pl.DataType, base: pl.DataFrame,
           column: str | None, issues: list[pl.DataFrame]) -> pl.Series:
    """Standardize distinct values with a pure function; failures become value issues."""
    if series is None:
        return _nulls(base.height, dtype)
    values, reasons = standardize_distinct(series, fn, dtype)
    issues.append(_issues(base, column or "", series, reasons))
    return values


def _issues(base: pl.DataFrame, column: str, values: pl.Series, reasons: pl.Series,
            kind: str = "value") -> pl.DataFrame:
    """Rows whose reason is set: `value` = dropped from the record, `note` = kept in normalized form."""
    frame = base.with_columns(
        pl.lit(column, dtype=pl.Utf8).alias("column_name"),
        values.cast(pl.Utf8).alias("value"),
        reasons.cast(pl.Utf8).alias("reason"),
        pl.lit(kind, dtype=pl.Utf8).alias("kind"),
    )
    return frame.filter(pl.col("reason").is_not_null()).select(list(ISSUE_COLUMNS))


SWAPPED_NOTE = "day and month swapped for the declared format; read swapped"


def _birth_dates(values: pl.Series, formats: list[str], base: pl.DataFrame, column: str,
                 issues: list[pl.DataFrame]) -> pl.Series:
    """Birth dates in the declared formats; a value that fails them but reads with day and month
    exchanged is kept, read that way, and noted."""
    latest = date.today()   # nobody is born after the export was written
    parsed, reasons = parse_dates(values, formats, kind="date", earliest=DOB_EARLIEST, latest=latest)
    swapped = swapped_formats(formats)
    if swapped and reasons.is_not_null().any():
        failed = pl.select(pl.when(reasons.is_not_null()).then(values.cast(pl.Utf8))).to_series()
        again, _ = parse_dates(failed, swapped, kind="date", earliest=DOB_EARLIEST, latest=latest)
        recovered = again.is_not_null()
        parsed = parsed.fill_null(again)
        issues.append(_issues(base, column, values, pl.select(pl.when(recovered).then(pl.lit(SWAPPED_NOTE))).to_series(),
                              kind="note"))
        reasons = pl.select(pl.when(~recovered).then(reasons)).to_series()
    issues.append(_issues(base, column, values, reasons))
    return parsed.alias("dob")


def _names(raw: pl.DataFrame, config: SourceConfig) -> dict[str, pl.Series]:
    fields = config.fields.mapped()
    names = ["full_name", "family_name", "given_name", "local_name"]
    parts = [f"in_{p}" for p in names]
    frame = pl.DataFrame({
        f"in_{p}": raw.get_column(fields[p]) if p in fields else _nulls(raw.height, pl.Utf8)
        for p in names
    })
    distinct = frame.unique()
    order = config.name_order
    results = list(zip(*(_standardized_name(*row, order) for row in distinct.iter_rows()), strict=True))
    lookup = distinct.with_columns([
        pl.Series(NAME_COLUMNS[k], results[i] if results else [], dtype=pl.Utf8) for i, k in enumerate(NAME_FIELDS)
    ])
    joined = frame.join(lookup, on=parts, how="left", maintain_order="left", nulls_equal=True)
    return {name: joined.get_column(name) for name in NAME_COLUMNS.values()}


@lru_cache(maxsize=1 << 18)
def _standardized_name(full: str | None, family: str | None, given: str | None, local: str | None,
                       order: str) -> tuple[str | None, ...]:
    """standardize_name's fields in NAME_FIELDS order; cached because the same name comes back in
    later chunks of a file (a traveler's several rows, common names)."""
    result = standardize_name(full, family, given, local, order)
    return tuple(result[k] for k in NAME_FIELDS)


def _display_name(raw: pl.DataFrame, fields: dict[str, str]) -> pl.Series:
    """The name as the source wrote it, for people to read (explain, exports)."""
    candidates = []
    if "full_name" in fields:
        candidates.append(pl.col(fields["full_name"]))
    if "family_name" in fields or "given_name" in fields:
        pieces = [pl.col(fields[p]) for p in ("family_name", "given_name") if p in fields]
        candidates.append(pl.concat_str(pieces, separator=" ", ignore_nulls=True).replace("", None))
    if "local_name" in fields:
        candidates.append(pl.col(fields["local_name"]))
    if not candidates:
        return _nulls(raw.height, pl.Utf8).alias("full_name")
    return raw.select(pl.coalesce(candidates).alias("full_name")).get_column("full_name")


DOC_KINDS = ("passport", "id_number", "permit_no")


def _documents(raw: pl.DataFrame, fields: dict[str, str], base: pl.DataFrame,
               issues: list[pl.DataFrame]) -> dict[str, pl.Series]:
    """Passport, resident ID and permit columns plus a generic doc_no routed by its doc_type."""
    n = raw.height
    empty = _nulls(n, pl.Utf8)
    docs = {k: normalize_documents(raw.get_column(fields[k])) if k in fields else empty for k in DOC_KINDS}
    if "doc_no" in fields:
        number = normalize_documents(raw.get_column(fields["doc_no"]))
        if "doc_type" in fields:
            kind, _ = standardize_distinct(raw.get_column(fields["doc_type"]), classify_document_type, pl.Utf8)
        else:
            kind = empty
        unlabelled = number.filter(kind.is_null() & number.is_not_null())
        guessed, _ = standardize_distinct(unlabelled.unique(), guess_document_type, pl.Utf8)
        guesses = pl.DataFrame({"n": unlabelled.unique(), "g": guessed})
        # A number whose type is neither labelled nor recognisable is kept as a passport-like document.
        kind = pl.DataFrame({"k": kind, "n": number}).join(guesses, on="n", how="left", maintain_order="left").select(
            pl.when(pl.col("n").is_not_null()).then(pl.coalesce("k", "g", pl.lit("passport")))).to_series()
        for k in DOC_KINDS:
            routed = pl.DataFrame({"n": number, "k": kind}).select(
                pl.when(pl.col("k") == k).then(pl.col("n"))).to_series()
            docs[k] = pl.DataFrame({"a": docs[k], "b": routed}).select(pl.coalesce("a", "b")).to_series()

    # Resident IDs: checksum validated; the DOB and sex they encode are kept for cross-checks.
    parsed, reasons = parse_resident_ids(docs["id_number"])
    id_column = fields.get("id_number") or fields.get("doc_no") or "id_number"
    issues.append(_issues(base, id_column, docs["id_number"], reasons))
    unpacked = pl.DataFrame({"p": parsed}).unnest("p")
    doc_numbers = pl.DataFrame({"a": docs["passport"], "b": docs["id_number"], "c": docs["permit_no"]}).select(
        pl.concat_list("a", "b", "c").list.drop_nulls().list.unique(maintain_order=True).alias("doc_numbers")
    ).to_series()
    return {
        "passport": docs["passport"].alias("passport"),
        "id_number": unpacked.get_column("number").alias("id_number"),
        "permit_no": docs["permit_no"].alias("permit_no"),
        "doc_numbers": doc_numbers,
        "id_dob": unpacked.get_column("dob").alias("id_dob"),
        "id_sex": unpacked.get_column("sex").alias("id_sex"),
    }


def _extra(raw: pl.DataFrame, config: SourceConfig) -> pl.Expr:
    """Extra fields as one struct column, a field per configured name (ingest stores it as a MAP)."""
    if not config.extra:
        return pl.lit(None, dtype=pl.Utf8).alias("extra")   # no struct without fields
    values = pl.DataFrame([_nfkc(raw.get_column(column)).alias(name) for name, column in config.extra.items()])
    return pl.lit(values.to_struct("extra"))


def _nfkc(series: pl.Series) -> pl.Series:
    values, _ = standardize_distinct(series, lambda v: " ".join(unicodedata.normalize("NFKC", v).split()) or None, pl.Utf8)
    return values


def _notes(records: pl.DataFrame) -> pl.Expr:
    """Cross-checks kept with the record: a resident ID whose DOB or sex disagrees with the row."""
    dob = pl.col("id_dob").is_not_null() & pl.col("dob").is_not_null() & (pl.col("id_dob") != pl.col("dob"))
    sex = pl.col("id_sex").is_not_null() & pl.col("sex").is_not_null() & (pl.col("id_sex") != pl.col("sex"))
    notes = pl.List(pl.Utf8)   # literal lists per case: far cheaper than building and filtering a list per row
    return (pl.when(dob & sex).then(pl.lit(["id_number_dob_mismatch", "id_number_sex_mismatch"], dtype=notes))
            .when(dob).then(pl.lit(["id_number_dob_mismatch"], dtype=notes))
            .when(sex).then(pl.lit(["id_number_sex_mismatch"], dtype=notes))
            .otherwise(pl.lit([], dtype=notes)).alias("notes"))


# ---- events ----------------------------------------------------------------------------------

def _events(raw: pl.DataFrame, config: SourceConfig, base: pl.DataFrame, issues: list[pl.DataFrame],
            extra_formats: list[str]) -> pl.DataFrame:
    frames = []
    for event in config.events:
        rows = raw
        if event.when is not None:
            rows = raw.filter(pl.col(event.when.column).is_in(event.when.equals))
        times, reasons = parse_dates(rows.get_column(event.time), config.event_formats(event) + extra_formats,
                                     kind="datetime")
        row_base = rows.select(pl.col(ROW).alias("row_no"), pl.col(config.record_id).alias("record_id"))
        issues.append(_issues(row_base, event.time, rows.get_column(event.time), reasons))
        frame = row_base.with_columns(
            pl.lit(event.stage).alias("stage"),
            times.cast(pl.Datetime("us")).alias("time"),
            (rows.get_column(event.place) if event.place else _nulls(rows.height, pl.Utf8)).alias("place"),
            (rows.get_column(event.district) if event.district else _nulls(rows.height, pl.Utf8)).alias("district"),
        )
        frames.append(frame.filter(pl.col("time").is_not_null()))
    if not frames:
        return pl.DataFrame(schema=EVENT_COLUMNS)
    return pl.concat(frames, how="vertical").select(list(EVENT_COLUMNS)).cast(EVENT_COLUMNS)


# ---- encoded files (see encode.py) ----------------------------------------------------------

def map_encoded_chunk(frame: pl.DataFrame, config: SourceConfig, typed_dates: bool) -> MappedChunk:
    """Records and events of a chunk of a linkage encoding: `row_no`, `record_id` and the export's
    plaintext event columns (as `col.NAME`); the records carry no name, date or number (their
    filters and tokens are stored beside them by ingest), only the district and the extra fields
    that travel in plaintext."""
    raw = frame.select(
        pl.col("row_no").cast(pl.Int64).alias(ROW),
        pl.col("record_id").cast(pl.Utf8).alias(config.record_id),
        *[pl.col(c).cast(pl.Utf8).alias(c[4:]) for c in frame.columns if c.startswith("col.")],
    )
    raw, rejects = _reject_rows(raw, config)
    raw = raw.with_columns([_clean_text(pl.col(c)).alias(c) for c in raw.columns if c != ROW])
    fields = config.fields.mapped()
    base = raw.select(pl.col(ROW).alias("row_no"), pl.col(config.record_id).alias("record_id"))
    n = raw.height
    out = {name: _nulls(n, dtype).alias(name) for name, dtype in (
        ("full_name", pl.Utf8), *((c, pl.Utf8) for c in NAME_COLUMNS.values()), ("sex", pl.Utf8), ("dob", pl.Date),
        ("nationality", pl.Utf8), ("passport", pl.Utf8), ("id_number", pl.Utf8), ("permit_no", pl.Utf8),
        ("id_dob", pl.Date), ("id_sex", pl.Utf8), ("phone", pl.Utf8), ("email", pl.Utf8), ("address", pl.Utf8),
        ("employer", pl.Utf8))}
    empty = pl.repeat(pl.lit([], dtype=pl.List(pl.Utf8)), n, eager=True)
    out["doc_numbers"], out["phones"], out["notes"] = empty.alias("doc_numbers"), empty.alias("phones"), empty.alias("notes")
    district = fields.get("district")
    out["district"] = (raw.get_column(district) if district in raw.columns else _nulls(n, pl.Utf8)).alias("district")
    records = pl.concat([base, pl.DataFrame(list(out.values()))], how="horizontal")
    if config.extra:
        # Extra fields the file carries in plaintext keep their values; the encoded ones are empty.
        present = {name: column for name, column in config.extra.items() if column in raw.columns}
        values = pl.DataFrame([(_nfkc(raw.get_column(present[name])) if name in present else _nulls(n, pl.Utf8))
                               .alias(name) for name in config.extra])
        records = records.with_columns(pl.lit(values.to_struct("extra")))
    else:
        records = records.with_columns(pl.lit(None, dtype=pl.Utf8).alias("extra"))
    issues: list[pl.DataFrame] = []
    extra_formats = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"] if typed_dates else []
    events = _events(raw, config, base, issues, extra_formats)
    issue_frame = pl.concat(issues, how="vertical") if issues else pl.DataFrame(schema=ISSUE_COLUMNS)
    return MappedChunk(records, events, issue_frame.filter(pl.col("reason").is_not_null()), rejects)

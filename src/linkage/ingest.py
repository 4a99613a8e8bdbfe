"""Ingest: load exports of one source into the workspace, every row accounted for.

Owns the batch lifecycle: sha256 provenance, the re-ingest no-op and `--replace`, staging
chunks into the workspace, rejecting duplicate record ids within a file, replacing records
that a newer export of the same source carries again, and the batch's counts
(rows read = rows loaded + rows rejected). One call is one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from .config import SourceConfig, sha256_of
from .errors import InputError
from .encode import check_compatible, load_secret, read_encoded, read_metadata
from .mapping import MappedChunk, map_chunk, map_encoded_chunk
from .readers import RawChunk, read_export
from .sql import quote_ident, quote_literal
from .workspace import Workspace

PARALLEL_FROM_BYTES = 8 << 20   # smaller files are mapped in-process (spawning workers costs ~1 s)
RECORD_COLUMNS = [
    "row_no", "record_id", "full_name", "family_name", "given_name", "local_name", "name_script", "name_key",
    "family_phonetic", "given_phonetic", "sex", "dob", "nationality", "passport", "id_number", "permit_no",
    "doc_numbers", "id_dob", "id_sex", "phone", "phones", "email", "address", "district", "employer", "extra", "notes",
]


@dataclass(frozen=True)
class BatchResult:
    file: str
    batch_id: int | None
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    value_issues: int
    records_replaced: int
    events: int
    skipped: bool = False
    note: str = ""
    value_notes: int = 0      # values kept in a normalized form that failed strict validation


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest_files(ws: Workspace, config: SourceConfig, config_path: Path, files: Sequence[Path],
                 replace: bool = False, strict: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> list[BatchResult]:
    """Ingest files of one source in a single transaction; raise InputError on a fatal problem."""
    files = [Path(f) for f in files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"file not found: {', '.join(missing)}")
    if len({f.resolve() for f in files}) != len(files):
        raise InputError("the same file is named twice")
    config_sha = sha256_of(config_path)
    results = []
    with ws.transaction():
        for path in files:
            result = _ingest_one(ws, config, config_path, config_sha, path, replace, progress)
            if strict and result.rows_rejected:
                raise InputError(
                    f"{path}: {result.rows_rejected} row(s) rejected and --strict is set; nothing was loaded "
                    "(see the reasons with a run without --strict, then 'linkage status')"
                )
            results.append(result)
    return results


def _ingest_one(ws: Workspace, config: SourceConfig, config_path: Path, config_sha: str, path: Path,
                replace: bool, progress: Callable[[str, int, int], None] | None) -> BatchResult:
    sha = file_sha256(path)
    previous = ws.rows("find previous batch",
                       "SELECT batch_id, started_at FROM batches WHERE source = ? AND file_sha256 = ? "
                       "AND finished_at IS NOT NULL ORDER BY batch_id",
                       [config.name, sha])
    if previous and not replace:
        batch_id, when = previous[-1]
        return BatchResult(path.name, batch_id, 0, 0, 0, 0, 0, 0, skipped=True,
                           note=f"already ingested as batch {batch_id} on {when:%Y-%m-%d %H:%M}; "
                                "--replace reloads it")
    for batch_id, _ in previous:
        _drop_batch(ws, batch_id)

    encoding = read_metadata(path)
    if encoding is not None:
        _check_encoding(ws, config, path, encoding)
    batch_id = ws.scalar("next batch id", "SELECT nextval('batch_ids')")
    ws.run("open batch",
           "INSERT INTO batches (batch_id, source, file_name, file_sha256, config_sha256, file_format, started_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)",
           [batch_id, config.name, path.name, sha, config_sha, config.format, datetime.now()])
    total = path.stat().st_size
    report = (lambda done: progress(path.name, done, total)) if progress else None
    rows_read = 0
    workers = _workers() if total >= PARALLEL_FROM_BYTES else 0
    # While worker processes map chunks on the other cores, more DuckDB threads would only compete.
    # A chunk is stored in a thread while the next one is read and mapped: DuckDB releases the GIL.
    if encoding is not None:
        ws.run("record the encoding", "INSERT INTO encodings (batch_id, source, version, params, key_check) "
               "VALUES (?, ?, ?, ?, ?)", [batch_id, config.name, encoding["version"],
                                          json.dumps(encoding["params"], sort_keys=True), encoding["key_check"]])
        workers = 0
    chunks = (_encoded_chunks(path, config) if encoding is not None
              else _mapped_chunks(read_export(path, config, config_path, report), config, workers))
    with ws.threads(1) if workers else contextlib.nullcontext(), ThreadPoolExecutor(max_workers=1) as storer:
        stored: Future | None = None
        for raw, mapped in chunks:
            rows_read += (raw.frame.height + len(raw.rejects)) if encoding is None else \
                mapped.records.height + mapped.rejects.height
            if stored is not None:
                stored.result()
            stored = storer.submit(_store_chunk, ws, config, path, batch_id, raw, mapped)
        if stored is not None:
            stored.result()
    return _close_batch(ws, config, path, batch_id, rows_read)


def _check_encoding(ws: Workspace, config: SourceConfig, path: Path, encoding: dict) -> None:
    """An encoded file must be this source's, carry the columns its events need, and have the
    version, parameters and key of the other encodings in the workspace (and of the key given)."""
    if encoding.get("source") != config.name:
        raise InputError(f"{path.name}: this is an encoding of source '{encoding.get('source')}', "
                         f"not of '{config.name}'")
    others = [(p, k) for p, k in ws.rows("encodings in the workspace",
                                         "SELECT DISTINCT params, key_check FROM encodings")]
    secret = load_secret() if (os.environ.get("LINKAGE_BLOOM_KEY") or os.environ.get("LINKAGE_BLOOM_KEY_FILE")) else None
    check_compatible(encoding, path.name, others, secret)
    from .encode import plaintext_columns
    have = set(encoding.get("plaintext_columns") or [])
    needed = [c for c in plaintext_columns(config) if c not in have]
    if needed:
        raise InputError(f"{path.name}: the encoding lacks column(s) {', '.join(needed)}, which the events of "
                         f"source '{config.name}' read; encode the export again with this source config")


def _encoded_chunks(path: Path, config: SourceConfig) -> Iterator[tuple[RawChunk, MappedChunk]]:
    for frame in read_encoded(path):
        mapped = map_encoded_chunk(frame, config, typed_dates=config.format != "csv")
        codes = frame.select(["row_no"] + [c for c in frame.columns if c.startswith(("bf.", "tok."))])
        mapped.records = mapped.records.join(codes, on="row_no", how="left", maintain_order="left")
        yield RawChunk(frame.head(0)), mapped   # rows read are counted from `mapped` (records + rejects)


def _workers() -> int:
    """LINKAGE_WORKERS, else one per core beside this process's, which reads and stores: with fewer
    than two, a spawned worker (which imports everything and builds its tables anew) costs more than
    it gains (measured on 2 cores: 14.8 s in-process against 17.8 s with two workers for the
    generator's 100,000-people exports)."""
    given = os.environ.get("LINKAGE_WORKERS")
    if given is not None:
        return int(given)
    spare = (os.cpu_count() or 1) - 1
    return spare if spare >= 2 else 0


def _map(frame: pl.DataFrame, config: SourceConfig) -> MappedChunk:
    return map_chunk(frame, config, typed_dates=config.format != "csv")


def _map_in_worker(frame: pl.DataFrame, config: SourceConfig) -> list[bytes]:
    """_map for a worker process: the frames go back as Arrow IPC bytes (half the cost of pickling frames)."""
    mapped = _map(frame, config)
    out = []
    for part in (mapped.records, mapped.events, mapped.issues, mapped.rejects):
        buffer = io.BytesIO()
        part.write_ipc(buffer, compression="uncompressed")
        out.append(buffer.getvalue())
    return out


def _from_worker(parts: list[bytes]) -> MappedChunk:
    return MappedChunk(*(pl.read_ipc(io.BytesIO(part)) for part in parts))


def _mapped_chunks(chunks: Iterator[RawChunk], config: SourceConfig, workers: int) -> Iterator[tuple[RawChunk, MappedChunk]]:
    """Map chunks in worker processes while the next ones are read, keeping the file's order.

    Standardization is pure and CPU-bound, so on a large file it runs in `LINKAGE_WORKERS`
    processes (default: one per spare core when there are at least two; 0 maps in this process). Workers are spawned, never
    forked, so no DuckDB or polars thread state is copied into them.
    """
    if workers < 1:
        for raw in chunks:
            yield raw, _map(raw.frame, config)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[tuple[RawChunk, Future]] = deque()
        for raw in chunks:
            pending.append((raw, pool.submit(_map_in_worker, raw.frame, config)))
            if len(pending) > workers:
                done, future = pending.popleft()
                yield done, _from_worker(future.result())
        while pending:
            done, future = pending.popleft()
            yield done, _from_worker(future.result())


def _drop_batch(ws: Workspace, batch_id: int) -> None:
    for table in ("records", "events", "rejects", "encodings", "batches"):
        ws.run(f"replace: drop batch from {table}", f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])


def _store_chunk(ws: Workspace, config: SourceConfig, path: Path, batch_id: int, raw: RawChunk,
                 mapped: MappedChunk) -> None:
    params = [batch_id, config.name]
    if mapped.records.height:
        codes = [c for c in mapped.records.columns if c.startswith(("bf.", "tok."))]
        ws.register("chunk_records", mapped.records.select(RECORD_COLUMNS + codes).to_arrow())
        columns = ", ".join(quote_ident(c) for c in RECORD_COLUMNS if c != "extra")
        encoded = (", bloom, tokens", f", {_code_map(codes, 'bf.')}, {_code_map(codes, 'tok.')}") if codes else ("", "")
        ws.run("stage records",
               f"INSERT INTO records (batch_id, source, {columns}, extra{encoded[0]}) "
               f"SELECT ?, ?, {columns}, {_extra_map(config)}{encoded[1]} FROM chunk_records",
               params)
        ws.unregister("chunk_records")
    if mapped.events.height:
        ws.register("chunk_events", mapped.events.to_arrow())
        ws.run("stage events",
               "INSERT INTO events (batch_id, source, row_no, record_id, stage, time, place, district) "
               "SELECT ?, ?, row_no, record_id, stage, time, place, district FROM chunk_events",
               params)
        ws.unregister("chunk_events")
    structural = pl.DataFrame(
        {
            "row_no": [r.row_no for r in raw.rejects],
            "record_id": [r.record_id for r in raw.rejects],
            "column_name": [r.column for r in raw.rejects],
            "value": [r.value for r in raw.rejects],
            "reason": [r.reason for r in raw.rejects],
        },
        schema={"row_no": pl.Int64, "record_id": pl.Utf8, "column_name": pl.Utf8, "value": pl.Utf8, "reason": pl.Utf8},
    )
    rows = pl.concat([structural, mapped.rejects]).with_columns(kind=pl.lit("row"))
    for frame in (rows, mapped.issues):   # issues are of kind 'value' (dropped) or 'note' (kept normalized)
        if frame.height:
            ws.register("chunk_rejects", frame.to_arrow())
            ws.run("stage rejects",
                   "INSERT INTO rejects (batch_id, source, file_name, row_no, record_id, column_name, value, reason, kind) "
                   "SELECT ?, ?, ?, row_no, record_id, column_name, value, reason, kind FROM chunk_rejects",
                   [batch_id, config.name, path.name])
            ws.unregister("chunk_rejects")


def _code_map(columns: list[str], prefix: str) -> str:
    """SQL for an encoded record's MAP of filters (`bf.`) or tokens (`tok.`), empty ones left out."""
    entries = ", ".join(f"{{'key': {quote_literal(c[len(prefix):])}, 'value': {quote_ident(c)}}}"
                        for c in columns if c.startswith(prefix))
    keep = "e.value IS NOT NULL" if prefix == "bf." else "len(e.value) > 0"
    return f"map_from_entries(list_filter([{entries}], e -> {keep}))"


def _extra_map(config: SourceConfig) -> str:
    """SQL for the records' `extra` MAP from the chunk's struct of extra fields (empty values left out)."""
    entries = ", ".join(f"{{'key': {quote_literal(name)}, 'value': struct_extract(extra, {quote_literal(name)})}}"
                        for name in config.extra)
    if not entries:
        return "MAP {}::MAP(VARCHAR, VARCHAR)"
    return f"map_from_entries(list_filter([{entries}], e -> e.value IS NOT NULL))"


def _close_batch(ws: Workspace, config: SourceConfig, path: Path, batch_id: int, rows_read: int) -> BatchResult:
    """Reject duplicate ids, replace older copies of the same records, count and close the batch."""
    ws.run("reject duplicate record ids", """
        INSERT INTO rejects (batch_id, source, file_name, row_no, record_id, column_name, value, reason, kind)
        SELECT ?, ?, ?, row_no, record_id, NULL, NULL,
               'duplicate record_id; first seen at row ' || first_row, 'row'
        FROM (
            SELECT row_no, record_id, row_number() OVER w AS nth, first_value(row_no) OVER w AS first_row
            FROM records WHERE batch_id = ?
            WINDOW w AS (PARTITION BY record_id ORDER BY row_no)
        ) WHERE nth > 1""", [batch_id, config.name, path.name, batch_id])
    duplicate_rows = """
        SELECT row_no FROM rejects WHERE batch_id = ? AND kind = 'row' AND reason LIKE 'duplicate record_id%'"""
    for table in ("events", "records"):
        ws.run(f"drop duplicate rows from {table}",
               f"DELETE FROM {table} WHERE batch_id = ? AND row_no IN ({duplicate_rows})", [batch_id, batch_id])
    ws.run("drop value issues of rejected rows",
           f"DELETE FROM rejects WHERE batch_id = ? AND kind IN ('value', 'note') AND row_no IN ({duplicate_rows})",
           [batch_id, batch_id])
    replaced = ws.scalar("count replaced records", """
        SELECT count(*) FROM records old
        WHERE old.source = ? AND old.batch_id <> ?
          AND old.record_id IN (SELECT record_id FROM records WHERE batch_id = ?)""",
                         [config.name, batch_id, batch_id])
    if replaced:
        for table in ("events", "records"):
            ws.run(f"replace older copies in {table}", f"""
                DELETE FROM {table} WHERE source = ? AND batch_id <> ?
                  AND record_id IN (SELECT record_id FROM records WHERE batch_id = ?)""",
                   [config.name, batch_id, batch_id])
    loaded, events, rejected, issues, notes = ws.rows("count batch", """
        SELECT (SELECT count(*) FROM records WHERE batch_id = ?),
               (SELECT count(*) FROM events WHERE batch_id = ?),
               (SELECT count(*) FROM rejects WHERE batch_id = ? AND kind = 'row'),
               (SELECT count(*) FROM rejects WHERE batch_id = ? AND kind = 'value'),
               (SELECT count(*) FROM rejects WHERE batch_id = ? AND kind = 'note')""",
                                                      [batch_id] * 5)[0]
    if loaded + rejected != rows_read:
        raise AssertionError(f"{path.name}: {rows_read} rows read but {loaded} loaded + {rejected} rejected")
    ws.run("close batch", """
        UPDATE batches SET rows_read = ?, rows_loaded = ?, rows_rejected = ?, value_issues = ?, value_notes = ?,
               records_replaced = ?, events = ?, finished_at = ? WHERE batch_id = ?""",
           [rows_read, loaded, rejected, issues, notes, replaced, events, datetime.now(), batch_id])
    return BatchResult(path.name, batch_id, rows_read, loaded, rejected, issues, replaced, events,
                       value_notes=notes)

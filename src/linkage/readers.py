"""Reading exports: bytes on disk -> chunks of string columns, every row accounted for.

Owns file formats (CSV, XLSX, Parquet, JSON Lines), encodings, header checks and the
structural rejects (ragged rows, malformed quoting, bad JSON lines). Each chunk is a polars
frame of Utf8 columns holding only the configured columns plus `_row` (the 1-based data-row
number: the first row under the header is row 1). Readers never trust a library's silent
defaults: CSV shapes are checked row by row and encodings are checked before decoding.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import operator
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .config import SourceConfig
from .errors import InputError

ROW = "_row"
CHUNK_ROWS = 100_000
MAX_FIELD_CHARS = 65_536
SNIFF_BYTES = 4 << 20
GB18030_BOM = b"\x84\x31\x95\x33"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class RowReject:
    row_no: int | None
    reason: str
    column: str | None = None
    value: str | None = None
    record_id: str | None = None


@dataclass
class RawChunk:
    frame: pl.DataFrame
    rejects: list[RowReject] = field(default_factory=list)


Progress = Callable[[int], None]


def read_export(path: Path, config: SourceConfig, config_path: Path, progress: Progress | None = None) -> Iterator[RawChunk]:
    """Yield the file's rows in chunks; raise InputError for a problem with the whole file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (expected a header row and data rows)")
    readers = {"csv": _read_csv, "xlsx": _read_xlsx, "parquet": _read_parquet, "jsonl": _read_jsonl}
    yield from readers[config.format](path, config, config_path, progress or (lambda n: None))


def check_columns(path: Path, header: list[str], config: SourceConfig, config_path: Path,
                  first_row: bool = True) -> None:
    """Every column the config names must be in the file; say which are missing and what is there.

    `header` is the file's first row (CSV, XLSX) or its column names (`first_row=False`: Parquet,
    JSON keys). A first row that looks like data (a file without a header row) is not quoted: its
    cells are a traveler's name, document and phone; they go to the error's `values`, which the
    CLI shows only with --show-values on a terminal.
    """
    present = set(header)
    columns = config.columns()
    missing = [(col, key) for col, key in columns.items() if col not in present]
    if not missing:
        return
    what = ", ".join(f"'{col}' (key {key})" for col, key in missing)
    found = len(columns) - len(missing)
    if first_row and (found * 2 < len(columns) or any(_looks_like_value(cell) for cell in header)):
        raise InputError(
            f"{path}: column(s) {what} named in {config_path} are not in the file; its first row looks like "
            f"data, not a header row ({found} of {len(columns)} configured columns found; its {len(header)} "
            "cells are not shown; --show-values on a terminal shows them); add the header row the config expects",
            values=", ".join(header))
    shown = ", ".join(header[:40]) + (" ..." if len(header) > 40 else "")
    raise InputError(
        f"{path}: column(s) {what} named in {config_path} are not in the file; "
        f"columns present: {shown}"
    )


# A cell no column name is made of: a run of 4 digits (a date, a document or phone number), an '@'.
_VALUE_LIKE = re.compile(r"\d{4}|@")


def _looks_like_value(cell: str) -> bool:
    return bool(_VALUE_LIKE.search(cell))


def _checked_header(path: Path, header: list[str], config: SourceConfig, config_path: Path,
                    first_row: bool = True) -> list[str]:
    """The column names, trimmed, checked against the config (first: a first row of data is not
    quoted) and for a name given twice."""
    names = [h.strip().lstrip("\ufeff") for h in header]
    check_columns(path, names, config, config_path, first_row)
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise InputError(f"{path}: the header names column '{name}' twice")
        seen.add(name)
    return names


# ---- CSV -----------------------------------------------------------------------------------

def _check_encoding(path: Path, config: SourceConfig, config_path: Path) -> int:
    """Decode the file's start in the declared encoding; return the number of BOM bytes to skip."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    declared = config.encoding
    if declared in ("gb18030", "gbk"):
        if head.startswith(codecs.BOM_UTF8) or _is_utf8_text(head):
            raise InputError(
                f"{path}: the file is UTF-8 but {config_path} declares encoding = \"{declared}\"; "
                "set encoding = \"utf-8\" (decoding it as GB18030 would give garbled names)"
            )
        return len(GB18030_BOM) if head.startswith(GB18030_BOM) else 0
    # utf-8 declared
    try:
        _decode_prefix(head, "utf-8")
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        hint = ""
        try:
            _decode_prefix(head, "gb18030")
            hint = f"; it decodes as GB18030: set encoding = \"gb18030\" in {config_path}"
        except UnicodeDecodeError:
            pass
        raise InputError(
            f"{path}: not valid UTF-8 at line {line} (byte {exc.start}){hint}"
        ) from None
    return 0


def _decode_prefix(data: bytes, encoding: str) -> str:
    """Decode bytes that may end in the middle of a character."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    return decoder.decode(data, final=False)


def _is_utf8_text(data: bytes) -> bool:
    """True when the bytes hold non-ASCII text that is valid UTF-8 (never true for real GB18030 prose)."""
    if data.isascii():
        return False
    try:
        _decode_prefix(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_csv(path: Path, config: SourceConfig, config_path: Path, progress: Progress) -> Iterator[RawChunk]:
    skip = _check_encoding(path, config, config_path)
    encoding = "gb18030" if config.encoding == "gb18030" else config.python_encoding
    with path.open("rb") as raw:
        raw.read(skip)
        text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
        dialect = {"delimiter": config.delimiter, "quotechar": '"', "doublequote": True, "strict": True}
        reader = csv.reader(text, **dialect)
        try:
            header = _next_csv_row(reader, path, config, config_path)
        except StopIteration:
            raise InputError(f"{path}: the file is empty (expected a header row)") from None
        header = _checked_header(path, header, config, config_path)
        blocks = _CsvBlocks(path, config, config_path, header, dialect)
        line, row_no, chunks = reader.line_num, 0, 0
        while block := _read_lines(text, path, config, config_path, line):
            chunk, row_no, line = blocks.parse(block, text, row_no, line)
            progress(raw.tell())
            chunks += 1
            yield chunk
        if not chunks:
            yield RawChunk(_frame(blocks.wanted, [], []))


def _read_lines(text: io.TextIOWrapper, path: Path, config: SourceConfig, config_path: Path, line: int) -> list[str]:
    """The next CHUNK_ROWS physical lines (line endings kept)."""
    lines: list[str] = []
    try:
        for text_line in text:
            lines.append(text_line)
            if len(lines) >= CHUNK_ROWS:
                break
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: bytes that are not valid {config.encoding} near line {line + len(lines) + 1} "
            f"({exc.reason}); check encoding in {config_path}") from None
    return lines


class _CsvBlocks:
    """Parse a block of physical lines into a chunk, exactly as Python's csv module would.

    Lines without a double quote or NUL are split by the delimiter in polars (the common case,
    and the fast one); a line holding a quote or NUL is parsed on its own with the csv module
    when it is a whole record. From the first line that is not (it may open a multi-line
    record, or be malformed), the rest of the block goes through the csv module, reading on
    into the file as far as the last record needs.
    """

    def __init__(self, path: Path, config: SourceConfig, config_path: Path, header: list[str], dialect: dict):
        self.path, self.config, self.config_path, self.header, self.dialect = path, config, config_path, header, dialect
        self.width = len(header)
        self.wanted = list(config.columns())
        self.indexes = [header.index(col) for col in self.wanted]
        self.pick = operator.itemgetter(*self.indexes)
        self.id_index = header.index(config.record_id) if config.record_id in header else None

    def parse(self, block: list[str], text: io.TextIOWrapper, row_no: int, line: int) -> tuple[RawChunk, int, int]:
        """Return the chunk, the last row number used and the number of physical lines consumed."""
        special: dict[int, list[str]] = {}
        cut = len(block)
        for i, text_line in enumerate(block):
            if '"' in text_line or "\x00" in text_line:
                row = self._whole_record(text_line)
                if row is None:
                    cut = i
                    break
                special[i] = row
        frame, rejects, row_no = self._split(block[:cut], special, row_no, line)
        if cut < len(block):
            slow, slow_rejects, row_no, used = self._csv_module(block[cut:], text, row_no, line + cut)
            frame = pl.concat([frame, slow]) if slow.height else frame
            rejects += slow_rejects
            return RawChunk(frame, rejects), row_no, line + cut + used
        return RawChunk(frame, rejects), row_no, line + len(block)

    def _whole_record(self, text_line: str) -> list[str] | None:
        """The line parsed on its own when it is one whole, well-formed record; else None."""
        try:
            rows = list(csv.reader([text_line], **self.dialect))
        except csv.Error:
            return None
        return rows[0] if len(rows) == 1 else None

    def _split(self, lines: list[str], special: dict[int, list[str]], row_no: int,
               line: int) -> tuple[pl.DataFrame, list[RowReject], int]:
        """Lines that are whole records: split, number, reject ragged ones, keep the configured columns."""
        delimiter = self.config.delimiter
        frame = pl.DataFrame({"text": lines}, schema={"text": pl.Utf8}).with_row_index("i")
        frame = frame.with_columns(
            pl.col("text").str.strip_chars_end("\r\n").str.split(delimiter, inclusive=False).alias("fields"))
        frame = frame.with_columns(
            pl.col("fields").list.len().alias("n"),
            (pl.col("text").str.strip_chars_end("\r\n") == "").alias("blank"),
        )
        if special:
            # Lines holding quotes were parsed by the csv module; their fields replace the split.
            parsed = pl.DataFrame({"i": list(special), "parsed": list(special.values())},
                                  schema={"i": pl.UInt32, "parsed": pl.List(pl.Utf8)})
            frame = frame.join(parsed, on="i", how="left", maintain_order="left").with_columns(
                pl.coalesce("parsed", "fields").alias("fields"))
            frame = frame.with_columns(
                pl.col("fields").list.len().alias("n"),
                pl.when(pl.col("parsed").is_not_null())
                .then((pl.col("parsed").list.len() == 0)
                      | ((pl.col("parsed").list.len() == 1) & (pl.col("parsed").list.first() == "")))
                .otherwise(pl.col("blank")).alias("blank"),
            )
        frame = frame.filter(~pl.col("blank")).with_columns(
            (pl.int_range(1, pl.len() + 1, dtype=pl.Int64) + row_no).alias(ROW))
        row_no += frame.height
        ragged = frame.filter(pl.col("n") != self.width)
        rejects = [
            RowReject(number, f"expected {self.width} fields, found {n} (line {line + i + 1})",
                      record_id=self._record_id(fields))
            for i, number, n, fields in ragged.select("i", ROW, "n", "fields").iter_rows()
        ]
        good = frame.filter(pl.col("n") == self.width)
        out = good.select(
            *[pl.col("fields").list.get(index).alias(col) for col, index in zip(self.wanted, self.indexes, strict=True)],
            pl.col(ROW),
        )
        return out, rejects, row_no

    def _record_id(self, fields: list[str]) -> str | None:
        if self.id_index is None or self.id_index >= len(fields):
            return None
        return fields[self.id_index].strip() or None

    def _csv_module(self, lines: list[str], text: io.TextIOWrapper, row_no: int,
                    line: int) -> tuple[pl.DataFrame, list[RowReject], int, int]:
        """Parse the lines with the csv module, reading on into the file to finish the last record."""
        reader = csv.reader(itertools.chain(lines, text), **self.dialect)
        rows: list = []
        row_numbers: list[int] = []
        rejects: list[RowReject] = []
        before = 0
        while reader.line_num < len(lines):
            before = reader.line_num
            try:
                row = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self.path}: bytes that are not valid {self.config.encoding} near line "
                    f"{line + reader.line_num + 1} ({exc.reason}); check encoding in {self.config_path}") from None
            except csv.Error as exc:
                _raise_if_unterminated(exc, self.path, line + reader.line_num)
                row_no += 1
                rejects.append(RowReject(row_no, f"malformed CSV at line {line + before + 1}: {exc}"))
                continue
            if len(row) == self.width:
                row_no += 1
                rows.append(self.pick(row))
                row_numbers.append(row_no)
            elif row and not (len(row) == 1 and row[0] == ""):  # a blank line is not a row
                row_no += 1
                rejects.append(RowReject(
                    row_no, f"expected {self.width} fields, found {len(row)} (line {line + before + 1})",
                    record_id=self._record_id(row)))
        return _frame(self.wanted, rows, row_numbers), rejects, row_no, reader.line_num


def _raise_if_unterminated(exc: csv.Error, path: Path, line: int) -> None:
    if "unexpected end of data" in str(exc) or "EOF" in str(exc):
        raise InputError(
            f"{path}: a quoted field opened before line {line} is never closed; "
            "every row after it would be lost, so nothing was loaded"
        ) from None


def _next_csv_row(reader, path: Path, config: SourceConfig, config_path: Path) -> list[str]:
    try:
        return next(reader)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: bytes that are not valid {config.encoding} near line {reader.line_num + 1} "
            f"({exc.reason}); check encoding in {config_path}"
        ) from None
    except csv.Error as exc:
        _raise_if_unterminated(exc, path, reader.line_num)
        raise


def _frame(columns: list[str], rows: list, row_numbers: list[int]) -> pl.DataFrame:
    if len(columns) == 1:
        rows = [(value,) for value in rows]  # itemgetter of one index returns the value itself
    frame = pl.DataFrame(rows, schema={col: pl.Utf8 for col in columns}, orient="row")
    return frame.with_columns(pl.Series(ROW, row_numbers, dtype=pl.Int64))


# ---- XLSX ----------------------------------------------------------------------------------

def _read_xlsx(path: Path, config: SourceConfig, config_path: Path, progress: Progress) -> Iterator[RawChunk]:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # fastexcel raises its own error types for a broken workbook
        raise InputError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None
    sheet = config.sheet if config.sheet is not None else 0
    if config.sheet is not None and config.sheet not in reader.sheet_names:
        raise InputError(
            f"{path}: no sheet '{config.sheet}' (key sheet in {config_path}); "
            f"sheets: {', '.join(reader.sheet_names)}"
        )
    try:
        frame = reader.load_sheet(sheet, dtypes="string").to_polars()
    except Exception as exc:
        raise InputError(f"{path}: cannot read sheet {sheet!r} ({type(exc).__name__})") from None
    if frame.width == 0:
        raise InputError(f"{path}: the sheet is empty (expected a header row)")
    header = _checked_header(path, [str(c) for c in frame.columns], config, config_path)
    frame.columns = header
    wanted = list(config.columns())
    frame = frame.select([pl.col(c).cast(pl.Utf8) for c in wanted])
    frame = frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW))
    # A row that is empty in every column is a blank line in the sheet, not a record.
    frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in wanted]))
    progress(path.stat().st_size)
    for offset in range(0, max(frame.height, 1), CHUNK_ROWS):
        yield RawChunk(frame.slice(offset, CHUNK_ROWS))


# ---- Parquet -------------------------------------------------------------------------------

def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Typed columns to text: dates/times in ISO form, which the date parser always accepts."""
    out = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            out.append(col.dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            out.append(col.dt.strftime("%Y-%m-%d %H:%M:%S"))
        elif dtype == pl.Utf8:
            out.append(col)
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Array)):
            out.append(col.map_elements(lambda v: json.dumps(v, ensure_ascii=False, default=str), return_dtype=pl.Utf8))
        else:
            out.append(col.cast(pl.Utf8))
    return frame.select(out)


def _check_utf8(path: Path, batch, before: int) -> None:
    """Parquet strings must be UTF-8, but a writer can store any bytes: name the first bad row and
    column (polars would fail on them later with a panic), never the bytes."""
    import pyarrow as pa

    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            raw = column.view(pa.binary() if pa.types.is_string(column.type) else pa.large_binary()).to_pylist()
            bad = next((i for i, value in enumerate(raw) if value is not None and not _is_utf8(value)), None)
            where = f"row {before + bad + 1}" if bad is not None else f"rows {before + 1}-{before + len(raw)}"
            raise InputError(f"{path}: column '{name}', {where}: not valid UTF-8 text (Parquet strings must be "
                             "UTF-8; write the column as UTF-8 text)") from None


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_parquet(path: Path, config: SourceConfig, config_path: Path, progress: Progress) -> Iterator[RawChunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    header = _checked_header(path, parquet.schema_arrow.names, config, config_path, first_row=False)
    wanted = list(config.columns())
    row = 0
    batches = parquet.iter_batches(batch_size=CHUNK_ROWS, columns=wanted)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:   # pyarrow's text can quote the data it read
            raise InputError(f"{path}: cannot read the Parquet data after row {row} ({type(exc).__name__})") from None
        if batch is None:
            break
        _check_utf8(path, batch, row)
        frame = _as_text(pl.from_arrow(batch))
        frame = frame.with_columns(pl.int_range(row + 1, row + frame.height + 1, dtype=pl.Int64).alias(ROW))
        row += frame.height
        yield RawChunk(frame)
    progress(path.stat().st_size)
    if row == 0:
        yield RawChunk(_frame(wanted, [], []))


# ---- JSON Lines ----------------------------------------------------------------------------

def _read_jsonl(path: Path, config: SourceConfig, config_path: Path, progress: Progress) -> Iterator[RawChunk]:
    _check_encoding(path, config, config_path)
    wanted = list(config.columns())
    seen: set[str] = set()
    rows: list[list[str | None]] = []
    row_numbers: list[int] = []
    rejects: list[RowReject] = []
    row_no = 0
    with path.open("rb") as handle:
        for line_no, line in _numbered_lines(handle, path, config, config_path):
            if not line.strip():
                continue
            row_no += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.append(RowReject(row_no, f"not valid JSON at line {line_no}: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                rejects.append(RowReject(row_no, f"line {line_no} is not a JSON object"))
                continue
            seen.update(obj)
            rows.append([_json_text(obj.get(col)) for col in wanted])
            row_numbers.append(row_no)
            if len(rows) >= CHUNK_ROWS:
                yield RawChunk(_frame(wanted, rows, row_numbers), rejects)
                rows, row_numbers, rejects = [], [], []
    if row_no == 0:
        raise InputError(f"{path}: the file has no JSON objects")
    if seen:
        # A key absent from every object is a column the file does not have.
        check_columns(path, sorted(seen), config, config_path, first_row=False)
    progress(path.stat().st_size)
    yield RawChunk(_frame(wanted, rows, row_numbers), rejects)


def _numbered_lines(handle, path: Path, config: SourceConfig, config_path: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) of a file opened in binary; bytes that are not valid in the
    encoding (past the part checked first) are an InputError naming the line, never the bytes."""
    for line_no, raw in enumerate(handle, start=1):
        try:
            yield line_no, raw.decode(config.python_encoding if line_no == 1 else _no_bom(config.python_encoding))
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: bytes that are not valid {config.encoding} at line {line_no} "
                             f"({exc.reason}); check encoding in {config_path}") from None


def _no_bom(encoding: str) -> str:
    return "utf-8" if encoding == "utf-8-sig" else encoding


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)

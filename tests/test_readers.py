"""The CSV reader's block parser against a plain csv-module reading of the same file.

The reader splits quote-free lines in polars and hands quoted or multi-line records to the
csv module; whatever the file holds, the rows, their numbers and the rejects must be the ones
a straightforward csv.reader loop gives.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkage import readers
from linkage.config import SourceConfig
from linkage.errors import InputError

HEADER = ["rid", "name", "dob", "note"]
CONFIG = SourceConfig.model_validate({
    "name": "t", "format": "csv", "encoding": "utf-8", "record_id": "rid",
    "fields": {"full_name": "name", "dob": "dob"},
})


def oracle(text: str) -> tuple[list[tuple], list[tuple]]:
    """Rows (configured columns + row number) and rejects (row, reason, record id) by csv.reader."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = next(reader)
    wanted = [header.index(c) for c in CONFIG.columns()]
    rows, rejects, row_no, line = [], [], 0, reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise ValueError("unterminated") from None
            row_no += 1
            rejects.append((row_no, f"malformed CSV at line {line + 1}: {exc}", None))
            line = reader.line_num
            continue
        if len(row) == len(header):
            row_no += 1
            rows.append((*[row[i] for i in wanted], row_no))
        elif row and row != [""]:
            row_no += 1
            rid = row[0].strip() or None
            rejects.append((row_no, f"expected {len(header)} fields, found {len(row)} (line {line + 1})", rid))
        line = reader.line_num
    return rows, rejects


def read(path) -> tuple[list[tuple], list[tuple]]:
    rows, rejects = [], []
    for chunk in readers.read_export(path, CONFIG, path.with_suffix(".toml")):
        rows += chunk.frame.select([*CONFIG.columns(), readers.ROW]).rows()
        rejects += [(r.row_no, r.reason, r.record_id) for r in chunk.rejects]
    return rows, rejects


FIELD = st.lists(st.sampled_from(list('ab ,"\n\r\x00é张') + ["\r\n"]), max_size=6).map("".join)
LINE = st.one_of(
    st.lists(FIELD, min_size=4, max_size=4).map(lambda f: ("csv", f)),          # written properly
    st.lists(FIELD, min_size=1, max_size=6).map(lambda f: ("csv", f)),          # ragged
    st.text(alphabet=st.sampled_from(list('ab,"é ')), max_size=12).map(lambda t: ("raw", t)),  # hand-made
    st.just(("raw", "")),                                                         # blank line
)


def render(lines, ending: str) -> str:
    out = io.StringIO(newline="")
    out.write(",".join(HEADER) + ending)
    writer = csv.writer(out, lineterminator=ending)
    for kind, value in lines:
        if kind == "csv":
            writer.writerow(value)
        else:
            out.write(value + ending)
    return out.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=25), ending=st.sampled_from(["\n", "\r\n"]), block=st.sampled_from([1, 2, 3, 7]))
def test_block_parser_equals_the_csv_module(tmp_path, monkeypatch, lines, ending, block):
    monkeypatch.setattr(readers, "CHUNK_ROWS", block)
    text = render(lines, ending)
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        expected = oracle(text)
    except ValueError:
        with pytest.raises(InputError, match="never closed"):
            read(path)
        return
    assert read(path) == expected


def test_multi_line_record_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_ROWS", 2)
    text = 'rid,name,dob,note\nA1,"WANG\nWEI\n\nX",19850307,"say ""hi"""\nA2,LI NA,19900102,\n\nA3,"X,Y",1,2,3\n'
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    rows, rejects = read(path)
    assert rows == [("A1", "WANG\nWEI\n\nX", "19850307", 1), ("A2", "LI NA", "19900102", 2)]
    assert rejects == [(3, "expected 4 fields, found 5 (line 8)", "A3")]

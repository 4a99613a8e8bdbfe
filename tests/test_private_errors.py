"""User errors that used to print personal values or exit 1 as internal errors: a file without a
header row (CSV, XLSX), a Parquet column of invalid UTF-8, an unwritable --out, a bad
LINKAGE_MEMORY_LIMIT / LINKAGE_THREADS. Each exits 2 with one line naming the file, row, column,
path or variable, and no value; --show-values shows the values on a terminal only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import POLICE_HEADER, POLICE_ROWS, Cli, error_line, query, write_csv

# The personal values of the police fixture's first row (conftest.POLICE_ROWS[0]).
FIRST_ROW_VALUES = ["小明", "07/03/1985", "110105198503070019", "138 0013 8000"]

PARQUET_TOML = """
name = "border"
format = "parquet"
record_id = "entry_id"
[fields]
full_name = "full_name"
dob = "dob"
passport = "passport"
[formats]
dob = ["%Y-%m-%d"]
"""


def _leaks(text: str, values: list[str]) -> list[str]:
    return [v for v in values if v in text]


@pytest.fixture
def headerless_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "police_no_header.csv", POLICE_ROWS[0], POLICE_ROWS[1:], encoding="gb18030")


def test_a_csv_without_header_row_is_named_without_quoting_its_first_row(cli: Cli, headerless_csv):
    result = cli("ingest", "--source", "police", str(headerless_csv))
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert str(headerless_csv) in line and "'reg_id' (key record_id)" in line and "'dob' (key fields.dob)" in line
    assert "first row looks like data" in line and "not shown" in line
    assert _leaks(result.output, FIRST_ROW_VALUES) == [], line
    assert query(cli, "SELECT count(*) FROM batches") == [(0,)]


def test_a_header_with_a_wrong_column_still_lists_the_columns_present(cli: Cli, tmp_path):
    path = write_csv(tmp_path / "typo.csv", POLICE_HEADER.replace("gender", "sex_code"), POLICE_ROWS, "gb18030")
    line = error_line(cli("ingest", "--source", "police", str(path)))
    assert "'gender' (key fields.sex)" in line and "columns present: reg_id, family, given, sex_code" in line


def test_an_xlsx_without_header_row_is_named_without_quoting_its_first_row(tmp_path, config_dir):
    (config_dir / "sources" / "police.toml").write_text(
        (config_dir / "sources" / "police.toml").read_text(encoding="utf-8")
        .replace('format = "csv"', 'format = "xlsx"').replace('encoding = "gb18030"\n', ""), encoding="utf-8")
    book = openpyxl.Workbook()
    for row in POLICE_ROWS:
        book.active.append(row.split(","))
    book.save(tmp_path / "police.xlsx")
    cli = Cli(tmp_path / "ws", config_dir)
    assert cli("init").exit_code == 0
    result = cli("ingest", "--source", "police", str(tmp_path / "police.xlsx"))
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "police.xlsx" in line and "'reg_id' (key record_id)" in line and "first row looks like data" in line
    assert _leaks(result.output, FIRST_ROW_VALUES) == [], line


def _parquet_with_invalid_utf8(path: Path) -> None:
    names = [b"WANG WEI", b"ZHANG\xff\xfeSAN", b"LI NA"]
    offsets = pa.py_buffer(pa.array([0, 8, 17, 22], pa.int32()).buffers()[1])
    name = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"".join(names))])
    pq.write_table(pa.table({"entry_id": ["E1", "E2", "E3"], "full_name": name,
                             "dob": ["1980-01-02", "1981-02-03", "1982-03-04"],
                             "passport": ["E11111111", "E22222222", "E33333333"]}), path)


def test_a_parquet_column_of_invalid_utf8_is_exit_2_naming_file_row_and_column(cli: Cli, tmp_path):
    (cli.config_dir / "sources" / "border.toml").write_text(PARQUET_TOML, encoding="utf-8")
    path = tmp_path / "border.parquet"
    _parquet_with_invalid_utf8(path)
    result = cli("ingest", "--source", "border", str(path))
    assert result.exit_code == 2, result.output
    assert error_line(result) == (f"Error: {path}: column 'full_name', row 2: not valid UTF-8 text (Parquet strings "
                                  "must be UTF-8; write the column as UTF-8 text)")
    assert "ZHANG" not in result.output
    assert query(cli, "SELECT count(*) FROM records") == [(0,)]


@pytest.fixture(scope="module")
def chained(tmp_path_factory) -> Cli:
    """A workspace of the bundled configs with a small sample ingested, matched and chained (shared:
    the tests that use it change nothing in it)."""
    from linkage.sample import generate_sample

    from conftest import CONFIGS

    tmp_path = tmp_path_factory.mktemp("chained")
    generate_sample(60, 5, tmp_path / "data")
    cli = Cli(tmp_path / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    for source, ext in (("immigration", "csv"), ("health", "csv"), ("police", "csv"), ("commerce", "xlsx")):
        assert cli("ingest", "--source", source, str(tmp_path / "data" / f"{source}.{ext}")).exit_code == 0
    assert cli("match").exit_code == 0
    assert cli("chain", "--as-of", "2026-03-31T00:00").exit_code == 0
    return cli


@pytest.mark.parametrize("args", [
    ["export", "clusters", "--out", "{blocked}/clusters.csv"],
    ["export", "flags", "--out", "{blocked}/flags.csv"],
    ["export", "discrepancies", "--out", "{blocked}/exports"],
    ["rejects", "--out", "{blocked}/rejects.csv"],
    ["sample", "--people", "5", "--out", "{blocked}/sample"],
    ["model", "save", "{blocked}/model.json"],
    ["match", "--save-model", "{blocked}/model.json"],
])
def test_an_unwritable_out_path_is_exit_2_naming_it(chained: Cli, tmp_path, args):
    blocked = tmp_path / "a_file_not_a_folder"   # writing under a file fails for root too
    blocked.write_text("x")
    runs = query(chained, "SELECT count(*) FROM match_runs")
    result = chained(*(a.format(blocked=blocked) for a in args))
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert str(blocked) in line and line.startswith("Error: cannot write ") and "Not a directory" in line
    assert query(chained, "SELECT count(*) FROM match_runs") == runs   # `match` failed before matching


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("LINKAGE_MEMORY_LIMIT", "lots", "Error: LINKAGE_MEMORY_LIMIT='lots' is not a memory size; expected a number "
                                     "and a unit (KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. 4GB or 512MB"),
    ("LINKAGE_MEMORY_LIMIT", "80%", "Error: LINKAGE_MEMORY_LIMIT='80%' is not a memory size; expected"),
    ("LINKAGE_THREADS", "many", "Error: LINKAGE_THREADS='many' is not a number of threads; expected a whole number "
                                "of at least 1, e.g. 4"),
    ("LINKAGE_THREADS", "0", "Error: LINKAGE_THREADS='0' is not a number of threads"),
])
@pytest.mark.parametrize("command", [["status"], ["init", "--force"]])
def test_an_invalid_setting_is_exit_2_naming_the_variable(cli: Cli, police_csv, monkeypatch, variable, value,
                                                          expected, command):
    assert cli("ingest", "--source", "police", str(police_csv)).exit_code == 0
    monkeypatch.setenv(variable, value)
    result = cli(*command)
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith(expected)
    monkeypatch.delenv(variable)
    assert query(cli, "SELECT count(*) FROM records") == [(3,)]   # init --force removed nothing


def test_a_valid_setting_is_applied(cli: Cli, monkeypatch):
    monkeypatch.setenv("LINKAGE_MEMORY_LIMIT", "512MB")
    monkeypatch.setenv("LINKAGE_THREADS", "2")
    assert cli("status").exit_code == 0


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return its exit code and output."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKAGE_")}
    proc = subprocess.Popen([sys.executable, "-m", "linkage", *args], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:   # the terminal closed: the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_show_values_shows_the_first_row_on_a_terminal_only(cli: Cli, headerless_csv):
    base = ["--workspace", str(cli.workspace), "--config-dir", str(cli.config_dir)]
    ingest = ["ingest", "--source", "police", str(headerless_csv)]
    code, text = _on_a_terminal([*base, "--show-values", *ingest], headerless_csv.parent)
    assert code == 2 and "first row looks like data" in text
    assert _leaks(text, FIRST_ROW_VALUES) == FIRST_ROW_VALUES, text
    code, text = _on_a_terminal([*base, *ingest], headerless_csv.parent)   # a terminal, without --show-values
    assert code == 2 and _leaks(text, FIRST_ROW_VALUES) == []
    result = cli("--show-values", *ingest)   # --show-values, but not a terminal
    assert result.exit_code == 2 and _leaks(result.output, FIRST_ROW_VALUES) == []


def test_explain_person_shows_names_and_birth_dates_only_with_show_values_on_a_terminal(chained: Cli):
    person, name, dob = query(chained, "SELECT p.person_id, r.full_name, strftime(r.dob, '%Y-%m-%d') FROM persons p "
                                       "JOIN records r USING (source, record_id) "
                                       "WHERE r.full_name IS NOT NULL AND r.dob IS NOT NULL LIMIT 1")[0]
    for args in (["explain", "--person", person], ["explain", "--person", person, "--json"]):
        result = chained("--show-values", *args)
        assert result.exit_code == 0 and person in result.output
        assert name not in result.output and dob not in result.output
    base = ["--workspace", str(chained.workspace), "--config-dir", str(chained.config_dir)]
    code, text = _on_a_terminal([*base, "--show-values", "explain", "--person", person], chained.workspace)
    assert code == 0 and dob in text


def test_rejects_shows_the_values_only_with_show_values_on_a_terminal(cli: Cli, tmp_path):
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, [POLICE_ROWS[0].replace("07/03/1985", "31/02/1985")],
                     encoding="gb18030")
    assert cli("ingest", "--source", "police", str(path)).exit_code == 0
    base = ["--workspace", str(cli.workspace), "--config-dir", str(cli.config_dir)]
    code, text = _on_a_terminal([*base, "--show-values", "rejects"], tmp_path)
    assert code == 0 and "31/02/1985" in text and "day 31 is out of range" in text, text
    code, text = _on_a_terminal([*base, "rejects"], tmp_path)
    assert code == 0 and "31/02/1985" not in text and "day # is out of range" in text, text
    for args in (["--show-values", "rejects"], ["--show-values", "rejects", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0 and "31/02/1985" not in result.output and "1985" not in result.output


def test_a_json_lines_file_with_invalid_utf8_past_the_checked_start_is_exit_2_naming_the_line(cli: Cli, tmp_path):
    from linkage.readers import SNIFF_BYTES

    (cli.config_dir / "sources" / "border.toml").write_text(
        PARQUET_TOML.replace('format = "parquet"', 'format = "jsonl"'), encoding="utf-8")
    line = b'{"entry_id": "E%07d", "full_name": "WANG WEI", "dob": "1980-01-02", "passport": "E11111111"}\n'
    count = SNIFF_BYTES // len(line % 0) + 10
    body = b"".join(line % n for n in range(count))
    path = tmp_path / "border.jsonl"
    path.write_bytes(body + b'{"entry_id": "EBAD", "full_name": "ZHANG\xff SAN", "dob": "1981-02-03"}\n')
    result = cli("ingest", "--source", "border", str(path))
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith(f"Error: {path}: bytes that are not valid utf-8 at line {count + 1} (")
    assert "ZHANG" not in result.output

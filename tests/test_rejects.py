"""`linkage rejects`: real exports ingested into a temp workspace, then the summary, the masked CSV,
--source and the exit-2 cases through the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import Cli, error_line, write_csv
from linkage.rejects import mask_value

SOURCE_TOML = """
name = "{name}"
format = "csv"
record_id = "reg_id"
name_order = "auto"
phone_region = "CN"

[fields]
full_name = "name"
dob = "dob"
nationality = "nationality"
phone = "phone"

[formats]
dob = ["%d/%m/%Y"]
"""
HEADER = "reg_id,name,dob,nationality,phone"
POLICE_ROWS = [
    "GA001,ZHANG Wei,07/03/1985,中国,13800138000",          # row 1: clean
    ",LI Na,01/02/1990,中国,13900139000",                    # row 2: rejected, no record id
    "GA003,MUELLER Hans,07/14/1977,Deutschland,1380013800",  # row 3: day/month swapped; phone unverified; German
    "GA004,SMITH John,31/02/1980,Atlantis,4711",             # row 4: impossible date, unknown country, no phone
    "GA001,ZHANG Wei,07/03/1985,中国,13800138000",          # row 5: rejected, duplicate record id
]
HEALTH_ROWS = [
    "HL001,WANG Fang,02/03/1991,CHN,13700137000",
    "HL002,ZHAO Lei,05/06/1992",                             # row 2: rejected, too few fields
]
# Every personal value the rejects above hold: none may be printed or written whole.
PERSONAL_VALUES = ["07/14/1977", "1380013800", "31/02/1980", "Atlantis", "4711", "LI Na", "13900139000", "ZHAO Lei"]

SWAPPED = "day and month swapped for the declared format"
OTHER_LANGUAGE = "country name in another language"
UNVERIFIED = "not a valid phone number for the source's region or the nationality's region"


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A workspace holding one police and one health export (`linkage rejects` only reads it)."""
    tmp_path = tmp_path_factory.mktemp("rejects")
    configs = tmp_path / "configs"
    (configs / "sources").mkdir(parents=True)
    for name in ("police", "health"):
        (configs / "sources" / f"{name}.toml").write_text(textwrap.dedent(SOURCE_TOML.format(name=name)),
                                                         encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("init").exit_code == 0
    for name, rows in (("police", POLICE_ROWS), ("health", HEALTH_ROWS)):
        result = cli("ingest", "--source", name, str(write_csv(tmp_path / f"{name}.csv", HEADER, rows)))
        assert result.exit_code == 0, result.output
    return cli


def summary(cli, *args: str) -> dict:
    result = cli("rejects", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def csv_lines(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_summary_counts_rejected_rows_by_reason_and_value_issues_by_column(ws):
    sources = summary(ws)["sources"]
    assert list(sources) == ["health", "police"]
    assert sources["health"] == {
        "rows_rejected": 1, "values_not_standardized": 0, "values_noted": 0,
        "rejected_by_reason": {"expected 5 fields": 1}, "value_issues": []}
    police = sources["police"]
    assert (police["rows_rejected"], police["values_not_standardized"], police["values_noted"]) == (2, 3, 3)
    assert police["rejected_by_reason"] == {"duplicate record_id": 1, "record_id column 'reg_id' is empty": 1}
    assert police["value_issues"] == [
        {"column": "dob", "kind": "value", "reason": "day # is out of range for February #", "count": 1},
        {"column": "nationality", "kind": "value", "reason": "unknown country", "count": 1},
        {"column": "phone", "kind": "value", "reason": "not a valid phone number for region CN", "count": 1},
        {"column": "dob", "kind": "note", "reason": SWAPPED, "count": 1},
        {"column": "nationality", "kind": "note", "reason": OTHER_LANGUAGE, "count": 1},
        {"column": "phone", "kind": "note", "reason": UNVERIFIED, "count": 1},
    ]


def test_plain_lines_off_a_tty(ws):
    result = ws("rejects")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "health: 1 rows rejected, 0 values not standardized, 0 values kept, noted",
        "health: row rejected: 1: expected 5 fields",
        "police: 2 rows rejected, 3 values not standardized, 3 values kept, noted",
        "police: row rejected: 1: duplicate record_id",
        "police: row rejected: 1: record_id column 'reg_id' is empty",
        "police: dob: value not standardized: 1: day # is out of range for February #",
        "police: nationality: value not standardized: 1: unknown country",
        "police: phone: value not standardized: 1: not a valid phone number for region CN",
        f"police: dob: value kept, noted: 1: {SWAPPED}",
        f"police: nationality: value kept, noted: 1: {OTHER_LANGUAGE}",
        f"police: phone: value kept, noted: 1: {UNVERIFIED}",
    ]


def test_rich_tables_on_a_tty(ws, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")   # rich treats the output as a terminal
    monkeypatch.setenv("COLUMNS", "200")
    result = ws("rejects")
    assert result.exit_code == 0, result.output
    for title in ("Rejects and value issues", "Rejected rows by reason", "Value issues by column and reason"):
        assert title in result.stdout
    assert "┃" in result.stdout and "unknown country" in result.stdout
    assert "police: row rejected" not in result.stdout


def test_plain_tab_separated_tables_off_a_tty(ws, monkeypatch):
    """Cron logs and pipes get no box drawing: a title line, then tab-separated rows, none cut."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    result = ws("status")
    assert result.exit_code == 0, result.output
    assert not set("┃│━─┏┗") & set(result.stdout)
    lines = result.stdout.splitlines()
    header = lines[lines.index("Values not standardized, by column") + 1]
    assert header.split("\t") == ["source", "column", "values"]
    assert all(len(line.split("\t")) == 3 for line in lines[lines.index(header) + 1:])


def test_out_writes_every_rejected_row_and_value_issue_masked(ws, tmp_path):
    target = tmp_path / "exports" / "rejects.csv"
    target.parent.mkdir()
    result = ws("rejects", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"Wrote 9 lines to {target}."
    assert csv_lines(target) == [
        ["source", "batch", "file", "row", "kind", "column", "reason", "value_masked"],
        ["health", "2", "health.csv", "2", "row", "", "expected 5 fields, found 3 (line 3)", ""],
        ["police", "1", "police.csv", "2", "row", "", "record_id column 'reg_id' is empty", ""],
        ["police", "1", "police.csv", "3", "note", "dob", f"{SWAPPED}; read swapped", "********77"],
        ["police", "1", "police.csv", "3", "note", "nationality", f"{OTHER_LANGUAGE}; read as its code", "*********nd"],
        ["police", "1", "police.csv", "3", "note", "phone", f"{UNVERIFIED}; kept as digits (unverified)", "********00"],
        ["police", "1", "police.csv", "4", "value", "dob", "day # is out of range for February #", "********80"],
        ["police", "1", "police.csv", "4", "value", "nationality", "unknown country", "******is"],
        ["police", "1", "police.csv", "4", "value", "phone", "not a valid phone number for region CN", "**11"],
        ["police", "1", "police.csv", "5", "row", "", "duplicate record_id; first seen at row 1", ""],
    ]
    assert sorted(p.name for p in target.parent.iterdir()) == ["rejects.csv"]   # no temp file left


def test_full_values_never_appear_in_stdout_or_the_csv(ws, tmp_path, monkeypatch):
    target = tmp_path / "rejects.csv"
    texts = [ws("rejects").stdout, ws("rejects", "--json").stdout, ws("rejects", "--out", str(target)).stdout,
             target.read_text(encoding="utf-8-sig")]
    monkeypatch.setenv("FORCE_COLOR", "1")
    texts.append(ws("rejects").stdout)
    for text in texts:
        for value in PERSONAL_VALUES:
            assert value not in text
    # ...while ingest did store them whole, so the masking is what keeps them out.
    con = duckdb.connect(str(ws.workspace / "linkage.duckdb"), read_only=True)
    try:
        stored = {value for (value,) in con.execute("SELECT value FROM rejects WHERE value IS NOT NULL").fetchall()}
    finally:
        con.close()
    assert stored == {"07/14/1977", "1380013800", "31/02/1980", "Atlantis", "4711", "Deutschland"}


def test_source_filter_limits_summary_and_csv(ws, tmp_path):
    assert list(summary(ws, "--source", "health")["sources"]) == ["health"]
    target = tmp_path / "health.csv"
    payload = summary(ws, "--source", "police", "--out", str(target))
    assert list(payload["sources"]) == ["police"]
    assert payload["out"] == {"file": str(target), "lines": 8}
    assert {line[0] for line in csv_lines(target)[1:]} == {"police"}


def test_unknown_source_is_exit_2_and_writes_nothing(ws, tmp_path):
    target = tmp_path / "rejects.csv"
    result = ws("rejects", "--source", "customs", "--out", str(target))
    assert result.exit_code == 2
    assert error_line(result) == "Error: unknown source 'customs'; sources in the workspace: health, police"
    assert not target.exists()


def test_a_folder_that_cannot_hold_the_file_is_exit_2(ws, tmp_path):
    (tmp_path / "a_file").write_text("", encoding="utf-8")
    not_a_folder = tmp_path / "a_file" / "rejects.csv"
    result = ws("rejects", "--out", str(not_a_folder))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: cannot write {not_a_folder}: Not a directory"
    result = ws("rejects", "--out", str(tmp_path / "missing" / "rejects.csv"))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: {tmp_path / 'missing'}: folder not found"
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_folder_is_exit_2_and_keeps_the_old_file(ws, tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    (folder / "rejects.csv").write_text("old\n", encoding="utf-8")
    folder.chmod(0o500)
    try:
        result = ws("rejects", "--out", str(folder / "rejects.csv"))
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 2
    assert error_line(result) == f"Error: cannot write {folder / 'rejects.csv'}: Permission denied"
    assert (folder / "rejects.csv").read_text(encoding="utf-8") == "old\n"


def test_a_workspace_without_sources(tmp_path):
    cli = Cli(tmp_path / "ws", tmp_path / "configs")
    assert cli("init").exit_code == 0
    result = cli("rejects", "--out", str(tmp_path / "rejects.csv"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "The workspace holds no ingested sources yet."
    assert csv_lines(tmp_path / "rejects.csv") == [
        ["source", "batch", "file", "row", "kind", "column", "reason", "value_masked"]]
    result = cli("rejects", "--source", "police")
    assert result.exit_code == 2
    assert error_line(result).endswith("sources in the workspace: none (ingest exports first)")


def test_country_read_from_another_language_is_reported(ws):
    issues = summary(ws, "--source", "police")["sources"]["police"]["value_issues"]
    assert any(i["column"] == "nationality" and i["kind"] == "note" for i in issues)


@pytest.mark.parametrize(("value", "masked"), [
    (None, ""), ("", ""), ("a", "*"), ("ab", "**"), ("abc", "*bc"), ("13800138000", "*********00"),
    ("张小明", "*小明"),
])
def test_mask_value_keeps_only_the_last_two_characters(value, masked):
    assert mask_value(value) == masked


@given(st.text(min_size=1))
def test_mask_value_never_shows_a_whole_value(text):
    masked = mask_value(text)
    assert len(masked) == len(text)
    shown = 2 if len(text) > 2 else 0
    assert masked[:len(text) - shown] == "*" * (len(text) - shown)
    assert masked[len(text) - shown:] == text[len(text) - shown:]

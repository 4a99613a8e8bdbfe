"""Ingest through the CLI on real files in a temp workspace: the happy path and bad input."""

from __future__ import annotations

import json
import re

import duckdb
import polars as pl
import pytest

from conftest import POLICE_HEADER, POLICE_ROWS, error_line, write_csv


def status(cli) -> dict:
    result = cli("status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["sources"]


def table(cli, sql: str) -> list[tuple]:
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_ingest_gb18030_export_standardizes_and_accounts_for_every_row(cli, police_csv):
    result = cli("ingest", "--source", "police", str(police_csv))
    assert result.exit_code == 0, result.output
    assert "3 rows read = 3 loaded + 0 rejected" in result.stdout
    s = status(cli)["police"]
    assert (s["records"], s["rejects"], s["events"], s["batches"]) == (3, 0, 2, 1)
    rows = table(cli, "SELECT record_id, family_name, given_name, local_name, sex, dob, nationality, "
                      "id_number, passport, phone, id_dob FROM records ORDER BY record_id")
    ga001, ga002, ga003 = rows
    assert ga001[1:4] == ("ZHANG", "XIAOMING", "张小明")
    assert str(ga001[5]) == "1985-03-07" and ga001[6] == "CHN" and ga001[7] == "110105198503070019"
    assert ga001[9] == "+8613800138000" and str(ga001[10]) == "1985-03-07"
    assert ga002[1] == "SMITH" and ga002[6] == "USA" and ga002[8] == "E12345678" and str(ga002[5]) == "1990-02-01"
    assert str(ga003[5]) == "1980-05-06"
    events = table(cli, "SELECT record_id, stage, time, district FROM events ORDER BY record_id")
    assert [(e[0], e[1], str(e[2])) for e in events] == [
        ("GA001", "handover", "2026-03-20 10:00:00"), ("GA003", "handover", "2026-03-22 16:45:00")]
    assert table(cli, "SELECT file_name, rows_read, rows_loaded, rows_rejected, length(file_sha256) FROM batches") == [
        ("police.csv", 3, 3, 0, 64)]


def test_reingest_is_a_reported_noop_and_replace_reloads(cli, police_csv):
    assert cli("ingest", "--source", "police", str(police_csv)).exit_code == 0
    before = status(cli)
    again = cli("ingest", "--source", "police", str(police_csv))
    assert again.exit_code == 0 and "already ingested as batch 1" in again.stdout
    assert status(cli) == before
    replaced = cli("ingest", "--source", "police", "--replace", str(police_csv))
    assert replaced.exit_code == 0
    assert status(cli) == before
    assert table(cli, "SELECT batch_id FROM batches") == [(2,)]


def test_newer_export_replaces_records_it_carries_again(cli, tmp_path):
    first = write_csv(tmp_path / "day1.csv", POLICE_HEADER, POLICE_ROWS[:2], encoding="gb18030")
    second = write_csv(tmp_path / "day2.csv", POLICE_HEADER, POLICE_ROWS[1:], encoding="gb18030")
    assert cli("ingest", "--source", "police", str(first)).exit_code == 0
    result = cli("ingest", "--source", "police", str(second))
    assert "1 earlier records replaced" in result.stdout
    assert status(cli)["police"]["records"] == 3
    assert table(cli, "SELECT record_id, batch_id FROM records ORDER BY 1") == [("GA001", 1), ("GA002", 2), ("GA003", 2)]


def test_missing_file_and_unknown_source(cli, police_csv, tmp_path):
    result = cli("ingest", "--source", "police", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2
    assert "nope.csv" in error_line(result)
    result = cli("ingest", "--source", "customs", str(police_csv))
    assert result.exit_code == 2
    assert error_line(result).endswith("configured sources: police")
    assert status(cli) == {}


def test_no_workspace_is_a_clear_error(tmp_path, config_dir, police_csv):
    from conftest import Cli

    result = Cli(tmp_path / "nowhere", config_dir)("ingest", "--source", "police", str(police_csv))
    assert result.exit_code == 2
    assert "no workspace in" in error_line(result) and "linkage init" in error_line(result)


def test_init_refuses_to_overwrite(cli):
    result = cli("init")
    assert result.exit_code == 2 and "--force" in error_line(result)
    assert cli("init", "--force").exit_code == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda t: 'colour = "red"\n' + t, "unknown key 'colour'; valid keys: name, format, record_id"),
        (lambda t: t.replace('family_name = "family"', 'family = "family"'),
         "unknown key 'fields.family'; valid keys: full_name, family_name"),
        (lambda t: t.replace('record_id = "reg_id"\n', ""), "missing required key 'record_id'"),
        (lambda t: t.replace('format = "csv"', 'format = "xls"'), "key 'format' must be one of"),
        (lambda t: t.replace('"%d/%m/%Y"', '"%d/%Q/%Y"'), "key 'formats.dob'"),
        (lambda t: t.replace('encoding = "gb18030"', 'encoding = "latin-1"'), "unknown encoding; valid choices"),
        (lambda t: t.replace('name_order = "auto"', 'name_order = "surname_first"'), "key 'name_order' must be one of"),
        (lambda t: t.replace("[[events]]", "[[events]]\nstage_name = 'x'"), "unknown key 'events[0].stage_name'"),
        (lambda t: t.replace('name = "police"', 'name = "police'), "not valid TOML"),
    ],
)
def test_invalid_source_config_names_file_key_and_choices(cli, config_dir, police_csv, change, expected):
    path = config_dir / "sources" / "police.toml"
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    result = cli("ingest", "--source", "police", str(police_csv))
    assert result.exit_code == 2
    line = error_line(result)
    assert str(path) in line and expected in line, line
    assert table(cli, "SELECT count(*) FROM batches") == [(0,)]


def test_columns_absent_from_file_are_named_with_the_columns_present(cli, tmp_path):
    bad = write_csv(tmp_path / "p.csv", POLICE_HEADER.replace("gender", "sex"), POLICE_ROWS, encoding="gb18030")
    result = cli("ingest", "--source", "police", str(bad))
    assert result.exit_code == 2
    line = error_line(result)
    assert "'gender' (key fields.sex)" in line and "columns present: reg_id, family, given, sex" in line


def test_gb18030_file_read_as_utf8_suggests_the_encoding(cli, config_dir, police_csv):
    path = config_dir / "sources" / "police.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('encoding = "gb18030"', 'encoding = "utf-8"'),
                    encoding="utf-8")
    result = cli("ingest", "--source", "police", str(police_csv))
    assert result.exit_code == 2
    assert 'not valid UTF-8 at line 2' in error_line(result) and 'set encoding = "gb18030"' in error_line(result)


def test_utf8_file_declared_gb18030_is_refused_not_garbled(cli, tmp_path):
    utf8 = write_csv(tmp_path / "p.csv", POLICE_HEADER, POLICE_ROWS, encoding="utf-8")
    result = cli("ingest", "--source", "police", str(utf8))
    assert result.exit_code == 2
    assert 'the file is UTF-8' in error_line(result)


def test_ragged_rows_are_rejected_with_reason_and_the_rest_load(cli, tmp_path):
    rows = [POLICE_ROWS[0] + ",extra", POLICE_ROWS[1], ",".join(POLICE_ROWS[2].split(",")[:5])]
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, rows, encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert result.exit_code == 0
    assert "3 rows read = 1 loaded + 2 rejected" in result.stdout
    rejects = table(cli, "SELECT row_no, record_id, reason FROM rejects WHERE kind = 'row' ORDER BY row_no")
    assert rejects == [(1, "GA001", "expected 12 fields, found 13 (line 2)"),
                       (3, "GA003", "expected 12 fields, found 5 (line 4)")]
    assert status(cli)["police"]["rejects_by_reason"] == {"expected 12 fields": 2}


def test_quoted_fields_with_newlines_and_quotes_load_intact(cli, tmp_path):
    row = 'GA010,"O""Brien","Mary\nAnne",F,01/01/1970,爱尔兰,P123456,护照,,朝阳区,"社区移交登记",2026/03/01 08:00'
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, [row, POLICE_ROWS[1]], encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert "2 rows read = 2 loaded + 0 rejected" in result.stdout
    assert table(cli, "SELECT full_name, nationality FROM records WHERE record_id = 'GA010'") == [
        ('O"Brien Mary\nAnne', "IRL")]


def test_empty_file_and_header_only(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = cli("ingest", "--source", "police", str(empty))
    assert result.exit_code == 2 and "the file is empty" in error_line(result)
    header = write_csv(tmp_path / "header.csv", POLICE_HEADER, [], encoding="gb18030")
    result = cli("ingest", "--source", "police", str(header))
    assert result.exit_code == 0 and "0 rows read = 0 loaded + 0 rejected" in result.stdout


def test_nul_bytes_and_huge_fields_reject_only_their_rows(cli, tmp_path):
    nul = POLICE_ROWS[0].replace("小明", "小\x00明")
    huge = POLICE_ROWS[1].replace("海淀区", "海" * (10 * 1024 * 1024))
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, [nul, huge, POLICE_ROWS[2]], encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert result.exit_code == 0
    assert "3 rows read = 1 loaded + 2 rejected" in result.stdout
    reasons = table(cli, "SELECT row_no, reason FROM rejects WHERE kind = 'row' ORDER BY row_no")
    assert reasons[0] == (1, "NUL byte in column 'given'")
    assert reasons[1] == (2, "column 'district' holds 10485760 characters; the limit is 65536")


def test_duplicate_record_ids_keep_the_first_and_reject_the_rest(cli, tmp_path):
    dup = POLICE_ROWS[1].replace("GA002", "GA001")
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, [POLICE_ROWS[0], dup, POLICE_ROWS[2]], encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert "3 rows read = 2 loaded + 1 rejected" in result.stdout
    assert table(cli, "SELECT row_no, record_id, reason FROM rejects") == [
        (2, "GA001", "duplicate record_id; first seen at row 1")]
    assert table(cli, "SELECT family_name FROM records WHERE record_id = 'GA001'") == [("ZHANG",)]
    assert table(cli, "SELECT count(*) FROM events WHERE record_id = 'GA001'") == [(1,)]


def test_unparseable_and_impossible_dates_are_reported_and_the_row_still_loads(cli, tmp_path):
    rows = [POLICE_ROWS[0].replace("07/03/1985", "30/02/1985"),
            POLICE_ROWS[1].replace("1/2/1990", "not a date"),
            POLICE_ROWS[2].replace("2026/03/22 16:45", "2026/13/22 16:45")]
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, rows, encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert result.exit_code == 0
    assert "3 rows read = 3 loaded + 0 rejected" in result.stdout and "3 values not standardized" in result.stdout
    issues = table(cli, "SELECT row_no, column_name, value, reason FROM rejects WHERE kind = 'value' ORDER BY row_no")
    assert [(i[0], i[1], i[2]) for i in issues] == [
        (1, "dob", "30/02/1985"), (2, "dob", "not a date"), (3, "reg_time", "2026/13/22 16:45")]
    assert all(i[3] for i in issues)
    assert "February" in issues[0][3] or "day" in issues[0][3]
    assert table(cli, "SELECT count(*) FROM records WHERE dob IS NULL") == [(2,)]
    assert table(cli, "SELECT count(*) FROM events") == [(1,)]


def test_one_ingest_is_one_transaction(cli, police_csv, tmp_path):
    broken = write_csv(tmp_path / "broken.csv", POLICE_HEADER.replace("dob", "birth"), POLICE_ROWS, encoding="gb18030")
    result = cli("ingest", "--source", "police", str(police_csv), str(broken))
    assert result.exit_code == 2
    assert status(cli) == {}
    assert table(cli, "SELECT count(*) FROM records") == [(0,)]


def test_strict_loads_nothing_when_a_row_is_rejected(cli, tmp_path):
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, [POLICE_ROWS[0] + ",x", *POLICE_ROWS[1:]], encoding="gb18030")
    result = cli("ingest", "--source", "police", "--strict", str(path))
    assert result.exit_code == 2 and "1 row(s) rejected and --strict is set" in error_line(result)
    assert table(cli, "SELECT count(*) FROM records") == [(0,)]


def test_unterminated_quote_is_fatal_rather_than_swallowing_rows(cli, tmp_path):
    rows = [POLICE_ROWS[0], POLICE_ROWS[1].replace("SMITH", '"SMITH'), POLICE_ROWS[2]]
    path = write_csv(tmp_path / "p.csv", POLICE_HEADER, rows, encoding="gb18030")
    result = cli("ingest", "--source", "police", str(path))
    assert result.exit_code == 2 and "never closed" in error_line(result)
    assert table(cli, "SELECT count(*) FROM records") == [(0,)]


NEW_AGENCY = """
name = "customs"
format = "{fmt}"
record_id = "decl_no"
name_order = "given_first"
phone_region = "HK"
{sheet}
[fields]
full_name = "traveller"
dob = "birth_date"
nationality = "country"
passport = "passport_no"
phone = "mobile"
email = "mail"

[extra]
postcode = "post_code"

[formats]
birth_date = ["%d.%m.%Y", "excel"]

[[events]]
stage = "arrival"
time = "declared_at"
formats = ["%d.%m.%Y %H:%M"]
place = "checkpoint"
"""


def _customs_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "decl_no": ["D1", "D2", "D3"],
        "traveller": ["Anna Müller", "Mohammed Al-Farsi", "Ivan Petrov"],
        "birth_date": ["02.03.1990", "31115", "15.08.1975"],
        "country": ["Germany", "OMN", "RU"],
        "passport_no": ["C01X00T47", "a-1234567", "75 1234567"],
        "mobile": ["9123 4567", "+968 9123 4567", None],
        "mail": ["Anna@Example.org", None, "ivan@example.ru"],
        "post_code": ["10115", None, "101000"],
        "declared_at": ["01.03.2026 14:10", "02.03.2026 09:00", "03.03.2026 23:59"],
        "checkpoint": ["Lo Wu", "Airport", "Airport"],
        "unused": ["x", "y", "z"],
    })


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet", "jsonl"])
def test_a_new_agency_is_one_toml_file(cli, config_dir, tmp_path, fmt):
    sheet = 'sheet = "declarations"' if fmt == "xlsx" else ""
    (config_dir / "sources" / "customs.toml").write_text(NEW_AGENCY.format(fmt=fmt, sheet=sheet), encoding="utf-8")
    frame = _customs_frame()
    path = tmp_path / f"customs.{fmt}"
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "xlsx":
        frame.write_excel(path, worksheet="declarations")
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_ndjson(path)
    result = cli("ingest", "--source", "customs", str(path))
    assert result.exit_code == 0, result.output
    assert "3 rows read = 3 loaded + 0 rejected" in result.stdout
    rows = table(cli, "SELECT record_id, given_name, family_name, dob, nationality, passport, phone, email, "
                      "extra['postcode'] FROM records ORDER BY record_id")
    assert rows[0][1:3] == ("ANNA", "MULLER") and str(rows[0][3]) == "1990-03-02"
    assert rows[0][4:8] == ("DEU", "C01X00T47", "+85291234567", "anna@example.org")
    assert rows[0][8] == "10115"
    assert str(rows[1][3]) == "1985-03-09" and rows[1][4] == "OMN" and rows[1][5] == "A1234567"
    assert rows[2][4] == "RUS"
    assert table(cli, "SELECT count(*) FROM events WHERE stage = 'arrival'") == [(3,)]


def test_jsonl_bad_lines_are_rejected_with_reason(cli, config_dir, tmp_path):
    (config_dir / "sources" / "customs.toml").write_text(NEW_AGENCY.format(fmt="jsonl", sheet=""), encoding="utf-8")
    path = tmp_path / "c.jsonl"
    _customs_frame().write_ndjson(path)
    path.write_text(path.read_text(encoding="utf-8") + "{broken\n[1, 2]\n", encoding="utf-8")
    result = cli("ingest", "--source", "customs", str(path))
    assert "5 rows read = 3 loaded + 2 rejected" in result.stdout
    reasons = [r[0] for r in table(cli, "SELECT reason FROM rejects ORDER BY row_no")]
    assert reasons[0].startswith("not valid JSON at line 4") and reasons[1] == "line 5 is not a JSON object"


def test_every_command_has_help_with_an_example(cli):
    from typer.main import get_command

    from linkage.cli import app

    def walk(group, prefix):
        for name, command in group.commands.items():
            path = [*prefix, name]
            if hasattr(command, "commands"):
                yield from walk(command, path)
            else:
                yield path

    paths = list(walk(get_command(app), []))
    assert ["ingest"] in paths and ["model", "show"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout, f"'linkage {' '.join(path)} --help' has no example"
        typed = [line for line in result.stdout.splitlines()
                 if re.search(r"<(str|int|float|path|bool|list\[)[^>]*>", line)]
        assert typed == [], f"'linkage {' '.join(path)} --help' names a Python type instead of a value: {typed}"


def test_version(cli):
    from linkage import __version__

    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"linkage {__version__}\n"


def test_gb18030_is_read_like_duckdb_with_the_pinned_encodings_extension(tmp_path, police_csv, config_dir):
    """Oracle: DuckDB's own CSV reader, with the encodings extension loaded by path from its PyPI
    package (nothing downloaded), reads a GB18030 export exactly as ingest does.

    Ingest decodes with Python's codec rather than the extension: on the bundled sample's
    police.csv the extension (1.5.5) reports "byte sequence mismatch" on a valid row that the
    codec decodes correctly.
    """
    from linkage.config import load_source_config
    from linkage.readers import read_export
    from linkage.workspace import Workspace

    config, path = load_source_config(config_dir, "police")
    ours = pl.concat([chunk.frame for chunk in read_export(police_csv, config, path)])
    with Workspace.create(tmp_path / "oracle") as ws:
        ws.load_extension("encodings")
        theirs = ws.run("read", "SELECT * FROM read_csv(?, encoding = 'gb18030', all_varchar = true, header = true)",
                        [str(police_csv)]).pl()
    columns = [c for c in ours.columns if c != "_row"]
    assert ours.height == theirs.height == 3
    assert ours.select(columns).fill_null("").equals(theirs.select(columns).fill_null(""))


def test_spill_files_of_dead_processes_are_removed_on_open(cli, police_csv):
    stale = cli.workspace / "tmp" / "999999999"
    stale.mkdir(parents=True)
    (stale / "duckdb_temp_storage-0.tmp").write_bytes(b"x" * 1024)
    assert cli("ingest", "--source", "police", str(police_csv)).exit_code == 0
    assert not stale.exists()


def test_worker_processes_load_exactly_what_one_process_loads(tmp_path, monkeypatch):
    """Large files are mapped in spawned workers; the stored rows must not depend on it."""
    from conftest import CONFIGS, SAMPLE_DATA, Cli
    from linkage import ingest, readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 500)   # several chunks in flight
    contents = {}
    for workers, threshold in (("0", ingest.PARALLEL_FROM_BYTES), ("2", 0)):
        monkeypatch.setenv("LINKAGE_WORKERS", workers)
        monkeypatch.setattr(ingest, "PARALLEL_FROM_BYTES", threshold)
        cli = Cli(tmp_path / f"ws{workers}", CONFIGS)
        assert cli("init").exit_code == 0
        result = cli("ingest", "--source", "health", str(SAMPLE_DATA / "health.csv"))
        assert result.exit_code == 0, result.output
        contents[workers] = [
            table(cli, f"SELECT * EXCLUDE (batch_id) FROM {name} ORDER BY ALL")
            for name in ("records", "events", "rejects")
        ]
    assert contents["0"] == contents["2"]
    assert len(contents["0"][0]) > 2000

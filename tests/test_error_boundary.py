"""The CLI error boundary and DuckDB: a DuckDB failure is an internal error (exit 1) whose one line
names the command, the step and DuckDB's error class, never DuckDB's text (it quotes the values it
was working on); LINKAGE_DEBUG=1 shows the traceback; user errors keep their message and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import Cli

# A synthetic name of the police fixture's rows (conftest.POLICE_ROWS): GA002 is SMITH John.
NAME_SQL = "SELECT full_name FROM records WHERE record_id = 'GA002'"
# Any scan of `records` now casts that name to an integer: DuckDB's message quotes it.
BREAK_RECORDS = (["ALTER TABLE records RENAME TO records_kept",
                  "CREATE VIEW records AS SELECT * FROM records_kept "
                  "WHERE CASE WHEN record_id = 'GA002' THEN CAST(full_name AS INTEGER) > 0 ELSE true END"],
                 "SELECT count(*) FROM records")
# The schema version is read outside any named step (Workspace.schema_version): an unwrapped error.
BREAK_MIGRATIONS = (["ALTER TABLE schema_migrations RENAME TO migrations_kept",
                     "CREATE VIEW schema_migrations AS "
                     "SELECT CAST(full_name AS INTEGER) AS version FROM records WHERE record_id = 'GA002'"],
                    "SELECT max(version) FROM schema_migrations")


def _break(cli: Cli, how: tuple[list[str], str]) -> str:
    """Change the workspace by hand; return the name DuckDB's own message now quotes (checked)."""
    statements, check = how
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    try:
        name = con.execute(NAME_SQL).fetchone()[0]
        for statement in statements:
            con.execute(statement)
        with pytest.raises(duckdb.ConversionException) as raised:
            con.execute(check).fetchall()
        assert name in str(raised.value)   # the leak the boundary must stop
    finally:
        con.close()
    return name


@pytest.fixture
def ingested(cli, police_csv) -> Cli:
    result = cli("ingest", "--source", "police", str(police_csv))
    assert result.exit_code == 0, result.output
    return cli


@pytest.mark.parametrize(("args", "command"), [
    (["status"], "linkage status"),
    (["export", "clusters", "--out", "{tmp}/clusters.csv"], "linkage export clusters"),
])
def test_a_failing_step_names_the_command_and_the_error_class_only(ingested, tmp_path, args, command):
    name = _break(ingested, BREAK_RECORDS)
    result = ingested(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: internal database error in '{command}' (ConversionException, step '")
    assert result.stderr.endswith("); rerun with LINKAGE_DEBUG=1 for details\n")
    assert result.stderr.count("Error:") == 1
    assert name not in result.output and "Conversion Error" not in result.output
    assert "Traceback" not in result.output


def test_a_duckdb_error_outside_any_step_is_rendered_the_same(ingested):
    name = _break(ingested, BREAK_MIGRATIONS)
    result = ingested("status")
    assert result.exit_code == 1, result.output
    assert result.stderr == ("Error: internal database error in 'linkage status' (ConversionException); "
                             "rerun with LINKAGE_DEBUG=1 for details\n")
    assert name not in result.output


@pytest.mark.parametrize("args", [["status"], ["export", "clusters", "--out", "{tmp}/clusters.csv"]])
def test_linkage_debug_prints_the_traceback(ingested, tmp_path, args):
    name = _break(ingested, BREAK_RECORDS)
    env = {**os.environ, "LINKAGE_DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "linkage", "--workspace", str(ingested.workspace), "--config-dir",
         str(ingested.config_dir), *(arg.format(tmp=tmp_path) for arg in args)],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("Error: internal database error in 'linkage") == 1   # nested groups: once
    assert "Traceback (most recent call last)" in result.stderr
    assert name in result.stderr   # the details are there when asked for


def test_user_errors_keep_their_message_and_exit_2(ingested, tmp_path):
    missing = ingested("--workspace", str(tmp_path / "nowhere"), "status")
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"Error: no workspace in {tmp_path / 'nowhere'}; create one with 'linkage init'")
    (ingested.config_dir / "model.toml").write_text("threshold = 2\n", encoding="utf-8")
    config = ingested("match")
    assert config.exit_code == 2
    assert config.stderr.startswith(f"Error: {ingested.config_dir / 'model.toml'}: key 'threshold'")


def test_a_corrupt_workspace_file_does_not_leak_its_bytes(ingested):
    """DuckDB's checksum error is a workspace error (exit 2) that quotes no bytes of the file."""
    path: Path = ingested.workspace / "linkage.duckdb"
    name = "ZHAO LIANGCHEN 110101199003074514"   # synthetic
    data = bytearray(path.read_bytes())
    for offset in range(8192, len(data) - 64, 4096):
        data[offset:offset + len(name)] = name.encode()
    path.write_bytes(bytes(data))
    result = ingested("status")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: cannot open the workspace in {ingested.workspace}")
    assert name not in result.output and "ZHAO" not in result.output


@pytest.mark.parametrize("args", [["match"], ["status"], ["status", "--json"]])
def test_a_reader_that_goes_away_is_no_error(ingested, args):
    """`linkage match | head -1`: the reader closes the pipe; the command's work is done, so it
    exits 0 with nothing on stderr (rich's own handling exits 1)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "linkage", "--workspace", str(ingested.workspace), "--config-dir",
         str(ingested.config_dir), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()          # gone before the first line is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err == b""


def test_a_small_memory_limit_spills_into_the_workspace(tmp_path, monkeypatch):
    """With LINKAGE_MEMORY_LIMIT low enough to spill, DuckDB needs the spill folder's parent:
    `workspace/tmp` is created owner-only (it was never created, and the match failed)."""
    from conftest import CONFIGS, SAMPLE_DATA

    cli = Cli(tmp_path / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    for source, name in (("immigration", "immigration.csv"), ("health", "health.csv"), ("police", "police.csv")):
        assert cli("ingest", "--source", source, str(SAMPLE_DATA / name)).exit_code == 0
    monkeypatch.setenv("LINKAGE_MEMORY_LIMIT", "20MB")
    monkeypatch.setenv("LINKAGE_THREADS", "1")
    result = cli("match")
    assert result.exit_code == 0, result.output
    assert (cli.workspace / "tmp").stat().st_mode & 0o777 == 0o700

"""Shared fixtures: a temp workspace, a small source config and the CLI runner."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from linkage.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
CONFIGS = REPO / "configs"

POLICE_TOML = """
name = "police"
format = "csv"
encoding = "gb18030"
record_id = "reg_id"
name_order = "auto"
phone_region = "CN"

[fields]
family_name = "family"
given_name = "given"
sex = "gender"
dob = "dob"
nationality = "nationality"
doc_no = "doc_no"
doc_type = "doc_type"
phone = "phone"
district = "district"

[formats]
dob = ["%d/%m/%Y", "%Y年%m月%d日"]

[[events]]
stage = "handover"
time = "reg_time"
formats = ["%Y/%m/%d %H:%M"]
district = "district"
when = { column = "reg_type", equals = ["社区移交登记"] }
"""

POLICE_HEADER = "reg_id,family,given,gender,dob,nationality,doc_no,doc_type,phone,district,reg_type,reg_time"
POLICE_ROWS = [
    "GA001,张,小明,男,07/03/1985,中国,110105198503070019,居民身份证,138 0013 8000,朝阳区,社区移交登记,2026/03/20 10:00",
    "GA002,SMITH,John,M,1/2/1990,美国,E 1234 5678,护照,+1 212 555 0100,海淀区,临时住宿登记,2026/03/21 09:30",
    "GA003,王,伟,男,1980年5月6日,中国,,,,朝阳区,社区移交登记,2026/03/22 16:45",
]


class Cli:
    """Run the CLI in-process against one workspace and config dir."""

    def __init__(self, workspace: Path, config_dir: Path):
        self.workspace = workspace
        self.config_dir = config_dir
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        return self.runner.invoke(
            app, ["--workspace", str(self.workspace), "--config-dir", str(self.config_dir), *args],
            input=input, catch_exceptions=False,
        )


def error_line(result) -> str:
    """The one 'Error: ...' line a failing command printed (and no traceback)."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def query(cli: Cli, sql: str) -> list[tuple]:
    """Rows of a query on the workspace file, opened read-only."""
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def write_csv(path: Path, header: str, rows: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    (folder / "sources").mkdir(parents=True)
    (folder / "sources" / "police.toml").write_text(textwrap.dedent(POLICE_TOML), encoding="utf-8")
    return folder


@pytest.fixture
def cli(tmp_path: Path, config_dir: Path) -> Cli:
    runner = Cli(tmp_path / "ws", config_dir)
    result = runner("init")
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture
def police_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "police.csv", POLICE_HEADER, POLICE_ROWS, encoding="gb18030")

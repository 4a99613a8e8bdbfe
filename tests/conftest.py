"""Shared fixtures: a temp workspace, a small source config and the CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
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


# ---- LibreOffice (and poppler-utils, a Chinese font): installed when missing ----------------------

LIBREOFFICE_PACKAGES = ["libreoffice-calc", "poppler-utils", "fonts-wqy-microhei"]


def _office_tools() -> str | None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    return soffice if soffice and shutil.which("pdftotext") and shutil.which("pdfinfo") else None


@pytest.fixture(scope="session")
def soffice() -> str:
    """The LibreOffice binary, with pdftotext / pdfinfo and a Chinese font. Installed with apt-get
    when missing (as root); the test is skipped, saying why, only when that install fails."""
    found = _office_tools()
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("LibreOffice is not installed and apt-get cannot install it here (not root, or no apt-get)")
    try:
        done = subprocess.run(
            ["sh", "-c", "apt-get update && apt-get install -y --no-install-recommends " + " ".join(LIBREOFFICE_PACKAGES)],
            capture_output=True, text=True, timeout=1800, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except subprocess.TimeoutExpired:
        pytest.skip("installing LibreOffice with apt-get took longer than 30 minutes")
    found = _office_tools()
    if not found:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"LibreOffice could not be installed with apt-get (exit {done.returncode}: {last[0]})")
    return found


def office_convert(soffice: str, source: Path, to: str, out_dir: Path, home: Path) -> Path:
    """`soffice --headless --convert-to TO` of one file, with a fresh user profile; the converted file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profile = home / f"lo-profile-{to.split(':')[0]}-{source.stem}"
    subprocess.run([soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", to,
                    "--outdir", str(out_dir), str(source)],
                   check=True, capture_output=True, timeout=240, env={**os.environ, "HOME": str(home)})
    return out_dir / f"{source.stem}.{to.split(':')[0]}"


# ---- a workspace of the generator's data, built once per session (copy it to change it) ---------

SAMPLE_AS_OF = "2026-03-31T00:00"


@pytest.fixture(scope="session")
def sample_workspace(tmp_path_factory) -> tuple[Path, Path]:
    """(workspace, data folder): `linkage sample --people 400 --seed 7` with every corruption profile
    (hard cases, so that a few flags are false alarms), every source ingested, matched and chained
    as of the sample's as-of, with the shipped configs."""
    root = tmp_path_factory.mktemp("sample")
    data, workspace = root / "data", root / "ws"
    runner = Cli(workspace, CONFIGS)
    steps = [("sample", "--people", "400", "--seed", "7", "--as-of", SAMPLE_AS_OF, "--out", str(data),
              "--corruption", "unverified,doc_kinds,multi_phone,reissued,thin,duplicates,twins"), ("init",),
             *(("ingest", "--source", name, str(data / f"{name}.csv")) for name in ("immigration", "health", "police")),
             ("ingest", "--source", "commerce", str(data / "commerce.xlsx")), ("match",),
             ("chain", "--as-of", SAMPLE_AS_OF)]
    for step in steps:
        result = runner(*step)
        assert result.exit_code == 0, (step, result.output)
    return workspace, data


def copy_workspace(source: Path, target: Path) -> Cli:
    """A copy of a workspace folder, and the CLI on it with the shipped configs."""
    shutil.copytree(source, target)
    return Cli(target, CONFIGS)

"""`linkage report`: the self-contained HTML report, its PNGs, and the report drawn in headless Chromium.

One small real workspace is built once for the module: the generator's exports of 300 travelers
(plus a police row with an unknown country and a phone number too short, so values are reported,
and one malformed police row, so a row is rejected) taken in by two nightly runs (`linkage run`) as of two times, which gives match, chain
and nightly runs to show trends of, and flags new, open and resolved.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import CONFIGS, Cli, error_line, query

SECTIONS = ["sources", "rejects", "completeness", "model", "pair-weights", "clusters", "chain", "flags", "answers",
            "trends"]
CHARTS = ["source-records", "rejects", "completeness", "model-weights", "pair-weights", "cluster-sizes",
          "chain-funnel", "flags-by-district", "unanswered-flags", "trend-match", "trend-chain", "trend-nightly"]
SOURCES = ("immigration", "health", "police", "commerce")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=10000"]
# Debian packages the browser test needs: the browser, and a font with Chinese glyphs for district names.
BROWSER_PACKAGES = ("chromium", "fonts-wqy-microhei")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    cli = Cli(folder / "unused", CONFIGS)
    result = cli("sample", "--people", "300", "--seed", "11", "--out", str(folder))
    assert result.exit_code == 0, result.output
    with open(folder / "police.csv", "ab") as handle:
        handle.write("\r\n".join([
            # a country no list knows and a phone number too short: loaded, both values reported
            "GA-EXTRA-1,临时住宿登记,QUASIMODO,BELLRINGER,男,04/01/1989,Atlantis,护照,ZX4821937,12345,"
            "北京市通州区和平街道美林小区33号楼4单元803,2025-04-07 10:03:35,朝阳分局三里屯派出所,朝阳区",
            "GA-BROKEN,临时住宿登记",    # too few fields: rejected
        ]).encode("gb18030") + b"\r\n")
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, exports) -> Cli:
    """Two nightly runs: the first as of 2026-03-25, the second (no new files) as of 2026-03-31."""
    cli = Cli(tmp_path_factory.mktemp("report") / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    for source in SOURCES:
        inbox = cli.workspace / "inbox" / source
        inbox.mkdir(parents=True)
        for f in exports.glob(f"{source}.*"):
            shutil.copy(f, inbox / f.name)
    for as_of in ("2026-03-25T00:00", "2026-03-31T00:00"):
        result = cli("run", "--as-of", as_of)
        assert result.exit_code in (0, 3), result.output
    return cli


@pytest.fixture(scope="module")
def report(workspace, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "report.html"
    result = workspace("report", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote the report to {out}" in result.stdout
    return out


def personal_values(cli: Cli, exports: Path) -> set[str]:
    """Names, birth dates, document and phone numbers as the exports wrote them and as the workspace
    holds them (standardized), and record keys; short ones left out (they occur in any text)."""
    values: set[str] = set()
    for name, encoding in (("immigration", "utf-8-sig"), ("health", "utf-8-sig"), ("police", "gb18030")):
        with open(exports / f"{name}.csv", encoding=encoding, newline="") as handle:
            for row in csv.DictReader(handle):
                for column in ("FULL_NAME", "DATE_OF_BIRTH", "TRAVEL_DOC_NO", "姓名", "出生日期", "证件号码", "联系电话"):
                    values.add((row.get(column) or "").strip())
    commerce = pl.read_excel(exports / "commerce.xlsx")
    for column in ("姓名", "证件号码", "联系电话"):
        if column in commerce.columns:
            values.update(str(v) for v in commerce[column].drop_nulls().to_list())
    for row in query(cli, """
            SELECT full_name, local_name, strftime(dob, '%Y-%m-%d'), passport, id_number, permit_no, email, address,
                   array_to_string(doc_numbers, '|'), array_to_string(phones, '|'), record_id FROM records"""):
        for value in row:
            values.update((value or "").split("|"))
    return {v for v in values if len(v) >= 6 or (len(v) >= 2 and re.search(r"[\u4e00-\u9fff]", v) and len(v) >= 3)}


def test_the_report_holds_every_section_and_chart_and_no_external_reference(report, workspace):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert re.findall(r'data-section="([^"]+)"', text) == SECTIONS
    assert re.findall(r'data-chart="([^"]+)"', text) == CHARTS
    assert f'data-charts="{len(CHARTS)}"' in text
    # The Vega libraries are inlined: no script or stylesheet comes from anywhere else.
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b", text, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", text, re.IGNORECASE)
    assert "vegaEmbed" in text and len(text) > 500_000     # the bundle itself is in the file
    assert "No answers imported yet" in text               # no feedback table in this workspace
    ((values,),) = query(workspace, "SELECT count(*) FROM rejects WHERE kind = 'value'")
    assert values >= 3     # the extra police row's country, phone and document
    for sentence in ("1 row rejected (not loaded)", f"{values:,} values not standardized", "The model of match run", "Chain run 2 as of 2026-03-31",
                     "2 nightly runs"):
        assert sentence in text


def test_the_report_holds_no_personal_data(report, workspace, exports):
    text = report.read_text(encoding="utf-8")
    values = personal_values(workspace, exports)
    assert len(values) > 1000
    leaked = sorted(text.index(v) for v in values if v in text)
    assert not leaked, f"{len(leaked)} personal values in the report, the first at character {leaked[0]}"
    assert not re.search(r"\bP\d{8}\b", text), "a person id in the report"


def test_the_report_is_written_atomically_and_a_bad_png_folder_leaves_it_untouched(workspace, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("the report of yesterday", encoding="utf-8")
    not_a_folder = tmp_path / "png"
    not_a_folder.write_text("a file", encoding="utf-8")
    result = workspace("report", "--out", str(out), "--png", str(not_a_folder))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: --png {not_a_folder}: not a folder"
    assert out.read_text(encoding="utf-8") == "the report of yesterday"
    result = workspace("report", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png", "report.html"]   # no temp file left
    assert (out.stat().st_mode & 0o077) == 0                                       # owner-only
    missing = tmp_path / "no-such-folder" / "report.html"
    result = workspace("report", "--out", str(missing))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: {missing.parent}: folder not found"


def test_png_writes_every_chart_under_a_stable_name(workspace, tmp_path):
    out_dir = tmp_path / "charts"
    result = workspace("--json", "report", "--out", str(tmp_path / "report.html"), "--png", str(out_dir))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["charts"] == CHARTS and payload["sections"] == SECTIONS
    assert payload["png"] == [str(out_dir / f"{name}.png") for name in CHARTS]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{name}.png" for name in CHARTS)
    for name in CHARTS:
        data = (out_dir / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name


def test_a_workspace_without_match_or_chain_still_gets_a_report(cli, police_csv, tmp_path):
    out = tmp_path / "early.html"
    result = cli("report", "--out", str(out))                   # nothing ingested yet
    assert result.exit_code == 0, result.output
    assert "The workspace holds no ingested sources yet" in out.read_text(encoding="utf-8")
    assert cli("ingest", "--source", "police", str(police_csv)).exit_code == 0
    result = cli("report", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert re.findall(r'data-section="([^"]+)"', text) == SECTIONS
    assert re.findall(r'data-chart="([^"]+)"', text) == ["source-records", "completeness"]
    for sentence in ("No match yet: &#x27;linkage match&#x27; trains the model.", "No chain run yet: no flags.",
                     "No answers imported yet", "No nightly run yet"):
        assert sentence in text


def test_officers_answers_come_from_a_feedback_table_when_there_is_one(workspace, tmp_path):
    copy = Cli(tmp_path / "ws", CONFIGS)
    shutil.copytree(workspace.workspace, copy.workspace, ignore=shutil.ignore_patterns("inbox", "archive", "exports"))
    con = duckdb.connect(str(copy.workspace / "linkage.duckdb"))
    try:
        answers = """
            INSERT INTO feedback (flag_key, district, outcome, answered_by, file_name, file_sha256, row_no, imported_at)
            SELECT flag_key, district,
                   CASE WHEN row_number() OVER (ORDER BY flag_key) % 2 = 0 THEN 'confirmed' ELSE 'not_same_person' END,
                   'officer', 'returned.csv', '{sha}', row_number() OVER (ORDER BY flag_key) + 1, TIMESTAMP '{at}'
            FROM flags WHERE run_id = (SELECT max(run_id) FROM chain_runs) AND status IN ('new', 'open')
            ORDER BY flag_key LIMIT 6"""
        con.execute(answers.format(sha="a" * 64, at="2026-04-01 09:00"))   # answered twice: the newest counts
        con.execute(answers.format(sha="b" * 64, at="2026-04-01 10:00"))
        current = con.execute("SELECT count(*) FROM flags WHERE run_id = (SELECT max(run_id) FROM chain_runs) "
                              "AND status IN ('new', 'open')").fetchone()[0]
    finally:
        con.close()
    out = tmp_path / "report.html"
    result = copy("report", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "No answers imported yet" not in text
    assert 'data-chart="answers-by-district"' in text
    assert "6 answers from" in text
    assert f"{current - 6:,} current flags have no answer" in text


# ---- in a browser ------------------------------------------------------------------------------

def _missing_packages() -> list[str]:
    missing = []
    for package in BROWSER_PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (and a Chinese font), installed with apt-get when missing; the test is
    skipped, saying why, only where that install fails."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        found = shutil.which("chromium")
        if found is None:
            pytest.skip("chromium is not installed and this is not a Debian system with apt-get to install it")
        return found
    missing = _missing_packages()
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0 and shutil.which("chromium") is None:
                pytest.skip(f"chromium is missing and '{' '.join(command)}' failed (exit {done.returncode}): "
                            f"{done.stderr.strip().splitlines()[-1:] or ''}")
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium could not be installed with apt-get")
    return found


def _offline() -> list[str]:
    """`unshare -n` (a network namespace with no interface) where this user may make one: the page
    is then opened with no network at all."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-n"]
    return []


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([*_offline(), browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def test_every_chart_renders_in_headless_chromium(chromium, report, tmp_path):
    url = report.resolve().as_uri()
    done = _chromium(chromium, "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert f'data-charts-rendered="{len(CHARTS)}"' in dom, "not every chart was drawn"
    assert 'data-charts-failed="0"' in dom
    shown = re.sub(r"<(script|style|noscript)\b.*?</\1>", "", dom, flags=re.S | re.I)
    assert "chart-error" not in shown
    text = re.sub(r"<[^>]+>", " ", shown)
    assert not re.search(r"could not be drawn|\berror\b", text, re.I), "error text in the page"
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div class="chart[^"]*" id="chart-([^"]+)"', dom)]
    assert [name for _, name in starts] == CHARTS
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(dom), "")]):
        container = dom[start:end]
        assert "<svg" in container, f"chart {name}: no <svg>"
        marks = re.findall(r'<path[^>]* d="M[^"]+"', container)
        assert len(marks) >= 3, f"chart {name}: the svg draws nothing"
    shot = tmp_path / "report.png"
    done = _chromium(chromium, "--window-size=1100,4000", "--hide-scrollbars", f"--screenshot={shot}", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000

"""`linkage run` (the nightly job), `linkage runs` and the writer lock, through real subprocesses
and real files: inbox -> archive / rejected, exports/RUN and exports/latest, the run record and log,
exit codes 0 / 3 / 4, readers during a writer, a lock left by a killed process, cron's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import CONFIGS

AS_OF = "2026-03-31T00:00"
SOURCES = ("immigration", "health", "police", "commerce")
LINKAGE = [sys.executable, "-m", "linkage"]


def linkage(workspace: Path, *args: str, env: dict | None = None, cwd: Path | None = None,
            config_dir: Path = CONFIGS) -> subprocess.CompletedProcess:
    return subprocess.run([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(config_dir), *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """The four agencies' exports of 250 synthetic travelers."""
    folder = tmp_path_factory.mktemp("exports")
    done = subprocess.run([*LINKAGE, "sample", "--people", "250", "--seed", "21", "--out", str(folder)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return folder


def fill_inbox(workspace: Path, exports: Path, sources=SOURCES) -> None:
    for source in sources:
        inbox = workspace / "inbox" / source
        inbox.mkdir(parents=True, exist_ok=True)
        for f in exports.glob(f"{source}.*"):
            shutil.copy(f, inbox / f.name)


def new_workspace(tmp_path: Path, exports: Path, name: str = "ws", sources=SOURCES) -> Path:
    workspace = tmp_path / name
    if not (tmp_path / "empty").is_dir():
        assert linkage(tmp_path / "empty", "init").returncode == 0
    shutil.copytree(tmp_path / "empty", workspace)
    fill_inbox(workspace, exports, sources)
    return workspace


def _query(workspace: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workspace / "linkage.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def outcome(workspace: Path) -> dict:
    """What a run leaves: clusters, flags, the latest district files (bytes), the run records, the folders."""
    latest = workspace / "exports" / "latest"
    keep = ("run_id", "status", "as_of", "files_ingested", "files_rejected", "records", "persons", "merges", "splits",
            "flags_new", "flags_open", "flags_resolved")
    return {
        "clusters": sorted(_query(workspace, "SELECT source, record_id, person_id FROM linked_persons")),
        "flags": sorted(_query(workspace, "SELECT person_id, code, stage, status, severity, district, reason, "
                                          "first_seen_run FROM flags WHERE run_id = (SELECT max(run_id) FROM chain_runs)")),
        "exports": {f.name: f.read_bytes() for f in sorted(latest.iterdir())},
        "latest": os.readlink(latest),
        "records": sorted(_query(workspace, "SELECT source, count(*), count(DISTINCT batch_id) FROM records GROUP BY 1")),
        "batches": _query(workspace, "SELECT count(*) FROM batches")[0][0],
        "runs": _query(workspace, f"SELECT {', '.join(keep)} FROM runs ORDER BY run_id"),
        "inbox": sorted(str(p.relative_to(workspace)) for p in (workspace / "inbox").rglob("*") if p.is_file()),
        "archive": sorted(str(p.relative_to(workspace)) for p in (workspace / "archive").rglob("*") if p.is_file()),
        "hidden": sorted(str(p.relative_to(workspace)) for p in (workspace / "exports").rglob(".*")),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, exports) -> dict:
    """One uninterrupted run."""
    workspace = new_workspace(tmp_path_factory.mktemp("reference"), exports)
    done = linkage(workspace, "run", "--as-of", AS_OF)
    assert done.returncode == 3, done.stderr   # the sample has travelers out of the chain
    return {**outcome(workspace), "workspace": workspace}


def workspace_of(reference: dict) -> Path:
    return reference["workspace"]


def test_a_run_ingests_the_inbox_archives_it_and_writes_the_run_export(reference, exports, tmp_path):
    assert reference["inbox"] == []
    assert reference["archive"] == sorted(f"archive/run-0001/{f.stem}/{f.name}" for f in exports.iterdir()
                                          if f.stem in SOURCES)
    assert reference["latest"] == "run-0001"
    manifest = json.loads(reference["exports"]["manifest.json"])
    assert manifest["rows"] > 0 and {f["file"] for f in manifest["files"]} | {"manifest.json"} == set(reference["exports"])
    runs = json.loads(linkage(workspace_of(reference), "runs", "--json").stdout)["runs"]
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["files_ingested"] == 4
    assert runs[0]["flags_new"] == manifest["rows"] and runs[0]["seconds"]["match"] > 0
    assert reference["hidden"] == []


def test_the_next_night_without_new_exports_exits_0_or_3_by_its_new_flags(tmp_path, exports):
    workspace = new_workspace(tmp_path, exports)
    assert linkage(workspace, "run", "--as-of", AS_OF).returncode == 3
    again = linkage(workspace, "run", "--as-of", AS_OF, "--json")
    summary = json.loads(again.stdout)
    assert again.returncode == 0 and summary["flags_new"] == 0 and summary["flags_open"] > 0
    assert summary["export_dir"].endswith("run-0002") and os.readlink(workspace / "exports" / "latest") == "run-0002"
    events = [json.loads(line) for line in (workspace / "logs" / "linkage.log").read_text().splitlines()]
    assert [e["event"] for e in events if e["run_id"] == 2][0] == "run_start"
    ends = [e for e in events if e["event"] == "step_end" and e["run_id"] == 1]
    assert [e["step"] for e in ends] == ["ingest"] * 4 + ["match", "chain", "export"]
    assert all("seconds" in e for e in ends)


def test_a_file_that_fails_goes_to_rejected_with_its_reason_and_the_rest_is_run(tmp_path, exports):
    workspace = new_workspace(tmp_path, exports)
    bad = workspace / "inbox" / "police" / "police-extra.csv"
    bad.write_text("this,is,not\nthe,police,export\n", encoding="utf-8")
    done = linkage(workspace, "run", "--as-of", AS_OF)
    assert done.returncode == 3, done.stderr
    rejected = workspace / "rejected" / "run-0001" / "police"
    assert (rejected / "police-extra.csv").is_file() and not bad.exists()
    reason = (rejected / "police-extra.csv.reason.txt").read_text(encoding="utf-8")
    assert "police-extra.csv" in reason and "column" in reason
    assert "police-extra.csv rejected" in done.stderr
    runs = json.loads(linkage(workspace, "runs", "--json").stdout)["runs"]
    assert runs[0]["files_ingested"] == 4 and runs[0]["files_rejected"] == 1


def test_a_bad_config_exits_2_before_anything_is_touched(tmp_path, exports):
    workspace = new_workspace(tmp_path, exports)
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    with open(configs / "sources" / "police.toml", "a", encoding="utf-8") as handle:
        handle.write("bogus = 1\n")
    before = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    done = linkage(workspace, "run", config_dir=configs)
    assert done.returncode == 2 and "police.toml" in done.stderr and "bogus" in done.stderr
    assert sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*")) == before
    assert json.loads(linkage(workspace, "runs", "--json").stdout)["runs"] == []
    assert (workspace / "writer.lock").read_text() == ""   # released, though the command failed


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path, exports):
    workspace = new_workspace(tmp_path, exports)
    audit_log = workspace / "audit" / "audit.jsonl"   # the one file a reader appends to
    before = {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file() and p != audit_log}
    done = linkage(workspace, "run", "--dry-run", "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    assert "ingest police police.csv" in done.stdout and "run-0001" in done.stdout
    plan = json.loads(linkage(workspace, "run", "--dry-run", "--json").stdout)
    assert [s["kind"] for s in plan["steps"]] == ["ingest"] * 4 + ["match", "chain", "export"]
    assert {p: p.read_bytes() for p in workspace.rglob("*") if p.is_file() and p != audit_log} == before
    entries = [json.loads(line) for line in audit_log.read_text(encoding="utf-8").splitlines()]
    assert [(e["command"], e["args"].get("--dry-run")) for e in entries[-2:]] == [("linkage run", True)] * 2


HOLD = """
import sys, time
from pathlib import Path
from linkage.lock import writer_lock
with writer_lock(Path(sys.argv[1]), "linkage match"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(workspace: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(workspace)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_exits_4_naming_the_holder_and_readers_still_answer(tmp_path, exports):
    workspace = new_workspace(tmp_path, exports)
    assert linkage(workspace, "run", "--as-of", AS_OF).returncode == 3
    holder = _holder(workspace)
    try:
        for args in (["run"], ["match"], ["ingest", "--source", "police", str(exports / "police.csv")],
                     ["init", "--force"], ["chain", "--wait", "0.5"]):
            done = linkage(workspace, *args)
            assert done.returncode == 4, (args, done.stderr)
            assert "'linkage match' started" in done.stderr and f"(PID {holder.pid})" in done.stderr
        status = linkage(workspace, "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["sources"]["police"]["records"] > 0
        assert linkage(workspace, "runs").returncode == 0
    finally:
        holder.kill()
        holder.wait()
    # The killed holder's lock is free; its record stays behind and the next writer reports taking over.
    done = linkage(workspace, "run", "--as-of", AS_OF)
    assert done.returncode == 0, done.stderr
    assert "took over the workspace lock left by 'linkage match'" in done.stderr
    log = [json.loads(line) for line in (workspace / "logs" / "linkage.log").read_text().splitlines()]
    assert any(e["event"] == "lock_takeover" and e["left_by"]["pid"] == holder.pid for e in log)


def test_two_runs_started_at_once_one_works_the_other_exits_4(tmp_path, exports, reference):
    workspace = new_workspace(tmp_path, exports)
    command = [*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), "run", "--as-of", AS_OF]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [3, 4], results
    assert "another writer holds the workspace" in results[1][1] and "'linkage run' started" in results[1][1]
    got = outcome(workspace)
    assert all(got[key] == reference[key] for key in got)


def test_readers_during_a_writer_see_the_state_before_it(tmp_path, exports):
    """DuckDB admits no reader while a process writes the file: readers open the snapshot."""
    workspace = new_workspace(tmp_path, exports)
    assert linkage(workspace, "run", "--as-of", AS_OF).returncode == 3
    fill_inbox(workspace, exports, ["police"])
    (workspace / "inbox" / "police" / "police.csv").rename(workspace / "inbox" / "police" / "police-2.csv")
    proc = subprocess.Popen([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), "run", "--full",
                             "--retrain", "--as-of", AS_OF], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = workspace / "logs" / "linkage.log"
        deadline = time.monotonic() + 120
        while '"run_id": 2, "step": "match"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        reader = linkage(workspace, "runs", "--json")
        assert reader.returncode == 0
        if proc.poll() is None:   # still writing: the reader saw the state before run 2
            assert [r["run_id"] for r in json.loads(reader.stdout)["runs"]] == [1]
            assert "is writing the workspace" in reader.stderr
    finally:
        proc.wait(timeout=300)
    assert proc.returncode in (0, 3), proc.stderr.read()


def test_cron_environment_plain_lines_no_colour_documented_codes(tmp_path, exports):
    """env -i: no TTY, no HOME, LANG=C, another working directory; every path from pipeline.toml."""
    configs = tmp_path / "etc"
    shutil.copytree(CONFIGS, configs)
    (configs / "pipeline.toml").write_text('workspace = "../srv/ws"\nconfig_dir = "."\n', encoding="utf-8")
    workspace = tmp_path / "srv" / "ws"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    bare = [sys.executable, "-m", "linkage"]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    subprocess.run([*bare, "--workspace", str(workspace), "init"], env=env, cwd=cwd, check=True, capture_output=True)
    fill_inbox(workspace, exports)
    done = subprocess.run([*bare, "run", "--config", str(configs / "pipeline.toml"), "--as-of", AS_OF], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stderr
    assert "\x1b[" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 + 3 + 1 and lines[-1].startswith("Run 1 done")
    assert (workspace / "exports" / "latest" / "manifest.json").is_file()
    again = subprocess.run([*bare, "run", "--config", str(configs / "pipeline.toml"), "--as-of", AS_OF], env=env,
                           cwd=cwd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "\x1b[" not in again.stdout + again.stderr


def _match_persons(workspace: Path) -> dict[tuple[str, str], str]:
    return {(s, r): p for s, r, p in _query(workspace, "SELECT source, record_id, person_id FROM persons")}


def test_nights_keep_person_ids_record_every_change_and_equal_a_full_rematch(tmp_path, exports):
    """One source a night: a record's person id changes only by a recorded merge or split; the last
    night's clusters equal those of `run --full` on the same data with the same model."""
    nightly = new_workspace(tmp_path, exports, "nightly", sources=[])
    before: dict = {}
    for night, source in enumerate(SOURCES, 1):
        fill_inbox(nightly, exports, [source])
        done = linkage(nightly, "run", "--as-of", AS_OF)
        assert done.returncode in (0, 3), done.stderr
        after = _match_persons(nightly)
        changes = _query(nightly, "SELECT run_id, kind, person_id, other_person_ids FROM person_changes")
        merged = {(new, old) for run, kind, new, olds in changes if run == night and kind == "merge" for old in olds}
        split = {(new, old) for run, kind, old, news in changes if run == night and kind == "split" for new in news}
        for key, old in before.items():
            if after[key] != old:
                assert (after[key], old) in merged | split, (night, key)
        before = after
    full = tmp_path / "full"
    shutil.copytree(nightly, full, symlinks=True)
    done = linkage(full, "run", "--full", "--as-of", AS_OF, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "reused"
    assert _match_persons(full) == _match_persons(nightly)
    assert outcome(full)["clusters"] == outcome(nightly)["clusters"]


# ---- kill -9 at many points ------------------------------------------------------------------

# (log lines already written when the kill comes, extra delay in seconds). The log has a line at the
# run's start and at each step's start and end: 1 run start; 2-9 four ingests; 10-11 match; 12-13
# chain; 14-15 export; then the run is closed. So these points fall before and inside every step.
KILL_POINTS = [(0, 0.0), (1, 0.0), (1, 0.2), (2, 0.0), (3, 0.0), (4, 0.05), (5, 0.0), (6, 0.02), (7, 0.0),
               (8, 0.03), (9, 0.0), (10, 0.0), (10, 0.3), (10, 0.8), (10, 1.5), (10, 2.2), (11, 0.0), (12, 0.0),
               (12, 0.05), (12, 0.12), (13, 0.0), (14, 0.0), (14, 0.01), (15, 0.0)]


def _run_until_killed(workspace: Path, after_lines: int, delay: float) -> None:
    """Start `linkage run`, kill -9 it once the log has `after_lines` lines plus `delay`."""
    log = workspace / "logs" / "linkage.log"
    proc = subprocess.Popen([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), "run",
                             "--as-of", AS_OF], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        lines = len(log.read_text().splitlines()) if log.exists() else 0
        if lines >= after_lines:
            break
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _finished(workspace: Path) -> bool:
    """Did the killed process get to record its run as done (the kill came after the work)?"""
    tables = {t for (t,) in _query(workspace, "SELECT table_name FROM information_schema.tables")}
    return "runs" in tables and bool(_query(workspace, "SELECT count(*) FROM runs WHERE status = 'succeeded'")[0][0])


def test_a_run_killed_at_any_point_is_finished_by_the_next_with_the_same_result(tmp_path, exports, reference):
    interrupted = []
    for n, (after_lines, delay) in enumerate(KILL_POINTS):
        workspace = new_workspace(tmp_path, exports, f"kill{n}")
        _run_until_killed(workspace, after_lines, delay)
        if not _finished(workspace):
            interrupted.append((after_lines, delay))
            done = linkage(workspace, "run", "--as-of", AS_OF)
            assert done.returncode == 3, (n, done.stderr)
        got = outcome(workspace)
        for key in got:
            assert got[key] == reference[key], (n, after_lines, delay, key)
        shutil.rmtree(workspace)
    assert len(interrupted) >= 20, interrupted

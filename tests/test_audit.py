"""The audit log (audit.py, `linkage audit show / verify / head`): one hash-chained entry per command
that opens the workspace, on a real workspace in tmp_path through the CLI (CliRunner and subprocesses):
files written with their sha256, no personal value, secrets masked, outcomes of failing commands;
edits, deletions, insertions, reorderings and truncations each found (exit 5, naming the entry);
appends of concurrent processes (readers while a writer holds the DuckDB file) on one valid chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
import typer

from conftest import CONFIGS, POLICE_HEADER, POLICE_ROWS, POLICE_TOML, Cli, error_line, query, write_csv
from linkage import audit

AS_OF = "2026-03-31T00:00"
SOURCES = ("immigration", "health", "police", "commerce")
LINKAGE = [sys.executable, "-m", "linkage"]


def entries(workspace: Path) -> list[dict]:
    return [json.loads(line) for line in (workspace / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()]


def lines(workspace: Path) -> list[str]:
    return (workspace / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def write_lines(workspace: Path, text: list[str]) -> None:
    (workspace / "audit" / "audit.jsonl").write_text("".join(text), encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """A workspace of 100 synthetic travelers: init, then the nightly run of the four agencies' exports
    (ingest, match, chain, export), in-process."""
    from linkage.sample import generate_sample

    root = tmp_path_factory.mktemp("audit")
    generate_sample(100, 5, root / "data", as_of=datetime.fromisoformat(AS_OF))
    cli = Cli(root / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    for source in SOURCES:
        inbox = root / "ws" / "inbox" / source
        inbox.mkdir(parents=True)
        for f in (root / "data").glob(f"{source}.*"):
            shutil.copy(f, inbox / f.name)
    result = cli("run", "--as-of", AS_OF)
    assert result.exit_code in (0, 3), result.output
    return {"root": root, "workspace": root / "ws", "data": root / "data"}


@pytest.fixture
def ws(built, tmp_path) -> Cli:
    """A copy of the built workspace (the tests change its log)."""
    shutil.copytree(built["workspace"], tmp_path / "ws")
    return Cli(tmp_path / "ws", CONFIGS)


@pytest.fixture(scope="module")
def small_template(tmp_path_factory) -> Cli:
    """Five entries on the three-row police fixture: init, ingest, status, rejects, status --json."""
    root = tmp_path_factory.mktemp("small")
    (root / "configs" / "sources").mkdir(parents=True)
    (root / "configs" / "sources" / "police.toml").write_text(textwrap.dedent(POLICE_TOML), encoding="utf-8")
    police = write_csv(root / "police.csv", POLICE_HEADER, POLICE_ROWS, encoding="gb18030")
    cli = Cli(root / "ws", root / "configs")
    for args in (["init"], ["ingest", "--source", "police", str(police)], ["status"], ["rejects"], ["status", "--json"]):
        assert cli(*args).exit_code == 0
    return cli


@pytest.fixture
def small(small_template, tmp_path) -> Cli:
    """A copy of the five-entry workspace (the tests change its log)."""
    shutil.copytree(small_template.workspace, tmp_path / "ws")
    cli = Cli(tmp_path / "ws", small_template.config_dir)
    assert [e["seq"] for e in entries(cli.workspace)] == [1, 2, 3, 4, 5]
    return cli


def verify(cli: Cli, *args: str):
    return cli("audit", "verify", *args)


# ---- what an entry holds ---------------------------------------------------------------------

def test_each_command_on_the_workspace_appends_one_chained_entry(built, small):
    user = pwd.getpwuid(os.getuid()).pw_name
    for log in (entries(built["workspace"]), entries(small.workspace)):
        prev = audit.GENESIS
        for n, e in enumerate(log, 1):
            assert e["seq"] == n and e["prev"] == prev and e["hash"] == audit.entry_hash(e)
            assert e["user"] == user and e["uid"] == os.getuid() and e["outcome"] == "ok"
            assert e["time"].endswith("Z") and datetime.fromisoformat(e["time"].replace("Z", "+00:00")).tzinfo
            prev = e["hash"]
    log = entries(small.workspace)
    assert [e["command"] for e in log] == ["linkage init", "linkage ingest", "linkage status", "linkage rejects",
                                           "linkage status"]
    ingest = log[1]
    assert ingest["args"]["--source"] == "police" and ingest["args"]["files"][0].endswith("police.csv")
    assert ingest["counts"] == {"files": 1, "rows_read": 3, "rows_loaded": 3, "rows_rejected": 0}
    assert log[2]["counts"] == {"records": 3} and log[4]["args"]["--json"] is True
    assert set(log[4]["args"]) == {"--json", "--config-dir", "--workspace"}
    # the workspace keeps the head of the last writer (the ingest: entry 2)
    assert query(small, "SELECT seq, hash FROM audit_head") == [(2, log[1]["hash"])]
    mode = os.stat(small.workspace / "audit" / "audit.jsonl").st_mode & 0o777
    assert mode == 0o600 and os.stat(small.workspace / "audit").st_mode & 0o777 == 0o700


def test_files_written_are_recorded_with_their_sha256(ws, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for args in (["export", "clusters", "--out", str(out / "clusters.csv")],
                 ["export", "flags", "--out", str(out / "flags.csv")],
                 ["export", "discrepancies", "--out", str(out / "districts")],
                 ["rejects", "--out", str(out / "rejects.csv")],
                 ["model", "save", str(out / "model.json")]):
        result = ws(*args)
        assert result.exit_code == 0, result.output
    log = entries(ws.workspace)[-5:]
    written = {Path(f["path"]): f for e in log for f in e["files"]}
    expected = {out / "clusters.csv", out / "flags.csv", out / "rejects.csv", out / "model.json",
                *(out / "districts").iterdir()}
    assert set(written) == expected and (out / "districts" / "manifest.json") in written
    for path, f in written.items():
        assert f["sha256"] == sha256(path) and f["bytes"] == path.stat().st_size
    clusters, flags = log[0], log[1]
    assert clusters["counts"]["rows"] == query(ws, "SELECT count(*) FROM records")[0][0]
    assert flags["counts"]["rows"] == len((out / "flags.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert log[2]["counts"]["files"] == len(list((out / "districts").iterdir())) - 1   # the manifest aside
    assert verify(ws).exit_code == 0


def test_a_nightly_run_records_its_export_folder_under_its_final_name(built):
    workspace = built["workspace"]
    assert [e["command"] for e in entries(workspace)] == ["linkage init", "linkage run"]
    run = entries(workspace)[-1]
    assert run["outcome"] == "ok" and run["counts"]["records"] > 0 and run["counts"]["files_ingested"] == 4
    folder = workspace / "exports" / "run-0001"
    assert {Path(f["path"]) for f in run["files"]} == set(folder.iterdir())
    assert all(f["sha256"] == sha256(Path(f["path"])) for f in run["files"])


def test_no_personal_value_reaches_the_log_not_even_from_failing_commands(ws, built, tmp_path):
    records = query(ws, "SELECT full_name, local_name, passport, id_number, permit_no, phone, email FROM records")
    values = {v for row in records for v in row if v and len(v) >= 2}
    assert len(values) > 200
    person = query(ws, "SELECT person_id FROM persons LIMIT 1")[0][0]
    key = "{}:{}".format(*query(ws, "SELECT source, record_id FROM records LIMIT 1")[0])
    commands = [["status"], ["rejects"], ["timeline", person], ["explain", "--person", person],
                ["evaluate", "--truth", str(built["data"] / "truth_entities.csv")],
                ["export", "clusters", "--out", str(tmp_path / "c.csv")],
                ["export", "discrepancies", "--out", str(tmp_path / "d"), "--profile", "full"],
                ["explain", key, "immigration:NO-SUCH-RECORD"],                  # fails: exit 2
                ["export", "flags", "--out", str(tmp_path / "missing" / "f.csv")],  # fails: exit 2
                ["ingest", "--source", "police", str(tmp_path / "absent.csv")]]    # fails: exit 2
    for args in commands:
        ws(*args)
    text = (ws.workspace / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert len(entries(ws.workspace)) == 2 + len(commands)
    leaked = sorted(v for v in values if v in text)
    assert leaked == []
    assert [e["outcome"] for e in entries(ws.workspace)[-3:]] == ["failed"] * 3


def test_a_failing_command_records_its_exit_code_and_error_class_not_its_text(small, tmp_path):
    result = small("export", "flags", "--out", str(tmp_path / "nowhere" / "flags.csv"))
    assert result.exit_code == 2
    last = entries(small.workspace)[-1]
    assert (last["command"], last["outcome"], last["exit_code"], last["error"]) == \
        ("linkage export flags", "failed", 2, "InputError")
    assert "chain" not in json.dumps(last)   # the message ("no chain run yet ...") is not recorded
    assert verify(small).exit_code == 0


def test_secrets_and_environment_values_are_not_recorded(small, monkeypatch):
    from linkage.cli import _reading, app

    @app.command("probe-secrets", hidden=True)
    def probe(api_token: str = typer.Option(..., "--api-token"), key_file: str = typer.Option("", "--key-file"),
              db_password: str = typer.Option("", "--db-password"), label: str = typer.Option("", "--label")) -> None:
        """Example: none (a command of this test only)."""
        with _reading():
            pass

    try:
        result = small.runner.invoke(app, ["--config-dir", str(small.config_dir), "probe-secrets", "--api-token",
                                           "tok-4711", "--key-file", "/secret/k", "--db-password", "pw-0815",
                                           "--label", "visible"],
                                     env={"LINKAGE_WORKSPACE": str(small.workspace)}, catch_exceptions=False)
    finally:
        app.registered_commands.pop()
    assert result.exit_code == 0, result.output
    last = entries(small.workspace)[-1]
    assert last["args"] == {"--api-token": "***", "--key-file": "***", "--db-password": "***", "--label": "visible",
                            "--config-dir": str(small.config_dir)}   # --workspace came from the environment
    text = (small.workspace / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert "tok-4711" not in text and "/secret/k" not in text and "pw-0815" not in text


def test_no_entry_and_no_folder_where_no_workspace_is_nor_for_commands_without_one(small, tmp_path):
    before = len(entries(small.workspace))
    missing = tmp_path / "no-workspace"
    result = Cli(missing, small.config_dir)("status")
    assert result.exit_code == 2 and not missing.exists()
    assert Cli(missing, small.config_dir)("audit", "show").exit_code == 2 and not missing.exists()
    for args in (["--help"], ["audit", "show"], ["audit", "verify"], ["audit", "head", "--out", str(tmp_path / "h")],
                 ["sample", "--people", "5", "--out", str(tmp_path / "s")]):
        assert small(*args).exit_code == 0
    assert len(entries(small.workspace)) == before


def test_cron_without_home_or_user_records_the_user_of_the_uid(small):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "USER": "someone-else"}   # not believed: the uid decides
    done = subprocess.run([*LINKAGE, "--workspace", str(small.workspace), "status"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = entries(small.workspace)[-1]
    assert last["user"] == pwd.getpwuid(os.getuid()).pw_name and last["uid"] == os.getuid()
    assert "--workspace" in last["args"]


def test_audit_show_plain_lines_and_json(small):
    plain = small("audit", "show")
    assert plain.exit_code == 0
    shown = plain.stdout.splitlines()
    assert len(shown) == 5 and shown[1].startswith("2 ") and "linkage ingest" in shown[1] and ": ok" in shown[1]
    assert "rows_read 3" in shown[1]
    as_json = small("audit", "show", "--json", "--last", "2")
    assert [json.loads(line)["seq"] for line in as_json.stdout.splitlines()] == [4, 5]
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == entries(small.workspace)[-2:]


# ---- tampering -------------------------------------------------------------------------------

def test_an_untouched_log_verifies(small):
    result = verify(small)
    assert result.exit_code == 0, result.output
    assert "is intact: 5 entries" in result.stdout and "head of the workspace (entry 2) found" in result.stdout
    assert json.loads(verify(small, "--json").stdout)["intact"] is True


def _edit(text: list[str]) -> list[str]:
    entry = json.loads(text[2])
    entry["counts"]["records"] = entry["counts"]["records"] + 1   # a changed count, hash left as it was
    return [*text[:2], json.dumps(entry, sort_keys=True) + "\n", *text[3:]]


def _edit_and_rehash(text: list[str]) -> list[str]:
    entry = json.loads(text[2])
    entry["user"] = "nobody"
    entry["hash"] = audit.entry_hash(entry)   # consistent in itself: the next entry's `prev` gives it away
    return [*text[:2], json.dumps(entry, sort_keys=True) + "\n", *text[3:]]


def _insert(text: list[str]) -> list[str]:
    forged = json.loads(text[2])
    forged["prev"] = json.loads(text[2])["hash"]
    forged["seq"] = 4
    forged["hash"] = audit.entry_hash(forged)   # a well-formed entry 4 after entry 3
    return [*text[:3], json.dumps(forged, sort_keys=True) + "\n", *text[3:]]


TAMPERING = {
    # name: (change of the five lines, the entry the error line names)
    "edit": (_edit, "line 3, entry 3: edited"),
    "edit and rehash": (_edit_and_rehash, "line 4, entry 4: its previous-entry hash does not match line 3"),
    "delete": (lambda t: [*t[:2], *t[3:]], "line 3, entry 4: expected entry 3 here"),
    "delete the first": (lambda t: t[1:], "line 1, entry 2: expected entry 1 here"),
    "insert": (_insert, "line 5, entry 4: a second entry 4 (the first is on line 4)"),
    "copy": (lambda t: [*t[:4], t[1], t[4]], "line 5, entry 2: a second entry 2 (the first is on line 2)"),
    "reorder": (lambda t: [t[0], t[2], t[1], *t[3:]], "line 2, entry 3: expected entry 2 here"),
    "damage": (lambda t: [*t[:3], t[3][:40] + "\n", t[4]], "line 4: not an audit entry"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_is_found_and_named(small, how):
    change, named = TAMPERING[how]
    write_lines(small.workspace, change(lines(small.workspace)))
    result = verify(small)
    assert result.exit_code == 5, result.output
    assert named in error_line(result), error_line(result)
    assert named in result.stdout   # every problem is listed, the first one first
    report = json.loads(verify(small, "--json").stdout)
    assert report["intact"] is False and report["problems"]


def test_entries_cut_off_the_end_are_found_by_the_head_file(small, tmp_path):
    head = tmp_path / "elsewhere" / "head.json"
    head.parent.mkdir()
    assert small("audit", "head", "--out", str(head)).exit_code == 0
    assert json.loads(head.read_text())["seq"] == 5
    assert verify(small, "--head", str(head)).exit_code == 0
    write_lines(small.workspace, lines(small.workspace)[:3])   # entries 4 and 5 gone: a valid, shorter chain
    assert verify(small).exit_code == 0   # the log alone cannot tell (the workspace's head is entry 2)
    result = verify(small, "--head", str(head))
    assert result.exit_code == 5
    assert "entry 5: named by the head in" in error_line(result) and "the log ends at entry 3" in error_line(result)


def test_a_log_rewritten_after_the_head_was_exported_is_found(small, tmp_path):
    head = tmp_path / "head.json"
    assert small("audit", "head", "--out", str(head)).exit_code == 0
    text = [json.loads(line) for line in lines(small.workspace)]
    prev = audit.GENESIS
    for e in text:   # every entry rewritten, the chain made whole again
        e["user"], e["prev"] = "nobody", prev
        e["hash"] = prev = audit.entry_hash(e)
    write_lines(small.workspace, [json.dumps(e, sort_keys=True) + "\n" for e in text])
    result = verify(small, "--head", str(head))
    assert result.exit_code == 5
    assert "entry 5: its hash differs from the head in" in error_line(result)
    # and the head the last writer stored in the workspace (entry 2) gives it away too, without a file
    assert "entry 2: its hash differs from the head in the workspace" in error_line(verify(small))


def test_a_log_cut_behind_the_last_writer_is_found_by_the_head_in_the_workspace(small):
    write_lines(small.workspace, lines(small.workspace)[:1])   # the ingest (entry 2, a writer) gone
    result = verify(small)
    assert result.exit_code == 5 and "entry 2: named by the head in the workspace" in error_line(result)
    (small.workspace / "audit" / "audit.jsonl").unlink()
    assert verify(small).exit_code == 5


def test_a_bad_head_file_is_bad_input(small, tmp_path):
    bad = tmp_path / "head.json"
    bad.write_text("not json")
    result = verify(small, "--head", str(bad))
    assert result.exit_code == 2 and "not a head file" in error_line(result)


# ---- concurrent appends ----------------------------------------------------------------------

APPENDER = """
import sys
from pathlib import Path
from linkage import audit
for i in range(100):
    audit.append(Path(sys.argv[1]), {"command": "worker " + sys.argv[2], "args": {"i": i}})
"""


def test_processes_appending_at_once_land_on_one_valid_chain(small):
    workers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(small.workspace), str(w)]) for w in range(4)]
    assert [w.wait(60) for w in workers] == [0] * 4
    log = entries(small.workspace)
    assert [e["seq"] for e in log] == list(range(1, 5 + 400 + 1))
    assert sorted(e["args"]["i"] for e in log[5:] if e["command"] == "worker 2") == list(range(100))
    turns = sum(1 for a, b in zip(log[5:], log[6:]) if a["command"] != b["command"])
    assert turns > 3   # the workers' appends did interleave
    assert verify(small).exit_code == 0


HOLDING_WRITER = """
import sys, time
from pathlib import Path
import linkage.chain
run_chain = linkage.chain.run_chain
go = Path(sys.argv[1])

def slow(*args, **kwargs):   # the chain run holds the DuckDB file until the test says go
    summary = run_chain(*args, **kwargs)
    print("held", flush=True)
    while not go.exists():
        time.sleep(0.05)
    return summary

linkage.chain.run_chain = slow
sys.argv = ["linkage", *sys.argv[2:]]
from linkage.cli import main
main()
"""


def test_readers_append_while_a_writer_holds_the_workspace(ws, tmp_path):
    go = tmp_path / "go"
    base = ["--workspace", str(ws.workspace), "--config-dir", str(CONFIGS)]
    writer = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(go), *base, "chain", "--as-of", AS_OF],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held", writer.stderr.read()
        readers = [subprocess.Popen([*LINKAGE, *base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for args in (["status"], ["export", "flags", "--out", str(tmp_path / "flags.csv")])]
        for reader in readers:
            assert reader.wait(120) == 0, reader.stderr.read()
            assert "is writing the workspace" in reader.stderr.read()   # read the snapshot meanwhile
    finally:
        go.touch()
        writer.wait(120)
    assert writer.returncode == 0, writer.stderr.read()
    log = entries(ws.workspace)
    # The two readers ran at once: either may have appended first; the writer's entry comes last.
    assert sorted(e["command"] for e in log[-3:-1]) == ["linkage export flags", "linkage status"]
    assert log[-1]["command"] == "linkage chain"
    exported = next(e for e in log[-3:-1] if e["command"] == "linkage export flags")
    assert exported["files"][0]["sha256"] == sha256(tmp_path / "flags.csv")
    result = verify(ws)
    assert result.exit_code == 0 and f"head of the workspace (entry {len(log)}) found" in result.stdout
    started = [time.mktime(time.strptime(e["started_at"][:19], "%Y-%m-%dT%H:%M:%S")) for e in log[-3:]]
    assert started[2] <= started[0]   # the writer started before the readers and ended after them

"""Encrypted workspaces, on real DuckDB files and through the CLI (in-process and in subprocesses):
`init --encrypt`, keys from LINKAGE_KEY / owner-only LINKAGE_KEY_FILE, a raw-byte search for known names
and ID numbers in the DuckDB file, its WAL and the spill folder during and after a match that spills
(with a plaintext control that finds them), wrong and missing keys, `rekey` (also killed midway),
`linkage run` and a reader served from the snapshot while a writer holds the file, owner-only files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import CONFIGS, error_line
from linkage.cli import app
from linkage.keys import Key
from linkage.workspace import Workspace

KEY = "test-key-for-encryption-at-rest-01"          # synthetic test keys
NEW_KEY = "the-new-test-key-after-rekeying-02"
SOURCES = ("immigration", "health", "police", "commerce")
LINKAGE = [sys.executable, "-m", "linkage"]
# Small enough that DuckDB spills while matching a few hundred people (one thread), large enough to finish.
SPILL_ENV = {"LINKAGE_MEMORY_LIMIT": "12MB", "LINKAGE_THREADS": "1"}


def key_env(key: str | None = KEY, **more: str) -> dict:
    """The process environment with only the given workspace key set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINKAGE_KEY", "LINKAGE_NEW_KEY"))}
    if key is not None:
        env["LINKAGE_KEY"] = key
    env.update(more)
    return env


def cli(workspace: Path, *args: str, env: dict | None = None):
    """The CLI in-process; `env` entries are set for the call (None removes a variable)."""
    unset = {"LINKAGE_KEY": None, "LINKAGE_KEY_FILE": None, "LINKAGE_NEW_KEY": None, "LINKAGE_NEW_KEY_FILE": None}
    return CliRunner().invoke(app, ["--workspace", str(workspace), "--config-dir", str(CONFIGS), *args],
                              env={**unset, **(env or {})}, catch_exceptions=False)


def linkage(workspace: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    result = CliRunner().invoke(app, ["sample", "--people", "300", "--seed", "5", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def needles(exports) -> dict[str, list[bytes]]:
    """25 each of hanzi names, romanized names, passport and resident ID numbers from the exports."""
    with open(exports / "health.csv", encoding="utf-8-sig", newline="") as handle:
        health = list(csv.DictReader(handle))
    with open(exports / "immigration.csv", encoding="utf-8-sig", newline="") as handle:
        immigration = list(csv.DictReader(handle))

    def first(values) -> list[bytes]:
        chosen = list(dict.fromkeys(v for v in values if v))[:25]
        assert len(chosen) == 25
        return [v.encode("utf-8") for v in chosen]

    return {
        "hanzi name": first(r["姓名"] for r in health if not r["姓名"].isascii()),
        "romanized name": first(r["FULL_NAME"] for r in immigration),
        "passport": first(r["TRAVEL_DOC_NO"] for r in immigration if r["TRAVEL_DOC_TYPE"] == "PASSPORT"),
        # as stored: a check character 'x' is standardized to 'X'
        "resident id": first(r["证件号码"].upper() for r in health if r["证件类型"] == "居民身份证"),
    }


def _ingest(workspace: Path, exports: Path, env: dict, encrypt: bool) -> Path:
    assert cli(workspace, "init", *(["--encrypt"] if encrypt else []), env=env).exit_code == 0
    for source in SOURCES:
        files = [str(f) for f in sorted(exports.glob(f"{source}.*"))]
        result = cli(workspace, "ingest", "--source", source, *files, env=env)
        assert result.exit_code == 0, result.output
    # matched once: a second match (which also reads the stored persons and links) spills under SPILL_ENV
    assert cli(workspace, "match", env=env).exit_code == 0
    return workspace


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory, exports) -> Path:
    """An encrypted workspace with the four sources ingested and matched (copy it before changing it)."""
    return _ingest(tmp_path_factory.mktemp("enc") / "ws", exports, {"LINKAGE_KEY": KEY}, encrypt=True)


@pytest.fixture(scope="module")
def plaintext(tmp_path_factory, exports) -> Path:
    return _ingest(tmp_path_factory.mktemp("plain") / "ws", exports, {}, encrypt=False)


def copy_of(workspace: Path, tmp_path: Path, name: str = "ws") -> Path:
    target = tmp_path / name
    shutil.copytree(workspace, target)
    return target


def workspace_files(workspace: Path) -> list[Path]:
    """The DuckDB file, its WAL, the snapshot and everything in the spill folder."""
    files = [workspace / "linkage.duckdb", workspace / "linkage.duckdb.wal",
             workspace / "snapshot" / "linkage.duckdb", workspace / "snapshot" / "linkage.duckdb.wal"]
    tmp = workspace / "tmp"
    if tmp.is_dir():
        files += [p for p in tmp.rglob("*") if p.is_file()]
    return files


def read_all(files: list[Path]) -> dict[Path, bytes]:
    """The bytes of each file that (still) exists: spill files come and go while DuckDB works."""
    contents = {}
    for path in files:
        try:
            contents[path] = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
    return contents


def search(files: list[Path], needles: dict[str, list[bytes]]) -> set[bytes]:
    """The needles found in the raw bytes of the files."""
    return {n for data in read_all(files).values() for values in needles.values() for n in values if n in data}


def match_while_polling(workspace: Path, needles: dict, env: dict) -> dict:
    """Run `linkage match` in a subprocess with a small memory limit; meanwhile read every file of the
    workspace again and again (searched afterwards, so that polling stays fast). Returns the needles
    found during and after, the spill files and WAL seen, and the modes of every file and folder seen."""
    proc = subprocess.Popen([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), "match"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, **SPILL_ENV})
    seen: dict[str, bytes] = {}   # by sha256: every distinct content read
    spill, wal, modes = set(), False, {}
    try:
        while proc.poll() is None:
            for path, data in read_all(workspace_files(workspace)).items():
                seen.setdefault(hashlib.sha256(data).hexdigest(), data)
                for p in [path, *(q for q in path.parents if workspace in q.parents or q == workspace)]:
                    try:
                        modes[p] = stat.S_IMODE(p.stat().st_mode)
                    except FileNotFoundError:
                        pass
                if (workspace / "tmp") in path.parents:
                    spill.add(path.name)
                wal |= path.name.endswith(".wal")
            time.sleep(0.005)
    finally:
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    during = {n for data in seen.values() for values in needles.values() for n in values if n in data}
    return {"during": during, "after": search(workspace_files(workspace), needles), "spill": spill, "wal": wal,
            "modes": modes}


def test_no_name_or_id_in_the_file_wal_or_spill_during_and_after_a_match(tmp_path, encrypted, plaintext, needles):
    """100 known values: none in the encrypted workspace's raw bytes while a match spills and after
    it; the same search on a plaintext workspace finds them (so the search can fail)."""
    control = match_while_polling(copy_of(plaintext, tmp_path, "plain"), needles, key_env(None))
    every = {n for values in needles.values() for n in values}
    assert control["after"] == every   # every known value is in the plaintext file
    assert control["spill"], "the plaintext match did not spill"
    assert control["during"] - control["after"] or control["during"] == every

    workspace = copy_of(encrypted, tmp_path, "enc")
    seen = match_while_polling(workspace, needles, key_env())
    assert seen["spill"], "the match did not spill: the spill folder was never searched"
    assert seen["during"] == set() and seen["after"] == set()
    assert not any(stat.S_IMODE(p.stat().st_mode) & 0o077 for p in [workspace, *workspace.rglob("*")])
    assert seen["modes"] and not {str(p): oct(m) for p, m in seen["modes"].items() if m & 0o077}
    assert cli(workspace, "status", "--json", env={"LINKAGE_KEY": KEY}).exit_code == 0


@pytest.mark.parametrize("kind", ["plaintext", "encrypted"])
def test_the_wal_is_encrypted_and_owner_only(tmp_path, encrypted, plaintext, needles, kind):
    """Rows a writer has committed but not yet checkpointed live in the WAL: with the workspace still
    open (a process killed now leaves it so), the WAL holds the names in plaintext only when not encrypted."""
    workspace = copy_of(plaintext if kind == "plaintext" else encrypted, tmp_path)
    with _open(workspace, KEY, write=True) as ws:
        ws.run("copy records", "INSERT INTO records SELECT * FROM records")
        wal = workspace / "linkage.duckdb.wal"
        assert wal.stat().st_size > 0 and stat.S_IMODE(wal.stat().st_mode) == 0o600
        found = search([wal], needles)
    if kind == "plaintext":
        assert len(found) > 50   # the control: the search finds names and numbers in a plaintext WAL
    else:
        assert found == set()


def _digest(workspace: Path) -> dict[str, str]:
    """Every file of the workspace but the lock and the audit log (which records the refused attempt)."""
    return {str(p.relative_to(workspace)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(workspace.rglob("*")) if p.is_file() and p.name not in ("writer.lock", "audit.jsonl")}


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["match"], ["chain"],
                                     ["ingest", "--source", "police", "EXPORTS/police.csv"],
                                     ["export", "clusters", "--out", "OUT/clusters.csv"], ["runs"]])
def test_a_wrong_or_missing_key_is_one_error_line_and_changes_nothing(tmp_path, encrypted, exports, command):
    workspace = copy_of(encrypted, tmp_path)
    args = [a.replace("EXPORTS", str(exports)).replace("OUT", str(tmp_path)) for a in command]
    before = _digest(workspace)
    wrong = "a-wrong-key-of-enough-length-03"
    for env, expected in [({"LINKAGE_KEY": wrong}, "Error: the key from LINKAGE_KEY does not open the encrypted "
                                                     f"workspace in {workspace} (wrong key)"),
                          ({}, f"Error: the workspace in {workspace} is encrypted; set LINKAGE_KEY to its key")]:
        result = cli(workspace, *args, env=env)
        assert result.exit_code == 2, result.output
        assert error_line(result).startswith(expected)
        assert wrong not in result.output and KEY not in result.output
        assert _digest(workspace) == before
        last = json.loads((workspace / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()[-1])
        assert (last["outcome"], last["exit_code"]) == ("failed", 2)   # the refused attempt is on record
        assert wrong not in json.dumps(last) and KEY not in json.dumps(last)
    assert not (tmp_path / "clusters.csv").exists()


def test_wrong_key_in_a_subprocess_no_traceback(tmp_path, encrypted):
    workspace = copy_of(encrypted, tmp_path)
    done = linkage(workspace, "match", env=key_env("another-wrong-key-value-04"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Error: the key from LINKAGE_KEY does not open the encrypted workspace in {workspace} (wrong key); "
        "nothing was changed"]
    assert "Traceback" not in done.stderr and "another-wrong-key" not in done.stdout + done.stderr


def test_key_file_must_be_owner_only(tmp_path, encrypted):
    workspace = copy_of(encrypted, tmp_path)
    key_file = tmp_path / "workspace.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o644)
    result = cli(workspace, "status", env={"LINKAGE_KEY_FILE": str(key_file)})
    assert result.exit_code == 2
    assert error_line(result) == (f"Error: the key file {key_file} (LINKAGE_KEY_FILE) has mode 0644, readable by "
                                  f"others; it must be owner-only (mode 0600 or 0400): chmod 600 {key_file}")
    assert KEY not in result.output
    key_file.chmod(0o600)
    assert cli(workspace, "status", env={"LINKAGE_KEY_FILE": str(key_file)}).exit_code == 0
    both = cli(workspace, "status", env={"LINKAGE_KEY_FILE": str(key_file), "LINKAGE_KEY": KEY})
    assert both.exit_code == 2 and "set only one" in error_line(both)


def test_init_encrypt_needs_a_strong_key_and_creates_nothing_without_one(tmp_path):
    for env, message in [({}, "Error: init --encrypt needs a key: set LINKAGE_KEY"),
                         ({"LINKAGE_KEY": "short"}, "Error: the key from LINKAGE_KEY is too short")]:
        result = cli(tmp_path / "ws", "init", "--encrypt", env=env)
        assert result.exit_code == 2
        assert error_line(result).startswith(message)
        assert "short" not in result.output.replace("too short", "")
        assert not (tmp_path / "ws").exists()
    result = cli(tmp_path / "ws", "--json", "init", "--encrypt", env={"LINKAGE_KEY": KEY})
    assert result.exit_code == 0 and json.loads(result.stdout)["encrypted"] is True
    assert (tmp_path / "ws" / "ENCRYPTED").is_file()
    assert b"DUCK" in (tmp_path / "ws" / "linkage.duckdb").read_bytes()[:16]


def test_a_plaintext_workspace_ignores_a_key(tmp_path, plaintext):
    workspace = copy_of(plaintext, tmp_path)
    assert cli(workspace, "status", env={}).exit_code == 0
    assert cli(workspace, "status", env={"LINKAGE_KEY": KEY}).exit_code == 0
    assert not (workspace / "ENCRYPTED").exists()


def _state(workspace: Path, key: str) -> dict:
    with_key = {"LINKAGE_KEY": key}
    status = cli(workspace, "status", "--json", env=with_key)
    assert status.exit_code == 0, status.output
    with _open(workspace, key) as ws:
        records = sorted(ws.rows("records", "SELECT source, record_id, full_name, passport, id_number FROM records"))
    return {"status": json.loads(status.stdout), "records": records}


class _open:
    """The workspace opened in this process (read-only unless `write`) with `key` in the environment."""

    def __init__(self, workspace: Path, key: str, write: bool = False):
        self.workspace, self.key, self.write = workspace, key, write

    def __enter__(self) -> Workspace:
        self.saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LINKAGE_KEY")}
        os.environ["LINKAGE_KEY"] = self.key
        try:
            self.ws = Workspace.open(self.workspace, read_only=not self.write)
        except BaseException:
            self.__exit__()
            raise
        return self.ws

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "ws"):
            self.ws.close()
        os.environ.pop("LINKAGE_KEY", None)
        os.environ.update(self.saved)


def test_rekey_old_key_fails_new_key_works_data_intact(tmp_path, encrypted):
    workspace = copy_of(encrypted, tmp_path)
    before = _state(workspace, KEY)
    key_file = tmp_path / "new.key"
    key_file.write_text(NEW_KEY, encoding="utf-8")
    key_file.chmod(0o644)
    refused = cli(workspace, "rekey", env={"LINKAGE_KEY": KEY, "LINKAGE_NEW_KEY_FILE": str(key_file)})
    assert refused.exit_code == 2 and str(key_file) in error_line(refused) and "0600" in error_line(refused)
    key_file.chmod(0o600)
    done = cli(workspace, "rekey", env={"LINKAGE_KEY": KEY, "LINKAGE_NEW_KEY_FILE": str(key_file)})
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"Changed the key of workspace {workspace}")
    assert KEY not in done.output and NEW_KEY not in done.output
    old = cli(workspace, "status", env={"LINKAGE_KEY": KEY})
    assert old.exit_code == 2 and "(wrong key)" in error_line(old)
    assert _state(workspace, NEW_KEY) == before
    assert not (workspace / "linkage.duckdb.rekey").exists()
    # the readers' snapshot was refreshed: it opens with the new key
    with Workspace._attach_with(workspace, workspace / "snapshot" / "linkage.duckdb", True, Key(NEW_KEY, "test")) as ws:
        assert ws.encrypted and ws.scalar("records", "SELECT count(*) FROM records") == len(before["records"])


def test_rekey_encrypts_a_plaintext_workspace(tmp_path, plaintext, needles):
    workspace = copy_of(plaintext, tmp_path)
    done = cli(workspace, "rekey", env={"LINKAGE_NEW_KEY": NEW_KEY})
    assert done.exit_code == 0 and done.stdout.startswith(f"Encrypted workspace {workspace}")
    assert (workspace / "ENCRYPTED").is_file()
    assert search(workspace_files(workspace), needles) == set()
    missing = cli(workspace, "status", env={})
    assert missing.exit_code == 2 and "is encrypted" in error_line(missing)
    assert cli(workspace, "status", env={"LINKAGE_KEY": NEW_KEY}).exit_code == 0
    # a rekey killed between its rename and writing the marker: the key still opens it (and the marker returns)
    (workspace / "ENCRYPTED").unlink()
    assert "is encrypted" in error_line(cli(workspace, "status", env={}))
    assert cli(workspace, "status", env={"LINKAGE_KEY": NEW_KEY}).exit_code == 0
    assert (workspace / "ENCRYPTED").is_file()


def test_rekey_needs_the_new_key_and_the_old_one(tmp_path, encrypted):
    workspace = copy_of(encrypted, tmp_path)
    before = _digest(workspace)
    no_new = cli(workspace, "rekey", env={"LINKAGE_KEY": KEY})
    assert no_new.exit_code == 2 and error_line(no_new).startswith("Error: linkage rekey needs the new key")
    no_old = cli(workspace, "rekey", env={"LINKAGE_NEW_KEY": NEW_KEY})
    assert no_old.exit_code == 2 and "is encrypted" in error_line(no_old)
    weak = cli(workspace, "rekey", env={"LINKAGE_KEY": KEY, "LINKAGE_NEW_KEY": "weak"})
    assert weak.exit_code == 2 and "too short" in error_line(weak)
    assert _digest(workspace) == before


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


# Moments to kill a rekey at, each seen from outside: the lock taken; the new copy being written; the
# readers' snapshot removed (just before the rename); the DuckDB file replaced (before the new snapshot).
KILL_POINTS = {
    "lock taken": lambda ws, ino: (ws / "writer.lock").stat().st_size > 0,
    "copy started": lambda ws, ino: (ws / "linkage.duckdb.rekey").exists(),
    "snapshot removed": lambda ws, ino: not (ws / "snapshot").exists(),
    "file replaced": lambda ws, ino: _inode(ws / "linkage.duckdb") not in (ino, None),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_rekey_killed_midway_leaves_a_workspace_that_opens_with_one_key(tmp_path, encrypted, point):
    workspace = copy_of(encrypted, tmp_path)
    before = _state(workspace, KEY)["records"]
    inode = _inode(workspace / "linkage.duckdb")
    proc = subprocess.Popen([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(CONFIGS), "rekey"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=key_env(KEY, LINKAGE_NEW_KEY=NEW_KEY))
    try:
        while proc.poll() is None and not KILL_POINTS[point](workspace, inode):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    opens = [key for key in (KEY, NEW_KEY) if cli(workspace, "status", env={"LINKAGE_KEY": key}).exit_code == 0]
    assert len(opens) == 1, opens
    if point in ("lock taken", "copy started") and proc.returncode == -signal.SIGKILL:
        assert opens == [KEY]
    assert _state(workspace, opens[0])["records"] == before
    # the next rekey, with the key the workspace now has, finishes the job
    again = cli(workspace, "rekey", env={"LINKAGE_KEY": opens[0], "LINKAGE_NEW_KEY": NEW_KEY})
    assert again.exit_code == 0, again.output
    assert _state(workspace, NEW_KEY)["records"] == before
    assert not (workspace / "linkage.duckdb.rekey").exists()


def test_a_half_written_rekey_copy_is_ignored_and_replaced(tmp_path, encrypted):
    workspace = copy_of(encrypted, tmp_path)
    (workspace / "linkage.duckdb.rekey").write_bytes(os.urandom(40_000))   # as a kill during the copy leaves it
    assert cli(workspace, "status", env={"LINKAGE_KEY": KEY}).exit_code == 0
    done = cli(workspace, "rekey", env={"LINKAGE_KEY": KEY, "LINKAGE_NEW_KEY": NEW_KEY})
    assert done.exit_code == 0, done.output
    assert cli(workspace, "status", env={"LINKAGE_KEY": NEW_KEY}).exit_code == 0


def test_run_and_a_reader_from_the_snapshot_on_an_encrypted_workspace(tmp_path, encrypted, exports):
    workspace = copy_of(encrypted, tmp_path)
    (workspace / "inbox" / "commerce").mkdir(parents=True)   # one night's file, on the ingested workspace
    shutil.copy(exports / "commerce.xlsx", workspace / "inbox" / "commerce" / "commerce-2.xlsx")
    run = linkage(workspace, "run", "--as-of", "2026-03-31T00:00", env=key_env())
    assert run.returncode == 3, run.stderr
    assert (workspace / "archive").is_dir() and any((workspace / "exports" / "latest").iterdir())
    no_key = linkage(workspace, "runs", env=key_env(None))
    assert no_key.returncode == 2 and no_key.stderr.startswith("Error: the workspace") and "Traceback" not in no_key.stderr
    # a writer holds the DuckDB file (this process): a reader in another process opens the snapshot, with the key
    with _open(workspace, KEY, write=True):
        reader = linkage(workspace, "runs", "--json", env=key_env())
        assert reader.returncode == 0, reader.stderr
        assert [r["run_id"] for r in json.loads(reader.stdout)["runs"]] == [1]
        assert "is writing the workspace" in reader.stderr
        wrong = linkage(workspace, "runs", env=key_env("not-the-key-of-this-ws-05"))
        assert wrong.returncode == 2 and "(wrong key)" in wrong.stderr

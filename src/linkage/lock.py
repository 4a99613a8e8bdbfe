"""The workspace's writer lock and the snapshot readers fall back on.

Owns `WORKSPACE/writer.lock` (an flock held by the one writing command, holding that command's name,
start time and PID as JSON) and `WORKSPACE/snapshot/` (a copy of the DuckDB file as the last writer
left it). The kernel releases an flock when its process dies, so a lock left by a killed command is
free to take; its holder record stays behind and the next writer reports the takeover.

DuckDB lets one process write a database file and no other process open it meanwhile, not even to
read. A reader that finds the file held therefore opens the snapshot: the state committed by the
writer before the one now running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import LockedError

LOCK_FILE = "writer.lock"
SNAPSHOT_DIR = "snapshot"
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) the writer lock."""

    command: str
    pid: int
    started_at: str

    def describe(self) -> str:
        return f"'{self.command}' started {self.started_at} (PID {self.pid})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(str(data["command"]), int(data["pid"]), str(data["started_at"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class WriterLock:
    """The held lock; `took_over` names the holder a killed process left behind, if any."""

    root: Path
    holder: Holder
    took_over: Holder | None = None


def read_holder(root: Path) -> Holder | None:
    try:
        return Holder.parse((Path(root) / LOCK_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None


@contextlib.contextmanager
def writer_lock(root: Path, command: str, wait: float = 0.0, publish: bool = True) -> Iterator[WriterLock]:
    """Hold the workspace's writer lock for the block, waiting up to `wait` seconds for it.

    Raises LockedError (exit 4) naming the holder when it stays taken. On success of the block the
    snapshot is refreshed (`publish`), so readers during the next writer see this one's result.
    """
    root = Path(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_holder(root)
                    who = holder.describe() if holder else "another process"
                    raise LockedError(f"another writer holds the workspace {root}: {who}; "
                                      "try again when it has finished, or wait for it with --wait SECONDS") from None
                time.sleep(POLL_SECONDS)
        left = Holder.parse(os.pread(fd, 1 << 16, 0).decode("utf-8", "replace"))
        holder = Holder(command, os.getpid(), datetime.now().isoformat(timespec="seconds"))
        _write(fd, json.dumps(holder.__dict__))
        try:
            yield WriterLock(root, holder, took_over=left)
            if publish:
                publish_snapshot(root)
        finally:
            _write(fd, "")   # released by a live process (even after an error): nothing to take over
    finally:
        os.close(fd)   # releases the flock


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)
    os.fsync(fd)


def snapshot_path(root: Path, db_file: str) -> Path:
    return Path(root) / SNAPSHOT_DIR / db_file


def publish_snapshot(root: Path, db_file: str = "linkage.duckdb") -> None:
    """Copy the (closed, checkpointed) DuckDB file to the snapshot, replacing it in one rename."""
    source = Path(root) / db_file
    if not source.is_file():
        return
    folder = Path(root) / SNAPSHOT_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    temp = folder / f".{db_file}.tmp-{os.getpid()}"
    for old in folder.glob(f".{db_file}.tmp-*"):
        old.unlink(missing_ok=True)   # left by a killed writer (only the lock holder gets here)
    wal, snapshot_wal = source.with_name(db_file + ".wal"), folder / (db_file + ".wal")
    shutil.copyfile(source, temp)
    os.chmod(temp, 0o600)
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    snapshot_wal.unlink(missing_ok=True)   # DuckDB checkpoints on close: a WAL is left only by a crash
    os.replace(temp, folder / db_file)
    if wal.is_file():
        shutil.copyfile(wal, snapshot_wal)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (the folder's entry, not only the file)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

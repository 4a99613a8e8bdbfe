"""The tamper-evident audit log: who read or wrote the workspace's personal data, when, how, with what result.

Owns `WORKSPACE/audit/audit.jsonl` (owner-only, append-only JSON lines, one entry per command that
opened the workspace), the recording of the running command's entry (its counts and the files it
wrote, with their sha256), the chain of hashes that links each entry to the one before it, the
check of that chain (`linkage audit verify`), and the chain head kept outside the log: exported to a
file (`linkage audit head`) and stored in the DuckDB workspace (`audit_head`) by every writing command.

The log is a file beside the DuckDB file, not a table in it: DuckDB admits no other process while a
writer holds its file, and readers must still be recorded then. Appends are serialized by an flock
on the log and fsynced. An entry's hash is the sha256 of its canonical JSON (sorted keys, without the
hash itself), which includes `prev`, the previous entry's hash: editing, deleting, inserting or
reordering an entry breaks the chain where it happened. Truncating the newest entries leaves a valid
shorter chain, which only a head kept elsewhere (the exported head file, the head in the workspace)
reveals; someone able to rewrite the whole log and the workspace's head is caught only by a head
file kept out of their reach.

Entries hold counts, option values, file paths and hashes; never a personal value, an environment
value, an error's text, or the value of an option whose name says key, secret, password or token.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InputError, WorkspaceError
from .lock import fsync_dir

AUDIT_DIR = "audit"
AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64   # the `prev` of the first entry
SECRET_WORDS = ("key", "secret", "password", "token")
MASK = "***"
HEAD_TABLE_VERSION = 11   # the workspace migration that adds `audit_head`


def log_path(root: Path) -> Path:
    return Path(root) / AUDIT_DIR / AUDIT_FILE


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its JSON with sorted keys, without the hash itself."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def os_user() -> tuple[str, int]:
    """The OS user by the process's uid (not by $USER, which anyone can set; cron sets none)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name, uid
    except KeyError:   # a uid without a passwd entry (containers)
        return f"uid {uid}", uid


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- the running command's entry -----------------------------------------------------------

@dataclass
class Recording:
    """What the running command has done so far; appended as one entry when it ends."""

    root: Path
    command: str
    args: dict[str, Any]
    started_at: str
    counts: dict[str, int] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    entry: dict[str, Any] | None = None   # once appended


_current: Recording | None = None


def begin(root: Path, command: str, args: dict[str, Any]) -> None:
    """Start recording the running command (a no-op when it is recorded already)."""
    global _current
    if _current is None:
        _current = Recording(Path(root), command, args, now_utc())


def count(**counts: int) -> None:
    """Row counts the running command knows (records read, rows written, flags...)."""
    if _current is not None:
        _current.counts.update({k: int(v) for k, v in counts.items() if v is not None})


def file_written(path: Path) -> None:
    """A file the running command wrote (complete, in place): its path, size and sha256."""
    if _current is not None:
        path = Path(path)
        _current.files.append({"path": os.path.abspath(path), "bytes": path.stat().st_size,
                               "sha256": file_sha256(path)})


def files_moved(old: Path, new: Path) -> None:
    """The files written into folder `old` now live in `new` (a folder renamed into place)."""
    if _current is not None:
        old_dir, new_dir = os.path.abspath(old), os.path.abspath(new)
        for f in _current.files:
            if os.path.dirname(f["path"]) == old_dir:
                f["path"] = os.path.join(new_dir, os.path.basename(f["path"]))


def failed(error: str) -> None:
    """The class of the error the running command ended with (never its text)."""
    if _current is not None and _current.error is None:
        _current.error = error


def commit() -> dict[str, Any] | None:
    """Append the running command's entry now, as succeeded (a writer, before it lets the workspace go)."""
    if _current is None or _current.entry is not None:
        return None
    _current.entry = {}   # tried: not again when the command line ends, even if this append fails
    _current.entry = append(_current.root, _fields(_current, 0))
    return _current.entry


def finish(exit_code: int, error: str | None = None) -> dict[str, Any] | None:
    """The command line has ended: append its entry (unless appended already) and stop recording.

    Nothing is appended where no workspace is (a command run in the wrong folder creates none).
    """
    global _current
    recording, _current = _current, None
    if recording is None or recording.entry is not None:
        return None
    if error is not None and recording.error is None:
        recording.error = error
    from .workspace import DB_FILE

    if not (recording.root / DB_FILE).exists() and not log_path(recording.root).exists():
        return None
    return append(recording.root, _fields(recording, exit_code))


def _fields(recording: Recording, exit_code: int) -> dict[str, Any]:
    user, uid = os_user()
    fields: dict[str, Any] = {
        "started_at": recording.started_at, "user": user, "uid": uid, "pid": os.getpid(),
        "command": recording.command, "args": recording.args, "counts": recording.counts,
        "files": recording.files,
    }
    if exit_code == 0 and recording.error is None:
        fields["outcome"] = "ok"
    else:
        fields.update(outcome="failed", exit_code=exit_code, error=recording.error or "Exit")
    return fields


# ---- appending -----------------------------------------------------------------------------

def append(root: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (sequence number, time, `fields`, the previous entry's hash, its own hash).

    Holds an flock on the log while it reads the last entry and writes this one (one write call,
    then fsync), so concurrent commands each land on the chain in turn.
    """
    path = log_path(root)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the audit log {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seq, prev, ends_whole = _last(fd)
        entry = {"seq": seq + 1, "time": now_utc(), **fields, "prev": prev}
        entry["hash"] = entry_hash(entry)
        line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
        os.write(fd, (line if ends_whole else "\n" + line).encode("utf-8"))
        os.fsync(fd)
        if seq == 0:
            fsync_dir(path.parent)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the audit log {path}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)   # releases the flock
    return entry


def _last(fd: int) -> tuple[int, str, bool]:
    """(sequence number, hash) of the log's last entry ((0, GENESIS) when empty), and whether the
    file ends with a newline. A last line that is no entry (damaged) is chained over by its bytes'
    hash, numbered by its line; `audit verify` reports it."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, True
    tail, block = b"", 1 << 16
    position = size
    while position > 0:
        start = max(0, position - block)
        tail = os.pread(fd, position - start, start) + tail
        position = start
        if tail.rstrip(b"\n").count(b"\n") >= 1:
            break
    ends_whole = tail.endswith(b"\n")
    raw = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    entry = _parse(raw)
    if entry is not None:
        return entry["seq"], entry["hash"], ends_whole
    lines = os.pread(fd, size, 0).rstrip(b"\n").count(b"\n") + 1
    return lines, hashlib.sha256(raw).hexdigest(), ends_whole


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(entry, dict) or type(entry.get("seq")) is not int or not isinstance(entry.get("hash"), str) \
            or not isinstance(entry.get("prev"), str):
        return None
    return entry


# ---- reading and verifying -----------------------------------------------------------------

@contextlib.contextmanager
def _shared(path: Path) -> Iterator[bytes | None]:
    """The log's bytes, read under a shared flock (so no append is half-seen); None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    except OSError as exc:
        raise WorkspaceError(f"cannot read the audit log {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        size = os.fstat(fd).st_size
        yield os.pread(fd, size, 0) if size else b""
    finally:
        os.close(fd)


def _require_workspace(root: Path) -> None:
    if not Path(root).is_dir():
        raise WorkspaceError(f"no workspace in {root}; create one with 'linkage init' "
                             "(or point --workspace / LINKAGE_WORKSPACE at it)")


def read_entries(root: Path) -> list[dict[str, Any]]:
    """Every entry of the log that parses (a damaged line is left out: `verify` names it)."""
    _require_workspace(root)
    with _shared(log_path(root)) as data:
        if not data:
            return []
        return [e for e in (_parse(raw) for raw in data.split(b"\n") if raw.strip()) if e is not None]


@dataclass(frozen=True)
class Head:
    """The chain's head: the newest entry's sequence number and hash, and where it was kept."""

    seq: int
    hash: str
    source: str = "the log"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


@dataclass(frozen=True)
class Problem:
    line: int | None   # line of the log (1-based); None for an entry that is not there at all
    seq: int | None
    what: str

    def describe(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"entry {self.seq}"] if self.seq is not None else []
        return f"{', '.join(where)}: {self.what}" if where else self.what


@dataclass
class Verification:
    path: Path
    lines: int
    entries: int
    head: Head | None
    heads_checked: list[Head]
    problems: list[Problem]

    @property
    def intact(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"log": str(self.path), "intact": self.intact, "lines": self.lines, "entries": self.entries,
                "head": self.head.to_json() if self.head else None,
                "heads_checked": [{**h.to_json(), "source": h.source} for h in self.heads_checked],
                "problems": [{"line": p.line, "seq": p.seq, "what": p.what} for p in self.problems]}


def verify(root: Path, heads: list[Head] | None = None) -> Verification:
    """Check every line of the log and the chain through them, and that each head given is still in it.

    Finds an edited entry (its hash no longer matches its content), a deleted one (a sequence
    number missing; the next entry does not carry its hash), an inserted or copied one (a number out
    of turn or twice; the entry after it carries another hash), a reordered pair, a damaged line, and
    newest entries cut off (a head names an entry the log no longer holds, or holds with another hash).
    """
    _require_workspace(root)
    path = log_path(root)
    heads = list(heads or [])
    with _shared(path) as data:
        raw_lines = [] if not data else data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    problems: list[Problem] = []
    first_line: dict[int, int] = {}   # seq -> the line it was first seen on
    hashes: dict[int, str] = {}
    prev_hash, prev_line, highest = GENESIS, 0, 0
    entries, last = 0, None
    for lineno, raw in enumerate(raw_lines, 1):
        entry = _parse(raw)
        if entry is None:
            problems.append(Problem(lineno, None, "not an audit entry (damaged, cut short or written by hand)"))
            prev_hash, prev_line = hashlib.sha256(raw).hexdigest(), lineno
            continue
        entries += 1
        seq, what = entry["seq"], []
        if entry_hash(entry) != entry["hash"]:
            what.append("edited: its content does not match its hash")
        if seq in first_line:
            what.append(f"a second entry {seq} (the first is on line {first_line[seq]}): copied or inserted")
        elif seq < highest:
            what.append(f"out of order: it comes after entry {highest}; entries were moved or inserted")
        elif seq != highest + 1:
            what.append(f"expected entry {highest + 1} here")
        if entry["prev"] != prev_hash:
            before = "the start of the log" if prev_line == 0 else f"line {prev_line}"
            what.append(f"its previous-entry hash does not match {before}: the chain is broken here "
                        "(an entry before it was deleted, inserted, moved or rewritten)")
        if what:
            problems.append(Problem(lineno, seq, "; ".join(what)))
        first_line.setdefault(seq, lineno)
        hashes.setdefault(seq, entry["hash"])
        prev_hash, prev_line, highest, last = entry["hash"], lineno, max(highest, seq), Head(seq, entry["hash"])
    missing = [seq for seq in range(1, highest + 1) if seq not in first_line]
    for start, end in _runs(missing):
        gone = "missing" if start == end else f"missing, and every entry up to {end}"
        problems.append(Problem(None, start, f"{gone}: deleted from the log"))
    for head in heads:
        if head.seq not in hashes:
            cut = f" (the log ends at entry {highest})" if head.seq > highest else ""
            problems.append(Problem(None, head.seq, f"named by the head in {head.source} but not in the log{cut}: "
                                    "the newest entries were cut off or the log replaced"))
        elif hashes[head.seq] != head.hash:
            problems.append(Problem(first_line[head.seq], head.seq,
                                    f"its hash differs from the head in {head.source}: the log was rewritten"))
    return Verification(path, len(raw_lines), entries, last, heads, problems)


def _runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive runs of sorted numbers as (first, last)."""
    start = end = None
    for n in numbers:
        if start is not None and n == end + 1:
            end = n
            continue
        if start is not None:
            yield start, end
        start = end = n
    if start is not None:
        yield start, end


def current_head(root: Path) -> Head:
    """The newest entry's (sequence number, hash); an InputError when the log holds none."""
    _require_workspace(root)
    with _shared(log_path(root)) as data:
        lines = [raw for raw in (data or b"").split(b"\n") if raw.strip()]
    entry = _parse(lines[-1]) if lines else None
    if entry is None:
        raise InputError(f"the audit log {log_path(root)} holds no entries yet" if not lines else
                         f"the last line of the audit log {log_path(root)} is not an entry; run 'linkage audit verify'")
    return Head(entry["seq"], entry["hash"])


def head_document(root: Path, head: Head) -> dict[str, Any]:
    return {"audit_log": str(log_path(root).resolve()), "seq": head.seq, "hash": head.hash, "exported_at": now_utc()}


def read_head_file(path: Path) -> Head:
    """A head written by `linkage audit head --out FILE`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Head(int(data["seq"]), str(data["hash"]), source=str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a head file of 'linkage audit head' (expected JSON with seq and hash)") from None


# ---- the head kept in the workspace --------------------------------------------------------

def store_head(ws, entry: dict[str, Any]) -> None:
    """Keep the chain head in the DuckDB workspace (a writer, once its own entry is appended)."""
    if ws.schema_version() < HEAD_TABLE_VERSION:
        return
    with ws.transaction():
        ws.run("audit head", "DELETE FROM audit_head")
        ws.run("audit head", "INSERT INTO audit_head VALUES (?, ?, current_timestamp)", [entry["seq"], entry["hash"]])


def stored_head(ws) -> Head | None:
    """The head the last writing command stored in the workspace (None before any)."""
    if ws.schema_version() < HEAD_TABLE_VERSION:
        return None
    row = ws.run("read audit head", "SELECT seq, hash FROM audit_head ORDER BY seq DESC LIMIT 1").fetchone()
    return Head(int(row[0]), str(row[1]), source="the workspace") if row else None

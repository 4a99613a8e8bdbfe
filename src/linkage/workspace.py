"""The workspace: the single door to DuckDB.

Owns opening and creating the workspace file, the schema and its numbered migrations,
transactions, memory/spill settings, loading the pinned extensions from their installed
packages, encryption at rest (an encrypted workspace, opening it with its key, changing the key)
and wrapping a database failure once (with the failing step and its SQL).
No other module calls `duckdb.connect`.

An encrypted workspace uses DuckDB's own database encryption (AES-256-GCM): the pinned, signed
httpfs extension is loaded from its PyPI package before attaching, so DuckDB encrypts with OpenSSL;
spill files are encrypted too (`temp_file_encryption`); the key is always a prepared parameter, so
it never appears in SQL text, logs or errors. The file `ENCRYPTED` in the workspace (no secret in it)
says that the DuckDB file needs a key; the key itself comes from `keys.py`.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .errors import ConfigError, DatabaseError, LockedError, WorkspaceError
from .keys import KEY_ENV, KEY_FILE_ENV, Key, workspace_key
from .lock import SNAPSHOT_DIR, fsync_dir, read_holder, snapshot_path
from .sql import quote_ident, quote_literal

DB_FILE = "linkage.duckdb"
TMP_DIR = "tmp"
# Says that DB_FILE is encrypted (holds no secret); written by `init --encrypt` and `rekey`.
ENCRYPTED_MARKER = "ENCRYPTED"
# The re-keyed copy `rekey` writes next to DB_FILE before it replaces it in one rename.
REKEY_FILE = DB_FILE + ".rekey"
# How long a writer waits for readers that still have the DuckDB file open (they are short).
READERS_WAIT_SECONDS = 60.0

# Numbered migrations: (version, description, statements). Append, never edit a shipped one.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "records, events, rejects and batches with provenance",
        [
            "CREATE SEQUENCE batch_ids START 1",
            """
            CREATE TABLE batches (
                batch_id INTEGER NOT NULL,
                source VARCHAR NOT NULL,
                file_name VARCHAR NOT NULL,
                file_sha256 VARCHAR NOT NULL,
                config_sha256 VARCHAR NOT NULL,
                file_format VARCHAR NOT NULL,
                rows_read BIGINT,
                rows_loaded BIGINT,
                rows_rejected BIGINT,
                value_issues BIGINT,
                records_replaced BIGINT,
                events BIGINT,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP
            )""",
            """
            CREATE TABLE records (
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                batch_id INTEGER NOT NULL,
                row_no BIGINT NOT NULL,
                full_name VARCHAR,
                family_name VARCHAR,
                given_name VARCHAR,
                local_name VARCHAR,
                name_script VARCHAR,
                name_key VARCHAR,
                family_phonetic VARCHAR,
                given_phonetic VARCHAR,
                sex VARCHAR,
                dob DATE,
                nationality VARCHAR,
                passport VARCHAR,
                id_number VARCHAR,
                permit_no VARCHAR,
                doc_numbers VARCHAR[],
                id_dob DATE,
                id_sex VARCHAR,
                phone VARCHAR,
                email VARCHAR,
                address VARCHAR,
                district VARCHAR,
                employer VARCHAR,
                extra MAP(VARCHAR, VARCHAR),
                notes VARCHAR[]
            )""",
            """
            CREATE TABLE events (
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                batch_id INTEGER NOT NULL,
                row_no BIGINT NOT NULL,
                stage VARCHAR NOT NULL,
                time TIMESTAMP NOT NULL,
                place VARCHAR,
                district VARCHAR
            )""",
            """
            CREATE TABLE rejects (
                batch_id INTEGER NOT NULL,
                source VARCHAR NOT NULL,
                file_name VARCHAR NOT NULL,
                row_no BIGINT,
                record_id VARCHAR,
                column_name VARCHAR,
                value VARCHAR,
                reason VARCHAR NOT NULL,
                kind VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        2,
        "match runs, persons, links and counters",
        [
            "CREATE SEQUENCE match_run_ids START 1",
            """
            CREATE TABLE match_runs (
                run_id INTEGER NOT NULL,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                records BIGINT,
                candidate_pairs BIGINT,
                links BIGINT,
                persons BIGINT,
                refused BIGINT,
                conflicts BIGINT,
                threshold DOUBLE,
                model VARCHAR,
                blocking VARCHAR,
                seconds VARCHAR
            )""",
            """
            CREATE TABLE persons (
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                person_id VARCHAR NOT NULL,
                run_id INTEGER NOT NULL
            )""",
            """
            CREATE TABLE links (
                run_id INTEGER NOT NULL,
                source_l VARCHAR NOT NULL,
                record_id_l VARCHAR NOT NULL,
                source_r VARCHAR NOT NULL,
                record_id_r VARCHAR NOT NULL,
                weight DOUBLE NOT NULL,
                probability DOUBLE NOT NULL,
                linked BOOLEAN NOT NULL,
                refused BOOLEAN NOT NULL,
                conflict BOOLEAN NOT NULL
            )""",
            "CREATE TABLE counters (name VARCHAR NOT NULL, value BIGINT NOT NULL)",
            "INSERT INTO counters VALUES ('person_id', 0)",
        ],
    ),
    (
        3,
        "chain runs, timelines and flags",
        [
            "CREATE SEQUENCE chain_run_ids START 1",
            """
            CREATE TABLE chain_runs (
                run_id INTEGER NOT NULL,
                as_of TIMESTAMP NOT NULL,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                match_run_id INTEGER,
                persons BIGINT,
                flags BIGINT,
                new_flags BIGINT,
                open_flags BIGINT,
                resolved_flags BIGINT,
                chain_sha256 VARCHAR
            )""",
            """
            CREATE TABLE timelines (
                run_id INTEGER NOT NULL,
                person_id VARCHAR NOT NULL,
                stage VARCHAR NOT NULL,
                stage_order INTEGER NOT NULL,
                status VARCHAR NOT NULL,
                time TIMESTAMP,
                due TIMESTAMP,
                district VARCHAR,
                place VARCHAR,
                source VARCHAR,
                record_id VARCHAR
            )""",
            """
            CREATE TABLE flags (
                run_id INTEGER NOT NULL,
                flag_key VARCHAR NOT NULL,
                person_id VARCHAR NOT NULL,
                code VARCHAR NOT NULL,
                stage VARCHAR,
                status VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                district VARCHAR,
                confidence DOUBLE,
                review BOOLEAN NOT NULL,
                reason VARCHAR NOT NULL,
                evidence VARCHAR,
                first_seen_run INTEGER NOT NULL,
                due TIMESTAMP
            )""",
            """
            CREATE TABLE chain_merges (
                run_id INTEGER NOT NULL,
                person_id VARCHAR NOT NULL,
                merged_person_id VARCHAR NOT NULL,
                evidence VARCHAR NOT NULL,
                score DOUBLE
            )""",
        ],
    ),
    (
        4,
        "links by record number: persons carry the match's record number, link_pairs hold two of them",
        [
            "ALTER TABLE persons ADD COLUMN rid INTEGER",
            """
            UPDATE persons SET rid = n.rid
            FROM (SELECT source, record_id, (row_number() OVER (ORDER BY source, record_id) - 1)::INTEGER AS rid
                  FROM persons) n
            WHERE persons.source = n.source AND persons.record_id = n.record_id""",
            """
            CREATE TABLE link_pairs (
                run_id INTEGER NOT NULL,
                rid_l INTEGER NOT NULL,
                rid_r INTEGER NOT NULL,
                weight DOUBLE NOT NULL,
                probability DOUBLE NOT NULL,
                linked BOOLEAN NOT NULL,
                refused BOOLEAN NOT NULL,
                conflict BOOLEAN NOT NULL
            )""",
            """
            INSERT INTO link_pairs
            SELECT l.run_id, a.rid, b.rid, l.weight, l.probability, l.linked, l.refused, l.conflict
            FROM links l
            JOIN persons a ON a.source = l.source_l AND a.record_id = l.record_id_l
            JOIN persons b ON b.source = l.source_r AND b.record_id = l.record_id_r""",
            "DROP TABLE links",
            # The links with their records' keys, for queries by hand and for reading them back.
            """
            CREATE VIEW links AS
            SELECT l.run_id, a.source AS source_l, a.record_id AS record_id_l, b.source AS source_r,
                   b.record_id AS record_id_r, l.weight, l.probability, l.linked, l.refused, l.conflict
            FROM link_pairs l JOIN persons a ON a.rid = l.rid_l JOIN persons b ON b.rid = l.rid_r""",
        ],
    ),
    (
        5,
        "every phone number of a record (verified E.164 or unverified digits); notes counted per batch; "
        "how a match run chose its blocking rules",
        [
            "ALTER TABLE records ADD COLUMN phones VARCHAR[]",
            "UPDATE records SET phones = CASE WHEN phone IS NULL THEN []::VARCHAR[] ELSE [phone] END",
            "ALTER TABLE batches ADD COLUMN value_notes BIGINT",
            "ALTER TABLE match_runs ADD COLUMN blocking_choice VARCHAR",   # JSON: how the rules were chosen
            # Every record with its person after the latest chain run's joins of split travelers
            # (when that run evaluated the latest match); the match's own person as match_person_id.
            """
            CREATE VIEW linked_persons AS
            WITH latest AS (
                SELECT max(c.run_id) AS run_id FROM chain_runs c
                WHERE c.finished_at IS NOT NULL
                  AND c.match_run_id = (SELECT max(run_id) FROM match_runs WHERE finished_at IS NOT NULL)),
            joins AS (SELECT merged_person_id, person_id FROM chain_merges WHERE run_id = (SELECT run_id FROM latest))
            SELECT p.source, p.record_id, coalesce(j.person_id, p.person_id) AS person_id, p.rid,
                   p.person_id AS match_person_id
            FROM persons p LEFT JOIN joins j ON j.merged_person_id = p.person_id""",
        ],
    ),
    (
        6,
        "the chain's moves of single records between persons; linked_persons applies them before the joins",
        [
            """
            CREATE TABLE chain_moves (
                run_id INTEGER NOT NULL,
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                from_person_id VARCHAR NOT NULL,
                person_id VARCHAR NOT NULL,
                score DOUBLE
            )""",
            "DROP VIEW linked_persons",
            # Every record with its person after the latest chain run's moves and joins of split
            # travelers (when that run evaluated the latest match); the match's own person as match_person_id.
            """
            CREATE VIEW linked_persons AS
            WITH latest AS (
                SELECT max(c.run_id) AS run_id FROM chain_runs c
                WHERE c.finished_at IS NOT NULL
                  AND c.match_run_id = (SELECT max(run_id) FROM match_runs WHERE finished_at IS NOT NULL)),
            moves AS (SELECT source, record_id, person_id FROM chain_moves WHERE run_id = (SELECT run_id FROM latest)),
            joins AS (SELECT merged_person_id, person_id FROM chain_merges WHERE run_id = (SELECT run_id FROM latest)),
            moved AS (SELECT p.source, p.record_id, coalesce(m.person_id, p.person_id) AS person_id, p.rid,
                             p.person_id AS match_person_id
                      FROM persons p LEFT JOIN moves m USING (source, record_id))
            SELECT p.source, p.record_id, coalesce(j.person_id, p.person_id) AS person_id, p.rid, p.match_person_id
            FROM moved p LEFT JOIN joins j ON j.merged_person_id = p.person_id""",
        ],
    ),
    (
        7,
        "nightly runs, the persons a run's match started from, and the merges and splits it made",
        [
            """
            CREATE TABLE runs (
                run_id INTEGER NOT NULL,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP,
                status VARCHAR NOT NULL,
                as_of TIMESTAMP NOT NULL,
                full_match BOOLEAN NOT NULL,
                resumed INTEGER NOT NULL,
                files_ingested BIGINT,
                files_rejected BIGINT,
                records BIGINT,
                persons BIGINT,
                merges BIGINT,
                splits BIGINT,
                match_run_id INTEGER,
                chain_run_id INTEGER,
                flags_new BIGINT,
                flags_open BIGINT,
                flags_resolved BIGINT,
                export_dir VARCHAR,
                seconds VARCHAR,
                error VARCHAR
            )""",
            """
            CREATE TABLE run_persons_before (
                run_id INTEGER NOT NULL,
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                person_id VARCHAR NOT NULL
            )""",
            """
            CREATE TABLE person_changes (
                run_id INTEGER NOT NULL,
                match_run_id INTEGER NOT NULL,
                kind VARCHAR NOT NULL,
                person_id VARCHAR NOT NULL,
                other_person_ids VARCHAR[] NOT NULL,
                records BIGINT NOT NULL,
                why VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        8,
        "incremental matching: each record's component of links, the batches a match saw, the model's term frequencies",
        [
            # The connected component of links above the threshold (before the identity guard) a record
            # lies in, named by the record number of one of its records: what a night's new records can reach.
            "ALTER TABLE persons ADD COLUMN component INTEGER",
            "ALTER TABLE match_runs ADD COLUMN batch_mark INTEGER",
            "ALTER TABLE match_runs ADD COLUMN incremental BOOLEAN",
            """
            CREATE TABLE term_frequencies (
                slot VARCHAR NOT NULL,
                value VARCHAR,
                share DOUBLE NOT NULL
            )""",
        ],
    ),
    (
        9,
        "the chain's keys of each record, kept from run to run (see chain_joins.prepare_keys)",
        [
            """
            CREATE TABLE chain_record_keys (
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                k VARCHAR NOT NULL,
                thin BOOLEAN NOT NULL
            )""",
            """
            CREATE TABLE chain_keyed_records (
                source VARCHAR NOT NULL,
                record_id VARCHAR NOT NULL,
                batch_id INTEGER NOT NULL
            )""",
        ],
    ),
    (
        10,
        "each blocking rule's key hash of each record, kept for incremental matching",
        ["CREATE TABLE match_keys (rule VARCHAR NOT NULL, h UBIGINT NOT NULL, rid INTEGER NOT NULL)"],
    ),
    (
        11,
        "the audit log's chain head, stored by every writing command (see audit.py)",
        ["CREATE TABLE audit_head (seq BIGINT NOT NULL, hash VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL)"],
    ),
    (
        12,
        "people in the loop: officers' answers to flags, and link decisions (must-link / cannot-link)",
        [
            """
            CREATE TABLE feedback (
                flag_key VARCHAR NOT NULL,
                person_id VARCHAR,
                code VARCHAR,
                stage VARCHAR,
                district VARCHAR,
                outcome VARCHAR NOT NULL,
                resolved_on DATE,
                comment VARCHAR,
                answered_by VARCHAR,
                file_name VARCHAR NOT NULL,
                file_sha256 VARCHAR NOT NULL,
                row_no BIGINT NOT NULL,
                imported_at TIMESTAMP NOT NULL
            )""",
            """
            CREATE TABLE link_decisions (
                source_l VARCHAR NOT NULL,
                record_id_l VARCHAR NOT NULL,
                source_r VARCHAR NOT NULL,
                record_id_r VARCHAR NOT NULL,
                decision VARCHAR NOT NULL,
                origin VARCHAR NOT NULL,
                decided_by VARCHAR,
                note VARCHAR,
                file_name VARCHAR,
                row_no BIGINT,
                imported_at TIMESTAMP NOT NULL
            )""",
        ],
    ),
    (
        13,
        "linkage without plaintext: encoded records' Bloom filters and tokens, and each encoded batch's parameters",
        [
            "ALTER TABLE records ADD COLUMN bloom MAP(VARCHAR, BLOB)",
            "ALTER TABLE records ADD COLUMN tokens MAP(VARCHAR, VARCHAR[])",
            """
            CREATE TABLE encodings (
                batch_id INTEGER NOT NULL,
                source VARCHAR NOT NULL,
                version INTEGER NOT NULL,
                params VARCHAR NOT NULL,
                key_check VARCHAR NOT NULL
            )""",
        ],
    ),
    (
        14,
        "match runs record the people's decisions they applied (JSON: must_link, cannot_link, unsure, missing)",
        ["ALTER TABLE match_runs ADD COLUMN decisions VARCHAR"],
    ),
    (
        15,
        "the evidence an officer's answer was given on (a flag answered is sent again only when it changes)",
        ["ALTER TABLE feedback ADD COLUMN evidence_sha256 VARCHAR"],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def environment_settings() -> tuple[str | None, int | None]:
    """LINKAGE_MEMORY_LIMIT and LINKAGE_THREADS, checked (ConfigError naming the variable and what
    it expects): the memory limit as DuckDB reads it, the threads as a whole number >= 1."""
    memory = os.environ.get("LINKAGE_MEMORY_LIMIT") or None
    if memory:
        con = duckdb.connect()
        try:
            con.execute("SET memory_limit = ?", [memory])
        except duckdb.Error:
            raise ConfigError(f"LINKAGE_MEMORY_LIMIT='{memory}' is not a memory size; expected a number and a "
                              "unit (KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. 4GB or 512MB") from None
        finally:
            con.close()
    threads = os.environ.get("LINKAGE_THREADS") or None
    if threads and (not threads.strip().isdigit() or int(threads) < 1):
        raise ConfigError(f"LINKAGE_THREADS='{threads}' is not a number of threads; expected a whole number of "
                          "at least 1, e.g. 4")
    return memory, int(threads) if threads else None


def extension_path(name: str) -> Path:
    """Path of a DuckDB extension shipped in the `duckdb-extension-NAME` PyPI package."""
    try:
        package = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise WorkspaceError(
            f"the DuckDB extension package 'duckdb-extension-{name}' is not installed"
        ) from exc
    folder = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(glob.glob(str(folder / f"{name}.duckdb_extension")))
    if not found:
        raise WorkspaceError(
            f"duckdb-extension-{name} has no build for DuckDB {duckdb.__version__}; "
            "install the extension package of the same version as duckdb"
        )
    return Path(found[0])


def _remove_orphan_spill(tmp: Path) -> None:
    if not tmp.is_dir():
        return
    for child in tmp.iterdir():
        if child.is_dir() and child.name.isdigit() and not process_alive(int(child.name)):
            shutil.rmtree(child, ignore_errors=True)
        elif child.is_file() and child.name.startswith("duckdb_temp"):
            child.unlink(missing_ok=True)  # spill files of a version that shared one folder


def process_alive(pid: int) -> bool:
    """Is a process of this id running (left by a killed run otherwise)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Held(Exception):
    """DuckDB could not lock the file: another process has it open."""


class _KeyNeeded(Exception):
    """DuckDB found the file encrypted, and no key was given."""


def is_encrypted(root: Path) -> bool:
    """Does the workspace in `root` say that its DuckDB file is encrypted?"""
    return (Path(root) / ENCRYPTED_MARKER).is_file()


def _needs_key(root: Path) -> str:
    return (f"the workspace in {root} is encrypted; set {KEY_ENV} to its key, or {KEY_FILE_ENV} "
            "to a file holding it that only you can read (mode 0600)")


def _write_marker(root: Path) -> None:
    text = ("The DuckDB file of this linkage workspace is encrypted (DuckDB database encryption, AES-256-GCM).\n"
            f"Its key is not stored here: commands read it from {KEY_ENV} or {KEY_FILE_ENV}.\n")
    temp = Path(root) / f".{ENCRYPTED_MARKER}.tmp-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, Path(root) / ENCRYPTED_MARKER)
    fsync_dir(Path(root))


def _remove_db_files(db: Path) -> None:
    """Remove a DuckDB file and its WAL."""
    db.unlink(missing_ok=True)
    db.with_name(db.name + ".wal").unlink(missing_ok=True)


class Workspace:
    """An open workspace: one DuckDB connection plus the helpers every module uses."""

    def __init__(self, root: Path, con: duckdb.DuckDBPyConnection):
        self.root = root
        self.con = con
        self._loaded: set[str] = set()
        self.from_snapshot: str | None = None   # the writer holding the file, when reading its snapshot
        self.encrypted = False

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, force: bool = False, key: Key | None = None) -> Workspace:
        """Create a new workspace in `root` (refuses to overwrite one unless `force`), encrypted
        with `key` when one is given."""
        root = Path(root)
        db = root / DB_FILE
        environment_settings()   # a bad setting fails before --force removes anything
        if db.exists():
            if not force:
                raise WorkspaceError(
                    f"a workspace already exists in {root}; use --force to start it anew"
                )
            _remove_db_files(db)
            _remove_db_files(root / REKEY_FILE)
            shutil.rmtree(root / TMP_DIR, ignore_errors=True)
            shutil.rmtree(root / SNAPSHOT_DIR, ignore_errors=True)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if key is None:
            (root / ENCRYPTED_MARKER).unlink(missing_ok=True)
            ws = cls._connect(root)
        else:
            _write_marker(root)   # first: a file killed half-created is then refused, never taken as plaintext
            ws = cls._attach_with(root, db, read_only=False, key=key)
        ws.migrate()
        return ws

    @classmethod
    def open(cls, root: Path, read_only: bool = False) -> Workspace:
        """Open an existing workspace, applying pending migrations (unless read-only).

        A reader that finds the file held by a writer (DuckDB admits no other process then) opens
        the snapshot the previous writer left, and says so in `from_snapshot`.
        """
        root = Path(root)
        if not (root / DB_FILE).exists():
            raise WorkspaceError(
                f"no workspace in {root}; create one with 'linkage init' "
                "(or point --workspace / LINKAGE_WORKSPACE at it)"
            )
        ws = cls._connect(root, read_only=read_only)
        version = ws.schema_version()
        if version > SCHEMA_VERSION:
            ws.close()
            raise WorkspaceError(
                f"the workspace in {root} has schema version {version}, newer than this "
                f"linkage ({SCHEMA_VERSION}); upgrade linkage"
            )
        if version < SCHEMA_VERSION and not read_only:
            ws.migrate()
        return ws

    @classmethod
    def _connect(cls, root: Path, read_only: bool = False) -> Workspace:
        deadline = time.monotonic() + READERS_WAIT_SECONDS
        while True:
            try:
                return cls._attach(root, root / DB_FILE, read_only)
            except _Held:
                pass
            snapshot = snapshot_path(root, DB_FILE)
            if read_only and snapshot.is_file():
                ws = cls._attach(root, snapshot, True)
                holder = read_holder(root)
                ws.from_snapshot = holder.describe() if holder else "another process"
                return ws
            if time.monotonic() >= deadline:
                holder = read_holder(root)
                raise LockedError(f"the workspace {root} is held by "
                                  f"{holder.describe() if holder else 'another process'}; try again later")
            time.sleep(0.2)

    @classmethod
    def _attach(cls, root: Path, db: Path, read_only: bool) -> Workspace:
        """Attach `db` of the workspace in `root`, with the workspace's key when it is encrypted."""
        key = None
        if is_encrypted(root):
            key = workspace_key()
            if key is None:
                raise WorkspaceError(_needs_key(root))
        try:
            return cls._attach_with(root, db, read_only, key)
        except _KeyNeeded:
            # Encrypted although its marker is missing (a rekey of a plaintext workspace killed between
            # its rename and writing the marker): open it with the key when one is set.
            key = workspace_key()
            if key is None:
                raise WorkspaceError(_needs_key(root)) from None
            ws = cls._attach_with(root, db, read_only, key)
            with contextlib.suppress(OSError):
                _write_marker(root)
            return ws

    @classmethod
    def _attach_with(cls, root: Path, db: Path, read_only: bool, key: Key | None) -> Workspace:
        # Nothing is ever downloaded: extensions come from their PyPI packages, loaded by path.
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        con = duckdb.connect(config=config)
        ws = cls(root, con)
        try:
            options = ["READ_ONLY"] if read_only else []
            if key is not None:
                ws._prepare_encryption()
                options.append("ENCRYPTION_KEY ?")   # a parameter: the key never enters SQL text or errors
            sql = f"ATTACH {quote_literal(str(db))} AS ws" + (f" ({', '.join(options)})" if options else "")
            con.execute(sql, [key.secret] if key is not None else None)
            con.execute("USE ws")
        except duckdb.Error as exc:
            con.close()
            text = str(exc).lower()
            if isinstance(exc, duckdb.IOException) and "could not set lock" in text:
                raise _Held() from None
            if key is not None and "wrong encryption key" in text:
                raise WorkspaceError(f"{key} does not open the encrypted workspace in {root} (wrong key); "
                                     "nothing was changed") from None
            if key is None and "encrypted" in text and "without a key" in text:
                raise _KeyNeeded() from None
            if key is not None and "is not encrypted" in text:
                raise WorkspaceError(f"the workspace in {root} is marked encrypted ({ENCRYPTED_MARKER}) but its "
                                     f"DuckDB file is not; remove {root / ENCRYPTED_MARKER} to open it as "
                                     "plaintext, then encrypt it with 'linkage rekey'") from None
            # DuckDB's text is not shown (a failed WAL replay can quote the rows it was replaying)
            raise WorkspaceError(f"cannot open the workspace in {root} ({type(exc).__name__}): {db.name} is not "
                                 "a DuckDB database of this version, is damaged or cannot be read") from exc
        except BaseException:
            con.close()
            raise
        ws.encrypted = key is not None
        try:
            ws._apply_settings()
        except BaseException:
            con.close()
            raise
        return ws

    def _prepare_encryption(self) -> None:
        """Before attaching or writing an encrypted database: OpenSSL (from the pinned httpfs) and
        encrypted spill files. Without httpfs DuckDB would refuse to write (its built-in crypto is
        read-only); `force_mbedtls_unsafe` is never set."""
        self.load_extension("httpfs")
        self.run("encrypt spill files", "SET temp_file_encryption = true")

    def _apply_settings(self) -> None:
        # Each process spills into its own folder; folders of processes that died (a killed run
        # leaves its spill files behind) are removed, so they cannot fill the disk over time.
        tmp = self.root / TMP_DIR
        _remove_orphan_spill(tmp)
        try:   # DuckDB creates the process's own folder, not its parents
            tmp.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            pass   # a workspace on a read-only medium: reading needs no spill folder
        self.con.execute(f"SET temp_directory = {quote_literal(str(tmp / str(os.getpid())))}")
        self.con.execute("SET preserve_insertion_order = false")
        memory, threads = environment_settings()
        if memory:
            self.con.execute("SET memory_limit = ?", [memory])
        if threads:
            self.run("set threads", "SET threads = ?", [threads])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema --------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_catalog = 'ws' AND table_name = 'schema_migrations'"
        ).fetchone()[0]
        if not exists:
            return 0
        return self.con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]

    def migrate(self) -> None:
        """Apply every migration newer than the workspace's version, each in one transaction."""
        with self.transaction():
            self.run(
                "create migrations table",
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER, description VARCHAR, applied_at TIMESTAMP)",
            )
        current = self.schema_version()
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction():
                for statement in statements:
                    self.run(f"migration {version}", statement)
                self.run(
                    f"migration {version}",
                    "INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)",
                    [version, description],
                )

    # ---- running SQL ---------------------------------------------------------------------
    def run(self, step: str, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Execute one statement; a DuckDB failure becomes DatabaseError naming `step`."""
        try:
            return self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        except duckdb.Error as exc:
            raise DatabaseError(step, sql, exc) from exc

    def rows(self, step: str, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.run(step, sql, params).fetchall()

    def scalar(self, step: str, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.run(step, sql, params).fetchone()
        return row[0] if row else None

    def register(self, name: str, data: Any) -> None:
        """Expose an Arrow table / polars frame to SQL under `name` for this connection."""
        self.con.register(name, data)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    @contextlib.contextmanager
    def threads(self, n: int) -> Iterator[None]:
        """Limit DuckDB to n threads for the block (e.g. while worker processes use the other cores)."""
        before = self.scalar("current threads", "SELECT current_setting('threads')")
        self.run("limit threads", "SET threads = ?", [n])
        try:
            yield
        finally:
            self.run("restore threads", "SET threads = ?", [int(before)])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed on success, rolled back on any exception."""
        self.run("begin", "BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.run("commit", "COMMIT")

    def load_extension(self, name: str) -> None:
        """Load a pinned extension from its installed package (signature checked by DuckDB)."""
        if name in self._loaded:
            return
        path = extension_path(name)
        self.run(f"load extension {name}", f"LOAD {quote_literal(str(path))}")
        self._loaded.add(name)

    def table_counts(self, catalog: str = "ws") -> dict[str, int]:
        """Rows of every table of `catalog` (the workspace unless another database is attached)."""
        names = [row[0] for row in self.rows(
            "list tables", "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = ? AND table_type = 'BASE TABLE' ORDER BY table_name", [catalog])]
        return {name: self.scalar(f"count {name}", f"SELECT count(*) FROM {quote_ident(catalog)}.{quote_ident(name)}")
                for name in names}


@dataclass(frozen=True)
class RekeyResult:
    """What `rekey` did: whether the workspace was encrypted before, and the rows it carried over."""

    was_encrypted: bool
    tables: int
    rows: int


def rekey(root: Path, new: Key) -> RekeyResult:
    """Encrypt the workspace in `root` with the key `new` (it is opened with its current key, or as
    plaintext when it is not encrypted yet). The caller holds the writer lock.

    Crash-safe: everything is copied (COPY FROM DATABASE) into REKEY_FILE encrypted with the new key,
    which is then opened with that key and compared table by table; only then does one rename put it
    in place of the DuckDB file. A process killed before the rename leaves the old file (old key),
    after it the new one (new key). The readers' snapshot, encrypted with the old key, is removed just
    before the rename; the writer lock publishes a new one when the rekey has succeeded.
    """
    root = Path(root)
    db, target = root / DB_FILE, root / REKEY_FILE
    if not db.exists():
        Workspace.open(root)   # raises the "no workspace" error
    _remove_db_files(target)   # left by a rekey that was killed
    with Workspace.open(root) as ws:   # pending migrations are applied first, so the copy is current
        was_encrypted = ws.encrypted
        if not was_encrypted:
            ws._prepare_encryption()
        before = ws.table_counts()
        ws.run("attach the re-keyed copy", f"ATTACH {quote_literal(str(target))} AS rekeyed (ENCRYPTION_KEY ?)",
               [new.secret])
        try:
            ws.run("copy into the re-keyed copy", "COPY FROM DATABASE ws TO rekeyed")
        finally:
            ws.run("detach the re-keyed copy", "DETACH rekeyed")
    try:
        if db.with_name(DB_FILE + ".wal").exists() or target.with_name(REKEY_FILE + ".wal").exists():
            raise WorkspaceError(f"the workspace in {root} left a write-ahead log on closing; nothing was changed, "
                                 "run 'linkage rekey' again")
        with Workspace._attach_with(root, target, read_only=True, key=new) as copy:
            encrypted = copy.scalar("is the copy encrypted",
                                    "SELECT encrypted FROM duckdb_databases() WHERE database_name = 'ws'")
            after = copy.table_counts()
        if not encrypted or after != before:
            raise WorkspaceError(f"the re-keyed copy of the workspace in {root} differs from it "
                                 f"({'not encrypted' if not encrypted else 'row counts differ'}); nothing was changed")
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        _remove_db_files(target)
        raise
    shutil.rmtree(root / SNAPSHOT_DIR, ignore_errors=True)   # encrypted with the old key
    os.replace(target, db)
    fsync_dir(root)
    if not was_encrypted:
        _write_marker(root)
    return RekeyResult(was_encrypted, len(after), sum(after.values()))

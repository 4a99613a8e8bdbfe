"""The workspace: the single door to DuckDB.

Owns opening and creating the workspace file, the schema and its numbered migrations,
transactions, memory/spill settings, loading the pinned extensions from their installed
packages, and wrapping a database failure once (with the failing step and its SQL).
No other module calls `duckdb.connect`.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from .errors import DatabaseError, LockedError, WorkspaceError
from .lock import SNAPSHOT_DIR, read_holder, snapshot_path
from .sql import quote_literal

DB_FILE = "linkage.duckdb"
TMP_DIR = "tmp"
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
        "the evidence an officer's answer was given on (a flag answered is sent again only when it changes)",
        ["ALTER TABLE feedback ADD COLUMN evidence_sha256 VARCHAR"],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


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


class Workspace:
    """An open workspace: one DuckDB connection plus the helpers every module uses."""

    def __init__(self, root: Path, con: duckdb.DuckDBPyConnection):
        self.root = root
        self.con = con
        self._loaded: set[str] = set()
        self.from_snapshot: str | None = None   # the writer holding the file, when reading its snapshot

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, force: bool = False) -> Workspace:
        """Create a new workspace in `root` (refuses to overwrite one unless `force`)."""
        root = Path(root)
        db = root / DB_FILE
        if db.exists():
            if not force:
                raise WorkspaceError(
                    f"a workspace already exists in {root}; use --force to start it anew"
                )
            db.unlink()
            wal = db.with_name(DB_FILE + ".wal")
            if wal.exists():
                wal.unlink()
            shutil.rmtree(root / TMP_DIR, ignore_errors=True)
            shutil.rmtree(root / SNAPSHOT_DIR, ignore_errors=True)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        ws = cls._connect(root)
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
        # Nothing is ever downloaded: extensions come from their PyPI packages, loaded by path.
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        con = duckdb.connect(config=config)
        try:
            mode = " (READ_ONLY)" if read_only else ""
            con.execute(f"ATTACH {quote_literal(str(db))} AS ws{mode}")
            con.execute("USE ws")
        except duckdb.IOException as exc:
            con.close()
            if "could not set lock" in str(exc).lower():
                raise _Held() from None
            raise WorkspaceError(f"cannot open the workspace in {root}: {exc}") from exc
        ws = cls(root, con)
        ws._apply_settings()
        return ws

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
        memory = os.environ.get("LINKAGE_MEMORY_LIMIT")
        if memory:
            self.run("set memory limit", "SET memory_limit = ?", [memory])
        threads = os.environ.get("LINKAGE_THREADS")
        if threads:
            self.run("set threads", "SET threads = ?", [int(threads)])

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

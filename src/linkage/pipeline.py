"""`linkage run`, the nightly job: a plan of small steps first, then their execution.

Owns the tables `runs`, `run_persons_before` and `person_changes`, and the run's folders: the
per-source inbox, the archive and rejected folders (files are moved, never deleted) and the run's
export folder with the `latest` pointer beside it.

Every step commits on its own and the next step is chosen from what the workspace holds, never from
what the killed process meant to do, so a run killed at any moment is finished by the next one with
the same result: a file is moved out of the inbox only after its batch is committed (and a file
ingested already is skipped by its sha256); a match or chain run committed by the killed process is
taken over instead of being run again; the export folder is written under a temp name and renamed
whole; `latest` is replaced last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from . import audit
from .config import (PipelineConfig, SourceConfig, available_sources, load_chain_config, load_export_config,
                     load_model_config, load_source_config, parse_duration)
from .errors import DatabaseError, InputError
from .export import choose_profile, write_discrepancies
from .ingest import ingest_files
from .runlog import append
from .workspace import Workspace, process_alive

RUN_FOLDER = "run-{:04d}"
LATEST = "latest"
REASON_SUFFIX = ".reason.txt"
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", REASON_SUFFIX)


@dataclass(frozen=True)
class Paths:
    """Where the run reads and writes; all from configs/pipeline.toml, relative to the workspace."""

    workspace: Path
    inbox: Path
    archive: Path
    rejected: Path
    exports: Path
    log: Path

    @classmethod
    def of(cls, root: Path, config: PipelineConfig) -> Paths:
        def at(value: str) -> Path:
            path = Path(value)
            return path if path.is_absolute() else Path(root) / path

        return cls(Path(root), at(config.inbox), at(config.archive), at(config.rejected), at(config.exports),
                   at(config.log))


@dataclass(frozen=True)
class Step:
    kind: str                  # ingest | match | chain | export
    source: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        if self.kind == "ingest":
            return f"ingest {self.source} {self.file.name}"
        return {"match": "match (the stored model and its blocking rules reused unless due)",
                "chain": "evaluate the chain", "export": "write the district files"}[self.kind]


@dataclass
class Plan:
    run_id: int
    resume: bool               # take up a run a killed process left unfinished
    as_of: datetime
    full: bool
    retrain: bool
    steps: list[Step]
    left_alone: list[str]      # files in the inbox that no source config claims
    export_dir: Path
    sources: list[str]
    configs: dict[str, tuple[SourceConfig, Path]]   # of the sources with files waiting
    note: str = ""


@dataclass
class RunSummary:
    run_id: int
    status: str
    as_of: str
    resumed: bool
    files_ingested: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    records: int = 0
    persons: int = 0
    merges: int = 0
    splits: int = 0
    match_run_id: int | None = None
    chain_run_id: int | None = None
    flags_new: int = 0
    flags_open: int = 0
    flags_resolved: int = 0
    export_dir: str | None = None
    model: str = ""            # trained | reused | none
    seconds: dict[str, float] = field(default_factory=dict)
    rejected: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0, or 3 when the run found new discrepancies (so cron can alert)."""
        return 3 if self.flags_new else 0


# ---- the plan ------------------------------------------------------------------------------

def inbox_files(paths: Paths, sources: list[str]) -> tuple[dict[str, list[Path]], list[str]]:
    """Files waiting in inbox/SOURCE/ per source (by name), and what the inbox holds that no source claims.

    Hidden files and names of unfinished transfers (.part, .tmp, ...) are not picked up: drop a file
    by writing it under such a name and renaming it when complete.
    """
    found: dict[str, list[Path]] = {}
    left: list[str] = []
    if not paths.inbox.is_dir():
        return found, left
    for entry in sorted(paths.inbox.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir() or entry.name not in sources:
            left.append(entry.name)
            continue
        files = [f for f in sorted(entry.iterdir())
                 if f.is_file() and not f.name.startswith(".") and not f.name.endswith(IGNORED_SUFFIXES)]
        if files:
            found[entry.name] = files
    return found, left


def interrupted_run(ws: Workspace) -> tuple[int, datetime, bool] | None:
    """(run id, as of, full) of a run that never finished: its process was killed (the caller holds the lock)."""
    rows = ws.rows("interrupted run", "SELECT run_id, as_of, full_match FROM runs WHERE status = 'running' "
                                      "ORDER BY run_id DESC LIMIT 1")
    return rows[0] if rows else None


def make_plan(ws: Workspace, paths: Paths, config_dir: Path, as_of: datetime | None, full: bool,
              retrain: bool, export_profile: str | None = None) -> Plan:
    sources = available_sources(config_dir)
    found, left = inbox_files(paths, sources)
    # Every config the run reads is checked before anything is touched (a bad one: exit 2, no run).
    configs = {source: load_source_config(config_dir, source) for source in found}
    load_model_config(config_dir)
    load_chain_config(config_dir)
    choose_profile(load_export_config(config_dir)[0], export_profile)   # the profile exists; its key is set
    steps = [Step("ingest", source, f) for source, files in found.items() for f in files]
    steps += [Step("match"), Step("chain"), Step("export")]
    left_over = interrupted_run(ws) if _has_runs_table(ws) else None
    note = ""
    if left_over is not None:
        run_id, as_of_then, full_then = left_over
        if as_of is not None and as_of != as_of_then:
            note = f"run {run_id} was interrupted: it is finished as of its own time {as_of_then:%Y-%m-%d %H:%M}"
        as_of, full = as_of_then, full or full_then
    else:
        run_id = (ws.scalar("next run id", "SELECT coalesce(max(run_id), 0) + 1 FROM runs")
                  if _has_runs_table(ws) else 1)
        as_of = as_of or datetime.now().replace(microsecond=0)
    return Plan(run_id, left_over is not None, as_of, full, retrain, steps, left,
                paths.exports / RUN_FOLDER.format(run_id), sources, configs, note)


def _has_runs_table(ws: Workspace) -> bool:
    # A read-only workspace (--dry-run) of an older schema has no runs table yet.
    return bool(ws.scalar("runs table", "SELECT count(*) FROM information_schema.tables "
                                        "WHERE table_catalog = current_database() AND table_name = 'runs'"))


# ---- execution -----------------------------------------------------------------------------

Report = Callable[[str], None]


@dataclass
class _Run:
    """What every step of one run works with."""

    ws: Workspace
    plan: Plan
    paths: Paths
    config_dir: Path
    config: PipelineConfig
    summary: RunSummary
    started: datetime     # when the run (first) started


def execute(ws: Workspace, plan: Plan, paths: Paths, config_dir: Path, config: PipelineConfig,
            report: Report | None = None) -> RunSummary:
    """Carry the plan out, step by step, each committed on its own; record the run."""
    report = report or (lambda line: None)
    for source in plan.sources:   # where each agency's exports are dropped
        (paths.inbox / source).mkdir(mode=0o700, parents=True, exist_ok=True)
    summary = RunSummary(plan.run_id, "running", plan.as_of.isoformat(), plan.resume)
    started = _open_run(ws, plan)

    def log(event: str, **fields) -> None:
        append(paths.log, event, run_id=plan.run_id, **fields)

    log("run_resumed" if plan.resume else "run_start", as_of=plan.as_of, full=plan.full)
    run = _Run(ws, plan, paths, config_dir, config, summary, started)
    try:
        for step in plan.steps:
            clock = time.perf_counter()
            log("step_start", step=step.kind, source=step.source, file=step.file.name if step.file else None)
            counts = _STEPS[step.kind](run, step)
            seconds = round(time.perf_counter() - clock, 3)
            summary.seconds[step.kind] = round(summary.seconds.get(step.kind, 0.0) + seconds, 3)
            log("step_end", step=step.kind, source=step.source, file=step.file.name if step.file else None,
                seconds=seconds, **counts)
            report(_step_line(step, counts, seconds))
        _close_run(ws, plan, paths, summary, started)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, InputError) else type(exc).__name__
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _fail_run(ws, plan.run_id, message)
            log("run_end", status="failed", error=message)
        raise
    log("run_end", status="succeeded", exit_code=summary.exit_code, seconds=summary.seconds,
        flags_new=summary.flags_new, flags_open=summary.flags_open, flags_resolved=summary.flags_resolved)
    return summary


def _step_line(step: Step, counts: dict, seconds: float) -> str:
    what = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k.replace('_', ' ')} {v}"
                     for k, v in counts.items() if v is not None)
    return f"{step.describe()}: {what or 'done'} ({seconds:.1f} s)"


def _open_run(ws: Workspace, plan: Plan) -> datetime:
    """The run's record (a resumed run keeps its own); returns when the run started."""
    with ws.transaction():
        if plan.resume:
            ws.run("resume run", "UPDATE runs SET resumed = resumed + 1, full_match = ? WHERE run_id = ?",
                   [plan.full, plan.run_id])
        else:
            ws.run("open run", "INSERT INTO runs (run_id, started_at, status, as_of, full_match, resumed) "
                               "VALUES (?, ?, 'running', ?, ?, 0)", [plan.run_id, datetime.now(), plan.as_of, plan.full])
    return ws.scalar("run start", "SELECT started_at FROM runs WHERE run_id = ?", [plan.run_id])


def _fail_run(ws: Workspace, run_id: int, message: str) -> None:
    """Every step's transaction was rolled back by Workspace.transaction; the run is marked failed
    (if the database still answers: else it stays 'running' and the next run takes it up)."""
    try:
        ws.run("fail run", "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
               [datetime.now(), message, run_id])
    except DatabaseError:
        pass


def _ingest(run: _Run, step: Step) -> dict:
    ws, plan, paths, summary = run.ws, run.plan, run.paths, run.summary
    source_config, config_path = plan.configs[step.source]
    try:
        result = ingest_files(ws, source_config, config_path, [step.file])[0]
    except InputError as exc:
        moved = _reject(step.file, paths.rejected / RUN_FOLDER.format(plan.run_id) / step.source, str(exc), plan.run_id)
        summary.files_rejected += 1
        summary.rejected.append({"source": step.source, "file": step.file.name, "moved_to": str(moved),
                                 "reason": str(exc)})
        return {"rejected": 1}
    _move(step.file, paths.archive / RUN_FOLDER.format(plan.run_id) / step.source)
    if result.skipped:
        summary.files_skipped += 1
        return {"skipped": "already ingested"}
    summary.files_ingested += 1
    return {"rows_read": result.rows_read, "rows_loaded": result.rows_loaded, "rows_rejected": result.rows_rejected}


def _move(path: Path, folder: Path) -> Path:
    """Move `path` into `folder` under a name not yet taken there."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), str(target))
    return target


def _reject(path: Path, folder: Path, reason: str, run_id: int) -> Path:
    """Move a file that failed into `folder`, its reason in a file beside it (written first)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    reason_file = folder / (path.name + REASON_SUFFIX)
    temp = reason_file.with_name(f".{reason_file.name}.{os.getpid()}.tmp")
    temp.write_text(f"run {run_id}, {datetime.now():%Y-%m-%d %H:%M:%S}: {reason}\n", encoding="utf-8")
    os.replace(temp, reason_file)
    target = folder / path.name
    if target.exists():   # the same name rejected earlier in this run (taken up again): keep both
        return _move(path, folder)
    shutil.move(str(path), str(target))
    return target


def _match(run: _Run, step: Step) -> dict:
    from .match.incremental import run_incremental
    from .match.run import ModelMismatch, run_match
    from .match.store import latest_model

    ws, plan, summary, config_dir, config = run.ws, run.plan, run.summary, run.config_dir, run.config
    latest = ws.rows("latest match", "SELECT run_id, started_at FROM match_runs WHERE finished_at IS NOT NULL "
                                     "ORDER BY run_id DESC LIMIT 1")
    newest_batch = ws.scalar("newest batch", "SELECT max(finished_at) FROM batches WHERE finished_at IS NOT NULL")
    if newest_batch is None:
        summary.model = "none"
        return {"records": 0}
    decided = ws.scalar("newest decision", "SELECT max(imported_at) FROM link_decisions")
    if latest and newest_batch <= latest[0][1] and (decided is None or decided <= latest[0][1]) and not plan.full:
        # Nothing new since the latest match (no records, no people's decisions): a match of this
        # run committed before a kill, or none needed.
        summary.match_run_id = latest[0][0]
        _record_changes(ws, plan.run_id, summary)
        return {"records": "unchanged since match run " + str(latest[0][0])}
    _save_persons_before(ws, plan.run_id)
    model_config, _ = load_model_config(config_dir)
    stored = None if plan.retrain else latest_model(ws)
    if stored is not None and _retrain_due(ws, config):
        stored = None
    try:
        # A stored model is reused with the blocking rules it was trained on, unless model.toml gives rules.
        rules = _stored_rules(ws) if stored is not None and model_config.blocking is None else None
        result = None
        if stored is not None and not plan.full and (rules or model_config.blocking):
            # Only the new and changed records, and the persons they can reach, are matched again.
            result = run_incremental(ws, model_config, stored, rules or model_config.blocking)
        incremental = result is not None
        if result is None:
            result = run_match(ws, model_config, model=stored, rules=rules, keep_keys=True)
        summary.model = "reused" if stored is not None else "trained"
    except ModelMismatch:
        # the comparisons changed (a new field mapped): train anew
        result = run_match(ws, model_config, keep_keys=True)
        summary.model, incremental = "trained", False
    summary.match_run_id = result.run_id
    _record_changes(ws, plan.run_id, summary)
    return {"records": result.records, "persons": result.persons, "model": summary.model,
            "incremental": incremental, "merges": summary.merges, "splits": summary.splits}


def _stored_rules(ws: Workspace) -> list | None:
    """The blocking rules of the latest match run."""
    from .config import BlockingRule

    row = ws.rows("stored rules", "SELECT blocking FROM match_runs WHERE finished_at IS NOT NULL "
                                  "ORDER BY run_id DESC LIMIT 1")
    if not row or not row[0][0]:
        return None
    return [BlockingRule(name=r["rule"], on=r["on"]) for r in json.loads(row[0][0])]


def _retrain_due(ws: Workspace, config: PipelineConfig) -> bool:
    """Is the stored model older than retrain_every, or have the records grown by retrain_growth since?"""
    runs = ws.rows("match models", "SELECT started_at, records, model FROM match_runs WHERE finished_at IS NOT NULL "
                                   "ORDER BY run_id DESC")
    if not runs:
        return True
    trained_at, trained_records = runs[0][0], runs[0][1]
    for started_at, records, model in runs[1:]:   # back to the run that trained this very model
        if model != runs[0][2]:
            break
        trained_at, trained_records = started_at, records
    records = ws.scalar("records", "SELECT count(*) FROM records")
    age = (datetime.now() - trained_at).total_seconds()
    return age > parse_duration(config.retrain_every) or records > trained_records * (1 + config.retrain_growth)


def _save_persons_before(ws: Workspace, run_id: int) -> None:
    with ws.transaction():
        if not ws.scalar("persons saved", "SELECT count(*) FROM run_persons_before WHERE run_id = ?", [run_id]):
            ws.run("save persons", "INSERT INTO run_persons_before SELECT ?, source, record_id, person_id FROM persons",
                   [run_id])


def _record_changes(ws: Workspace, run_id: int, summary: RunSummary) -> None:
    """Merges (a person now holding records of several earlier persons) and splits (an earlier person's
    records now in several persons) of this run's match, from the persons saved before it."""
    if ws.scalar("persons saved", "SELECT count(*) FROM run_persons_before WHERE run_id = ?", [run_id]):
        _store_changes(ws, run_id, summary.match_run_id)
    summary.merges, summary.splits = ws.rows("changes", """
        SELECT count(*) FILTER (WHERE kind = 'merge'), count(*) FILTER (WHERE kind = 'split')
        FROM person_changes WHERE run_id = ?""", [run_id])[0]


def _store_changes(ws: Workspace, run_id: int, match_run_id: int) -> None:
    with ws.transaction():
        ws.run("clear changes", "DELETE FROM person_changes WHERE run_id = ?", [run_id])
        ws.run("record changes", """
            WITH pairs AS (
                SELECT b.person_id AS before_id, p.person_id AS after_id, count(*) AS n
                FROM run_persons_before b JOIN persons p USING (source, record_id)
                WHERE b.run_id = ? GROUP BY ALL)
            INSERT INTO person_changes
            SELECT ?, ?, 'merge', after_id, list(before_id ORDER BY before_id), sum(n),
                   'the match links records of these earlier persons'
            FROM pairs GROUP BY after_id HAVING count(*) > 1
            UNION ALL
            SELECT ?, ?, 'split', before_id, list(after_id ORDER BY after_id), sum(n),
                   'the match no longer links these records (a link fell below the threshold or the identity '
                   'guard refused it)'
            FROM pairs GROUP BY before_id HAVING count(*) > 1""",
               [run_id, run_id, match_run_id, run_id, match_run_id])
        ws.run("drop saved persons", "DELETE FROM run_persons_before WHERE run_id = ?", [run_id])


def _chain(run: _Run, step: Step) -> dict:
    from .chain import run_chain

    ws, plan, summary, config_dir = run.ws, run.plan, run.summary, run.config_dir
    if summary.match_run_id is None:
        return {"skipped": "no records yet"}
    taken = ws.rows("chain of this run", """
        SELECT run_id FROM chain_runs WHERE finished_at IS NOT NULL AND match_run_id = ? AND as_of = ?
          AND started_at >= ? AND run_id = (SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL)""",
                    [summary.match_run_id, plan.as_of, run.started])
    if taken:
        summary.chain_run_id = taken[0][0]
    else:
        chain_config, path = load_chain_config(config_dir)
        summary.chain_run_id = run_chain(ws, chain_config, path, config_dir, as_of=plan.as_of).run_id
    new, open_, resolved = ws.rows("chain counts", "SELECT new_flags, open_flags, resolved_flags FROM chain_runs "
                                                   "WHERE run_id = ?", [summary.chain_run_id])[0]
    summary.flags_new, summary.flags_open, summary.flags_resolved = new or 0, open_ or 0, resolved or 0
    return {"chain_run": summary.chain_run_id, "new": summary.flags_new, "open": summary.flags_open,
            "resolved": summary.flags_resolved}


def _export(run: _Run, step: Step) -> dict:
    ws, plan, paths, summary = run.ws, run.plan, run.paths, run.summary
    if summary.chain_run_id is None:
        return {"skipped": "no chain run"}
    target = plan.export_dir
    paths.exports.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_orphan_exports(paths.exports)
    if not (target / "manifest.json").is_file():   # written whole by a killed process: kept as it is
        export_config, _ = load_export_config(run.config_dir)
        temp = paths.exports / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        result = write_discrepancies(ws, temp, export_config, profile=run.config.export_profile, now=plan.as_of,
                                     config_dir=run.config_dir)
        os.chmod(temp, 0o700)
        os.replace(temp, target)
        audit.files_moved(temp, target)
        rows, files = result.rows, len(result.files)
    else:
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        rows, files = manifest["rows"], len(manifest["files"])
    _point_latest(paths.exports, target.name)
    summary.export_dir = str(target)
    return {"files": files, "flags": rows, "folder": target.name}


def _remove_orphan_exports(folder: Path) -> None:
    """Export folders a killed run left half-written (their names carry its process id)."""
    for child in folder.glob(".run-*.tmp-*"):
        pid = child.name.rsplit("-", 1)[-1]
        if child.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _point_latest(folder: Path, name: str) -> None:
    """`exports/latest` -> the run's folder, replaced in one rename."""
    latest = folder / LATEST
    if latest.exists() and not latest.is_symlink():
        raise InputError(f"{latest} is not the pointer 'linkage run' keeps there (a link to the latest run's "
                         "folder); move it away")
    temp = folder / f".{LATEST}.tmp-{os.getpid()}"
    temp.unlink(missing_ok=True)
    os.symlink(name, temp)
    os.replace(temp, latest)


_STEPS = {"ingest": _ingest, "match": _match, "chain": _chain, "export": _export}


def _close_run(ws: Workspace, plan: Plan, paths: Paths, summary: RunSummary, started: datetime) -> None:
    """Counts derived from the workspace (so a run taken up again counts what the killed process did too)."""
    summary.files_ingested = ws.scalar("files of run", "SELECT count(*) FROM batches WHERE started_at >= ? "
                                                       "AND finished_at IS NOT NULL", [started])
    folder = paths.rejected / RUN_FOLDER.format(plan.run_id)
    summary.files_rejected = sum(1 for f in folder.glob("*/*") if f.is_file() and not f.name.endswith(REASON_SUFFIX)
                                 and not f.name.startswith("."))
    summary.records = ws.scalar("records", "SELECT count(*) FROM records")
    summary.persons = ws.scalar("persons", "SELECT count(DISTINCT person_id) FROM linked_persons")
    summary.status = "succeeded"
    with ws.transaction():
        ws.run("close run", """
            UPDATE runs SET finished_at = ?, status = 'succeeded', files_ingested = ?, files_rejected = ?, records = ?,
                   persons = ?, merges = ?, splits = ?, match_run_id = ?, chain_run_id = ?, flags_new = ?,
                   flags_open = ?, flags_resolved = ?, export_dir = ?, seconds = ?
            WHERE run_id = ?""",
               [datetime.now(), summary.files_ingested, summary.files_rejected, summary.records, summary.persons,
                summary.merges, summary.splits, summary.match_run_id, summary.chain_run_id, summary.flags_new,
                summary.flags_open, summary.flags_resolved, summary.export_dir, json.dumps(summary.seconds),
                plan.run_id])


def list_runs(ws: Workspace) -> list[dict]:
    """Every run, newest first, with its counts and seconds per step."""
    if not _has_runs_table(ws):
        return []
    columns = ["run_id", "started_at", "finished_at", "status", "as_of", "full_match", "resumed", "files_ingested",
               "files_rejected", "records", "persons", "merges", "splits", "match_run_id", "chain_run_id",
               "flags_new", "flags_open", "flags_resolved", "export_dir", "seconds", "error"]
    rows = ws.rows("runs", f"SELECT {', '.join(columns)} FROM runs ORDER BY run_id DESC")
    out = []
    for row in rows:
        record = dict(zip(columns, row))
        record["seconds"] = json.loads(record["seconds"]) if record["seconds"] else {}
        for key in ("started_at", "finished_at", "as_of"):
            record[key] = record[key].isoformat() if record[key] else None
        out.append(record)
    return out


def plan_json(plan: Plan) -> dict:
    return {"run_id": plan.run_id, "resume": plan.resume, "as_of": plan.as_of.isoformat(), "full": plan.full,
            "retrain": plan.retrain, "export_dir": str(plan.export_dir), "left_alone": plan.left_alone,
            "note": plan.note, "steps": [{**asdict(s), "file": str(s.file) if s.file else None,
                                          "does": s.describe()} for s in plan.steps]}

"""The command line: thin typer commands (parse options, call one library function, render).

Every command runs inside one error boundary (`_Boundary`): typed LinkageErrors become a
single `Error: ...` line and their exit code; a DuckDB failure is an internal error (exit 1)
named by the command, the step and DuckDB's error class; anything else is an internal error
(exit 1) too. Details (tracebacks, DuckDB's text) are shown only with LINKAGE_DEBUG=1, so no
personal data leaks into logs. An error's `values` (e.g. the cells of a first row that looks like
data) and explain's names and birth dates are shown only with --show-values on a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from . import audit
from .errors import DatabaseError, InputError, LinkageError
from .output import Output, print_error


# Names shown for option values in --help, by option (else the option's name in capitals).
METAVARS = {"keys": "SOURCE:RECORD_ID", "wait": "SECONDS", "as_of": "TIME", "threshold": "P", "source": "NAME", "profile": "NAME",
            "district": "NAME", "person": "PERSON_ID", "people": "N", "seed": "N", "limit": "N", "last": "N",
            "corruption": "NAME", "format": "csv|xlsx", "salt": "none|sex|birth_year"}


def _metavar(param) -> str:
    name = param.name or ""
    if name in METAVARS:
        return METAVARS[name]
    if getattr(getattr(param, "type_descriptor", None), "is_path", False):
        return "DIR" if "dir" in name else "FILE"
    return name.upper()


class _Boundary(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for command in self.commands.values():   # real names in --help, not the value's Python type
            for param in command.params:
                if param.param_type_name == "option" and param.metavar is None and not getattr(param, "is_bool_flag", False):
                    param.metavar = _metavar(param)
                elif param.param_type_name == "argument":
                    # typer prints an argument's Python type after its name ("files... <list[Path]>"),
                    # whatever its metavar: the name alone says what to give.
                    param.metavar = param.metavar or ("FILE" if param.name == "files" else _metavar(param))
                    param.display_type_rich = lambda ctx: None

    def invoke(self, ctx):  # type: ignore[override]
        if ctx.parent is None:   # the whole command line: its audit entry (if it opened a workspace) once it ends
            with _audit_entry():
                return self._guarded(ctx)
        return self._guarded(ctx)

    def _guarded(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except BrokenPipeError:   # the reader went away (`linkage match | head -1`): nothing is wrong
            _silence_stdout()
            raise typer.Exit(0) from None
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:   # also a Rust library's panic (pyo3's PanicException is a BaseException)
            if ctx.meta.get("linkage.error_shown"):   # by a nested group's boundary, with LINKAGE_DEBUG=1
                raise
            ctx.meta["linkage.error_shown"] = True
            audit.failed(_error_class(exc))
            code = _render_error(ctx, exc)
            if code is None:
                raise
            raise typer.Exit(code) from None


@contextlib.contextmanager
def _audit_entry() -> Iterator[None]:
    """Append the audit entry of the command line being run (audit.py), with its outcome: exit code and
    error class, never the error's text. Commands that opened no workspace have none."""
    code, error = 0, None
    try:
        yield
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    except BaseException as exc:   # an internal error shown with LINKAGE_DEBUG=1, an interrupt
        code, error = 1, _error_class(exc)
        raise
    finally:
        try:
            audit.finish(code, error)
        except LinkageError as exc:   # the log cannot be written: say so, and fail
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None


def _error_class(exc: BaseException) -> str:
    """'InputError', or 'DatabaseError/ConversionException' (DuckDB's class): no text, no values."""
    cause = exc.cause if isinstance(exc, DatabaseError) else None
    return type(exc).__name__ + (f"/{type(cause).__name__}" if cause is not None else "")


def _invocation() -> tuple[str, dict[str, Any]]:
    """The running command ('linkage export flags') and the options and arguments given on its command
    line, for the audit log: values from the environment are left out, and the value of an option whose
    name says key, secret, password or token is masked."""
    from typer.main import get_current_context

    ctx = get_current_context(silent=True)
    names: list[str] = []
    args: dict[str, Any] = {}
    while ctx is not None:
        if ctx.parent is not None:
            names.insert(0, ctx.info_name or "")
        for param in ctx.command.params:
            source = ctx.get_parameter_source(param.name)
            if source is None or source.name != "COMMANDLINE":
                continue
            is_option = param.param_type_name == "option"
            label = max(param.opts, key=len) if is_option and param.opts else param.name
            value = ctx.params.get(param.name)
            if is_option and any(audit.is_secret(name) for name in [param.name or "", *param.opts]):
                value = audit.MASK
            args.setdefault(label, _plain(value))
        ctx = ctx.parent
    return " ".join(["linkage", *names]), args


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _render_error(ctx, exc: Exception) -> int | None:
    """Print the one line for `exc` and return its exit code; None when the exception should
    propagate (LINKAGE_DEBUG=1 and an internal error: Python prints its traceback).

    A DuckDB failure (a DatabaseError, or a duckdb.Error no step wrapped) is an internal error:
    the line names the command, the step and DuckDB's error class, never DuckDB's text, which can
    quote the values it was working on.
    """
    duckdb = sys.modules.get("duckdb")   # not imported: then no duckdb.Error can have happened
    debug = bool(os.environ.get("LINKAGE_DEBUG"))
    if isinstance(exc, DatabaseError) or (duckdb is not None and isinstance(exc, duckdb.Error)):
        cause, step = (exc.cause, f", step '{exc.step}'") if isinstance(exc, DatabaseError) else (exc, "")
        print_error(f"internal database error in '{_command_name(ctx)}' ({type(cause).__name__}{step}); "
                    "rerun with LINKAGE_DEBUG=1 for details")
        return None if debug else 1
    if isinstance(exc, LinkageError):
        shown = exc.values if exc.values and values_shown(sys.stderr) else None
        print_error(str(exc) + (f" [values: {shown}]" if shown else ""))
        return exc.exit_code
    if debug:
        return None
    print_error(f"internal error ({type(exc).__name__}); rerun with LINKAGE_DEBUG=1 for details")
    return 1


def _command_name(ctx) -> str:
    """'linkage export flags' for the command a group's context is running."""
    names = [ctx.invoked_subcommand or ""]
    while ctx.parent is not None:
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return " ".join(["linkage", *names]).strip()


app = typer.Typer(
    cls=_Boundary,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Link travelers across agency exports, rebuild their timelines and flag who fell out of the chain.",
)


class State:
    workspace: Path = Path("workspace")
    config_dir: Path = Path("configs")
    json_mode: bool = False
    given: frozenset[str] = frozenset()   # global options set on the command line or by environment
    show_values: bool = False


state = State()


def values_shown(stream=None) -> bool:
    """Personal values may be printed only when --show-values was given and `stream` (stdout by
    default) is a terminal: never into a pipe, a file, a log or a cron mail."""
    stream = sys.stdout if stream is None else stream
    return state.show_values and hasattr(stream, "isatty") and stream.isatty()


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"linkage {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Path = typer.Option(Path("workspace"), "--workspace", envvar="LINKAGE_WORKSPACE",
                                   help="Workspace directory (holds the DuckDB file)."),
    config_dir: Path = typer.Option(Path("configs"), "--config-dir", envvar="LINKAGE_CONFIG_DIR",
                                    help="Directory with sources/*.toml, model.toml, chain.toml."),
    json_mode: bool = typer.Option(False, "--json", help="Machine-readable JSON output."),
    show_values: bool = typer.Option(False, "--show-values",
                                     help="Show personal values (names, birth dates, numbers) in errors and "
                                          "explanations; only on a terminal, never in a pipe or a file."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print linkage's version and exit."),
) -> None:
    """Global options apply to every command."""
    os.umask(0o077)   # everything the workspace and the exports hold is personal data: owner-only
    state.workspace, state.config_dir, state.json_mode = workspace, config_dir, json_mode
    state.show_values = show_values
    sources = {name: ctx.get_parameter_source(name) for name in ("workspace", "config_dir")}
    state.given = frozenset(name for name, source in sources.items()
                            if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"))


def _out(json_flag: bool = False) -> Output:
    return Output(json_mode=json_flag or state.json_mode)


WAIT_HELP = "Wait up to this many seconds for another writing command to finish (then exit 4)."


@contextlib.contextmanager
def _locked(command: str, wait: float) -> Iterator:
    """The writer lock (exit 4 while another writer holds it), noting a takeover of a killed holder's lock."""
    from .lock import writer_lock
    from .runlog import append, default_log

    audit.begin(state.workspace, *_invocation())
    with writer_lock(state.workspace, command, wait) as lock:
        if lock.took_over is not None:
            append(default_log(state.workspace), "lock_takeover", command=command, left_by=lock.took_over.__dict__)
            _out().err.print(f"Note: took over the workspace lock left by {lock.took_over.describe()}, which "
                             "ended without releasing it.", markup=False, highlight=False)
        yield lock


@contextlib.contextmanager
def _writing(command: str, wait: float, create: bool = False, force: bool = False, key=None) -> Iterator:
    """The workspace opened for writing, under the writer lock (exit 4 while another writer holds it);
    `create` makes it anew, encrypted with `key` when one is given."""
    from .workspace import DB_FILE, Workspace

    if not create and not (state.workspace / DB_FILE).exists():
        Workspace.open(state.workspace)   # raises the "no workspace" error, before anything is created
    with _locked(command, wait):
        with (Workspace.create(state.workspace, force=force, key=key) if create
              else Workspace.open(state.workspace)) as ws:
            yield ws
            entry = audit.commit()   # done: this command's entry, and the chain head kept in the workspace too
            if entry is not None:
                audit.store_head(ws, entry)


@contextlib.contextmanager
def _reading() -> Iterator:
    """The workspace opened read-only; while a writer holds it, the state its predecessor committed."""
    from .workspace import Workspace

    audit.begin(state.workspace, *_invocation())
    with Workspace.open(state.workspace, read_only=True) as ws:
        if ws.from_snapshot is not None:
            _out().err.print(f"Note: {ws.from_snapshot} is writing the workspace; this is the state the writer "
                             "before it committed.", markup=False, highlight=False)
        yield ws


@app.command()
def init(force: bool = typer.Option(False, "--force", help="Replace an existing workspace."),
         encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt the workspace (DuckDB file, WAL, spill files) "
                                      "with the key in LINKAGE_KEY or in the owner-only file LINKAGE_KEY_FILE."),
         wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP)) -> None:
    """Create the workspace (DuckDB file and schema).

    With --encrypt the workspace is encrypted (AES-256-GCM) with the key from the environment:
    LINKAGE_KEY, or LINKAGE_KEY_FILE naming a file only you can read (mode 0600). Every later
    command needs the same key; keys are never given on the command line.

    Example:

        linkage --workspace ./workspace init

        LINKAGE_KEY_FILE=~/.linkage.key linkage --workspace ./workspace init --encrypt
    """
    from .keys import key_for_new_workspace

    out = _out()
    key = key_for_new_workspace() if encrypt else None   # before anything is created
    with _writing("linkage init", wait, create=True, force=force, key=key) as ws:
        version = ws.schema_version()
    if out.json_mode:
        out.json({"workspace": str(state.workspace), "schema_version": version, "encrypted": key is not None})
    else:
        out.line(f"Created {'encrypted ' if key is not None else ''}workspace {state.workspace} "
                 f"(schema version {version}).")


@app.command()
def rekey(wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP)) -> None:
    """Change the key of an encrypted workspace, or encrypt a plaintext one.

    The current key comes from LINKAGE_KEY or LINKAGE_KEY_FILE (not needed for a plaintext
    workspace), the new one from LINKAGE_NEW_KEY or LINKAGE_NEW_KEY_FILE (a file only you can
    read, mode 0600). The workspace is copied into a new file encrypted with the new key, checked,
    and then put in place in one rename: a rekey killed at any moment leaves a workspace that
    opens with the old key or with the new one. An encrypted workspace is never decrypted.

    Example:

        LINKAGE_KEY_FILE=old.key LINKAGE_NEW_KEY_FILE=new.key linkage --workspace ./workspace rekey
    """
    from .keys import new_key
    from .workspace import DB_FILE, Workspace, rekey as rekey_workspace

    out = _out()
    if not (state.workspace / DB_FILE).exists():
        Workspace.open(state.workspace)   # raises the "no workspace" error
    key = new_key()
    with _locked("linkage rekey", wait):
        result = rekey_workspace(state.workspace, key)
    if out.json_mode:
        out.json({"workspace": str(state.workspace), "was_encrypted": result.was_encrypted,
                  "tables": result.tables, "rows": result.rows})
    else:
        what = "Changed the key of" if result.was_encrypted else "Encrypted"
        out.line(f"{what} workspace {state.workspace} ({result.tables} tables, {result.rows:,} rows); "
                 "from now on it opens with the new key only.")


@app.command()
def ingest(
    files: list[Path] = typer.Argument(..., help="Export files of this source."),
    source: Optional[str] = typer.Option(None, "--source", help="Source name: configs/sources/NAME.toml."),
    source_config: Optional[Path] = typer.Option(None, "--source-config", help="Use this source config file."),
    replace: bool = typer.Option(False, "--replace", help="Reload files already ingested (same sha256)."),
    strict: bool = typer.Option(False, "--strict", help="Load nothing if any row is rejected (exit 2)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
) -> None:
    """Load exports of one source: read, map, standardize, store with provenance.

    Every row is loaded or rejected with a reason; rows read = loaded + rejected.
    A file already ingested (same sha256) is skipped unless --replace.

    Example:

        linkage ingest --source police exports/police_2026-03-02.csv
    """
    from .config import load_source_config
    from .ingest import ingest_files

    if source is None and source_config is None:
        raise InputError("name the source with --source NAME (or give --source-config FILE)")
    out = _out(json_flag)
    config, config_path = load_source_config(state.config_dir, source, source_config)
    with _writing("linkage ingest", wait) as ws, out.progress("ingest") as progress:
        results = ingest_files(ws, config, config_path, files, replace=replace, strict=strict, progress=progress)
        audit.count(files=len(results), rows_read=sum(r.rows_read or 0 for r in results),
                    rows_loaded=sum(r.rows_loaded or 0 for r in results),
                    rows_rejected=sum(r.rows_rejected or 0 for r in results))
    if out.json_mode:
        for result in results:
            out.json({"source": config.name, **asdict(result)})
        return
    for r in results:
        if r.skipped:
            out.line(f"{config.name}: {r.file}: {r.note}")
        else:
            out.line(
                f"{config.name}: {r.file}: batch {r.batch_id}: {r.rows_read:,} rows read = {r.rows_loaded:,} loaded "
                f"+ {r.rows_rejected:,} rejected; {r.events:,} events; {r.value_issues:,} values not standardized"
                + (f"; {r.value_notes:,} kept unverified or read with day and month swapped" if r.value_notes else "")
                + (f"; {r.records_replaced:,} earlier records replaced" if r.records_replaced else "")
            )


@app.command()
def encode(
    file: Path = typer.Argument(..., help="The export to encode (as it would be ingested)."),
    out: Path = typer.Option(..., "--out", help="The encoded Parquet file to write."),
    source: Optional[str] = typer.Option(None, "--source", help="Source name: configs/sources/NAME.toml."),
    source_config: Optional[Path] = typer.Option(None, "--source-config", help="Use this source config file."),
    salt: str = typer.Option("none", "--salt", help="Salt the name filters with: none, sex or birth_year "
                             "(every agency must use the same; see README)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Encode an export for linkage without plaintext: Bloom filters and keyed tokens instead of
    names, birth dates, document and phone numbers (the key: env LINKAGE_BLOOM_KEY or the
    owner-only file LINKAGE_BLOOM_KEY_FILE). Runs at the agency; needs no workspace.

    Example:

        LINKAGE_BLOOM_KEY_FILE=~/.bloom.key linkage encode --source health health.csv --out health.enc.parquet
    """
    from .config import load_chain_config, load_source_config
    from .encode import DEFAULT, SALTS, Params, encode_export, load_secret

    if source is None and source_config is None:
        raise InputError("name the source with --source NAME (or give --source-config FILE)")
    out_ = _out(json_flag)
    config, config_path = load_source_config(state.config_dir, source, source_config)
    secret = load_secret()
    destinations: list[str] = []
    if (state.config_dir / "chain.toml").is_file():
        chain, _ = load_chain_config(state.config_dir)
        destinations = [s.destination for s in chain.stages if s.destination]
    if salt not in SALTS:
        raise InputError(f"--salt must be one of {', '.join(SALTS)} (got '{salt}')")
    params = Params(**{**DEFAULT.to_json(), "salt": salt})
    result = encode_export(config, config_path, file, out, secret, destinations, params)
    if out_.json_mode:
        out_.json({"source": config.name, **asdict(result)})
        return
    out_.line(f"{config.name}: {result.file}: {result.rows_read:,} rows read = {result.rows_encoded:,} encoded + "
              f"{result.rows_rejected:,} rejected -> {result.out}")
    out_.line(f"Encoded fields: {', '.join(result.fields)}; plaintext columns (events): "
              f"{', '.join(result.plaintext_columns) or 'none'}")


@app.command()
def status(json_flag: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Per source: records, events, batches, and rejects by reason; officers' answers per district.

    Example:

        linkage status --json
    """
    from .config import load_export_config
    from .feedback import answer_summary
    from .status import workspace_status

    out = _out(json_flag)
    export_config, _ = load_export_config(state.config_dir)
    with _reading() as ws:
        result = workspace_status(ws)
        result.feedback = answer_summary(ws, export_config.unanswered_after_days)
    audit.count(records=sum(s.records for s in result.sources.values()))
    if out.json_mode:
        out.json(result.to_json())
        return
    out.table(
        f"Workspace {state.workspace} (schema {result.schema_version})",
        ["source", "rows read", "records", "rejects", "values not standardized", "values kept, noted", "events",
         "batches"],
        [(name, s.rows_read, s.records, s.rejects, s.value_issues, s.value_notes, s.events, s.batches)
         for name, s in result.sources.items()],
    )
    reasons = [(name, reason, n) for name, s in result.sources.items() for reason, n in s.rejects_by_reason.items()]
    if reasons:
        out.table("Rejected rows by reason", ["source", "reason", "rows"], reasons)
    issues = [(name, column, n) for name, s in result.sources.items() for column, n in s.value_issues_by_column.items()]
    if issues:
        out.table("Values not standardized, by column", ["source", "column", "values"], issues)
    if result.feedback is not None:
        fb = result.feedback
        out.table(f"Officers' answers to chain run {fb['run_id']} and earlier (newest per flag); unanswered current "
                  f"flags, overdue after {fb['unanswered_after_days']} days",
                  ["district", *fb["outcomes"], "unanswered", "overdue"],
                  [(district, *(d["answers"].get(o, 0) for o in fb["outcomes"]), d["unanswered"], d["overdue"])
                   for district, d in fb["districts"].items()])


@app.command()
def rejects(
    out_file: Optional[Path] = typer.Option(None, "--out", help="Also write every rejected row and value issue "
                                                                "to this CSV (values masked)."),
    source: Optional[str] = typer.Option(None, "--source", help="Only this source."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Per source: rejected rows by reason, value issues by column and reason.

    With --out, one CSV line per rejected row and per value issue (source, batch, file, row, kind,
    column, reason, value with only its last 2 characters shown), UTF-8 with BOM. With the global
    --show-values and a terminal, also the first 200 value issues with their values.

    Example:

        linkage rejects --source police --out police_rejects.csv
    """
    from .rejects import KIND_LABELS, rejects_report

    out = _out(json_flag)
    with _reading() as ws:
        report = rejects_report(ws, source=source, out_file=out_file, values=values_shown())
    audit.count(lines_written=report.lines_written if report.out_file is not None else None)
    if out.json_mode:
        out.json(report.to_json())
        return
    if not report.sources:
        out.line("The workspace holds no ingested sources yet.")
    elif out.interactive:
        out.table("Rejects and value issues", ["source", "rows rejected", "values not standardized",
                                               "values kept, noted"],
                  [(name, s.rows_rejected, s.values_not_standardized, s.values_noted)
                   for name, s in report.sources.items()])
        rows = [(name, reason, n) for name, s in report.sources.items() for reason, n in s.rejected_by_reason.items()]
        if rows:
            out.table("Rejected rows by reason", ["source", "reason", "rows"], rows)
        issues = [(name, i.column, KIND_LABELS[i.kind], i.reason, i.count)
                  for name, s in report.sources.items() for i in s.value_issues]
        if issues:
            out.table("Value issues by column and reason", ["source", "column", "kind", "reason", "values"], issues)
        if report.values:
            out.table(f"Values (--show-values; the first {len(report.values)})",
                      ["source", "file", "row", "column", "reason", "value"],
                      [(v["source"], v["file"], v["row"], v["column"], v["reason"], v["value"]) for v in report.values])
    else:
        for name, s in report.sources.items():
            out.line(f"{name}: {s.rows_rejected:,} rows rejected, {s.values_not_standardized:,} values not "
                     f"standardized, {s.values_noted:,} values kept, noted")
            for reason, n in s.rejected_by_reason.items():
                out.line(f"{name}: {KIND_LABELS['row']}: {n:,}: {reason}")
            for i in s.value_issues:
                out.line(f"{name}: {i.column}: {KIND_LABELS[i.kind]}: {i.count:,}: {i.reason}")
    if report.out_file is not None:
        out.line(f"Wrote {report.lines_written:,} lines to {report.out_file}.")


class _SampleCommand(typer.core.TyperCommand):
    """`linkage sample --help` also lists the corruption profiles, one line each, from
    linkage.sample.CORRUPTIONS (imported only when the help is shown)."""

    def format_help_text(self, ctx, formatter) -> None:
        super().format_help_text(ctx, formatter)
        from .sample import CORRUPTIONS

        with formatter.section("Corruption profiles (--corruption NAME, repeatable or comma-separated; all)"):
            width = max(len(name) for name in CORRUPTIONS)
            for name, text in CORRUPTIONS.items():
                formatter.write(f"{'':>{formatter.current_indent}}{name:<{width}}  {text}\n")


@app.command(cls=_SampleCommand)
def sample(
    people: int = typer.Option(2000, "--people", min=1, help="Number of travelers."),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same files)."),
    out_dir: Path = typer.Option(Path("sample_data"), "--out", help="Output directory."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluation time, e.g. 2026-03-31T00:00."),
    corruption: list[str] = typer.Option([], "--corruption", metavar="NAME",
                                         help="Apply a corruption profile (listed above); default none."),
) -> None:
    """Write realistic synthetic exports of the four agencies plus truth files.

    Without --corruption the files are those of the generator alone (same seed, same bytes); each
    profile adds one class of hard cases, with its own random stream, and the truth files follow.

    Example:

        linkage sample --people 10000 --out data/ --corruption twins,thin
    """
    from .sample import corruption_names, generate_sample

    out = _out()
    when = _parse_time(as_of, "--as-of") if as_of else None
    try:
        profiles = corruption_names(corruption)
        summary = generate_sample(people, seed, out_dir, as_of=when, corruptions=profiles)
    except ValueError as exc:   # the generator's checks of its arguments (no personal value in them)
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"cannot write the sample to {out_dir}: {exc.strerror or type(exc).__name__}") from None
    if out.json_mode:
        out.json({"out_dir": str(summary.out_dir), "people": summary.people, "as_of": summary.as_of.isoformat(),
                  "files": summary.files,
                  "corruption": {name: {"people": touched, "eligible": eligible}
                                 for name, (touched, eligible) in summary.corruptions.items()}})
        return
    out.table(f"Sample of {summary.people:,} travelers in {summary.out_dir} (as of {summary.as_of:%Y-%m-%d %H:%M})",
              ["file", "rows"], sorted(summary.files.items()))
    if summary.corruptions:
        out.table("Corruption profiles", ["profile", "people touched", "of people it applies to", "share"],
                  [(name, touched, eligible, f"{touched / max(eligible, 1):.1%}")
                   for name, (touched, eligible) in summary.corruptions.items()])


@app.command()
def match(
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Match probability to link at (default: model.toml)."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="Use this model.toml."),
    load_model: Optional[Path] = typer.Option(None, "--load-model", help="Score with a saved model instead of training."),
    save_model: Optional[Path] = typer.Option(None, "--save-model", help="Save the trained model to this file."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
) -> None:
    """Block, compare, train, score and cluster every record; person ids stay stable across runs.

    Example:

        linkage match --threshold 0.9 --save-model model.json
    """
    from .config import load_model_config
    from .match.run import run_match

    from .export import check_writable

    out = _out(json_flag)
    config, _ = load_model_config(state.config_dir, model_config)
    if save_model is not None:
        check_writable(save_model)   # before the match, not after it is stored
    with _writing("linkage match", wait) as ws, out.status("matching") as step:
        summary = run_match(ws, config, threshold=threshold, model_file=load_model, save_model=save_model, step=step)
        audit.count(records=summary.records, persons=summary.persons, links=summary.links,
                    decisions_missing=summary.decisions.get("missing"))
    if out.json_mode:
        out.json(asdict(summary))
        return
    out.line(f"Match run {summary.run_id}: {summary.records:,} records -> {summary.persons:,} persons "
             f"({summary.links:,} links at probability >= {summary.threshold}, "
             f"{summary.candidate_pairs:,} candidate pairs; identity guard: {summary.refused:,} links refused, "
             f"{summary.conflicts:,} contradicting links kept for review).")
    d = summary.decisions
    if any(d.values()):
        out.line(f"People's decisions applied: {d['must_link']:,} must-links, {d['cannot_link']:,} cannot-links"
                 + (f"; {d['missing']:,} name records no longer in the workspace and are not applied" if d["missing"] else "")
                 + ".")
    if not summary.households:
        out.line("No households in the data (no two records of one source share a phone, address or group "
                 "while saying two people): those fields count as a person's own evidence.")
    out.table("Blocking rules", ["rule", "pairs", "largest blocks"],
              [(b["rule"], b["pairs"], ", ".join(f"{n:,}" for n in b["largest_blocks"])) for b in summary.blocking])
    out.table("EM per blocking rule", ["rule", "pairs", "match share", "iterations", "converged"],
              [(f["rule"], f["pairs"], f"{f['match_share']:.4f}", f["iterations"], "yes" if f["converged"] else "NO")
               for f in summary.fits])
    out.line("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))


@app.command()
def evaluate(
    truth: Optional[Path] = typer.Option(None, "--truth", help="CSV with columns source,record_id,person_id."),
    labels: bool = typer.Option(False, "--labels", help="Score against the people's decisions (linkage review import) "
                                                        "instead of a truth file."),
    truth_flags: Optional[Path] = typer.Option(None, "--truth-flags", help="CSV person_id,flag,stage: also score the flags."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Pairwise and B-cubed precision / recall / F1 of the current clusters, overall and by group;
    with --labels, precision and recall on the decided pairs (match / not match).

    Example:

        linkage evaluate --truth sample_data/truth_entities.csv
        linkage evaluate --labels
    """
    from .chain import score_flags
    from .match.evaluate import evaluate as run_evaluate
    from .match.evaluate import load_truth

    out = _out(json_flag)
    if labels:
        if truth is not None:
            raise InputError("give --truth FILE or --labels, not both")
        _evaluate_labels(out)
        return
    if truth is None:
        raise InputError("give --truth FILE (a CSV source,record_id,person_id) or --labels (the review decisions)")
    frame = load_truth(truth)
    with _reading() as ws:
        if truth_flags is not None:
            flag_scores = score_flags(ws, truth_flags, frame)
            if out.json_mode:
                out.json({"flags": flag_scores})
            else:
                out.table("Flags vs truth (current flags of the latest chain run)",
                          ["code", "flags", "true", "correct", "precision", "recall", "F1"],
                          [(c, v["predicted"], v["true"], v["correct"], f"{v['precision']:.4f}", f"{v['recall']:.4f}",
                            f"{v['f1']:.4f}") for c, v in flag_scores.items()])
            return
        result = run_evaluate(ws, frame)
    audit.count(records=result.records)
    if out.json_mode:
        out.json(asdict(result))
        return
    out.table(f"Clusters vs {truth.name} ({result.records:,} records)", ["measure", "precision", "recall", "F1"],
              [("pairwise", f"{result.pairwise.precision:.4f}", f"{result.pairwise.recall:.4f}", f"{result.pairwise.f1:.4f}"),
               ("B-cubed", f"{result.bcubed.precision:.4f}", f"{result.bcubed.recall:.4f}", f"{result.bcubed.f1:.4f}")])
    for group, rows in result.by_group.items():
        out.table(f"By {group}", [group, "people", "true pairs", "precision", "recall", "F1"],
                  [(g, v["people"], v["true_pairs"], f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}")
                   for g, v in rows.items()])
    if result.truth_records_missing or result.workspace_records_missing:
        out.line(f"Not scored: {result.truth_records_missing:,} truth records not in the workspace, "
                 f"{result.workspace_records_missing:,} workspace records not in the truth file.")


def _evaluate_labels(out: Output) -> None:
    from .review import evaluate_labels

    with _reading() as ws:
        result = evaluate_labels(ws)
    audit.count(labels=result.match_labels + result.not_match_labels)
    if out.json_mode:
        out.json(asdict(result))
        return
    out.table(f"Clusters vs decisions ({result.match_labels:,} match, {result.not_match_labels:,} not match)",
              ["origin", "match", "not match", "together", "wrongly together", "apart", "precision", "recall", "F1"],
              [("all", result.match_labels, result.not_match_labels, result.true_positive, result.false_positive,
                result.false_negative, f"{result.precision:.4f}", f"{result.recall:.4f}", f"{result.f1:.4f}")]
              + [(o, v["match_labels"], v["not_match_labels"], v["true_positive"], v["false_positive"],
                  v["false_negative"], f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}")
                 for o, v in result.by_origin.items()])
    if result.missing:
        out.line(f"Not scored: {result.missing:,} decisions name records no longer in the workspace.")


@app.command()
def explain(
    keys: list[str] = typer.Argument(None, help="Two record keys SOURCE:RECORD_ID."),
    person: Optional[str] = typer.Option(None, "--person", help="List a person's records and the links between them."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Why two records were or were not linked (per-comparison weights), or what holds a person together.

    Example:

        linkage explain immigration:IMM2026030200123 police:GA202603050001
        linkage explain --person P00000042
    """
    from .config import load_model_config
    from .match.explain import explain_pair, explain_person

    out = _out(json_flag)
    if (person is not None) == (len(keys or []) == 2):
        raise InputError("give two record keys (SOURCE:RECORD_ID SOURCE:RECORD_ID) or --person ID")
    config, _ = load_model_config(state.config_dir)
    with _reading() as ws:
        result = (explain_person(ws, person, values=values_shown()) if person
                  else explain_pair(ws, config, keys[0], keys[1]))
    if out.json_mode:
        out.json(asdict(result))
    elif person:
        render_person(out, result)
    else:
        render_pair(out, result)


@app.command()
def blocking(
    truth: Optional[Path] = typer.Option(None, "--truth", help="Truth CSV: also report the recall of blocking."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="Use this model.toml."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """The blocking rules and why: model.toml's, or (without [[blocking]] there) the rules chosen from
    the data, every candidate with its pairs, the share of likely matches it finds and why it was or
    was not chosen; candidate pairs per rule and, with --truth, the recall of blocking.

    Example:

        linkage blocking --truth sample_data/truth_entities.csv
    """
    from .config import load_model_config
    from .match.evaluate import load_truth
    from .match.rules import blocking_report

    out = _out(json_flag)
    config, _ = load_model_config(state.config_dir, model_config)
    frame = load_truth(truth) if truth else None
    with _reading() as ws:
        report = blocking_report(ws, config, frame)
    if out.json_mode:
        out.json(report)
        return
    if "choice" in report:
        choice = report["choice"]
        out.table(f"Candidate rules (first pass: {choice['sampled_pairs']:,} pairs of {choice['sampled_records']:,} "
                  f"sampled records, {choice['pseudo_matches']:,} likely matches)",
                  ["rule", "on", "pairs", "finds", "added", "decision"],
                  [(c["rule"], " + ".join(c["on"]), c["pairs"], f"{c['covers']:.1%}", f"{c['gain']:.2%}", c["why"])
                   for c in choice["candidates"]])
    out.table(f"Blocking rules (from {report['chosen_by']})",
              ["rule", "on", "pairs", "largest blocks"] + (["recall"] if frame is not None else []),
              [(r["rule"], " + ".join(r["on"]), r["pairs"], ", ".join(f"{n:,}" for n in r["largest_blocks"]))
               + ((f"{r['recall']:.4f}",) if frame is not None else ()) for r in report["rules"]])
    line = f"Union: {report['candidate_pairs']:,} candidate pairs (cap {config.max_pairs:,})"
    if frame is not None:
        line += f"; recall of blocking {report['recall']:.4f} over {report['true_pairs']:,} true pairs"
    out.line(line + ".")


model_app = typer.Typer(cls=_Boundary, no_args_is_help=True, help="The trained model: show or save it.")
app.add_typer(model_app, name="model")


@model_app.command("show")
def model_show(json_flag: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Print the latest trained model: m, u and match weight per comparison level, the prior, EM fits.

    Example:

        linkage model show
    """
    from .match.store import require_latest_model

    out = _out(json_flag)
    with _reading() as ws:
        model = require_latest_model(ws)
    if out.json_mode:
        out.json(model.to_json())
        return
    weights = model.weights()
    rows = []
    for k, name in enumerate(model.comparisons):
        for level in range(1, len(model.labels[k])):
            tf = " (term-frequency adjusted)" if model.tf_levels[k] == level else ""
            rows.append((name, model.labels[k][level] + tf, f"{model.m[k][level]:.4g}", f"{model.u[k][level]:.3g}",
                         f"{weights[k][level]:+.2f}"))
    out.table(f"Model (prior {model.prior:.3g} = weight {model.prior_weight:+.2f}; "
              f"u from {model.random_pairs:,} random pairs)", ["comparison", "level", "m", "u", "weight"], rows)
    if model.groups:
        out.line(f"What households share ({', '.join(model.groups)}): "
                 + ("not a person's own evidence where records say two people." if model.households else
                    "own evidence like any other field; the data holds no households."))
    unestimated = [name for name, estimated in zip(model.comparisons, model.m_estimated) if not estimated]
    if unestimated:
        out.line(f"m not estimated for {', '.join(unestimated)}: every blocking rule that trained blocks on it "
                 "('left out' below), so its m is a default; add a rule that does not (configs/model.toml).")
    out.table("EM per blocking rule", ["rule", "pairs", "match share", "iterations", "converged", "left out"],
              [(f.rule, f.pairs, f"{f.match_share:.4f}", f.iterations, "yes" if f.converged else "NO",
                ", ".join(f.excluded)) for f in model.fits])


@model_app.command("threshold")
def model_threshold(
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="Use this model.toml."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Suggest the threshold that maximizes F1 on the review decisions (at least 30 'match' and 30
    'not match'), and show precision, recall and F1 at other thresholds.

    Example:

        linkage model threshold
    """
    from .config import load_model_config
    from .review import suggest_threshold

    out = _out(json_flag)
    config, _ = load_model_config(state.config_dir, model_config)
    with _reading() as ws:
        result = suggest_threshold(ws, config)
    if out.json_mode:
        out.json(asdict(result))
        return
    out.line(f"Suggested threshold {result.suggested:.6g} (now {result.current:.6g}): precision {result.precision:.4f}, "
             f"recall {result.recall:.4f}, F1 {result.f1:.4f} on {result.match_labels:,} 'match' and "
             f"{result.not_match_labels:,} 'not match' decisions ({result.scored_anew:,} pairs the match did not "
             f"store weighed with the stored model; {result.own_evidence_fails:,} never linked at any threshold: their "
             "own evidence says two people). Set it as 'threshold' in model.toml, or 'linkage match --threshold'.")
    out.table("Precision, recall and F1 on the decisions by threshold", ["threshold", "precision", "recall", "F1"],
              [(f"{c['threshold']:.6g}" + (" (now)" if c["threshold"] == result.current else "")
                + (" (suggested)" if c["threshold"] == result.suggested else ""),
                f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}") for c in result.curve])


@model_app.command("save")
def model_save(path: Path = typer.Argument(..., help="File to write (JSON).")) -> None:
    """Save the latest trained model to a file (load it with 'linkage match --load-model FILE').

    Example:

        linkage model save model-2026-03.json
    """
    from .match.store import require_latest_model

    with _reading() as ws:
        model = require_latest_model(ws)
    model.save(path)
    _out().line(f"Saved the model to {path}.")


export_app = typer.Typer(cls=_Boundary, no_args_is_help=True, help="Write results to files.")
app.add_typer(export_app, name="export")


@export_app.command("clusters")
def export_clusters(out_file: Path = typer.Option(..., "--out", help="CSV file to write.")) -> None:
    """CSV `source,record_id,person_id` with every ingested record once.

    Example:

        linkage export clusters --out clusters.csv
    """
    from .export import write_clusters

    with _reading() as ws:
        rows = write_clusters(ws, out_file)
    audit.count(rows=rows)
    _out().line(f"Wrote {rows:,} records to {out_file}.")


@export_app.command("discrepancies")
def export_discrepancies(
    out_dir: Path = typer.Option(..., "--out", help="Folder for the district CSVs and manifest.json (created)."),
    profile: Optional[str] = typer.Option(None, "--profile",
                                          help="Profile of configs/export.toml (default: its default_profile)."),
    district: Optional[str] = typer.Option(None, "--district",
                                           help="Only this district's file ('unassigned': flags without one); "
                                                "a district profile writes its own district only."),
    file_format: str = typer.Option("csv", "--format", metavar="csv|xlsx",
                                    help="csv (UTF-8 with BOM) or xlsx (formatted, printable workbooks)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output (the manifest)."),
) -> None:
    """One file per responsible district of the current new and open flags, plus manifest.json.

    Columns, language and masking (keep, last N characters, keyed pseudonym, drop) come from the
    profile; reasons, stages, countries and times are in the profile's language (configs/i18n or
    the shipped words). Each row ends with the officer's answer columns (outcome, date, comment,
    flag key) and the previous answer; a flag answered as handled, false alarm or resolved is not
    sent again until its evidence changes. A profile with pseudonyms reads its key from
    LINKAGE_PSEUDONYM_KEY or the owner-only file LINKAGE_PSEUDONYM_KEY_FILE names. CSV files are
    UTF-8 with BOM, safe to open in Excel / LibreOffice (no cell starts a formula); XLSX cells are
    all text. Files are renamed into place together, the manifest (row counts, sha256) last.

    Example:

        linkage export discrepancies --out exports/2026-03-31 --profile district_officer
        linkage export discrepancies --out exports/ --district 朝阳区 --format xlsx
    """
    from .config import load_export_config
    from .export import write_discrepancies

    out = _out(json_flag)
    config, _ = load_export_config(state.config_dir)
    with _reading() as ws:
        result = write_discrepancies(ws, out_dir, config, profile=profile, district=district,
                                     file_format=file_format, config_dir=state.config_dir)
    audit.count(rows=result.rows, files=len(result.files))
    if out.json_mode:
        out.json(result.manifest())
        return
    if result.district is not None and result.rows == 0:
        out.line(f"No current flags for district {result.district}: wrote {result.files[0].file} with the header only "
                 f"(districts with flags: {', '.join(result.districts_with_flags) or 'none'}).")
        return
    out.line(f"Wrote {result.rows:,} flags of chain run {result.run_id} (as of {result.as_of:%Y-%m-%d %H:%M}) "
             f"to {len(result.files)} district files in {out_dir} with profile {result.profile}; "
             f"manifest {result.manifest_path}."
             + (f" {result.not_sent_again:,} flags answered on unchanged evidence were not sent again."
                if result.not_sent_again else ""))


@export_app.command("flags")
def export_flags(
    out_file: Path = typer.Option(..., "--out", help="CSV file to write."),
    include_resolved: bool = typer.Option(False, "--include-resolved", help="Also the flags resolved in this run."),
) -> None:
    """CSV `person_id,code,stage,status,severity,district,confidence,reason`: every current flag, raw values.

    Example:

        linkage export flags --out flags.csv --include-resolved
    """
    from .export import write_flags

    with _reading() as ws:
        result = write_flags(ws, out_file, include_resolved=include_resolved)
    audit.count(rows=result.rows)
    _out().line(f"Wrote {result.rows:,} flags of chain run {result.run_id} to {out_file}.")


feedback_app = typer.Typer(cls=_Boundary, no_args_is_help=True, help="Officers' answers to the district files.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def feedback_import(
    files: list[Path] = typer.Argument(..., help="Returned district files (CSV or XLSX)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
) -> None:
    """Store the officers' answers of returned district files (CSV or XLSX, either language).

    Each row is matched to its flag by the flag key; a row without an outcome is not an answer.
    Bad rows are reported by file, row and column and the good ones stored (then exit 2). Who
    answered is the answered_by column, else the OS user. A file imported before (same sha256)
    is skipped; a newer answer to a flag wins. "False alarm, not the same person" makes the
    flag's records cannot-links for the match; a flag answered as handled, false alarm or
    resolved is not sent again until its evidence changes.

    Example:

        linkage feedback import returned/朝阳区.xlsx returned/海淀区.csv
    """
    from .feedback import import_files

    out = _out(json_flag)
    with _writing("linkage feedback import", wait) as ws:
        result = import_files(ws, files, state.config_dir)
        audit.count(files=len(result.files), answers=result.answers, problems=len(result.problems))
    if out.json_mode:
        out.json(result.to_json())
    else:
        for f in result.files:
            if f.skipped:
                out.line(f"{f.file}: skipped, {f.skipped}.")
            else:
                out.line(f"{f.file}: {f.rows:,} rows: {f.answers:,} answers stored, {f.no_answer:,} without an answer, "
                         f"{f.bad:,} bad" + (f"; {f.cannot_links:,} cannot-link pairs for the match"
                                             if f.cannot_links else "") + "."
                         + (f" {f.no_records:,} 'not the same person' answers rest on no record (a stage missing "
                            "before any other): nothing to separate." if f.no_records else ""))
    if result.problems:
        for problem in result.problems:
            print_error(str(problem))
        print_error(f"{len(result.problems):,} problem(s) in the files; the good rows "
                    f"({result.answers:,} answers) are stored. Correct the rows named and import the file again.")
        raise typer.Exit(2)


def render_pair(out: Output, result) -> None:
    rows = [("prior", "", f"{result.prior_weight:+.2f}", _bar(result.prior_weight))]
    rows += [(t.comparison, t.level + (f" [{t.note}]" if t.note else ""), f"{t.weight:+.2f}", _bar(t.weight))
             for t in result.terms]
    rows.append(("total", f"probability {result.probability:.6f}", f"{result.total_weight:+.2f}", ""))
    out.table(f"{result.left} vs {result.right}", ["comparison", "level", "weight", ""], rows)
    verdict = "above" if result.linked_now else "below"
    out.line(f"The pair scores {verdict} the threshold {result.threshold}; the current clusters "
             f"{'put them in the same person' if result.same_person else 'keep them apart'}.")


def render_person(out: Output, result) -> None:
    values = ["name", "dob"] if result.records and "name" in result.records[0] else []   # --show-values on a TTY
    out.table(f"Person {result.person_id}: {len(result.records)} records", ["record", *values, "nationality", "file", "row"],
              [(r["key"], *(r[v] or "" for v in values), r["nationality"] or "", r["file"], r["row"])
               for r in result.records])
    out.table("Links", ["left", "right", "weight", "probability", "status"],
              [(e["left"], e["right"], f"{e['weight']:+.2f}", f"{e['probability']:.4f}",
                "refused (identity guard)" if e["refused"] else "kept, identifiers contradict" if e["conflict"]
                else "linked" if e["linked"] else "below threshold") for e in result.edges])


def _bar(weight: float) -> str:
    size = min(int(round(abs(weight))), 30)
    return ("+" if weight > 0 else "-") * size


review_app = typer.Typer(cls=_Boundary, no_args_is_help=True,
                         help="Clerical review: export pairs to decide, import the decisions.")
app.add_typer(review_app, name="review")


@review_app.command("export")
def review_export(
    out_file: Path = typer.Option(..., "--out", help="File to write: CSV (UTF-8 with BOM), or XLSX for a .xlsx name."),
    limit: int = typer.Option(200, "--limit", metavar="N", help="At most N pairs of each kind (near the threshold: "
                                                                 "spread over the uncertainty band)."),
    all_pairs: bool = typer.Option(False, "--all", help="Also pairs decided already."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="Use this model.toml."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Write the pairs to review: those nearest the threshold, the links the identity guard refused or
    kept, and the pairs behind IDENTITY_CONFLICT and low-confidence flags, both records side by side
    with the weight of each comparison; fill the decision column (match / not match / unsure) and
    import the file with 'linkage review import'. Every value in full: an analyst's file.

    Example:

        linkage review export --out review.xlsx
    """
    from .config import load_model_config
    from .review import REASONS, export_review

    out = _out(json_flag)
    config, _ = load_model_config(state.config_dir, model_config)
    with _reading() as ws:
        result = export_review(ws, config, out_file, limit=limit, include_decided=all_pairs)
    audit.count(rows=result.pairs)
    if out.json_mode:
        out.json(asdict(result))
        return
    out.line(f"Wrote {result.pairs:,} pairs to review to {out_file}"
             + (f" ({result.left_out_decided:,} decided already left out; --all includes them)."
                if result.left_out_decided else "."))
    out.table("Pairs by reason (a pair can have several)", ["reason", "pairs"],
              [(REASONS[k], v) for k, v in result.by_reason.items()])


@review_app.command("import")
def review_import(
    file: Path = typer.Argument(..., help="A review file with its decision column filled (CSV or XLSX)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
) -> None:
    """Store the decisions of a review file; from then on every match links the 'match' pairs and keeps
    the 'not match' pairs apart. Rows without a decision are skipped; a bad row is reported (file,
    row, column) and the good rows are stored (exit 2 when any row was bad).

    Example:

        linkage review import review.xlsx
    """
    from .review import import_review

    out = _out(json_flag)
    with _writing("linkage review import", wait) as ws:
        result = import_review(ws, file)
        audit.count(rows=result.rows, stored=result.stored, skipped=result.skipped, bad=len(result.errors))
    if out.json_mode:
        out.json(asdict(result))
    else:
        out.line(f"{file}: {result.rows:,} rows: {result.stored:,} decisions stored ({result.replaced:,} replacing "
                 f"an earlier one), {result.unchanged:,} unchanged, {result.skipped:,} without a decision skipped, "
                 f"{len(result.errors):,} bad.")
        if result.missing:
            out.line(f"{result.missing:,} decisions in force name records no longer in the workspace: "
                     "they are not applied.")
    for error in result.errors:
        out.err.print(error, markup=False, highlight=False)
    if result.errors:
        raise InputError(f"{file}: {len(result.errors):,} rows not stored (listed above); the good rows are stored")


@app.command()
def chain(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluate as of this time (default: now)."),
    chain_config: Optional[Path] = typer.Option(None, "--chain-config", help="Use this chain.toml."),
    clusters: Optional[Path] = typer.Option(None, "--clusters", help="Use these clusters (source,record_id,person_id) instead of the match's persons."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
) -> None:
    """Rebuild every traveler's timeline, evaluate configs/chain.toml, store flags and the diff.

    Example:

        linkage chain --as-of 2026-03-31T00:00
    """
    from .chain import run_chain
    from .config import load_chain_config
    from .match.evaluate import load_truth

    out = _out(json_flag)
    when = _parse_time(as_of, "--as-of") if as_of else None
    config, path = load_chain_config(state.config_dir, chain_config)
    given = load_truth(clusters) if clusters else None
    with _writing("linkage chain", wait) as ws:
        with out.status("rebuilding timelines, joining split travelers, evaluating the chain"):
            summary = run_chain(ws, config, path, state.config_dir, as_of=when, clusters=given)
        audit.count(persons=summary.persons, flags=summary.flags)
    if out.json_mode:
        out.json(asdict(summary))
        return
    out.line(f"Chain run {summary.run_id} as of {summary.as_of:%Y-%m-%d %H:%M}: {summary.persons:,} travelers, "
             f"{summary.flags:,} flags ({summary.new:,} new, {summary.open:,} open; {summary.review:,} for review), "
             f"{summary.resolved:,} resolved since the last run; {summary.merged:,} split travelers joined "
             f"by their complementary events, {summary.moved:,} records moved to the traveler whose missing "
             "stage they fill.")
    out.table("Flags by district and code", ["district", "code", "new", "open", "resolved"],
              [(r["district"], r["code"], r["new"], r["open"], r["resolved"]) for r in summary.by_district])


@app.command()
def timeline(
    person_id: str = typer.Argument(..., help="Person id, e.g. P00000042."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """A person's stages, times, sources and flags (from the latest chain run).

    Example:

        linkage timeline P00000042
    """
    from .chain import timeline_of

    out = _out(json_flag)
    with _reading() as ws:
        result = timeline_of(ws, person_id)
    if out.json_mode:
        out.json(result)
        return
    out.table(f"Person {person_id} as of {result['as_of']}", ["stage", "status", "time", "due", "district", "record"],
              [(s["stage"], s["status"], s["time"] or "", s["due"] or "", s["district"] or "", s["record"] or "")
               for s in result["stages"]])
    for f in result["flags"]:
        out.line(f"[{f['status']}] {f['code']} {f['stage'] or ''} ({f['severity']}{', review' if f['review'] else ''}): "
                 f"{f['reason']}")


@app.command()
def run(
    config_file: Optional[Path] = typer.Option(None, "--config", help="Pipeline config (default: CONFIG_DIR/pipeline.toml "
                                                                      "if present, else the built-in layout)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluate the chain as of this time (default: now)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (steps and files) and touch nothing."),
    full: bool = typer.Option(False, "--full", help="Match every record again, even when no record changed."),
    retrain: bool = typer.Option(False, "--retrain", help="Train the model anew instead of reusing the stored one."),
    wait: float = typer.Option(0.0, "--wait", min=0, help=WAIT_HELP),
    json_flag: bool = typer.Option(False, "--json", help="JSON output (the plan, or the run's record)."),
) -> None:
    """The nightly job: ingest every export waiting in the inbox, match, evaluate the chain, write the
    run's district files to exports/RUN/ and point exports/latest at them.

    Files move to archive/ once ingested, to rejected/ (with a .reason.txt beside) when they fail.
    A run killed at any moment is finished by the next one. Exit codes: 0 done; 3 done, with new
    discrepancies; 4 another writer holds the workspace; 2 bad input or config; 1 internal error.

    Example (crontab, every night at 02:30):

        30 2 * * * cd /srv/linkage && .venv/bin/linkage --workspace ws run --wait 600 >> ws/logs/cron.out 2>&1
    """
    from .config import load_pipeline_config
    from .pipeline import Paths, execute, make_plan, plan_json

    out = _out(json_flag)
    config, path = load_pipeline_config(state.config_dir, config_file)
    if path is not None:   # paths in pipeline.toml are relative to it; options given explicitly win
        if config.workspace and "workspace" not in state.given:
            state.workspace = path.parent / config.workspace
        if config.config_dir and "config_dir" not in state.given:
            state.config_dir = path.parent / config.config_dir
    when = _parse_time(as_of, "--as-of") if as_of else None
    paths = Paths.of(state.workspace, config)
    if dry_run:
        with _reading() as ws:
            plan = make_plan(ws, paths, state.config_dir, when, full, retrain, config.export_profile)
        if out.json_mode:
            out.json(plan_json(plan))
            return
        out.line(f"Plan of run {plan.run_id}{' (taking up the interrupted run)' if plan.resume else ''} as of "
                 f"{plan.as_of:%Y-%m-%d %H:%M}; nothing was changed:")
        for n, step in enumerate(plan.steps, 1):
            out.line(f"  {n}. {step.describe()}")
        out.line(f"  exports to {plan.export_dir}, then {paths.exports / 'latest'} points there")
        for name in plan.left_alone:
            out.line(f"  left alone: {paths.inbox / name} (no source config of that name)")
        return
    report = None if out.json_mode else out.line
    with _writing("linkage run", wait) as ws:
        plan = make_plan(ws, paths, state.config_dir, when, full, retrain, config.export_profile)
        if plan.note:
            out.err.print(f"Note: {plan.note}.", markup=False, highlight=False)
        for name in plan.left_alone:
            out.err.print(f"Warning: {paths.inbox / name} left alone: no source config of that name.",
                          markup=False, highlight=False)
        summary = execute(ws, plan, paths, state.config_dir, config, report=report)
        audit.count(files_ingested=summary.files_ingested, records=summary.records, persons=summary.persons,
                    flags_new=summary.flags_new, flags_open=summary.flags_open)
    if out.json_mode:
        out.json({**asdict(summary), "exit_code": summary.exit_code})
    else:
        for r in summary.rejected:
            out.err.print(f"Warning: {r['source']} {r['file']} rejected, moved to {r['moved_to']}: {r['reason']}",
                          markup=False, highlight=False)
        out.line(f"Run {summary.run_id}{' (taken up again)' if summary.resumed else ''} done: "
                 f"{summary.files_ingested:,} files ingested, {summary.files_rejected:,} rejected; "
                 f"{summary.records:,} records, {summary.persons:,} persons ({summary.merges:,} merges, "
                 f"{summary.splits:,} splits); flags {summary.flags_new:,} new, {summary.flags_open:,} open, "
                 f"{summary.flags_resolved:,} resolved; exports {summary.export_dir or 'none'}.")
    raise typer.Exit(summary.exit_code)


@app.command()
def runs(json_flag: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Past runs of 'linkage run', newest first: status, files, records, persons, merges and splits, flags
    new / open / resolved, seconds per step.

    Example:

        linkage runs --json
    """
    from .pipeline import list_runs

    out = _out(json_flag)
    with _reading() as ws:
        records = list_runs(ws)
    if out.json_mode:
        out.json({"runs": records})
        return
    if not records:
        out.line("No runs yet ('linkage run' records one).")
        return
    rows = [(r["run_id"], (r["started_at"] or "")[:16], r["status"] + (f", resumed {r['resumed']}x" if r["resumed"] else ""),
             f"{r['files_ingested'] or 0} + {r['files_rejected'] or 0} rejected", r["records"] or 0, r["persons"] or 0,
             f"{r['merges'] or 0} / {r['splits'] or 0}",
             f"{r['flags_new'] or 0} / {r['flags_open'] or 0} / {r['flags_resolved'] or 0}",
             f"{sum(r['seconds'].values()):.1f}") for r in records]
    if out.interactive:
        out.table("Runs (flags: new / open / resolved)", ["run", "started", "status", "files", "records", "persons",
                                                           "merges / splits", "flags", "seconds"], rows)
        return
    for r in rows:
        out.line(f"run {r[0]}: started {r[1]}, {r[2]}; files {r[3]}; {r[4]:,} records, {r[5]:,} persons; "
                 f"merges / splits {r[6]}; flags new / open / resolved {r[7]}; {r[8]} s")


audit_app = typer.Typer(cls=_Boundary, no_args_is_help=True,
                        help="The tamper-evident audit log: who read or wrote the workspace, and its check.")
app.add_typer(audit_app, name="audit")


@audit_app.command("show")
def audit_show(
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the newest N entries."),
    json_flag: bool = typer.Option(False, "--json", help="JSON lines: one object per entry, as stored."),
) -> None:
    """List the audit log's entries: sequence number, time (UTC), OS user, command, arguments, counts,
    files written (with sha256) and outcome.

    Example:

        linkage audit show --last 20
    """
    out = _out(json_flag)
    entries = audit.read_entries(state.workspace)
    entries = entries[-last:] if last else entries
    if out.json_mode:
        for entry in entries:
            out.json(entry)
        return
    if not entries:
        out.line(f"The audit log {audit.log_path(state.workspace)} holds no entries yet.")
        return
    rows = [(e.get("seq"), e.get("time", ""), e.get("user", ""), e.get("command", ""),
             " ".join(f"{k}={' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in (e.get("args") or {}).items()),
             ", ".join(f"{k} {v:,}" for k, v in (e.get("counts") or {}).items()),
             "; ".join(f"{f['path']} sha256 {f['sha256'][:12]}…" for f in e.get("files") or []),
             e.get("outcome", "") if e.get("outcome") == "ok" else f"exit {e.get('exit_code')} ({e.get('error')})")
            for e in entries]
    if out.interactive:
        out.table(f"Audit log {audit.log_path(state.workspace)}",
                  ["entry", "time (UTC)", "user", "command", "arguments", "counts", "files written", "outcome"], rows)
        return
    for seq, time, user, command, args, counts, files, outcome in rows:
        out.line(f"{seq} {time} {user} {command}{' ' + args if args else ''}: {outcome}"
                 + (f"; {counts}" if counts else "") + (f"; wrote {files}" if files else ""))


@audit_app.command("verify")
def audit_verify(
    head_file: Optional[Path] = typer.Option(None, "--head", help="A head written by 'linkage audit head': "
                                                                  "the log must still hold that entry."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Check the whole chain of the audit log: every entry's hash, its link to the one before, the sequence
    numbers; and that the head kept in the workspace (and with --head, the head file) is still in the log.

    Exit 0 when intact; exit 5 when an entry was edited, deleted, inserted, reordered or cut off (each
    problem is listed with its line and entry).

    Example:

        linkage audit verify --head /mnt/offsite/linkage-audit-head.json
    """
    out = _out(json_flag)
    heads = [audit.read_head_file(head_file)] if head_file is not None else []
    stored = _stored_audit_head(out)
    result = audit.verify(state.workspace, heads + ([stored] if stored is not None else []))
    if out.json_mode:
        out.json(result.to_json())
    else:
        for problem in result.problems:
            out.line(f"{problem.describe()}")
        checked = "".join(f"; head of {h.source} (entry {h.seq}) found" for h in result.heads_checked)
        if result.intact:
            head = f"entry {result.head.seq}, sha256 {result.head.hash}" if result.head else "empty"
            out.line(f"The audit log {result.path} is intact: {result.entries:,} entries, head {head}{checked}.")
    if not result.intact:
        from .errors import TamperedError

        first = result.problems[0]
        raise TamperedError(f"the audit log {result.path} has been tampered with: {len(result.problems)} "
                            f"problem{'s' if len(result.problems) > 1 else ''}, the first at {first.describe()}")


def _stored_audit_head(out: Output):
    """The head the last writing command stored in the workspace (None without one, or when the
    workspace cannot be opened now: then said on stderr)."""
    from .workspace import DB_FILE, Workspace

    if not (state.workspace / DB_FILE).exists():
        return None
    try:
        with Workspace.open(state.workspace, read_only=True) as ws:
            return audit.stored_head(ws)
    except LinkageError as exc:
        out.err.print(f"Note: the head stored in the workspace was not checked ({exc}).", markup=False,
                      highlight=False)
        return None


@audit_app.command("head")
def audit_head(out_file: Path = typer.Option(..., "--out", help="File to write the head to (JSON).")) -> None:
    """Write the audit log's head (the newest entry's sequence number and hash) to a file, to keep where
    whoever can write the workspace cannot: 'linkage audit verify --head FILE' then finds entries cut off
    the end of the log, or a log rewritten as a whole.

    Example:

        linkage audit head --out /mnt/offsite/linkage-audit-head.json
    """
    import json

    from .export import atomic_path

    head = audit.current_head(state.workspace)
    with atomic_path(out_file) as temp:
        temp.write_text(json.dumps(audit.head_document(state.workspace, head), indent=2) + "\n", encoding="utf-8")
    _out().line(f"Wrote the head of the audit log (entry {head.seq}, sha256 {head.hash}) to {out_file}.")

@app.command()
def report(
    out_file: Path = typer.Option(..., "--out", metavar="FILE", help="HTML file to write (one self-contained file)."),
    png_dir: Optional[Path] = typer.Option(None, "--png", metavar="DIR",
                                           help="Also write each chart as DIR/NAME.png (created when missing)."),
    json_flag: bool = typer.Option(False, "--json", help="JSON output (the file, sections, charts, PNGs)."),
) -> None:
    """An HTML report with charts: records per source, rejects, field completeness, the model, pair
    weights and the threshold, cluster sizes, the chain funnel, flags by district and code, officers'
    answers and trends over past runs. Counts, weights and codes only; opens without a network.

    Example:

        linkage report --out workspace/report.html --png workspace/report-png
    """
    from .config import load_export_config
    from .report import write_report

    out = _out(json_flag)
    export_config, _ = load_export_config(state.config_dir)
    with _reading() as ws:
        result = write_report(ws, out_file, png_dir=png_dir, overdue_days=export_config.unanswered_after_days)
    if out.json_mode:
        out.json(result.to_json())
        return
    out.line(f"Wrote the report to {result.out_file} ({len(result.sections)} sections, "
             f"{len(result.charts)} charts).")
    if result.png_files:
        out.line(f"Charts as PNG in {png_dir}: " + ", ".join(p.name for p in result.png_files))


def _parse_time(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} '{value}' is not a time like 2026-03-31T00:00 or 2026-03-31") from None


def main() -> None:
    try:
        app()
    finally:
        try:   # output still buffered for a pipe whose reader has gone
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()

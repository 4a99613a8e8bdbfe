"""No personal data in output, logs or error text.

One small sample (`linkage sample`) goes through every command of the app that touches personal
data, as subprocesses without a terminal (as cron runs them), including failing variants (a bad
config, files without a header row, bad values, a missing workspace, wrong options, unwritable
--out paths, bad settings). The known personal values are read from the exports themselves (names
in hanzi and latin as written, birth dates as written and as ISO dates, passport, resident ID and
other document numbers, phones, e-mails); none may appear in any command's stdout or stderr, in
WORKSPACE/logs/ or in any other log or reason file the workspace holds. Data files a command
writes on purpose (the CSVs of `export` and `rejects --out`, the inbox / archive copies of the
exports) are data, not logs: they are not searched.

Coverage follows the app: `RUNS` names the command path of every run, and the set of covered paths
plus `NOT_COVERED` (each with its reason) must equal the app's command paths, so a command added
later fails `test_every_command_is_covered` until a run of it is added here.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest
import typer

from conftest import CONFIGS
from linkage.cli import app

PEOPLE, SEED, AS_OF = 200, 12, "2026-03-31T00:00"
NEW_KEY = "a-sweep-key-of-enough-length-0001"
BLOOM_KEY = "a-sweep-bloom-secret-of-enough-length-02"   # not personal data: rekey encrypts the workspace last

# Command paths deliberately not run here, each with its reason. Add a path only with a reason.
NOT_COVERED: dict[tuple[str, ...], str] = {}

# Canonical fields whose values are personal data (config.py's names).
PERSONAL_FIELDS = ("full_name", "family_name", "given_name", "local_name", "dob", "passport", "id_number",
                   "permit_no", "doc_no", "phone", "email")
OTHER_TEXT_FIELDS = ("address", "district", "employer", "nationality", "sex", "doc_type")


@dataclass(frozen=True)
class Run:
    path: tuple[str, ...]          # the command path in the app, e.g. ("export", "flags")
    args: tuple[str, ...]          # after the global options
    expect: int | tuple[int, ...]  # exit code(s)
    env: tuple[tuple[str, str], ...] = ()
    workspace: str | None = None   # another workspace than the shared one


@dataclass
class Outcome:
    run: Run
    code: int
    text: str                       # stdout + stderr
    seconds: float


def app_command_paths() -> set[tuple[str, ...]]:
    def walk(group, prefix: tuple[str, ...]):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name)

    return set(walk(typer.main.get_command(app), ()))


# ---- the sample and its known values ---------------------------------------------------------

def _exports(data: Path) -> dict[str, pl.DataFrame]:
    """The four agencies' exports as written (every column as text)."""
    frames = {
        "immigration": pl.read_csv(data / "immigration.csv", infer_schema=False),
        "health": pl.read_csv(io.StringIO((data / "health.csv").read_text(encoding="utf-8-sig")), infer_schema=False),
        "police": pl.read_csv(io.StringIO((data / "police.csv").read_bytes().decode("gb18030")), infer_schema=False),
    }
    book = openpyxl.load_workbook(data / "commerce.xlsx", read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    frames["commerce"] = pl.DataFrame([[_cell(v) for v in row] for row in rows[1:]],
                                      schema={str(h): pl.Utf8 for h in rows[0]}, orient="row")
    return frames


def _cell(value) -> str | None:
    if value is None:
        return None
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    return str(value)


def _columns(fields: tuple[str, ...]) -> dict[str, list[str]]:
    """Per source: the export columns the bundled configs map to these fields."""
    out = {}
    for source in ("immigration", "health", "police", "commerce"):
        config = tomllib.loads((CONFIGS / "sources" / f"{source}.toml").read_text(encoding="utf-8"))
        out[source] = [column for field, column in config["fields"].items() if field in fields]
    return out


def known_values(data: Path) -> tuple[set[str], str]:
    """Names, birth dates, document numbers, phones and e-mails of the sample, as the exports write
    them (and in the forms linkage prints: ISO dates, numbers without spaces, family + given name).
    Values too short to be told from other text (one hanzi, a 3-letter token) are left out, and
    so is any value that is also part of a non-personal cell (a hotel name holding a given name),
    whose text is returned too."""
    frames = _exports(data)
    personal, other = _columns(PERSONAL_FIELDS), _columns(OTHER_TEXT_FIELDS)
    values: set[str] = set()
    public: list[str] = []
    for source, frame in frames.items():
        personal_cols = set(personal[source])
        public += [v for c in frame.columns if c not in personal_cols for v in frame[c].drop_nulls().to_list()]
        for column in personal[source]:
            for value in frame[column].drop_nulls().to_list():
                values |= _forms(value.strip())
        if {"姓", "名"} <= set(frame.columns):   # police: family and given name in two columns
            for family, given in frame.select("姓", "名").drop_nulls().iter_rows():
                values |= {f"{family}{given}", f"{family} {given}", f"{given} {family}"}
    public_text = "\n".join(public)
    return {v for v in values if _distinctive(v) and v not in public_text}, public_text


def stored_values(db: Path, public_text: str) -> set[str]:
    """The same people's values in the forms the workspace stores them (standardized names and
    name keys, ISO birth dates, documents without spaces, phones in E.164), which a command
    printing a stored value would show."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("""
            SELECT full_name, local_name, name_key, family_name || ' ' || given_name, given_name || ' ' || family_name,
                   strftime(dob, '%Y-%m-%d'), email, passport, id_number, permit_no, phone,
                   array_to_string(doc_numbers, '\t'), array_to_string(phones, '\t')
            FROM records""").fetchall()
    finally:
        con.close()
    values = {part for row in rows for cell in row if cell for part in cell.split("\t")}
    return {v for v in values if _distinctive(v) and v not in public_text}


def _forms(value: str) -> set[str]:
    forms = {value}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7 and len(digits) >= len(value) - 6:   # a number written with spaces, dashes, +
        forms.add(digits)
        forms.add(value.replace(" ", ""))
    for pattern, order in ((r"(\d{4})(\d{2})(\d{2})", "ymd"), (r"(\d{2})/(\d{2})/(\d{4})", "dmy"),
                           (r"(\d{4})年(\d{1,2})月(\d{1,2})日", "ymd")):
        match = re.fullmatch(pattern, value)
        if match:
            a, b, c = match.groups()
            y, m, d = (a, b, c) if order == "ymd" else (c, b, a)
            forms.add(f"{y}-{int(m):02d}-{int(d):02d}")
    return forms


def _distinctive(value: str) -> bool:
    if re.fullmatch(r"(19|20)\d\d-\d\d-\d\d", value):
        return value < "2025"   # the sample's events are in 2025-2026: such dates are event times too
    if re.fullmatch(r"\d{8}", value) and value[:2] in ("19", "20"):
        return value < "2025"
    if re.search(r"[\u4e00-\u9fff]", value):
        return len(value) >= 2
    if re.fullmatch(r"[\d +\-()]+", value):
        return len(re.sub(r"\D", "", value)) >= 7
    return len(value) >= 6 or (" " in value and len(value) >= 5)


def found(text: str, values: set[str]) -> list[str]:
    return sorted(v for v in values if v in text)


# ---- the runs --------------------------------------------------------------------------------

# Blocking rules of our own: choosing them from the data (the default) costs `match` and `blocking`
# a first pass each, which adds time and no output of another kind.
MODEL_TOML = """
[[blocking]]
name = "dob"
on = ["dob"]

[[blocking]]
name = "documents"
on = ["doc_number"]

[[blocking]]
name = "phone"
on = ["phone"]

[[blocking]]
name = "name"
on = ["name_key"]
"""

BAD_SOURCE_TOML = """
name = "immigration"
format = "csv"
record_id = "ENTRY_ID"
colour = "blue"
[fields]
full_name = "FULL_NAME"
"""

PARQUET_TOML = """
name = "border"
format = "parquet"
record_id = "ENTRY_ID"
[fields]
full_name = "FULL_NAME"
dob = "DATE_OF_BIRTH"
doc_no = "TRAVEL_DOC_NO"
[formats]
DATE_OF_BIRTH = ["%Y%m%d"]
"""


def _prepare_inputs(data: Path, tmp: Path) -> dict[str, Path]:
    """Broken copies of the exports: without their header row, with bad values, invalid UTF-8."""
    files = {}
    lines = (data / "immigration.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    files["no_header_csv"] = tmp / "immigration_no_header.csv"
    files["no_header_csv"].write_text("".join(lines[1:]), encoding="utf-8")
    book = openpyxl.load_workbook(data / "commerce.xlsx")
    book.worksheets[0].delete_rows(1)
    files["no_header_xlsx"] = tmp / "commerce_no_header.xlsx"
    book.save(files["no_header_xlsx"])
    # health rows under new record ids with an impossible birth date and a phone that is no number
    text = (data / "health.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:6]
    for n, row in enumerate(body):
        row[header.index("记录编号")] = f"HX-{n:07d}"
        row[header.index("出生日期")] = f"1987-{13 + n}-4{n}"
        row[header.index("联系电话")] = f"99{n}-555"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    files["bad_values"] = tmp / "health_bad_values.csv"
    files["bad_values"].write_text(out.getvalue(), encoding="utf-8-sig")
    files["bad_config"] = tmp / "bad_source.toml"
    files["bad_config"].write_text(BAD_SOURCE_TOML, encoding="utf-8")
    files["parquet_config"] = tmp / "border.toml"
    files["parquet_config"].write_text(PARQUET_TOML, encoding="utf-8")
    files["bad_parquet"] = tmp / "border.parquet"
    _parquet_with_invalid_utf8(data / "immigration.csv", files["bad_parquet"])
    files["gb18030_as_utf8"] = tmp / "police_as_immigration.csv"
    shutil.copy(data / "police.csv", files["gb18030_as_utf8"])
    files["blocked"] = tmp / "a_file_not_a_folder"   # writing under a file fails, for root too
    files["blocked"].write_text("x")
    files["bad_model"] = tmp / "bad_model.toml"
    files["bad_model"].write_text('[[blocking]]\nname = "documents"\non = ["doc_numbers"]\n', encoding="utf-8")
    files["bad_truth"] = tmp / "truth_without_columns.csv"
    files["bad_truth"].write_text("who,what\n" + "".join(lines[1:4]), encoding="utf-8")
    return files


def _parquet_with_invalid_utf8(source: Path, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pl.read_csv(source, infer_schema=False).head(20)
    names = [v.encode() for v in frame["FULL_NAME"].to_list()]
    names[7] = names[7][:2] + b"\xff" + names[7][2:]
    offsets = [0]
    for name in names:
        offsets.append(offsets[-1] + len(name))
    column = pa.Array.from_buffers(pa.string(), len(names), [None, pa.py_buffer(pa.array(offsets, pa.int32())
                                                                               .buffers()[1]),
                                                             pa.py_buffer(b"".join(names))])
    table = frame.to_arrow()
    table = table.set_column(table.column_names.index("FULL_NAME"), "FULL_NAME", column)
    pq.write_table(table, target)


def _runs_before_match(data: Path, f: dict[str, Path], tmp: Path) -> list[Run]:
    ingest = [Run(("ingest",), ("ingest", "--source", s, str(data / f"{s}.{e}")), 0)
              for s, e in (("immigration", "csv"), ("health", "csv"), ("police", "csv"), ("commerce", "xlsx"))]
    return [
        Run(("init",), ("init",), 0),
        *ingest,
        Run(("ingest",), ("ingest", "--source", "immigration", str(f["no_header_csv"])), 2),
        Run(("ingest",), ("ingest", "--source", "commerce", str(f["no_header_xlsx"])), 2),
        Run(("ingest",), ("ingest", "--source", "health", "--json", str(f["bad_values"])), 0),
        Run(("ingest",), ("ingest", "--source-config", str(f["parquet_config"]), str(f["bad_parquet"])), 2),
        Run(("ingest",), ("ingest", "--source", "immigration", str(f["gb18030_as_utf8"])), 2),
        Run(("match",), ("match", "--save-model", str(tmp / "model.json")), 0),
        Run(("chain",), ("chain", "--as-of", AS_OF), 0),
        Run(("export", "clusters"), ("export", "clusters", "--out", str(tmp / "clusters.csv")), 0),
        Run(("export", "flags"), ("export", "flags", "--out", str(tmp / "flags.csv")), 0),
    ]


def _reading_runs(data: Path, f: dict[str, Path], tmp: Path, pair: tuple[str, str], person: str,
                  flagged: str) -> list[Run]:
    blocked = f["blocked"]
    return [   # readers, and commands that fail before they open the workspace for writing
        Run(("init",), ("init",), 2),   # exists
        Run(("status",), ("status",), 2, workspace="missing"),
        Run(("ingest",), ("ingest", "--source-config", str(f["bad_config"]), str(f["no_header_csv"])), 2),
        Run(("ingest",), ("ingest", "--source", "nosuch", str(data / "health.csv")), 2),
        Run(("status",), ("status",), 2, (("LINKAGE_MEMORY_LIMIT", "plenty"),)),
        Run(("match",), ("match", "--threshold", "high"), 2),
        Run(("match",), ("match", "--model-config", str(f["bad_model"])), 2),
        Run(("match",), ("match", "--save-model", str(f["blocked"] / "model.json")), 2),
        Run(("chain",), ("chain", "--as-of", "yesterday"), 2),
        Run(("status",), ("status",), 0),
        Run(("rejects",), ("rejects",), 0),
        Run(("rejects",), ("rejects", "--json"), 0),
        Run(("rejects",), ("rejects", "--out", str(blocked / "rejects.csv")), 2),
        Run(("blocking",), ("blocking",), 0),
        Run(("blocking",), ("blocking", "--truth", str(f["bad_truth"])), 2),
        Run(("model", "show"), ("model", "show"), 0),
        Run(("model", "show"), ("model", "show", "--json"), 2, workspace="missing"),
        Run(("model", "save"), ("model", "save", str(tmp / "saved_model.json")), 0),
        Run(("model", "save"), ("model", "save", str(blocked / "model.json")), 2),
        Run(("explain",), ("explain", *pair), 0),
        Run(("explain",), ("--show-values", "explain", "--person", person), 0),   # not a terminal: no values
        Run(("explain",), ("explain", "--json", "--person", person), 0),
        Run(("explain",), ("explain", pair[0], "health:NO-SUCH-RECORD"), 2),
        Run(("timeline",), ("timeline", flagged), 0),
        Run(("timeline",), ("timeline", "--json", person), 0),
        Run(("timeline",), ("timeline", "P99999999"), 2),
        Run(("evaluate",), ("evaluate", "--json", "--truth", str(data / "truth_entities.csv"),
                            "--truth-flags", str(data / "truth_flags.csv")), 0),
        Run(("evaluate",), ("evaluate", "--truth", str(f["bad_truth"])), 2),
        Run(("export", "clusters"), ("export", "clusters", "--out", str(blocked / "clusters.csv")), 2),
        Run(("export", "flags"), ("export", "flags", "--out", str(blocked / "flags.csv")), 2),
        Run(("export", "discrepancies"), ("export", "discrepancies", "--out", str(tmp / "districts")), 0),
        Run(("export", "discrepancies"), ("export", "discrepancies", "--out", str(blocked / "districts")), 2),
        Run(("runs",), ("runs", "--json"), 2, workspace="missing"),
        Run(("run",), ("run", "--dry-run"), 0),
        Run(("sample",), ("sample", "--people", "5", "--out", str(blocked / "sample")), 2),
        Run(("report",), ("report", "--out", str(tmp / "report.html")), 0),
        Run(("report",), ("report", "--out", str(blocked / "report.html")), 2),
        Run(("audit", "show"), ("audit", "show"), 0),
        Run(("audit", "show"), ("audit", "show", "--json"), 0),
        Run(("audit", "show"), ("audit", "show", "--last", "0"), 2),
        Run(("audit", "verify"), ("audit", "verify"), 0),
        Run(("audit", "verify"), ("audit", "verify", "--head", str(tmp / "no-such-head.json")), 2),
        Run(("audit", "head"), ("audit", "head", "--out", str(tmp / "audit-head.json")), 0),
        Run(("audit", "head"), ("audit", "head", "--out", str(blocked / "audit-head.json")), 2),
        Run(("rekey",), ("rekey",), 2),   # no new key given
        Run(("review", "export"), ("review", "export", "--out", str(tmp / "review.csv")), 0),
        Run(("review", "export"), ("review", "export", "--out", str(blocked / "review.csv")), 2),
        Run(("model", "threshold"), ("model", "threshold"), 2),   # too few decisions to suggest one
        Run(("encode",), ("encode", "--source", "health", str(data / "health.csv"), "--out",
                          str(tmp / "health-nokey.enc.parquet")), 2),   # no key
        Run(("encode",), ("encode", "--source", "health", str(data / "health.csv"), "--out",
                          str(tmp / "health.enc.parquet")), 0, (("LINKAGE_BLOOM_KEY", BLOOM_KEY),)),
        Run(("init",), ("init", "--encrypt"), 2, workspace="fresh"),   # no key given
    ]


def _night_runs(f: dict[str, Path], tmp: Path) -> list[Run]:
    district_file = sorted((tmp / "districts").glob("*.csv"))[0]   # written by the reading runs
    return [
        Run(("run",), ("run", "--as-of", AS_OF), (0, 3)),
        Run(("runs",), ("runs",), 0),
        Run(("run",), ("run", "--config", str(f["bad_config"])), 2),
        Run(("review", "import"), ("review", "import", str(tmp / "review.csv")), 0),   # no decision filled in
        Run(("review", "import"), ("review", "import", str(tmp / "no-such-review.csv")), 2),
        Run(("feedback", "import"), ("feedback", "import", str(district_file)), 0),   # no answer filled in
        Run(("feedback", "import"), ("feedback", "import", str(tmp / "no-such-answers.csv")), 2),
        # Last: rekey encrypts the plaintext workspace; then only its key opens it.
        Run(("rekey",), ("rekey",), 0, (("LINKAGE_NEW_KEY", NEW_KEY),)),
        Run(("status",), ("status",), 2),
        Run(("status",), ("status",), 0, (("LINKAGE_KEY", NEW_KEY),)),
    ]


class Session:
    """Runs the CLI as a subprocess (no terminal, no LINKAGE_* from the caller's environment)."""

    def __init__(self, workspace: Path, config_dir: Path, cwd: Path):
        self.workspace, self.config_dir, self.cwd = workspace, config_dir, cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LINKAGE_")}
        self.env["LINKAGE_THREADS"] = "1"   # two commands at a time on a small sample
        self.outcomes: list[Outcome] = []

    def __call__(self, run: Run) -> Outcome:
        workspace = self.workspace if run.workspace is None else self.workspace.parent / run.workspace
        clock = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "linkage", "--workspace", str(workspace), "--config-dir", str(self.config_dir),
             *run.args],
            stdin=subprocess.DEVNULL, capture_output=True, cwd=self.cwd, env={**self.env, **dict(run.env)},
            timeout=300)
        outcome = Outcome(run, proc.returncode, proc.stdout.decode("utf-8", "replace")
                          + proc.stderr.decode("utf-8", "replace"), time.perf_counter() - clock)
        self.outcomes.append(outcome)
        return outcome

    def all(self, runs: list[Run], parallel: int = 1) -> None:
        if parallel == 1:
            for run in runs:
                self(run)
            return
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(self, runs))


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Session, set[str], Path]:
    tmp = tmp_path_factory.mktemp("noleak")
    config_dir = tmp / "configs"
    shutil.copytree(CONFIGS, config_dir)
    (config_dir / "model.toml").write_text(MODEL_TOML, encoding="utf-8")
    session = Session(tmp / "ws", config_dir, tmp)
    data = tmp / "data"
    session(Run(("sample",), ("sample", "--people", str(PEOPLE), "--seed", str(SEED), "--out", str(data)), 0))
    values, public_text = known_values(data)
    files = _prepare_inputs(data, tmp)
    session.all(_runs_before_match(data, files, tmp))
    values |= stored_values(session.workspace / "linkage.duckdb", public_text)
    clusters = pl.read_csv(tmp / "clusters.csv", infer_schema=False)
    sizes = clusters.group_by("person_id").len().filter(pl.col("len") >= 3).sort("person_id")
    person = sizes["person_id"][0]
    keys = clusters.filter(pl.col("person_id") == person).sort("source", "record_id")
    pair = tuple(f"{s}:{r}" for s, r in keys.select("source", "record_id").head(2).iter_rows())
    flagged = pl.read_csv(tmp / "flags.csv", infer_schema=False)["person_id"][0]
    session.all(_reading_runs(data, files, tmp, pair, person, flagged), parallel=2)
    inbox = session.workspace / "inbox"
    for source in ("immigration", "health"):
        (inbox / source).mkdir(parents=True, exist_ok=True)
    shutil.copy(files["no_header_csv"], inbox / "immigration" / "night_no_header.csv")   # rejected, reason file
    shutil.copy(files["bad_values"], inbox / "health" / "night_bad_values.csv")
    session.all(_night_runs(files, tmp))
    return session, values, tmp


def test_the_sample_gives_many_known_values(swept):
    _, values, _ = swept
    assert len(values) > 1000
    assert any(re.search(r"[\u4e00-\u9fff]", v) for v in values) and any(re.fullmatch(r"[A-Z ]+", v) for v in values)
    assert any(re.fullmatch(r"\d{17}[\dX]", v) for v in values)   # resident IDs
    assert any(re.fullmatch(r"19\d\d-\d\d-\d\d", v) for v in values)


def test_every_run_ends_as_expected_and_without_traceback(swept):
    session, _, _ = swept
    wrong = [f"linkage {' '.join(o.run.args)} -> exit {o.code} (expected {o.run.expect}): {o.text[-300:]}"
             for o in session.outcomes
             if o.code not in (o.run.expect if isinstance(o.run.expect, tuple) else (o.run.expect,))]
    assert wrong == [], "\n".join(wrong)
    tracebacks = [" ".join(o.run.args) for o in session.outcomes if "Traceback" in o.text or "panicked" in o.text]
    assert tracebacks == []


def test_every_command_is_covered(swept):
    session, _, _ = swept
    covered = {o.run.path for o in session.outcomes}
    app_paths = app_command_paths()
    missing = sorted(app_paths - covered - set(NOT_COVERED))
    assert missing == [], ("commands with no run in tests/test_no_personal_data.py (add runs, failing ones "
                           f"too, or an entry with a reason in NOT_COVERED): {[' '.join(p) for p in missing]}")
    assert sorted(covered - app_paths) == [], "runs of commands the app does not have"
    failing = {o.run.path for o in session.outcomes if o.code == 2}
    never_failed = sorted(app_paths - failing - set(NOT_COVERED))
    assert never_failed == [], f"commands run here only when they succeed (add a failing run): {never_failed}"


def test_no_known_value_in_any_output(swept):
    session, values, _ = swept
    leaks = [f"linkage {' '.join(o.run.args)}: {len(hits)} values, e.g. {hits[:3]}"
             for o in session.outcomes if (hits := found(o.text, values))]
    assert leaks == [], "\n".join(leaks)


def _log_files(workspace: Path) -> list[Path]:
    """Logs and error text the workspace holds: logs/, reason files, any *.log / *.txt / *.out /
    *.err, except the exports themselves (inbox, archive and rejected copies, exports/)."""
    data_folders = {"inbox", "archive", "exports", "snapshot", "tmp"}
    files = [p for p in (workspace / "logs").rglob("*") if p.is_file()]
    for p in workspace.rglob("*"):
        if not p.is_file() or p in files:
            continue
        top = p.relative_to(workspace).parts[0]
        if p.name.endswith(".reason.txt") or (top not in data_folders | {"rejected"}
                                              and p.suffix in (".log", ".txt", ".out", ".err", ".json")):
            files.append(p)
    return files


def test_no_known_value_in_logs_or_reason_files(swept):
    session, values, _ = swept
    files = _log_files(session.workspace)
    names = {p.name for p in files}
    assert "linkage.log" in names and any(n.endswith(".reason.txt") for n in names), names
    leaks = [f"{p.relative_to(session.workspace)}: {len(hits)} values, e.g. {hits[:3]}"
             for p in files if (hits := found(p.read_text(encoding="utf-8", errors="replace"), values))]
    assert leaks == [], "\n".join(leaks)


def test_the_search_finds_values_where_they_are(swept):
    """The search can fail: the header-less file's first row holds known values, which an error
    quoting the row would have shown."""
    _, values, tmp = swept
    first_row = (tmp / "immigration_no_header.csv").read_text(encoding="utf-8").splitlines()[0]
    assert len(found(first_row, values)) >= 2
    assert found(f"Error: columns present: {first_row}", values)

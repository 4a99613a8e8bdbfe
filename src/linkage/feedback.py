"""Officers' answers to the flags of their district files (`linkage feedback import FILE...`).

Owns the `feedback` table (one row per answered row of a returned file; the newest answer to a
flag wins) and the officers' rows of `link_decisions` (origin 'feedback'): reading returned CSV
(UTF-8 with or without BOM, GB18030, UTF-16) and XLSX files in either language, any column order,
validating each row (a bad row is reported by file, row and column, never by its value; the good
rows are stored), the evidence fingerprint of a flag (an answered flag is sent again only when it
changes) and the answers per district for `linkage status` and the report.

A "false alarm, not the same person" answer becomes cannot-link pairs (decision 'not_match'):
- a flag resting on two or more records (GAP_EXCEEDED, EARLY_RELEASE: the two stages compared;
  IDENTITY_CONFLICT: the records that disagree): each pair of them, and for IDENTITY_CONFLICT only
  the pairs whose values of the disagreeing field differ;
- a flag resting on one record (MISSING_STAGE, OUT_OF_ORDER, DISTRICT_MISMATCH): that record and
  each other record of the person's timeline (the officer says it is not this traveler's).
A newer answer to the flag that is not "not the same person" withdraws them.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json

from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import polars as pl

from .errors import InputError
from .i18n import LANGUAGES, OUTCOMES, Language, load_language, outcome_of
from .workspace import Workspace

# Answers after which a flag is not sent again while its evidence stays as it was.
SETTLED = ("confirmed", "not_same_person", "record_elsewhere", "resolved")
ANSWER_FIELDS = ("flag_key", "outcome", "resolved_on", "comment", "answered_by")
IDENTITY_FIELDS = ("id_number", "passport", "dob", "permit_no")   # the order an IDENTITY_CONFLICT names them in
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


# ---- evidence ------------------------------------------------------------------------------------

def evidence_records(evidence: str | None) -> list[str]:
    """The records ('source:record_id') a flag rests on, sorted, from its stored evidence."""
    if not evidence:
        return []
    try:
        items = json.loads(evidence)
    except ValueError:
        return []
    out = set()
    for item in items if isinstance(items, list) else [items]:
        record = item.get("record") if isinstance(item, dict) else item
        if isinstance(record, str) and record:
            out.add(record)
    return sorted(out)


def fingerprints(ws: Workspace, flags: list[tuple[str, str | None, datetime | None]]) -> dict[str, str]:
    """flag_key -> sha256 of what the flag rests on: its evidence records, each one's events (stage
    and time, as ingested now) and its due time. A re-ingested record with another time, another
    record, or another deadline gives another fingerprint: the evidence changed."""
    records = sorted({r for _, evidence, _ in flags for r in evidence_records(evidence)})
    events: dict[str, list[list[str]]] = {}
    if records:
        ws.register("fingerprint_records", pl.DataFrame({"record": records}).to_arrow())
        for record, stage, time in ws.rows("evidence events", """
                SELECT e.source || ':' || e.record_id AS record, e.stage, strftime(e.time, '%Y-%m-%dT%H:%M:%S')
                FROM events e JOIN fingerprint_records f ON f.record = e.source || ':' || e.record_id
                ORDER BY 1, 2, 3"""):
            events.setdefault(record, []).append([stage, time])
        ws.unregister("fingerprint_records")
    out = {}
    for key, evidence, due in flags:
        parts = {"evidence": [[r, events.get(r, [])] for r in evidence_records(evidence)],
                 "due": due.isoformat() if due else None}
        out[key] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
    return out


# ---- answers stored --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    flag_key: str
    outcome: str
    resolved_on: date | None
    comment: str | None
    answered_by: str | None
    imported_at: datetime
    evidence_sha256: str | None
    district: str | None


LATEST_ANSWERS_SQL = """
    SELECT flag_key, outcome, resolved_on, comment, answered_by, imported_at, evidence_sha256, district FROM feedback
    QUALIFY row_number() OVER (PARTITION BY flag_key ORDER BY imported_at DESC, file_name DESC, row_no DESC) = 1"""


def latest_answers(ws: Workspace) -> dict[str, Answer]:
    """The newest answer to each flag (by import time, then file and row)."""
    if ws.schema_version() < 13:
        return {}
    return {row[0]: Answer(*row) for row in ws.rows("latest answers", LATEST_ANSWERS_SQL + " ORDER BY flag_key")}


def not_sent_again(answer: Answer | None, fingerprint: str) -> bool:
    """An answered flag that is settled (confirmed, false alarm, resolved) on the same evidence."""
    return answer is not None and answer.outcome in SETTLED and answer.evidence_sha256 == fingerprint


# ---- reading returned files ----------------------------------------------------------------------

@dataclass
class Problem:
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class FileResult:
    file: str
    sha256: str
    rows: int = 0            # data rows read
    answers: int = 0         # stored
    no_answer: int = 0       # rows without an outcome: not an answer
    bad: int = 0
    skipped: str | None = None
    cannot_links: int = 0
    no_records: int = 0      # "not the same person" answers to flags resting on no record: nothing to separate


@dataclass
class ImportResult:
    files: list[FileResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def answers(self) -> int:
        return sum(f.answers for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {"answers": self.answers, "files": [vars(f) for f in self.files],
                "problems": [str(p) for p in self.problems]}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value.time() != datetime.min.time() else f"{value:%Y-%m-%d}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    return str(value).strip()


def _decode(data: bytes, name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: neither UTF-8 nor GB18030 text; save it as CSV (UTF-8) or XLSX")


def read_table(path: Path) -> list[list[str]]:
    """Rows of a returned file as text (the header first): CSV in any of the encodings Excel and
    LibreOffice save, or the first sheet of an XLSX."""
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        from openpyxl import load_workbook
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:   # a damaged workbook: openpyxl raises many kinds
            raise InputError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__})") from None
        sheet = book.worksheets[0]
        rows = [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        book.close()
        return rows
    text = _decode(data, path.name)
    first = text.split("\n", 1)[0]
    delimiter = max(",\t;", key=first.count)
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]


def _normal(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").split()).casefold()


def _columns(header: list[str], languages: list[Language]) -> dict[str, int]:
    """answer field -> column index, from headers in any language (or the field's own name)."""
    names = {}
    for language in languages:
        for name in ANSWER_FIELDS:
            names[_normal(language.header(name))] = name
    for name in ANSWER_FIELDS:
        names[_normal(name)] = name
    found: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = names.get(_normal(cell))
        if name is not None and name not in found:
            found[name] = i
    return found


def parse_date(text: str) -> date | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


@dataclass
class _Row:
    row_no: int
    flag_key: str
    outcome: str
    resolved_on: date | None
    comment: str | None
    answered_by: str | None


def _validate(path: Path, rows: list[list[str]], languages: list[Language], known: dict[str, tuple],
              result: FileResult, problems: list[Problem]) -> list[_Row]:
    if not rows:
        problems.append(Problem(path.name, None, None, "the file is empty"))
        return []
    header_at = next((i for i, row in enumerate(rows) if any(row)), 0)
    columns = _columns(rows[header_at], languages)
    header = {_normal(cell) for cell in rows[header_at]}
    file_language = max(languages, key=lambda lang: sum(_normal(lang.header(n)) in header for n in ANSWER_FIELDS))
    languages = [file_language, *(lang for lang in languages if lang is not file_language)]
    heading = {name: file_language.header(name) for name in ANSWER_FIELDS}
    for needed in ("flag_key", "outcome"):
        if needed not in columns:
            problems.append(Problem(path.name, header_at + 1, None,
                                    f"no column {heading[needed]} ({needed}); a returned district file keeps its "
                                    "header row"))
            return []
    labels = " | ".join(languages[0].outcome_labels().values())
    good = []
    for offset, row in enumerate(rows[header_at + 1:], start=header_at + 2):
        if not any(row):
            continue
        result.rows += 1

        def cell(name: str) -> str:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        outcome_text = cell("outcome")
        if not outcome_text:
            result.no_answer += 1
            continue
        errors = []
        key = cell("flag_key")
        if not key:
            errors.append(("flag_key", "empty; the row's flag key is needed to match the answer to its flag"))
        elif key not in known:
            errors.append(("flag_key", "no such flag in this workspace (the flag key was changed, or the file "
                                       "comes from another workspace)"))
        outcome = outcome_of(outcome_text, languages)
        if outcome is None:
            errors.append(("outcome", f"not one of the outcomes: {labels}"))
        resolved_text = cell("resolved_on")
        resolved = parse_date(resolved_text) if resolved_text else None
        if resolved_text and resolved is None:
            errors.append(("resolved_on", "not a date; write it as 2026-03-31"))
        elif outcome == "resolved" and resolved is None:
            errors.append(("resolved_on", "empty; an answer 'resolved on a date' needs the date"))
        if errors:
            result.bad += 1
            for name, message in errors:
                problems.append(Problem(path.name, offset, heading[name], message))
            continue
        good.append(_Row(offset, key, outcome, resolved, cell("comment") or None, cell("answered_by") or None))
    return good


# ---- import ----------------------------------------------------------------------------------------

def _known_flags(ws: Workspace) -> dict[str, tuple]:
    """flag_key -> (person_id, code, stage, district, evidence, due, run_id) of its latest run."""
    rows = ws.rows("flags answered", """
        SELECT flag_key, person_id, code, stage, district, evidence, due, run_id FROM flags
        QUALIFY row_number() OVER (PARTITION BY flag_key ORDER BY run_id DESC) = 1""")
    return {row[0]: tuple(row[1:]) for row in rows}


def import_files(ws: Workspace, files: list[Path], config_dir: Path | None = None, user: str | None = None,
                 now: datetime | None = None) -> ImportResult:
    """Store the answers of returned district files; bad rows and files are reported in the result
    (the good rows of every file are stored). A file imported before (same sha256) is skipped."""
    languages = [load_language(code, config_dir) for code in LANGUAGES]
    user = user or _os_user()
    now = now or datetime.now()   # to the microsecond: an incremental match compares it with its own end
    known = _known_flags(ws)
    result = ImportResult()
    for path in files:
        path = Path(path)
        if not path.is_file():
            result.problems.append(Problem(str(path), None, None, "file not found"))
            continue
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        file_result = FileResult(path.name, sha)
        result.files.append(file_result)
        earlier = ws.scalar("file imported before", "SELECT min(imported_at) FROM feedback WHERE file_sha256 = ?", [sha])
        if earlier is not None:
            file_result.skipped = f"imported before ({earlier:%Y-%m-%d %H:%M}, same sha256)"
            continue
        try:
            rows = read_table(path)
        except InputError as exc:
            result.problems.append(Problem(path.name, None, None, str(exc).removeprefix(f"{path.name}: ")))
            continue
        good = _validate(path, rows, languages, known, file_result, result.problems)
        if good:
            with ws.transaction():
                file_result.cannot_links, file_result.no_records = _store(ws, path.name, sha, good, known, user, now)
            file_result.answers = len(good)
    return result


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _store(ws: Workspace, file_name: str, sha: str, rows: list[_Row], known: dict[str, tuple], user: str,
           now: datetime) -> tuple[int, int]:
    """Store the rows; (cannot-link pairs written, "not the same person" answers with no pair)."""
    prints = fingerprints(ws, [(r.flag_key, known[r.flag_key][4], known[r.flag_key][5]) for r in rows])
    ws.register("answers_input", pl.DataFrame({
        "flag_key": [r.flag_key for r in rows],
        "person_id": [known[r.flag_key][0] for r in rows],
        "code": [known[r.flag_key][1] for r in rows],
        "stage": [known[r.flag_key][2] for r in rows],
        "district": [known[r.flag_key][3] for r in rows],
        "outcome": [r.outcome for r in rows],
        "resolved_on": [r.resolved_on for r in rows],
        "comment": [r.comment for r in rows],
        "answered_by": [r.answered_by or user for r in rows],
        "row_no": [r.row_no for r in rows],
        "evidence_sha256": [prints[r.flag_key] for r in rows],
    }, schema_overrides={"resolved_on": pl.Date, "stage": pl.Utf8, "district": pl.Utf8, "comment": pl.Utf8}).to_arrow())
    ws.run("store answers", """
        INSERT INTO feedback (flag_key, person_id, code, stage, district, outcome, resolved_on, comment, answered_by,
                              file_name, file_sha256, row_no, imported_at, evidence_sha256)
        SELECT flag_key, person_id, code, stage, district, outcome, resolved_on, comment, answered_by, ?, ?, row_no, ?,
               evidence_sha256 FROM answers_input""", [file_name, sha, now])
    ws.unregister("answers_input")
    latest: dict[str, _Row] = {}
    for row in rows:          # a later row of the file answers the same flag anew
        latest[row.flag_key] = row
    added = without = 0
    for key, row in sorted(latest.items()):
        ws.run("withdraw earlier cannot-links", "DELETE FROM link_decisions WHERE origin = 'feedback' AND note = ?",
               [key])
        if row.outcome != "not_same_person":
            continue
        pairs = cannot_link_pairs(ws, key, known[key])
        without += not pairs
        for (sl, rl), (sr, rr) in pairs:
            ws.run("store cannot-link", """
                INSERT INTO link_decisions (source_l, record_id_l, source_r, record_id_r, decision, origin, decided_by,
                                            note, file_name, row_no, imported_at)
                VALUES (?, ?, ?, ?, 'not_match', 'feedback', ?, ?, ?, ?, ?)""",
                   [sl, rl, sr, rr, row.answered_by or user, key, file_name, row.row_no, now])
        added += len(pairs)
    return added, without


def _split(record: str) -> tuple[str, str]:
    source, _, record_id = record.partition(":")
    return source, record_id


def cannot_link_pairs(ws: Workspace, flag_key: str, flag: tuple) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The record pairs a "not the same person" answer to this flag separates (see the module's doc)."""
    person_id, code, _, _, evidence, _, run_id = flag
    records = evidence_records(evidence)
    pairs: set[tuple[str, str]] = set()
    if len(records) >= 2:
        groups = identity_groups(ws, records) if code == "IDENTITY_CONFLICT" else None
        if groups:
            for a, b in combinations(sorted(groups), 2):
                pairs.update((x, y) for x in groups[a] for y in groups[b])
        else:
            pairs.update(combinations(records, 2))
    elif records:
        others = [r for (r,) in ws.rows("timeline records", """
            SELECT DISTINCT source || ':' || record_id FROM timelines
            WHERE run_id = ? AND person_id = ? AND record_id IS NOT NULL ORDER BY 1""", [run_id, person_id])]
        if not others:
            others = [r for (r,) in ws.rows("person records", """
                SELECT source || ':' || record_id FROM linked_persons WHERE person_id = ? ORDER BY 1""", [person_id])]
        pairs.update((records[0], o) for o in others if o != records[0])
    ordered = sorted(tuple(sorted(p)) for p in pairs if p[0] != p[1])
    return [(_split(a), _split(b)) for a, b in ordered]


def identity_groups(ws: Workspace, records: list[str]) -> dict[str, list[str]]:
    """The evidence records grouped by their value of the first identifier they disagree on
    (resident ID, passport, birth date, permit); empty when they disagree on none."""
    values = record_identifiers(ws, records)
    for name in IDENTITY_FIELDS:
        groups: dict[str, list[str]] = {}
        for record in records:
            value = values.get(record, {}).get(name)
            if value:
                groups.setdefault(value, []).append(record)
        if len(groups) >= 2:
            return groups
    return {}


def record_identifiers(ws: Workspace, records: list[str]) -> dict[str, dict[str, str | None]]:
    """record -> its resident ID, passport, birth date (the ID's when none is given) and permit."""
    if not records:
        return {}
    ws.register("identifier_records", pl.DataFrame({"record": records}).to_arrow())
    rows = ws.rows("record identifiers", """
        SELECT r.source || ':' || r.record_id, r.id_number, r.passport, strftime(coalesce(r.dob, r.id_dob), '%Y-%m-%d'),
               r.permit_no
        FROM records r JOIN identifier_records i ON i.record = r.source || ':' || r.record_id""")
    ws.unregister("identifier_records")
    return {record: dict(zip(IDENTITY_FIELDS, rest)) for record, *rest in rows}


# ---- answers per district ------------------------------------------------------------------------

def answer_summary(ws: Workspace, overdue_days: int) -> dict[str, Any] | None:
    """Per district: the newest answers by outcome, the current flags not answered and those of
    them first seen more than `overdue_days` before the current run's as-of. None before any chain run."""
    run = ws.rows("current chain run", "SELECT run_id, as_of FROM chain_runs WHERE finished_at IS NOT NULL "
                                       "ORDER BY run_id DESC LIMIT 1")
    if not run or ws.schema_version() < 13:
        return None
    run_id, as_of = run[0]
    districts: dict[str, dict[str, Any]] = {}

    def get(name: str | None) -> dict[str, Any]:
        return districts.setdefault(name or "unassigned", {"answers": {}, "unanswered": 0, "overdue": 0})

    for district, outcome, n in ws.rows("answers by district", f"""
            SELECT district, outcome, count(*) FROM ({LATEST_ANSWERS_SQL}) GROUP BY ALL ORDER BY 1, 2"""):
        get(district)["answers"][outcome] = n
    for district, unanswered, overdue in ws.rows("unanswered flags", """
            SELECT f.district, count(*),
                   count(*) FILTER (WHERE first.as_of < ?::TIMESTAMP - to_days(CAST(? AS INTEGER)))
            FROM flags f LEFT JOIN chain_runs first ON first.run_id = f.first_seen_run
            WHERE f.run_id = ? AND f.status IN ('new', 'open')
              AND f.flag_key NOT IN (SELECT flag_key FROM feedback)
            GROUP BY ALL ORDER BY 1""", [as_of, overdue_days, run_id]):
        get(district)["unanswered"], get(district)["overdue"] = unanswered, overdue
    return {"run_id": run_id, "as_of": as_of.isoformat(), "unanswered_after_days": overdue_days,
            "outcomes": list(OUTCOMES), "districts": dict(sorted(districts.items()))}



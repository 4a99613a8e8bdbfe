"""Exports: files written atomically (a temp file in the same folder, then renamed).

Owns `export clusters`, `export flags` (every current flag, raw values, for machines) and
`export discrepancies` (one CSV or XLSX per responsible district for the officers who act on
the flags: a profile from configs/export.toml picks the columns, masks each (privacy.py: keep,
last N characters, keyed pseudonym, empty or dropped) and may limit the export to one district;
every reason, word, country, phone and time in the profile's language (i18n.py), built from the
flag's parts; the officer's answer columns, with the previous answer; flags answered as settled
on unchanged evidence left out (feedback.py); CSV in UTF-8 with BOM, formula-injection safe;
XLSX all text, printable; all files renamed into place together and a manifest with row counts
and sha256 last; the same workspace gives the same bytes).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from . import audit
from .config import EXPORT_PERSON_COLUMNS, ExportConfig, ExportProfile, load_chain_config, parse_duration
from .errors import InputError
from .feedback import IDENTITY_FIELDS, evidence_records, fingerprints, latest_answers, not_sent_again, \
    record_identifiers
from .i18n import ANSWER_COLUMNS, Language, load_language
from .privacy import key_id, load_pseudonym_key, render_cell
from .sql import quote_literal
from .workspace import Workspace, process_alive


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temp path next to `target`; renamed onto it only when the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name")
    if not target.parent.exists():
        raise InputError(f"{target.parent}: folder not found")
    _remove_orphan_temp(target.parent)
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:   # an unwritable folder is the user's to fix
        raise InputError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    os.close(handle)
    try:
        yield Path(temp)
        os.replace(temp, target)
        audit.file_written(target)   # in the audit entry of the running command, with its sha256
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def check_writable(target: Path) -> None:
    """Raise InputError now (naming the path) when `atomic_path(target)` could not write there."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name")
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except FileNotFoundError:
        raise InputError(f"{target.parent}: folder not found") from None
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    os.close(handle)
    os.unlink(temp)


# `atomic_path`'s temp files: ".NAME.PID.XXXXXXXX.tmp" (mkstemp's eight random characters).
TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp$")


def _remove_orphan_temp(folder: Path) -> None:
    """Temp files in `folder` left by a killed process (their names carry its id): they hold
    personal data, and nothing else would ever remove them."""
    for child in folder.glob(".*.tmp"):
        found = TEMP_NAME.match(child.name)
        if found and not process_alive(int(found.group(1))):
            child.unlink(missing_ok=True)


def write_clusters(ws: Workspace, target: Path) -> int:
    """source,record_id,person_id for every ingested record, once."""
    missing = ws.scalar("records without person", "SELECT count(*) FROM records r ANTI JOIN persons p USING (source, record_id)")
    total = ws.scalar("count records", "SELECT count(*) FROM records")
    if not total:
        raise InputError("the workspace holds no records; ingest exports first")
    if missing:
        raise InputError(f"{missing:,} of {total:,} records have no person yet (ingested after the last match); "
                         "run 'linkage match' first")
    with atomic_path(target) as temp:
        ws.run("export clusters", f"""
            COPY (SELECT p.source, p.record_id, p.person_id FROM linked_persons p JOIN records r USING (source, record_id)
                  ORDER BY p.source, p.record_id)
            TO '{str(temp).replace("'", "''")}' (HEADER, DELIMITER ',')""")
    return int(total)


# ---- the current chain run -----------------------------------------------------------------

@dataclass(frozen=True)
class ChainRun:
    run_id: int
    as_of: datetime
    finished_at: datetime | None = None


def current_chain_run(ws: Workspace) -> ChainRun:
    """The latest finished chain run; an InputError when there is none yet."""
    row = None
    if ws.schema_version() >= 3:
        row = ws.run("current chain run", """
            SELECT run_id, as_of, finished_at FROM chain_runs WHERE finished_at IS NOT NULL
            ORDER BY run_id DESC LIMIT 1""").fetchone()
    if row is None:
        raise InputError("no chain run yet; run 'linkage chain' first")
    return ChainRun(int(row[0]), row[1], row[2])


# ---- SQL -----------------------------------------------------------------------------------

SEVERITY_ORDER = ("critical", "high", "medium", "low")


def _statuses_sql(include_resolved: bool) -> str:
    statuses = ("new", "open", "resolved") if include_resolved else ("new", "open")
    return "(" + ", ".join(quote_literal(s) for s in statuses) + ")"


def current_flags_sql(run_id: int) -> str:
    """New and open flags of a run, in the order officers work them: new before open, then
    severity, then due time, then person."""
    severity = " ".join(f"WHEN {quote_literal(s)} THEN {i}" for i, s in enumerate(SEVERITY_ORDER))
    return f"""
        SELECT f.flag_key, f.person_id, f.code, f.stage, f.status, f.severity, f.district, f.confidence, f.review,
               f.reason, f.evidence, f.due, f.first_seen_run, r.as_of
        FROM flags f LEFT JOIN chain_runs r ON r.run_id = f.first_seen_run
        WHERE f.run_id = {int(run_id)} AND f.status IN {_statuses_sql(False)}
        ORDER BY CASE f.status WHEN 'new' THEN 0 ELSE 1 END, CASE f.severity {severity} ELSE {len(SEVERITY_ORDER)} END,
                 f.due NULLS LAST, f.person_id, f.code, f.stage NULLS FIRST, f.flag_key"""


PERSON_SQL_VALUES = {
    # field: (value expression, preference: lower wins before frequency)
    "name": ("coalesce(local_name, full_name)", "CASE WHEN local_name IS NOT NULL THEN 0 ELSE 1 END"),
    "dob": ("strftime(dob, '%Y-%m-%d')", "0"),
    "sex": ("sex", "0"),
    "nationality": ("nationality", "0"),
    "phone": ("phone", "0"),
    "passport": ("passport", "0"),
    "id_number": ("id_number", "0"),
    "permit_no": ("permit_no", "0"),
}


def person_values_sql(run_id: int, fields: list[str]) -> str:
    """One value per flagged person and field: the preferred kind (hanzi name over the written
    name), then the most frequent, ties broken by the first (source, record_id) holding it."""
    candidates = "\n        UNION ALL ".join(
        f"SELECT person_id, {quote_literal(field)} AS field, CAST({PERSON_SQL_VALUES[field][0]} AS VARCHAR) AS value, "
        f"{PERSON_SQL_VALUES[field][1]} AS pref, source, record_id FROM members"
        for field in fields)
    return f"""
        WITH members AS (
            SELECT p.person_id, r.* FROM linked_persons p JOIN records r USING (source, record_id)
            WHERE p.person_id IN (SELECT person_id FROM flags WHERE run_id = {int(run_id)}
                                  AND status IN {_statuses_sql(False)})),
        candidates AS (
            {candidates}),
        counted AS (
            SELECT person_id, field, value, min(pref) AS pref, count(*) AS n, min([source, record_id]) AS first_record
            FROM candidates WHERE value IS NOT NULL AND trim(value) <> '' GROUP BY person_id, field, value)
        SELECT person_id, field, value FROM counted
        QUALIFY row_number() OVER (PARTITION BY person_id, field ORDER BY pref, n DESC, first_record, value) = 1"""


def flags_copy_sql(run_id: int, include_resolved: bool, target: Path) -> str:
    """COPY of `export flags`: raw values, one row per flag, plain UTF-8."""
    return f"""
        COPY (SELECT person_id, code, stage, status, severity, district, confidence, reason FROM flags
              WHERE run_id = {int(run_id)} AND status IN {_statuses_sql(include_resolved)}
              ORDER BY person_id, code, stage NULLS FIRST, status)
        TO {quote_literal(str(target))} (FORMAT CSV, HEADER, DELIMITER ',')"""


# ---- export flags --------------------------------------------------------------------------

@dataclass(frozen=True)
class FlagsExport:
    run_id: int
    as_of: datetime
    rows: int


def write_flags(ws: Workspace, target: Path, include_resolved: bool = False) -> FlagsExport:
    """person_id,code,stage,status,severity,district,confidence,reason for every current flag (machine-readable)."""
    run = current_chain_run(ws)
    rows = ws.scalar("count flags", f"SELECT count(*) FROM flags WHERE run_id = ? AND status IN "
                                    f"{_statuses_sql(include_resolved)}", [run.run_id])
    with atomic_path(target) as temp:
        ws.run("export flags", flags_copy_sql(run.run_id, include_resolved, temp))
    return FlagsExport(run.run_id, run.as_of, int(rows))


# ---- rendering cells (pure) ----------------------------------------------------------------

FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formula(text: str) -> str:
    """A cell a spreadsheet would read as a formula gets a leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_LEAD) else text


UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class FlagRow:
    flag_key: str
    person_id: str
    code: str
    stage: str | None
    status: str
    severity: str
    district: str | None
    confidence: float | None
    review: bool
    reason: str
    evidence: str | None
    due: datetime | None
    first_seen_run: int
    first_seen_as_of: datetime | None


# ---- the officer's cells -------------------------------------------------------------------

TIME_FORMAT = "%Y-%m-%d %H:%M"
JOIN_REVIEW = re.compile(r"\(person (\S+) may be another part of this traveler")
REVIEW_BELOW = 0.95          # chain.toml's default, when the export runs without it


@dataclass(frozen=True)
class Stage:
    """A stage of the person's current timeline: its event (time, district, record) if it happened."""

    name: str
    order: int
    time: datetime | None
    district: str | None
    record: str | None


@dataclass
class OfficerContext:
    """What the officer's cells are built from besides the flag: the language, the current run's
    timelines, the chain's stages and gaps, the identifiers behind identity conflicts and the
    officers' earlier answers."""

    language: Language
    timelines: dict[str, dict[str, Stage]] = field(default_factory=dict)
    after: dict[str, str | None] = field(default_factory=dict)
    gaps: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    review_below: float = REVIEW_BELOW
    identifiers: dict[str, dict[str, str | None]] = field(default_factory=dict)
    conflicted: set[str] = field(default_factory=set)          # persons with an IDENTITY_CONFLICT this run
    answers: dict[str, Any] = field(default_factory=dict)      # flag_key -> feedback.Answer
    fingerprints: dict[str, str] = field(default_factory=dict)


def _record_text(record: str, language: Language) -> str:
    source, _, record_id = record.partition(":")
    return f"{language.source(source)} {record_id}" if record_id else record


def _records_text(records: list[str], language: Language) -> str:
    return language.separator.join(_record_text(r, language) for r in sorted(records))


def _identity_reason(flag: FlagRow, ctx: OfficerContext, profile: ExportProfile, key: bytes | None) -> str:
    lang = ctx.language
    records = evidence_records(flag.evidence)
    shown = _records_text(records, lang)
    for name in IDENTITY_FIELDS:
        values: dict[str, int] = {}
        for record in records:
            value = ctx.identifiers.get(record, {}).get(name)
            if value:
                values[value] = values.get(value, 0) + 1
        if len(values) < 2:
            continue
        a, b = sorted(values, key=lambda v: (-values[v], v))[:2]
        mask = profile.mask_of(name)
        if mask.mode in ("hidden", "drop"):
            return lang.template("reason", "identity_conflict_withheld", field=lang.word("field", name), records=shown)
        a, b = (render_cell(v, mask, name, key) for v in sorted((a, b)))
        return lang.template("reason", "identity_conflict", field=lang.word("field", name), value_a=a, value_b=b,
                             records=shown)
    return lang.template("reason", "identity_conflict_link", records=shown)


def _timeline_reason(flag: FlagRow, ctx: OfficerContext) -> str | None:
    """The reason of a timeline flag from its stage, the stage it is measured from and their events;
    None when the current timelines do not hold them (the chain's own text is used then)."""
    lang = ctx.language
    stages = ctx.timelines.get(flag.person_id)
    if not stages or flag.stage not in stages:
        return None
    this = stages[flag.stage]
    after = stages.get(ctx.after.get(flag.stage) or "")
    word = lambda name: lang.word("stage", name)   # noqa: E731
    if flag.code == "MISSING_STAGE":
        if after is None or after.time is None:
            return lang.template("reason", "missing_stage_no_anchor", stage=word(flag.stage))
        text = lang.template("reason", "missing_stage", after_stage=word(after.name), anchor_time=lang.time(after.time),
                             anchor_record=_record_text(after.record or "", lang), stage=word(flag.stage))
        if flag.due is not None:
            text += lang.template("reason", "due", due=lang.time(flag.due))
        if any(s.time is not None and s.order > this.order for s in stages.values()):
            text += lang.template("reason", "later_stage")
        return text
    if this.time is None or this.record is None:
        return None
    record = _record_text(this.record, lang)
    if flag.code == "OUT_OF_ORDER":
        earlier = [s for s in stages.values() if s.order < this.order and s.time is not None and s.time > this.time]
        if not earlier:
            return None
        last = min(earlier, key=lambda s: (-s.time.timestamp(), s.order))
        return lang.template("reason", "out_of_order", stage=word(flag.stage), time=lang.time(this.time), record=record,
                             earlier_stage=word(last.name), earlier_time=lang.time(last.time))
    if flag.code == "DISTRICT_MISMATCH":
        return lang.template("reason", "district_mismatch", stage=word(flag.stage), time=lang.time(this.time),
                             record=record, district=this.district or "", destination=flag.district or "")
    if flag.code in ("GAP_EXCEEDED", "EARLY_RELEASE") and after is not None and after.time is not None:
        max_gap, min_gap = ctx.gaps.get(flag.stage, (None, None))
        if flag.code == "GAP_EXCEEDED" and max_gap is None and flag.due is not None:
            max_gap = (flag.due - after.time).total_seconds()
        allowed = max_gap if flag.code == "GAP_EXCEEDED" else min_gap
        if allowed is None:
            return None
        return lang.template("reason", flag.code.lower(), stage=word(flag.stage), time=lang.time(this.time),
                             record=record, after_stage=word(after.name), anchor_time=lang.time(after.time),
                             elapsed=lang.duration((this.time - after.time).total_seconds()),
                             allowed=lang.duration(allowed))
    return None


def officer_reason(flag: FlagRow, ctx: OfficerContext, profile: ExportProfile, key: bytes | None = None) -> str:
    """The flag's reason in the officer's language, from its parts; the chain's stored text only
    for a flag whose timeline the current run does not hold."""
    lang = ctx.language
    if flag.code == "IDENTITY_CONFLICT":
        text = _identity_reason(flag, ctx, profile, key)
    else:
        text = _timeline_reason(flag, ctx)
        if text is None:
            return flag.reason
    if flag.confidence is not None and flag.confidence < ctx.review_below:
        text += lang.template("reason", "low_confidence", confidence=f"{flag.confidence:.2f}")
    other = JOIN_REVIEW.search(flag.reason or "")
    if other and flag.code != "IDENTITY_CONFLICT":
        text += lang.template("reason", "join_review", other=other.group(1))
    return text


def review_cell(flag: FlagRow, ctx: OfficerContext) -> str:
    """需核实 / review: yes with why (a weak link, a possible other part of the traveler, an identity
    conflict of the person), else no."""
    lang = ctx.language
    other = JOIN_REVIEW.search(flag.reason or "")
    if flag.confidence is not None and flag.confidence < ctx.review_below:
        return lang.template("review", "low_confidence", confidence=f"{flag.confidence:.2f}")
    if other:
        return lang.template("review", "join_review", other=other.group(1))
    if flag.code == "IDENTITY_CONFLICT" or flag.person_id in ctx.conflicted:
        return lang.template("review", "identity")
    return lang.yes_no(bool(flag.review))


def render_evidence(evidence: str | None, language: Language) -> str:
    """The records a flag rests on, sorted: 'source record; ...' (an item given as an object adds
    its stage and time)."""
    if not evidence:
        return ""
    try:
        items = json.loads(evidence)
    except ValueError:
        return evidence
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            stage = language.word("stage", item.get("stage")) if item.get("stage") else ""
            when = item.get("time")
            with contextlib.suppress(TypeError, ValueError):
                when = language.time(datetime.fromisoformat(when)) if when else None
            record = _record_text(str(item.get("record")), language) if item.get("record") else ""
            parts.append((str(item.get("record") or ""), " ".join(str(v) for v in (record, stage, when) if v)))
        elif item is not None:
            parts.append((str(item), _record_text(str(item), language)))
    return language.separator.join(text for _, text in sorted(parts))


def previous_answer_text(answer: Any, language: Language) -> str:
    if answer is None:
        return ""
    parts = [language.word("outcome", answer.outcome)]
    if answer.resolved_on is not None:
        parts.append(language.date(answer.resolved_on))
    parts.append(language.time(answer.imported_at))
    if answer.comment:
        parts.append(answer.comment)
    return language.separator.join(parts)


def flag_cell(column: str, flag: FlagRow, ctx: OfficerContext, profile: ExportProfile,
              key: bytes | None = None) -> str:
    """The text of one flag or answer column in the profile's language (before masking)."""
    lang = ctx.language
    answer = ctx.answers.get(flag.flag_key)
    current = answer is not None and answer.evidence_sha256 == ctx.fingerprints.get(flag.flag_key)
    if column == "code_text":
        return lang.word("code", flag.code)
    if column in ("status", "severity", "stage"):
        return lang.word(column, getattr(flag, column))
    if column == "district":
        return flag.district or ""
    if column == "confidence":
        return "" if flag.confidence is None else f"{flag.confidence:.2f}"
    if column == "review":
        return review_cell(flag, ctx)
    if column == "reason":
        return officer_reason(flag, ctx, profile, key)
    if column == "due":
        return lang.time(flag.due)
    if column == "first_seen":
        return lang.time(flag.first_seen_as_of) if flag.first_seen_as_of else str(flag.first_seen_run)
    if column == "evidence":
        return render_evidence(flag.evidence, lang)
    if column == "flag_key":
        return flag.flag_key
    if column == "previous_answer":
        return previous_answer_text(answer, lang)
    if column == "outcome":                # the earlier answer stands while the evidence is the same
        return lang.word("outcome", answer.outcome) if current else ""
    if column == "resolved_on":
        return lang.date(answer.resolved_on) if current and answer.resolved_on else ""
    if column == "comment":
        return (answer.comment or "") if current else ""
    if column == "answered_by":
        return (answer.answered_by or "") if current else ""
    value = getattr(flag, column)
    return "" if value is None else str(value)


def person_cell(column: str, value: str, language: Language) -> str:
    """A person field as the officer reads it: sex and country in words, phone as dialled here."""
    if not value:
        return ""
    if column == "sex":
        return language.word("sex", value) if value in ("M", "F") else value
    if column == "nationality":
        return language.country(value)
    if column == "phone":
        return language.phone(value)
    return value


def file_columns(profile: ExportProfile) -> list[str]:
    """The profile's written columns, then the officer's answer columns."""
    return [*profile.written_columns, *ANSWER_COLUMNS]


def render_row(flag: FlagRow, person: dict[str, str], profile: ExportProfile, ctx: OfficerContext,
               key: bytes | None = None, neutralize: bool = True) -> list[str]:
    """One row of a district file: each cell in the profile's language, then the column's mask
    (keep, last N characters, pseudonym under `key`, empty), then (CSV) formula neutralization."""
    cells = []
    for column in file_columns(profile):
        if column in EXPORT_PERSON_COLUMNS:   # a pseudonym is of the standardized value, not of its display
            mask, value = profile.mask_of(column), person.get(column, "")
            text = render_cell(value if mask.mode == "pseudonym" else person_cell(column, value, ctx.language), mask,
                               column, key)
        elif column in ANSWER_COLUMNS:
            text = flag_cell(column, flag, ctx, profile, key)
        else:
            text = render_cell(flag_cell(column, flag, ctx, profile, key), profile.mask_of(column), column, key)
        cells.append(neutralize_formula(text) if neutralize else text)
    return cells


def header_row(profile: ExportProfile, language: Language) -> list[str]:
    return [language.header(column) for column in file_columns(profile)]


# ---- file names (pure) ---------------------------------------------------------------------

_UNSAFE_CHARS = re.compile(r'[\\/:*?"<>|]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
MAX_STEM_BYTES = 150


def safe_file_stem(district: str | None) -> str:
    """A file name stem for a district: Chinese kept; path separators, characters Windows refuses
    and control / invisible format characters removed; never hidden, empty or reserved."""
    if district is None:
        return UNASSIGNED
    text = unicodedata.normalize("NFC", district)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE_CHARS.sub("_", text).strip().strip(".").strip()
    while len(text.encode("utf-8")) > MAX_STEM_BYTES:
        text = text[:-1]
    if not text:
        return "district"
    return "_" + text if text.split(".")[0].upper() in _RESERVED else text


def district_file_names(districts: list[str | None], suffix: str = "csv") -> dict[str | None, str]:
    """district -> file name, unique even when two districts reduce to the same safe stem."""
    names: dict[str | None, str] = {}
    taken: set[str] = {"manifest.json"}
    for district in districts:
        stem = safe_file_stem(district)
        name, n = f"{stem}.{suffix}", 1
        while name.casefold() in taken:
            n += 1
            name = f"{stem}_{n}.{suffix}"
        taken.add(name.casefold())
        names[district] = name
    return names


# ---- export discrepancies ------------------------------------------------------------------

@dataclass(frozen=True)
class ChosenProfile:
    """The profile an export writes with, the one district it is limited to, and the pseudonym key."""

    name: str
    profile: ExportProfile
    district: str | None
    key: bytes | None = field(default=None, repr=False)


def choose_profile(config: ExportConfig, profile: str | None = None, district: str | None = None,
                   key: bytes | None = None) -> ChosenProfile:
    """The named profile (the default when None) with what it needs, checked before anything is
    written: a district profile writes its district only (another `district` is an error), and a
    profile with pseudonyms needs the key (`key`, else the environment's; none is an error)."""
    name, chosen = config.profile(profile)
    only = district.strip() if district is not None else None
    if chosen.district is not None:
        if only is not None and only != chosen.district:
            raise InputError(f"export profile '{name}' writes district {chosen.district} only; "
                             f"--district {only} asks for another")
        only = chosen.district
    if chosen.pseudonymized and key is None:
        key = load_pseudonym_key(f"export profile '{name}' (pseudonyms in {', '.join(chosen.pseudonymized)})")
    return ChosenProfile(name, chosen, only, key if chosen.pseudonymized else None)


@dataclass(frozen=True)
class DistrictFile:
    file: str
    district: str | None
    rows: int
    sha256: str


@dataclass
class DiscrepancyExport:
    out_dir: Path
    run_id: int
    as_of: datetime
    profile: str
    generated_at: datetime
    files: list[DistrictFile]
    counts_by_code: dict[str, int]
    district: str | None = None              # --district as asked, or the district profile's
    districts_with_flags: list[str] = field(default_factory=list)
    pseudonym_key_id: str | None = None      # when the files carry pseudonyms: which key made them
    format: str = "csv"
    not_sent_again: int = 0                  # flags answered (settled) on the same evidence: left out

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "profile": self.profile,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "district": self.district,
            "rows": self.rows,
            "counts_by_code": self.counts_by_code,
            "format": self.format,
            "not_sent_again": self.not_sent_again,
            "files": [asdict(f) for f in self.files],
            **({"pseudonym_key_id": self.pseudonym_key_id} if self.pseudonym_key_id else {}),
        }


def load_flags(ws: Workspace, run_id: int) -> list[FlagRow]:
    return [FlagRow(*row) for row in ws.rows("current flags", current_flags_sql(run_id))]


def load_person_values(ws: Workspace, run_id: int, fields: list[str]) -> dict[str, dict[str, str]]:
    persons: dict[str, dict[str, str]] = {}
    if fields:
        for person_id, name, value in ws.rows("person values", person_values_sql(run_id, fields)):
            persons.setdefault(person_id, {})[name] = value
    return persons


def _by_district(flags: list[FlagRow], only: str | None) -> dict[str | None, list[FlagRow]]:
    """Flags grouped by responsible district (order kept): named districts sorted, unassigned last."""
    groups: dict[str | None, list[FlagRow]] = {}
    for flag in flags:
        groups.setdefault(flag.district, []).append(flag)
    if only is not None:
        key = None if only == UNASSIGNED and only not in groups else only
        return {key: groups.get(key, [])}
    return {k: groups[k] for k in sorted(groups, key=lambda d: (d is None, d or ""))}


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> str:
    """UTF-8 with BOM (Excel / LibreOffice read Chinese right), CRLF; returns the sha256 of the bytes."""
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
    return hashlib.sha256(path.read_bytes()).hexdigest()


# column -> width in characters in the workbook (every cell wraps; the row grows to its longest)
XLSX_WIDTHS = {"person_id": 11, "code": 18, "code_text": 9, "stage": 9, "status": 6, "severity": 6, "district": 8,
               "confidence": 6, "review": 12, "reason": 44, "due": 12, "first_seen": 12, "name": 12, "dob": 11,
               "sex": 4, "nationality": 9, "phone": 14, "passport": 11, "id_number": 19, "permit_no": 11,
               "evidence": 24, "previous_answer": 16, "outcome": 16, "resolved_on": 11, "comment": 18,
               "answered_by": 8, "flag_key": 24}
LINE_POINTS = 14.5            # the height of one line of 11-point text
_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")


def _display_width(text: str) -> int:
    """Characters as a spreadsheet lays them out: Chinese (wide) ones take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _lines(text: str, width: int) -> int:
    """Lines a wrapped cell of `width` characters needs (words move whole; Chinese breaks anywhere)."""
    lines = 0
    for part in text.split("\n") or [""]:
        used, count = 0, 1
        for word in re.findall(r"\S+\s*|\s+", part):
            size = _display_width(word)
            while size > width:          # a word longer than the line is broken
                if used:
                    count, used = count + 1, 0
                size -= width
                count += 1
            if used + _display_width(word.rstrip()) > width and used:
                count, used = count + 1, 0
            used += size
        lines += count
    return max(lines, 1)


def _write_xlsx(path: Path, columns: list[str], header: list[str], rows: list[list[str]], sheet: str,
                outcomes: list[str], created: datetime) -> str:
    """One sheet, one flag per row, every cell text (no formulas, nothing read as a number), frozen
    header, column widths, wrapped text with each row as high as its longest cell, landscape A4
    fit to the page width, header repeated on each printed page, a drop-down of the outcomes;
    fixed document properties so the bytes repeat."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                           "strings_to_urls": False})
    book.set_properties({"title": sheet, "author": "linkage", "created": created})
    base = {"num_format": "@", "valign": "top", "text_wrap": True, "border": 1}
    head = book.add_format({**base, "bold": True, "bg_color": "#DDEBF7"})
    plain = book.add_format(base)
    answer = book.add_format({**base, "bg_color": "#FFF2CC", "locked": False})
    name = _SHEET_UNSAFE.sub("_", sheet)[:31] or "flags"
    table = book.add_worksheet(name)
    lists = book.add_worksheet("outcomes" if name != "outcomes" else "outcome_list")
    for i, label in enumerate(outcomes):
        lists.write_string(i, 0, label, plain)
    lists.set_column(0, 0, 40)
    lists.hide()
    widths = [XLSX_WIDTHS.get(column, 12) for column in columns]
    for c, column in enumerate(columns):
        cell = answer if column in ("outcome", "resolved_on", "comment", "answered_by") else plain
        table.set_column(c, c, widths[c], cell)
        table.write_string(0, c, header[c], head)
        for r, row in enumerate(rows, start=1):
            table.write_string(r, c, row[c], cell)
    for r, row in enumerate([header, *rows]):
        table.set_row(r, LINE_POINTS * max(_lines(text, widths[c]) for c, text in enumerate(row)))
    table.freeze_panes(1, 0)
    table.set_landscape()
    table.set_paper(9)                  # A4
    table.fit_to_pages(1, 0)            # the width of one page, as many pages down as needed
    table.repeat_rows(0)
    table.set_margins(left=0.3, right=0.3, top=0.4, bottom=0.4)
    table.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
    if rows and "outcome" in columns:
        c = columns.index("outcome")
        table.data_validation(1, c, len(rows), c, {
            "validate": "list", "source": f"='{lists.name}'!$A$1:$A${len(outcomes)}",
            "error_type": "stop", "error_title": header[c], "error_message": " / ".join(outcomes)[:255]})
    book.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest_files(path: Path) -> dict[str, str | None]:
    """The district files an earlier manifest in the folder lists (plain names only), with their district."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {f["file"]: f.get("district") for f in files
                if isinstance(f.get("file"), str) and Path(f["file"]).name == f["file"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; give a folder for the district files")


def _make_dir(out_dir: Path) -> Path | None:
    """Create the folder (and parents); returns the top-most folder created, to remove on failure."""
    top = None
    for folder in reversed([out_dir, *out_dir.parents]):
        if not folder.exists():
            top = top or folder
    out_dir.mkdir(parents=True, exist_ok=True)
    return top


def officer_context(ws: Workspace, run_id: int, flags: list[FlagRow], language: Language,
                    config_dir: Path | None) -> OfficerContext:
    """The current run's timelines of the flagged persons, the chain's stages (configs/chain.toml
    when present, else the timelines' order), identifiers of identity conflicts, earlier answers."""
    ctx = OfficerContext(language)
    chain_path = Path(config_dir) / "chain.toml" if config_dir is not None else None
    if chain_path is not None and chain_path.is_file():
        chain, _ = load_chain_config(Path(config_dir))
        ctx.review_below = chain.review_below
        for i, stage in enumerate(chain.stages):
            ctx.after[stage.name] = chain.after_of(i)
            ctx.gaps[stage.name] = (parse_duration(stage.max_gap) if stage.max_gap else None,
                                    parse_duration(stage.min_gap) if stage.min_gap else None)
    persons = sorted({f.person_id for f in flags})
    if persons:
        ws.register("flagged_persons", pl.DataFrame({"person_id": persons}).to_arrow())
        rows = ws.rows("officer timelines", """
            SELECT t.person_id, t.stage, t.stage_order, t.time, t.district, t.source || ':' || t.record_id
            FROM timelines t SEMI JOIN flagged_persons p USING (person_id)
            WHERE t.run_id = ? ORDER BY t.person_id, t.stage_order""", [run_id])
        ws.unregister("flagged_persons")
        order: dict[int, str] = {}
        for person_id, stage, stage_order, time, district, record in rows:
            ctx.timelines.setdefault(person_id, {})[stage] = Stage(stage, stage_order, time, district, record)
            order[stage_order] = stage
        if not ctx.after:       # without chain.toml: each stage measured from the one before it
            names = [order[k] for k in sorted(order)]
            ctx.after = {name: names[i - 1] if i else None for i, name in enumerate(names)}
    conflicts = [f for f in flags if f.code == "IDENTITY_CONFLICT"]
    ctx.conflicted = {f.person_id for f in conflicts}
    ctx.identifiers = record_identifiers(ws, sorted({r for f in conflicts for r in evidence_records(f.evidence)}))
    ctx.answers = latest_answers(ws)
    ctx.fingerprints = fingerprints(ws, [(f.flag_key, f.evidence, f.due) for f in flags])
    return ctx


FORMATS = ("csv", "xlsx")


def write_discrepancies(ws: Workspace, out_dir: Path, config: ExportConfig, profile: str | None = None,
                        district: str | None = None, now: datetime | None = None,
                        key: bytes | None = None, file_format: str = "csv",
                        config_dir: Path | None = None) -> DiscrepancyExport:
    """One CSV or XLSX per responsible district of the current run's new and open flags (less
    those answered as settled on the same evidence), then manifest.json.

    Every file goes to a temp file in `out_dir` first; all are renamed only once all are written,
    and the manifest comes last, so a failure leaves no partial export (and no temp files). A
    whole export removes the district files (CSV or XLSX) an earlier manifest there listed.
    A profile with pseudonyms takes `key`, else the environment's (see privacy.load_pseudonym_key).
    """
    if file_format not in FORMATS:
        raise InputError(f"unknown format '{file_format}'; formats: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    choice = choose_profile(config, profile, district, key)
    chosen, only = choice.profile, choice.district
    language = load_language(chosen.language, config_dir)
    _check_out_dir(out_dir)
    run = current_chain_run(ws)
    current = load_flags(ws, run.run_id)
    ctx = officer_context(ws, run.run_id, current, language, config_dir)
    flags = [f for f in current if not not_sent_again(ctx.answers.get(f.flag_key), ctx.fingerprints[f.flag_key])]
    persons = load_person_values(ws, run.run_id, [c for c in chosen.written_columns if c in EXPORT_PERSON_COLUMNS
                                                  and chosen.mask_of(c).mode != "hidden"])
    groups = _by_district(flags, only)
    names = district_file_names(list(groups), file_format)
    result = DiscrepancyExport(
        out_dir=out_dir, run_id=run.run_id, as_of=run.as_of, profile=choice.name,
        # The time of the chain run the files show, not of this export: the same workspace always
        # gives the same bytes, the manifest included.
        generated_at=now or run.finished_at.replace(microsecond=0), files=[], counts_by_code={}, district=only,
        districts_with_flags=[d or UNASSIGNED for d in _by_district(flags, None)],
        pseudonym_key_id=key_id(choice.key) if choice.key is not None else None, format=file_format,
        not_sent_again=len(current) - len(flags))
    for group in groups.values():
        for f in group:
            result.counts_by_code[f.code] = result.counts_by_code.get(f.code, 0) + 1
    result.counts_by_code = dict(sorted(result.counts_by_code.items()))
    columns, header = file_columns(chosen), header_row(chosen, language)
    outcomes = list(language.outcome_labels().values())
    created = None
    earlier = _manifest_files(result.manifest_path)
    try:
        created = _make_dir(out_dir)
        with contextlib.ExitStack() as stack:
            for group_key, group in groups.items():
                temp = stack.enter_context(atomic_path(out_dir / names[group_key]))
                rows = [render_row(f, persons.get(f.person_id, {}), chosen, ctx, choice.key,
                                   neutralize=file_format == "csv") for f in group]
                if file_format == "csv":
                    digest = _write_csv(temp, header, rows)
                else:
                    digest = _write_xlsx(temp, columns, header, rows, group_key or UNASSIGNED, outcomes, run.as_of)
                result.files.append(DistrictFile(names[group_key], group_key, len(rows), digest))
        with atomic_path(result.manifest_path) as temp:
            temp.write_text(json.dumps(result.manifest(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written = {f.file for f in result.files}
        for name, of in earlier.items():
            # a whole export replaces the earlier one: its files of districts now without flags go; one
            # district's export replaces that district's file of the other format
            if name not in written and (only is None or of in groups):
                (out_dir / name).unlink(missing_ok=True)
    except BaseException as exc:
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the export to {out_dir}: {exc.strerror or exc}") from exc
        raise
    return result

"""Exports: files written atomically (a temp file in the same folder, then renamed).

Owns `export clusters`, `export flags` (every current flag, raw values, for machines) and
`export discrepancies` (one CSV per responsible district for the officers who act on the
flags: a profile from configs/export.toml picks the columns, masks each (privacy.py: keep, last
N characters, keyed pseudonym, empty or dropped) and may limit the export to one district;
UTF-8 with BOM, formula-injection safe, all files renamed into place together and a manifest
with row counts and sha256 last).
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

from . import audit
from .config import EXPORT_PERSON_COLUMNS, ExportConfig, ExportProfile
from .errors import InputError
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


def current_chain_run(ws: Workspace) -> ChainRun:
    """The latest finished chain run; an InputError when there is none yet."""
    row = None
    if ws.schema_version() >= 3:
        row = ws.run("current chain run", """
            SELECT run_id, as_of FROM chain_runs WHERE finished_at IS NOT NULL
            ORDER BY run_id DESC LIMIT 1""").fetchone()
    if row is None:
        raise InputError("no chain run yet; run 'linkage chain' first")
    return ChainRun(int(row[0]), row[1])


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


HEADERS = {
    "zh": {"person_id": "人员编号", "code": "问题代码", "code_text": "问题类型", "stage": "环节", "status": "状态",
           "severity": "严重程度", "district": "责任区", "confidence": "关联置信度", "review": "需核实",
           "reason": "说明", "due": "应完成时间", "first_seen": "首次发现", "name": "姓名", "dob": "出生日期",
           "sex": "性别", "nationality": "国籍", "phone": "电话", "passport": "护照号", "id_number": "身份证号",
           "permit_no": "通行证号", "evidence": "依据记录"},
    "en": {"person_id": "person_id", "code": "code", "code_text": "issue", "stage": "stage", "status": "status",
           "severity": "severity", "district": "district", "confidence": "confidence", "review": "review",
           "reason": "reason", "due": "due", "first_seen": "first_seen", "name": "name", "dob": "dob", "sex": "sex",
           "nationality": "nationality", "phone": "phone", "passport": "passport", "id_number": "id_number",
           "permit_no": "permit_no", "evidence": "evidence"},
}
VALUE_WORDS = {
    "zh": {
        "code": {"MISSING_STAGE": "缺少环节", "OUT_OF_ORDER": "顺序异常", "GAP_EXCEEDED": "超时",
                 "EARLY_RELEASE": "提前解除隔离", "DISTRICT_MISMATCH": "移交区不符", "IDENTITY_CONFLICT": "身份信息矛盾"},
        "status": {"new": "新增", "open": "未解决", "resolved": "已解决"},
        "severity": {"critical": "紧急", "high": "高", "medium": "中", "low": "低"},
        "stage": {"arrival": "入境", "registration": "信息登记", "health_check": "健康检查", "transfer": "转运",
                  "quarantine_start": "集中隔离开始", "quarantine_end": "解除隔离", "handover": "社区移交"},
        "sex": {"M": "男", "F": "女"},
        "review": {True: "是", False: "否"},
    },
    "en": {
        "code": {"MISSING_STAGE": "missing stage", "OUT_OF_ORDER": "out of order", "GAP_EXCEEDED": "deadline exceeded",
                 "EARLY_RELEASE": "early release", "DISTRICT_MISMATCH": "district mismatch",
                 "IDENTITY_CONFLICT": "identity conflict"},
        "review": {True: "yes", False: "no"},
    },
}
UNASSIGNED = "unassigned"
TIME_FORMAT = "%Y-%m-%d %H:%M"


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


def _word(language: str, kind: str, value: Any) -> str:
    return VALUE_WORDS[language].get(kind, {}).get(value, "" if value is None else str(value))


def render_evidence(evidence: str | None, language: str) -> str:
    """The records a flag rests on: 'source:id stage time; ...' (items may be keys or objects)."""
    if not evidence:
        return ""
    try:
        items = json.loads(evidence)
    except ValueError:
        return evidence
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict):
            stage = _word(language, "stage", item.get("stage")) if item.get("stage") else ""
            parts.append(" ".join(str(v) for v in (item.get("record"), stage, item.get("time")) if v))
        elif item is not None:
            parts.append(str(item))
    return "; ".join(parts)


def flag_cell(column: str, flag: FlagRow, language: str) -> str:
    """The text of one flag column in the profile's language (before masking)."""
    if column == "code_text":
        return _word(language, "code", flag.code)
    if column in ("status", "severity", "stage"):
        return _word(language, column, getattr(flag, column))
    if column == "district":
        return flag.district or ""
    if column == "confidence":
        return "" if flag.confidence is None else f"{flag.confidence:.2f}"
    if column == "review":
        return _word(language, "review", bool(flag.review))
    if column == "due":
        return flag.due.strftime(TIME_FORMAT) if flag.due else ""
    if column == "first_seen":
        return flag.first_seen_as_of.strftime(TIME_FORMAT) if flag.first_seen_as_of else f"run {flag.first_seen_run}"
    if column == "evidence":
        return render_evidence(flag.evidence, language)
    value = getattr(flag, column)
    return "" if value is None else str(value)


def render_row(flag: FlagRow, person: dict[str, str], profile: ExportProfile, key: bytes | None = None) -> list[str]:
    """One CSV row of the profile's written columns: language, then the column's mask (keep, last
    N characters, pseudonym under `key`, empty), then formula neutralization on every cell."""
    cells = []
    for column in profile.written_columns:
        if column in EXPORT_PERSON_COLUMNS:
            text = person.get(column, "")
            if column == "sex":
                text = _word(profile.language, "sex", text) if text else ""
        else:
            text = flag_cell(column, flag, profile.language)
        cells.append(neutralize_formula(render_cell(text, profile.mask_of(column), column, key)))
    return cells


def header_row(profile: ExportProfile) -> list[str]:
    return [HEADERS[profile.language][column] for column in profile.written_columns]


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


def district_file_names(districts: list[str | None]) -> dict[str | None, str]:
    """district -> file name, unique even when two districts reduce to the same safe stem."""
    names: dict[str | None, str] = {}
    taken: set[str] = {"manifest.json"}
    for district in districts:
        stem = safe_file_stem(district)
        name, n = f"{stem}.csv", 1
        while name.casefold() in taken:
            n += 1
            name = f"{stem}_{n}.csv"
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


def _manifest_files(path: Path) -> set[str]:
    """The district files an earlier manifest in the folder lists (plain names only)."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {f["file"] for f in files if isinstance(f.get("file"), str) and Path(f["file"]).name == f["file"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


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


def write_discrepancies(ws: Workspace, out_dir: Path, config: ExportConfig, profile: str | None = None,
                        district: str | None = None, now: datetime | None = None,
                        key: bytes | None = None) -> DiscrepancyExport:
    """One CSV per responsible district of the current run's new and open flags, then manifest.json.

    Every file goes to a temp file in `out_dir` first; all are renamed only once all are written,
    and the manifest comes last, so a failure leaves no partial export (and no temp files).
    A profile with pseudonyms takes `key`, else the environment's (see privacy.load_pseudonym_key).
    """
    out_dir = Path(out_dir)
    choice = choose_profile(config, profile, district, key)
    chosen, only = choice.profile, choice.district
    _check_out_dir(out_dir)
    run = current_chain_run(ws)
    flags = load_flags(ws, run.run_id)
    persons = load_person_values(ws, run.run_id, [c for c in chosen.written_columns if c in EXPORT_PERSON_COLUMNS
                                                  and chosen.mask_of(c).mode != "hidden"])
    groups = _by_district(flags, only)
    names = district_file_names(list(groups))
    result = DiscrepancyExport(
        out_dir=out_dir, run_id=run.run_id, as_of=run.as_of, profile=choice.name,
        generated_at=now or datetime.now(), files=[], counts_by_code={}, district=only,
        districts_with_flags=[d or UNASSIGNED for d in _by_district(flags, None)],
        pseudonym_key_id=key_id(choice.key) if choice.key is not None else None)
    for group in groups.values():
        for f in group:
            result.counts_by_code[f.code] = result.counts_by_code.get(f.code, 0) + 1
    result.counts_by_code = dict(sorted(result.counts_by_code.items()))
    created = None
    earlier = _manifest_files(result.manifest_path)
    try:
        created = _make_dir(out_dir)
        with contextlib.ExitStack() as stack:
            for key, group in groups.items():
                temp = stack.enter_context(atomic_path(out_dir / names[key]))
                rows = [render_row(f, persons.get(f.person_id, {}), chosen, choice.key) for f in group]
                digest = _write_csv(temp, header_row(chosen), rows)
                result.files.append(DistrictFile(names[key], key, len(rows), digest))
        with atomic_path(result.manifest_path) as temp:
            temp.write_text(json.dumps(result.manifest(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if only is None:   # a whole export replaces the earlier one: its files of districts now without flags go
            for name in earlier - {f.file for f in result.files}:
                (out_dir / name).unlink(missing_ok=True)
    except BaseException as exc:
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the export to {out_dir}: {exc.strerror or exc}") from exc
        raise
    return result

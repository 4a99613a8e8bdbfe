"""Clerical review: the analysts' queue of record pairs, their decisions, and what the decisions say.

Owns `linkage review export` (the pairs nearest the threshold, the links the identity guard refused
or kept for review, the pairs behind IDENTITY_CONFLICT and low-confidence chain flags, both records
side by side with the per-comparison weights), `linkage review import` (decisions stored in
`link_decisions` with origin 'review'; the match reads them as must-links and cannot-links, see
match/decisions.py), `linkage evaluate --labels` (the current clusters against the decisions) and
`linkage model threshold` (the threshold that maximizes F1 on the decisions).

The exported file is an analyst's: every value in full, written owner-only. Errors about a
returned file name the file, row and column, never a value from it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from .audit import os_user
from .config import ModelConfig
from .errors import InputError
from .export import atomic_path, neutralize_formula
from .match.decisions import effective_view
from .match.explain import pair_terms
from .match.run import OWN_EVIDENCE_BITS
from .match.score import score_pairs
from .workspace import Workspace

DEFAULT_LIMIT = 200
BAND_BITS = 5.0            # the uncertainty band: pair weights within this many bits of the threshold's
MIN_LABELS = 30            # of each kind, for `linkage model threshold`
KEY_SEPARATOR = "|"

# What a reviewer may write in the decision column (case and spacing aside) -> the stored decision.
DECISIONS = {
    "match": "match", "same": "match", "是同一人": "match", "是": "match",
    "not match": "not_match", "no match": "not_match", "non match": "not_match", "nonmatch": "not_match",
    "不是同一人": "not_match", "不是": "not_match",
    "unsure": "unsure", "不确定": "unsure",
}
DECISION_HELP = "match / not match / unsure (是同一人 / 不是同一人 / 不确定)"

REASONS = {
    "near": "near the threshold",
    "refused": "link refused by the identity guard",
    "kept": "contradicting link kept for review",
    "identity_conflict": "behind an IDENTITY_CONFLICT flag",
    "low_confidence": "weakest link of a low-confidence flag",
}
SIDE_FIELDS = ("record", "name", "hanzi_name", "dob", "sex", "nationality", "documents", "phones")


def record_key(source: str, record_id: str) -> str:
    return f"{source}:{record_id}"


def pair_key(a: str, b: str) -> str:
    return KEY_SEPARATOR.join(sorted((a, b)))


# ---- export ----------------------------------------------------------------------------------

@dataclass
class ReviewExport:
    path: str
    pairs: int
    by_reason: dict[str, int]
    left_out_decided: int


def _latest_threshold(ws: Workspace) -> float:
    row = ws.rows("latest threshold", "SELECT threshold FROM match_runs WHERE finished_at IS NOT NULL "
                                      "ORDER BY run_id DESC LIMIT 1")
    if not row:
        raise InputError("no match yet; run 'linkage match' first")
    return float(row[0][0])


def _logit(p: float) -> float:
    return math.log2(p / (1 - p))


def _probability(weight: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-weight))


LINK_KEYS = """
    SELECT a.source AS source_l, a.record_id AS record_id_l, b.source AS source_r, b.record_id AS record_id_r,
           l.weight
    FROM link_pairs l JOIN persons a ON a.rid = l.rid_l JOIN persons b ON b.rid = l.rid_r"""


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """Pairs with their two records in (source, record_id) order."""
    swap = (pl.col("source_l") > pl.col("source_r")) | (
        (pl.col("source_l") == pl.col("source_r")) & (pl.col("record_id_l") > pl.col("record_id_r")))
    return frame.with_columns(
        source_l=pl.when(swap).then("source_r").otherwise("source_l"),
        record_id_l=pl.when(swap).then("record_id_r").otherwise("record_id_l"),
        source_r=pl.when(swap).then("source_l").otherwise("source_r"),
        record_id_r=pl.when(swap).then("record_id_l").otherwise("record_id_r"))


PAIR = ["source_l", "record_id_l", "source_r", "record_id_r"]


def _queue(ws: Workspace, threshold: float, limit: int, include_decided: bool) -> tuple[pl.DataFrame, int]:
    """The pairs to review (PAIR columns and `reason`, one row per pair and reason), and how many
    were left out as decided already."""
    at = _logit(threshold)
    decided = ws.run("decided pairs", f"SELECT source_l, record_id_l, source_r, record_id_r FROM {effective_view(ws)}").pl()

    def undecided(frame: pl.DataFrame) -> pl.DataFrame:
        frame = _ordered(frame)
        return frame if include_decided else frame.join(decided, on=PAIR, how="anti")

    near = undecided(ws.run("pairs near the threshold", f"""
        SELECT * FROM ({LINK_KEYS} WHERE NOT l.refused AND NOT l.conflict AND abs(l.weight - ?) <= ?)
        ORDER BY weight, source_l, record_id_l, source_r, record_id_r""", [at, BAND_BITS]).pl())
    if near.height > limit:   # spread over the band: evenly spaced in weight order, both sides of the threshold
        near = near[np.unique(np.round(np.linspace(0, near.height - 1, limit)).astype(np.int64)).tolist()]
    parts = [near.select(PAIR).with_columns(reason=pl.lit("near"))]
    for kind, where in (("refused", "l.refused"), ("kept", "l.conflict")):
        found = undecided(ws.run(f"links {kind}", f"""
            SELECT * FROM ({LINK_KEYS} WHERE {where})
            ORDER BY weight DESC, source_l, record_id_l, source_r, record_id_r""").pl()).head(limit)
        parts.append(found.select(PAIR).with_columns(reason=pl.lit(kind)))
    chain = ws.rows("latest chain run", "SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL")
    if chain and chain[0][0] is not None:
        run_id = int(chain[0][0])
        conflicts = ws.run("pairs behind identity conflicts", """
            WITH ev AS (
                SELECT DISTINCT f.flag_key, unnest(from_json(f.evidence, '["VARCHAR"]')) AS record
                FROM flags f WHERE f.run_id = ? AND f.status <> 'resolved' AND f.code = 'IDENTITY_CONFLICT'),
            keys AS (SELECT flag_key, split_part(record, ':', 1) AS source,
                            substr(record, length(split_part(record, ':', 1)) + 2) AS record_id FROM ev)
            SELECT DISTINCT a.source AS source_l, a.record_id AS record_id_l, b.source AS source_r,
                   b.record_id AS record_id_r
            FROM keys a JOIN keys b ON a.flag_key = b.flag_key
                 AND (a.source < b.source OR (a.source = b.source AND a.record_id < b.record_id))
            ORDER BY ALL""", [run_id]).pl()
        parts.append(undecided(conflicts).head(limit).with_columns(reason=pl.lit("identity_conflict")))
        weakest = ws.run("weakest links of low-confidence flags", f"""
            WITH flagged AS (SELECT DISTINCT person_id FROM flags
                             WHERE run_id = ? AND status <> 'resolved' AND review AND code <> 'IDENTITY_CONFLICT'),
            inside AS (
                SELECT a.person_id, a.source AS source_l, a.record_id AS record_id_l, b.source AS source_r,
                       b.record_id AS record_id_r, l.probability
                FROM link_pairs l JOIN linked_persons a ON a.rid = l.rid_l JOIN linked_persons b ON b.rid = l.rid_r
                WHERE l.linked AND a.person_id = b.person_id AND a.person_id IN (SELECT person_id FROM flagged))
            SELECT source_l, record_id_l, source_r, record_id_r FROM inside
            QUALIFY row_number() OVER (PARTITION BY person_id
                                       ORDER BY probability, source_l, record_id_l, source_r, record_id_r) = 1
            ORDER BY ALL""", [run_id]).pl()
        parts.append(undecided(weakest).head(limit).with_columns(reason=pl.lit("low_confidence")))
    queue = pl.concat(parts)
    # Records gone since the match cannot be reviewed (nor scored).
    existing = ws.run("records of the queue", """
        SELECT source, record_id FROM records""").pl()
    queue = (queue.join(existing.rename({"source": "source_l", "record_id": "record_id_l"}),
                        on=["source_l", "record_id_l"], how="semi")
                  .join(existing.rename({"source": "source_r", "record_id": "record_id_r"}),
                        on=["source_r", "record_id_r"], how="semi"))
    left_out = 0
    if not include_decided:
        every = _ordered(pl.concat([p.select(PAIR) for p in parts])).unique()
        left_out = every.join(decided, on=PAIR, how="semi").height
    return queue, left_out


def _record_values(ws: Workspace, keys: pl.DataFrame) -> dict[tuple[str, str], dict[str, str]]:
    ws.register("review_keys", keys.to_arrow())
    try:
        rows = ws.rows("records of the pairs", """
            SELECT r.source, r.record_id, r.full_name, r.local_name, r.dob, r.sex, r.nationality,
                   array_to_string(list_distinct(list_filter(
                       coalesce(r.doc_numbers, []) || [r.passport, r.id_number, r.permit_no], x -> x IS NOT NULL)), ' '),
                   array_to_string(coalesce(r.phones, CASE WHEN r.phone IS NULL THEN [] ELSE [r.phone] END), ' ')
            FROM records r SEMI JOIN review_keys k USING (source, record_id)""")
    finally:
        ws.unregister("review_keys")
    return {(s, r): {"record": record_key(s, r), "name": n or "", "hanzi_name": h or "",
                     "dob": str(d) if d else "", "sex": x or "", "nationality": c or "", "documents": docs or "",
                     "phones": phones or ""}
            for s, r, n, h, d, x, c, docs, phones in rows}


def export_review(ws: Workspace, config: ModelConfig, target: Path, limit: int = DEFAULT_LIMIT,
                  include_decided: bool = False) -> ReviewExport:
    """Write the review queue to `target` (CSV with a BOM, or XLSX for a .xlsx name)."""
    if limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")
    threshold = _latest_threshold(ws)
    queue, left_out = _queue(ws, threshold, limit, include_decided)
    order = list(REASONS)
    pairs = (queue.group_by(PAIR, maintain_order=True)
                  .agg(pl.col("reason").unique())
                  .with_columns(first=pl.col("reason").map_elements(lambda r: min(order.index(x) for x in r),
                                                                    return_dtype=pl.Int64))
                  .sort(["first", *PAIR]))
    header = ["pair_key", "reason", *[f"{f}_l" for f in SIDE_FIELDS], *[f"{f}_r" for f in SIDE_FIELDS]]
    body: list[list[str]] = []
    if pairs.height:
        scored = score_pairs(ws, config, pairs.select(PAIR))
        terms = pair_terms(scored)
        values = _record_values(ws, pl.concat([pairs.select(source="source_l", record_id="record_id_l"),
                                               pairs.select(source="source_r", record_id="record_id_r")]).unique())
        same = _same_person(ws, pairs)
        probability = _probability(scored.weights)
        for i, row in enumerate(pairs.iter_rows(named=True)):
            left, right = values[(row["source_l"], row["record_id_l"])], values[(row["source_r"], row["record_id_r"])]
            reasons = sorted(row["reason"], key=order.index)
            line = [pair_key(left["record"], right["record"]), "; ".join(REASONS[r] for r in reasons),
                    *[left[f] for f in SIDE_FIELDS], *[right[f] for f in SIDE_FIELDS]]
            for term in terms[i]:
                line += [term.level, f"{term.weight:+.2f}"]
            line += [f"{scored.weights[i]:+.2f}", f"{probability[i]:.4f}", "yes" if same[i] else "no", "", ""]
            body.append(line)
        header += [c for comparison in scored.comparisons
                   for c in (f"{comparison.name}_level", f"{comparison.name}_weight")]
    header += ["total_weight", "probability", "same_person_now", "decision", "note"]
    target = Path(target)
    with atomic_path(target) as temp:
        if target.suffix.lower() == ".xlsx":
            _write_xlsx(temp, header, body)
        else:
            _write_csv(temp, header, body)
    counts = {kind: 0 for kind in REASONS}
    for reasons in pairs["reason"].to_list() if pairs.height else []:
        for r in reasons:
            counts[r] += 1
    return ReviewExport(str(target), pairs.height, counts, left_out)


def _same_person(ws: Workspace, pairs: pl.DataFrame) -> list[bool]:
    """Per pair (in order): are its two records one person now (after the chain's joins)?"""
    ws.register("review_pairs", pairs.select(PAIR).with_row_index("i").to_arrow())
    try:
        same = ws.run("persons of the pairs", """
            SELECT coalesce(a.person_id = b.person_id, FALSE) AS same FROM review_pairs p
            LEFT JOIN linked_persons a ON a.source = p.source_l AND a.record_id = p.record_id_l
            LEFT JOIN linked_persons b ON b.source = p.source_r AND b.record_id = p.record_id_r
            ORDER BY p.i""").fetchnumpy()["same"]
    finally:
        ws.unregister("review_pairs")
    return [bool(x) for x in same]


PHONE_LIKE = re.compile(r"^\+[\d ]+$")
TEXT_COLUMNS = {f"{f}_{s}" for f in SIDE_FIELDS for s in "lr"} | {"note"}


def _write_csv(path: Path, header: list[str], body: list[list[str]]) -> None:
    text_at = [i for i, name in enumerate(header) if name in TEXT_COLUMNS]
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for line in body:
            line = list(line)
            for i in text_at:
                if not PHONE_LIKE.match(line[i]):   # +86 138...: a phone number, not a formula
                    line[i] = neutralize_formula(line[i])
            writer.writerow(line)


def _write_xlsx(path: Path, header: list[str], body: list[list[str]]) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_numbers": False,
                                           "strings_to_urls": False})
    try:
        sheet = book.add_worksheet("review")
        bold = book.add_format({"bold": True, "text_wrap": True, "valign": "top"})
        text = book.add_format({"num_format": "@", "valign": "top"})
        for col, name in enumerate(header):
            sheet.write_string(0, col, name, bold)
            width = 28 if name == "pair_key" or name.startswith(("name_", "documents_", "reason")) else 14
            sheet.set_column(col, col, width, text)
        for row, line in enumerate(body, start=1):
            for col, value in enumerate(line):
                sheet.write_string(row, col, value, text)
        sheet.freeze_panes(1, 2)
        decision = header.index("decision")
        sheet.data_validation(1, decision, max(len(body), 1) + 500, decision, {
            "validate": "list", "source": ["match", "not match", "unsure"], "ignore_blank": True,
            "show_error": False})
    finally:
        book.close()


# ---- import ----------------------------------------------------------------------------------

@dataclass
class ReviewImport:
    file: str
    rows: int = 0
    stored: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped: int = 0              # rows with no decision
    errors: list[str] = field(default_factory=list)
    missing: int = 0              # decisions in force naming a record that no longer exists


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A returned CSV or XLSX file: its header and (spreadsheet row number, cells) per row. CSV in
    UTF-8 (with or without a BOM), UTF-16 with a BOM, or GB18030; comma, semicolon or tab."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        encodings = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ["utf-16"]
    else:
        encodings = ["utf-8", "gb18030"]
    for encoding in encodings:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InputError(f"{path}: not readable text (expected UTF-8, UTF-16 or GB18030)")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: the file is empty (expected a header row)")
    return rows[0], [(n, r) for n, r in enumerate(rows[1:], start=2)]


def _read_xlsx(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:   # openpyxl raises several error types for a broken workbook
        raise InputError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        rows = [(n, ["" if v is None else str(v) for v in values])
                for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)]
    finally:
        book.close()
    if not rows:
        raise InputError(f"{path}: the sheet is empty (expected a header row)")
    return rows[0][1], rows[1:]


def parse_decision(value: str) -> str | None:
    """The stored decision a cell means; None for an empty cell; InputError-free: '?' when unknown."""
    text = " ".join(value.replace("_", " ").replace("-", " ").split()).lower()
    if not text:
        return None
    return DECISIONS.get(text, "?")


def _split_key(text: str) -> tuple[str, str] | None:
    source, sep, record_id = text.strip().partition(":")
    return (source, record_id) if sep and source and record_id else None


def import_review(ws: Workspace, path: Path, decided_by: str | None = None) -> ReviewImport:
    """Store the decisions of a returned review file (see the module docstring); bad rows are
    listed in `errors` and the good ones stored all the same."""
    header, rows = read_table(path)
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    where = {name: i for i, name in reversed(list(enumerate(names))) if name}
    if "decision" not in where or not ({"record_l", "record_r"} <= where.keys() or "pair_key" in where):
        raise InputError(f"{path}: expected a 'decision' column and 'pair_key' (or 'record_l' and 'record_r'); "
                         "export a review file with 'linkage review export --out FILE'")
    result = ReviewImport(str(path))
    reviewer = decided_by or os_user()[0]
    good: dict[tuple[str, str, str, str], tuple] = {}

    def cell(row: list[str], name: str) -> str:
        i = where.get(name)
        return row[i].strip() if i is not None and i < len(row) and row[i] is not None else ""

    known = _known_keys(ws, [cell(row, name) for _, row in rows
                             for name in ("record_l", "record_r")] + [part for _, row in rows
                                                                      for part in cell(row, "pair_key").split(KEY_SEPARATOR)])
    for row_no, row in rows:
        if not any(c.strip() for c in row if c):
            continue
        result.rows += 1
        decision = parse_decision(cell(row, "decision"))
        if decision is None:
            result.skipped += 1
            continue
        if decision == "?":
            result.errors.append(f"{path}: row {row_no}, column decision: not a decision; expected {DECISION_HELP}")
            continue
        if cell(row, "record_l") and cell(row, "record_r"):
            sides = [("record_l", cell(row, "record_l")), ("record_r", cell(row, "record_r"))]
        else:
            parts = cell(row, "pair_key").split(KEY_SEPARATOR)
            if len(parts) != 2:
                result.errors.append(f"{path}: row {row_no}, column pair_key: not a pair key "
                                     "(SOURCE:RECORD_ID|SOURCE:RECORD_ID)")
                continue
            sides = [("pair_key", parts[0]), ("pair_key", parts[1])]
        keys, bad = [], None
        for column, text in sides:
            key = _split_key(text)
            if key is None:
                bad = f"{path}: row {row_no}, column {column}: not a record key (SOURCE:RECORD_ID)"
            elif key not in known:
                bad = f"{path}: row {row_no}, column {column}: no such record in the workspace"
            keys.append(key)
            if bad:
                break
        if bad is None and keys[0] == keys[1]:
            bad = f"{path}: row {row_no}: both sides name the same record"
        if bad:
            result.errors.append(bad)
            continue
        (sa, ra), (sb, rb) = sorted(keys)
        good[(sa, ra, sb, rb)] = (decision, cell(row, "note") or None,
                                  cell(row, "reviewer") or cell(row, "decided_by") or reviewer, row_no)
    if good:
        _store(ws, Path(path), good, result)
    missing = ws.scalar("decisions naming records gone", f"""
        SELECT count(*) FROM {effective_view(ws)} d
        WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_l AND r.record_id = d.record_id_l)
           OR NOT EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_r AND r.record_id = d.record_id_r)""")
    result.missing = int(missing)
    return result


def _known_keys(ws: Workspace, texts: list[str]) -> set[tuple[str, str]]:
    """Of the record keys written in a file, those the workspace holds."""
    keys = {key for key in map(_split_key, texts) if key is not None}
    if not keys:
        return set()
    ws.register("review_keys", pl.DataFrame({"source": [k[0] for k in keys], "record_id": [k[1] for k in keys]},
                                            schema={"source": pl.String, "record_id": pl.String}).to_arrow())
    try:
        return set(ws.rows("records named in the file",
                           "SELECT source, record_id FROM review_keys SEMI JOIN records USING (source, record_id)"))
    finally:
        ws.unregister("review_keys")


def _store(ws: Workspace, path: Path, good: dict, result: ReviewImport) -> None:
    frame = pl.DataFrame([{"source_l": k[0], "record_id_l": k[1], "source_r": k[2], "record_id_r": k[3],
                           "decision": v[0], "note": v[1], "decided_by": v[2], "row_no": v[3]}
                          for k, v in good.items()],
                         schema={"source_l": pl.String, "record_id_l": pl.String, "source_r": pl.String,
                                 "record_id_r": pl.String, "decision": pl.String, "note": pl.String,
                                 "decided_by": pl.String, "row_no": pl.Int64})
    with ws.transaction():
        current = ws.run("decisions in force", f"SELECT * FROM {effective_view(ws)}").pl()
        compared = frame.join(current.select(*PAIR, now=pl.col("decision"), now_note=pl.col("note")),
                              on=PAIR, how="left")
        same = compared.filter((pl.col("now") == pl.col("decision")) & pl.col("now_note").eq_missing(pl.col("note")))
        fresh = compared.join(same.select(PAIR), on=PAIR, how="anti")
        result.unchanged = same.height
        result.replaced = fresh.filter(pl.col("now").is_not_null()).height
        result.stored = fresh.height
        if not fresh.height:
            return
        ws.register("review_decisions", fresh.drop("now", "now_note").to_arrow())
        try:
            # A newer review decision replaces the older ones on the pair (either order of its records).
            ws.run("drop replaced review decisions", """
                DELETE FROM link_decisions d WHERE d.origin = 'review' AND EXISTS (
                    SELECT 1 FROM review_decisions n
                    WHERE (n.source_l = d.source_l AND n.record_id_l = d.record_id_l
                           AND n.source_r = d.source_r AND n.record_id_r = d.record_id_r)
                       OR (n.source_l = d.source_r AND n.record_id_l = d.record_id_r
                           AND n.source_r = d.source_l AND n.record_id_r = d.record_id_l))""")
            ws.run("store review decisions", """
                INSERT INTO link_decisions (source_l, record_id_l, source_r, record_id_r, decision, origin,
                                            decided_by, note, file_name, row_no, imported_at)
                SELECT source_l, record_id_l, source_r, record_id_r, decision, 'review', decided_by, note, ?,
                       row_no, ? FROM review_decisions""", [path.name, datetime.now()])
        finally:
            ws.unregister("review_decisions")


# ---- labels: evaluation and threshold --------------------------------------------------------

@dataclass
class LabelScores:
    match_labels: int
    not_match_labels: int
    missing: int                 # decisions naming a record gone (not scored)
    true_positive: int           # 'match' pairs in one person
    false_positive: int          # 'not match' pairs in one person
    false_negative: int          # 'match' pairs in two persons
    precision: float
    recall: float
    f1: float
    by_origin: dict[str, dict] = field(default_factory=dict)


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _labels(ws: Workspace) -> pl.DataFrame:
    """The decisions in force that are labels ('match' / 'not match') on records that exist."""
    return ws.run("labels", f"""
        SELECT d.source_l, d.record_id_l, d.source_r, d.record_id_r, d.decision = 'match' AS same, d.origin
        FROM {effective_view(ws)} d
        WHERE d.decision IN ('match', 'not_match')
          AND EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_l AND r.record_id = d.record_id_l)
          AND EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_r AND r.record_id = d.record_id_r)
        ORDER BY ALL""").pl()


def evaluate_labels(ws: Workspace) -> LabelScores:
    """Precision and recall of the current clusters (with the chain's joins) on the decisions."""
    if not ws.scalar("count persons", "SELECT count(*) FROM persons"):
        raise InputError("no clusters yet; run 'linkage match' first")
    labels = _labels(ws)
    missing = ws.scalar("decisions naming records gone", f"""
        SELECT count(*) FROM {effective_view(ws)} d WHERE d.decision IN ('match', 'not_match') AND (
            NOT EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_l AND r.record_id = d.record_id_l)
            OR NOT EXISTS (SELECT 1 FROM records r WHERE r.source = d.source_r AND r.record_id = d.record_id_r))""")
    if not labels.height:
        raise InputError("no decisions to evaluate against; import reviewed pairs with 'linkage review import FILE'")
    persons = ws.run("persons", "SELECT source, record_id, person_id FROM linked_persons").pl()
    joined = (labels.join(persons.rename({"source": "source_l", "record_id": "record_id_l", "person_id": "p_l"}),
                          on=["source_l", "record_id_l"], how="left")
                    .join(persons.rename({"source": "source_r", "record_id": "record_id_r", "person_id": "p_r"}),
                          on=["source_r", "record_id_r"], how="left")
                    .with_columns(together=pl.col("p_l").is_not_null() & (pl.col("p_l") == pl.col("p_r"))))

    def scores(frame: pl.DataFrame) -> dict:
        tp = frame.filter(pl.col("same") & pl.col("together")).height
        fp = frame.filter(~pl.col("same") & pl.col("together")).height
        fn = frame.filter(pl.col("same") & ~pl.col("together")).height
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        return {"match_labels": int(frame["same"].sum()), "not_match_labels": int((~frame["same"]).sum()),
                "true_positive": tp, "false_positive": fp, "false_negative": fn,
                "precision": round(p, 6), "recall": round(r, 6), "f1": round(_f1(p, r), 6)}

    overall = scores(joined)
    by_origin = {origin: scores(joined.filter(pl.col("origin") == origin))
                 for origin in sorted(joined["origin"].unique().to_list())}
    return LabelScores(overall["match_labels"], overall["not_match_labels"], int(missing), overall["true_positive"],
                       overall["false_positive"], overall["false_negative"], overall["precision"], overall["recall"],
                       overall["f1"], by_origin)


@dataclass
class ThresholdSuggestion:
    current: float
    suggested: float
    precision: float
    recall: float
    f1: float
    match_labels: int
    not_match_labels: int
    scored_anew: int             # labelled pairs not stored by the match, weighed with the stored model
    own_evidence_fails: int      # labelled pairs never linked at any threshold (own evidence says two people)
    curve: list[dict]


CURVE_AT = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def suggest_threshold(ws: Workspace, config: ModelConfig, minimum: int = MIN_LABELS) -> ThresholdSuggestion:
    """The threshold that maximizes F1 on the decisions, from each labelled pair's match weight."""
    current = _latest_threshold(ws)
    labels = _labels(ws)
    matches = int(labels["same"].sum()) if labels.height else 0
    others = labels.height - matches
    if matches < minimum or others < minimum:
        raise InputError(f"too few labels to suggest a threshold: {matches} 'match' and {others} 'not match' "
                         f"decisions; at least {minimum} of each are needed ({max(0, minimum - matches)} more "
                         f"'match', {max(0, minimum - others)} more 'not match'); review pairs with "
                         "'linkage review export' and 'linkage review import'")
    stored = _ordered(ws.run("stored weights", LINK_KEYS).pl())
    weighed = labels.join(stored, on=PAIR, how="left")
    anew = weighed.filter(pl.col("weight").is_null()).height
    # Every labelled pair weighed as the match weighs it: its total weight, and the weight it stands
    # on (its own evidence where its records say "two people"), which must be positive whatever the
    # threshold (match/run.py).
    scored = score_pairs(ws, config, weighed.select(PAIR))
    weight, stands = scored.weights.astype(np.float64), scored.stands.astype(np.float64)
    stored_weight = weighed["weight"].to_numpy().astype(np.float64)
    weight = np.where(np.isnan(stored_weight), weight, stored_weight)
    fails = stands < OWN_EVIDENCE_BITS
    same = weighed["same"].to_numpy().astype(bool)

    def at(w: float) -> tuple[float, float, float]:
        predicted = (weight >= w) & ~fails
        tp = int((predicted & same).sum())
        p = tp / int(predicted.sum()) if predicted.any() else 1.0
        r = tp / int(same.sum())
        return p, r, _f1(p, r)

    distinct = np.unique(weight)
    cuts = np.concatenate([[distinct[0] - 1.0], (distinct[1:] + distinct[:-1]) / 2, [distinct[-1] + 1.0]])
    f1s = np.array([at(w)[2] for w in cuts])
    best = np.nonzero(f1s == f1s.max())[0]
    # Of the cuts with the best F1, the one nearest the current threshold (a plateau has many).
    choice = float(cuts[best[np.argmin(np.abs(cuts[best] - _logit(current)))]])
    suggested = float(round(_probability(np.array([choice]))[0], 6))
    suggested = min(max(suggested, 1e-6), 1 - 1e-6)
    p, r, f = at(choice)
    curve = []
    for t in sorted(set(CURVE_AT) | {current, suggested}):
        cp, cr, cf = at(_logit(t))
        curve.append({"threshold": t, "precision": round(cp, 6), "recall": round(cr, 6), "f1": round(cf, 6)})
    return ThresholdSuggestion(current, suggested, round(p, 6), round(r, 6), round(f, 6), matches, others,
                               anew, int(fails.sum()), curve)

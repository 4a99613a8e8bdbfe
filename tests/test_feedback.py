"""Officers' answers through the CLI on the generator's data: `linkage feedback import` of CSV
(GB18030, reordered, rows deleted) and XLSX (saved by LibreOffice) files, bad rows reported by
file, row and column with the good rows stored, idempotent re-import, and the round trip: answers
filled from the truth, imported, chain and export again."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import polars as pl
import pytest

from conftest import SAMPLE_AS_OF, Cli, copy_workspace, office_convert, query

OUTCOME_ZH = {"confirmed": "已核实并处理", "not_same_person": "误报：不是同一人", "cannot_reach": "无法联系",
              "resolved": "已于某日解决（填写解决日期）"}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]], columns: list[str], encoding: str = "utf-8-sig") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def export(cli: Cli, out: Path, *args: str) -> dict:
    result = cli("export", "discrepancies", "--out", str(out), "--profile", "district_officer", *args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def import_(cli: Cli, *files: Path):
    return cli("feedback", "import", *(str(f) for f in files))


@pytest.fixture
def ws(sample_workspace, tmp_path) -> Cli:
    return copy_workspace(sample_workspace[0], tmp_path / "ws")


def biggest(out: Path, manifest: dict) -> Path:
    return out / max(manifest["files"], key=lambda f: (f["rows"], f["file"]))["file"]


def test_gb18030_reordered_columns_and_deleted_rows_are_read_and_a_reimport_changes_nothing(ws, tmp_path):
    out = tmp_path / "out"
    path = biggest(out, export(ws, out))
    rows = read_rows(path)
    assert len(rows) >= 4
    kept = rows[1:4]                                              # the first row and the rest deleted
    kept[0]["处理结果"], kept[1]["处理结果"] = OUTCOME_ZH["confirmed"], OUTCOME_ZH["cannot_reach"]
    kept[1]["备注"] = "电话无人接听"
    columns = ["处理结果", "问题编号", "备注", "人员编号", "说明", "额外一列"]   # reordered, an extra column
    returned = write_rows(tmp_path / "returned.csv", kept, columns, encoding="gb18030")
    result = import_(ws, returned)
    assert result.exit_code == 0, result.output
    assert "3 rows: 2 answers stored, 1 without an answer, 0 bad" in result.stdout
    stored = query(ws, "SELECT flag_key, outcome, comment, answered_by, file_name, row_no FROM feedback ORDER BY row_no")
    assert [(r[0], r[1], r[2], r[5]) for r in stored] == [
        (kept[0]["问题编号"], "confirmed", None, 2), (kept[1]["问题编号"], "cannot_reach", "电话无人接听", 3)]
    assert all(r[3] and r[4] == "returned.csv" for r in stored)   # who: the OS user
    again = import_(ws, returned)
    assert again.exit_code == 0 and "skipped, imported before" in again.stdout
    assert query(ws, "SELECT count(*) FROM feedback")[0][0] == 2
    # the next file shows the answers: an unsettled one stays, with its answer in its columns
    out2 = tmp_path / "out2"
    manifest = export(ws, out2)
    assert manifest["not_sent_again"] == 1
    again_rows = {r["问题编号"]: r for p in out2.glob("*.csv") for r in read_rows(p)}
    assert kept[0]["问题编号"] not in again_rows
    shown = again_rows[kept[1]["问题编号"]]
    assert shown["处理结果"] == "无法联系" and shown["备注"] == "电话无人接听"
    assert shown["上次答复"].startswith("无法联系；") and shown["答复人"]


def test_an_english_header_and_an_answered_by_column(ws, tmp_path):
    out = tmp_path / "out"
    path = biggest(out, export(ws, out))
    row, other = read_rows(path)[:2]
    returned = write_rows(tmp_path / "en.csv", [
        {"flag_key": row["问题编号"], "outcome": "False alarm, record exists elsewhere", "answered_by": "officer 7",
         "comment": "in Hebei"},
        {"flag_key": other["问题编号"], "outcome": "handled"}], ["flag_key", "outcome", "answered_by", "comment"],
        encoding="utf-8")
    result = import_(ws, returned)
    assert result.exit_code == 2
    assert ("Error: en.csv, row 3, column outcome: not one of the outcomes: confirmed and handled | false alarm, "
            "not the same person |") in result.stderr
    assert query(ws, "SELECT outcome, answered_by, district FROM feedback") == [
        ("record_elsewhere", "officer 7", path.stem)]


def test_bad_rows_are_reported_by_file_row_and_column_and_the_good_ones_stored(ws, tmp_path):
    out = tmp_path / "out"
    path = biggest(out, export(ws, out))
    rows = read_rows(path)[:5]
    rows[0]["处理结果"] = OUTCOME_ZH["confirmed"]
    rows[1]["处理结果"] = "已经处理好了吧"                               # not an outcome
    rows[2]["处理结果"], rows[2]["问题编号"] = OUTCOME_ZH["confirmed"], "P99999999|MISSING_STAGE|arrival"
    rows[3]["处理结果"], rows[3]["解决日期"] = OUTCOME_ZH["resolved"], "2026-02-30"
    rows[4]["处理结果"], rows[4]["解决日期"] = OUTCOME_ZH["resolved"], "2026年3月30日"
    returned = write_rows(tmp_path / "bad.csv", rows, list(rows[0]))
    result = import_(ws, returned)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors[:3] == [
        "Error: bad.csv, row 3, column 处理结果: not one of the outcomes: 已核实并处理 | 误报：不是同一人 | "
        "误报：记录在其他系统 | 已于某日解决（填写解决日期） | 无法联系 | 其他（见备注）",
        "Error: bad.csv, row 4, column 问题编号: no such flag in this workspace (the flag key was changed, or the file "
        "comes from another workspace)",
        "Error: bad.csv, row 5, column 解决日期: not a date; write it as 2026-03-31"]
    assert "3 problem(s) in the files; the good rows (2 answers) are stored" in errors[3]
    assert "已经处理好了吧" not in result.stderr and "P99999999" not in result.stderr and "2026-02-30" not in result.stderr
    stored = query(ws, "SELECT row_no, outcome, resolved_on::VARCHAR FROM feedback ORDER BY row_no")
    assert stored == [(2, "confirmed", None), (6, "resolved", "2026-03-30")]


def test_a_file_without_the_answer_columns_is_reported(ws, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    result = import_(ws, path, tmp_path / "missing.csv")
    assert result.exit_code == 2
    assert "Error: other.csv, row 1: no column 问题编号 (flag_key)" in result.stderr
    assert "missing.csv: file not found" in result.stderr


def test_an_xlsx_edited_and_saved_by_libreoffice(ws, tmp_path, soffice):
    from openpyxl import load_workbook

    out = tmp_path / "out"
    path = biggest(out, export(ws, out, "--format", "xlsx"))
    book = load_workbook(path)
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    outcome, comment, key = header.index("处理结果") + 1, header.index("备注") + 1, header.index("问题编号") + 1
    sheet.cell(2, outcome, OUTCOME_ZH["not_same_person"])
    sheet.cell(3, outcome, OUTCOME_ZH["confirmed"])
    sheet.cell(3, comment, "已移交社区")
    sheet.delete_rows(4, 1)
    answered = [sheet.cell(2, key).value, sheet.cell(3, key).value]
    edited = tmp_path / "edited.xlsx"
    book.save(edited)
    ods = office_convert(soffice, edited, "ods", tmp_path / "ods", tmp_path)          # saved by LibreOffice ...
    back = office_convert(soffice, ods, "xlsx:Calc MS Excel 2007 XML", tmp_path / "back", tmp_path)   # ... and back
    result = import_(ws, back)
    assert result.exit_code == 0, result.output
    stored = query(ws, "SELECT flag_key, outcome, comment FROM feedback ORDER BY row_no")
    assert stored == [(answered[0], "not_same_person", None), (answered[1], "confirmed", "已移交社区")]
    decisions = query(ws, "SELECT decision, origin, note FROM link_decisions")
    assert decisions and {d[:3] for d in decisions} == {("not_match", "feedback", answered[0])}


# ---- the round trip on the generator's data ---------------------------------------------------------

def truth_of(cli: Cli, data: Path) -> tuple[dict[str, str], set[tuple[str, str, str]]]:
    """Our person -> the truth person most of its records belong to; the true flags."""
    entities = pl.read_csv(data / "truth_entities.csv", infer_schema=False)
    records = query(cli, "SELECT source, record_id, person_id FROM linked_persons")
    ours = pl.DataFrame(records, schema=["source", "record_id", "ours"], orient="row")
    votes = ours.join(entities, on=["source", "record_id"]).group_by("ours", "person_id").len()
    owner = votes.sort(["len", "person_id"], descending=[True, False]).unique("ours", keep="first", maintain_order=True)
    flags = pl.read_csv(data / "truth_flags.csv", infer_schema=False).fill_null("")
    return dict(zip(owner["ours"], owner["person_id"])), set(zip(flags["person_id"], flags["flag"], flags["stage"]))


def sent(out: Path) -> list[dict[str, str]]:
    return [row for path in sorted(out.glob("*.csv")) for row in read_rows(path)]


def is_true(row: dict[str, str], owner: dict[str, str], truth: set) -> bool:
    stage = row["问题编号"].split("|")[2]
    return (owner.get(row["人员编号"]), row["问题代码"], stage) in truth


def test_round_trip_answers_from_the_truth_take_false_alarms_out_and_raise_precision(sample_workspace, tmp_path):
    cli = copy_workspace(sample_workspace[0], tmp_path / "ws")
    owner, truth = truth_of(cli, sample_workspace[1])
    before = tmp_path / "before"
    export(cli, before)
    first = sent(before)
    verdicts = [is_true(row, owner, truth) for row in first]
    precision_before = sum(verdicts) / len(verdicts)
    assert 0 < sum(verdicts) < len(verdicts), "the sample should give true and false flags"
    returned = tmp_path / "returned"
    returned.mkdir()
    by_file: dict[str, list[dict[str, str]]] = {}
    for path in sorted(before.glob("*.csv")):
        rows = read_rows(path)
        for row in rows:
            row["处理结果"] = OUTCOME_ZH["confirmed"] if is_true(row, owner, truth) else OUTCOME_ZH["not_same_person"]
        by_file[path.name] = rows
        write_rows(returned / path.name, rows, list(rows[0]))
    result = import_(cli, *sorted(returned.glob("*.csv")))
    assert result.exit_code == 0, result.output
    stored = query(cli, "SELECT flag_key, outcome FROM feedback")
    assert len(stored) == len(first)                                    # every answer accounted for: stored
    false_keys = {row["问题编号"] for row, ok in zip(first, verdicts) if not ok}
    assert {k for k, o in stored if o == "not_same_person"} == false_keys
    decisions = query(cli, "SELECT DISTINCT note FROM link_decisions WHERE origin = 'feedback' "
                           "AND decision = 'not_match'")
    with_records = {row["问题编号"] for row in first if row["问题编号"] in false_keys and row["依据记录"]}
    assert {d[0] for d in decisions} == with_records          # a flag resting on no record separates none
    assert f"{len(false_keys - with_records)} 'not the same person' answers rest on no record" in result.stdout \
        or false_keys == with_records
    status = json.loads(cli("status", "--json").stdout)["feedback"]
    assert sum(sum(d["answers"].values()) for d in status["districts"].values()) == len(first)
    assert sum(d["unanswered"] for d in status["districts"].values()) == 0

    # a corrected record: the anchor of one answered MISSING_STAGE flag moves by a minute
    changed = next(row for row in first if row["问题代码"] == "MISSING_STAGE" and is_true(row, owner, truth))
    anchor = changed["依据记录"].split("；")[0].split(" ")[-1]
    con_sql = f"UPDATE events SET time = time + INTERVAL 1 MINUTE WHERE record_id = '{anchor}'"
    import duckdb
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    con.execute(con_sql)
    con.close()

    assert cli("chain", "--as-of", SAMPLE_AS_OF).exit_code == 0
    after = tmp_path / "after"
    manifest = export(cli, after)
    second = sent(after)
    keys = {row["问题编号"] for row in second}
    answered = {k for k, _ in stored}
    again = answered & keys
    assert again == {changed["问题编号"]}                               # only the flag whose evidence changed
    row = next(r for r in second if r["问题编号"] == changed["问题编号"])
    assert row["上次答复"].startswith("已核实并处理") and row["处理结果"] == ""   # shown, not taken as the answer
    assert not keys & false_keys                                        # the false alarms are not sent again
    assert manifest["not_sent_again"] == len(first) - 1
    if second:
        precision_after = sum(is_true(r, owner, truth) for r in second) / len(second)
        assert precision_after > precision_before

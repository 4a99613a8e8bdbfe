"""District files an officer can act on, through the CLI on the generator's data: every word in
the profile's language (zh and en), IDENTITY_CONFLICT naming the field and masked values, a
missing translation key, byte-identical exports, the XLSX read back and printed by LibreOffice."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CONFIGS, SAMPLE_AS_OF, Cli, copy_workspace, error_line, office_convert, query

ENGLISH_WORDS = re.compile(r"\b(recorded|due|after|before|allowed|minimum|check|records?|stage|destination|"
                           r"arrival|registration|transfer|quarantine|handover|health|immigration|police|"
                           r"traveler|confidence|China|yes|no)\b", re.IGNORECASE)
ZH_STAGES = {"入境", "信息登记", "健康检查", "转运", "集中隔离开始", "解除隔离", "社区移交", ""}
ZH_FIELDS = ("身份证号", "护照号", "出生日期", "通行证号")


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def all_rows(folder: Path) -> list[dict[str, str]]:
    return [row for path in sorted(folder.glob("*.csv")) for row in read_rows(path)]


@pytest.fixture(scope="module")
def officer(sample_workspace, tmp_path_factory) -> Cli:
    """A copy of the sample workspace (not changed by these tests)."""
    return copy_workspace(sample_workspace[0], tmp_path_factory.mktemp("officer") / "ws")


@pytest.fixture(scope="module")
def zh_files(officer, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zh") / "out"
    result = officer("export", "discrepancies", "--out", str(out), "--profile", "district_officer")
    assert result.exit_code == 0, result.output
    return out


def test_zh_files_have_no_english_reason_and_chinese_stages_codes_and_countries(zh_files):
    rows = all_rows(zh_files)
    assert len(rows) >= 20
    for row in rows:
        for column in ("说明", "环节", "问题类型", "状态", "严重程度", "需核实", "国籍", "依据记录"):
            assert not ENGLISH_WORDS.search(row[column]), (column, row["问题编号"])
        assert row["环节"] in ZH_STAGES
        assert not re.search(r"[A-Za-z]", row["国籍"]), row["问题编号"]   # 中国, 俄罗斯, 美国 ...
        assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", row["首次发现"])
        assert not row["电话"].startswith(("+", "'"))                    # as dialled, no apostrophe
    codes = {row["问题代码"]: row["问题类型"] for row in rows}
    assert codes["MISSING_STAGE"] == "缺少环节" and codes["IDENTITY_CONFLICT"] == "身份信息矛盾"
    assert {"中国"} <= {row["国籍"] for row in rows}
    assert any(row["需核实"].startswith("是") for row in rows) and any(row["需核实"] == "否" for row in rows)


def test_identity_conflict_names_the_field_and_the_masked_values(officer, zh_files):
    conflicts = [row for row in all_rows(zh_files) if row["问题代码"] == "IDENTITY_CONFLICT"]
    assert conflicts
    by_id = [row for row in conflicts if "身份证号不一致" in row["说明"]]
    assert by_id, [row["说明"] for row in conflicts]
    for row in by_id:        # district_officer shows the last 4 characters of a resident ID
        found = re.search(r"身份证号不一致：(\*+[0-9X]{4}) 与 (\*+[0-9X]{4})", row["说明"])
        assert found and found.group(1) != found.group(2), row["说明"]
        assert row["需核实"] == "是：身份信息矛盾"
    for row in conflicts:
        assert any(field in row["说明"] for field in ZH_FIELDS) or "矛盾的身份信息" in row["说明"]
    text = "\n".join(p.read_text(encoding="utf-8-sig") for p in zh_files.glob("*.csv"))
    ids = [r[0] for r in query(officer, "SELECT DISTINCT id_number FROM records WHERE id_number IS NOT NULL")]
    assert not [i for i in ids if i in text]                       # never a whole resident ID


def test_restricted_profile_withholds_the_birth_dates_it_does_not_show(officer, tmp_path):
    out = tmp_path / "out"
    assert officer("export", "discrepancies", "--out", str(out)).exit_code == 0
    conflicts = [row for row in all_rows(out) if row["问题代码"] == "IDENTITY_CONFLICT"]
    dob = [row["说明"] for row in conflicts if "出生日期" in row["说明"]]
    assert dob and all(not re.search(r"\d{4}-\d\d-\d\d", text) for text in dob)


def test_en_profile_is_english(officer, tmp_path):
    out = tmp_path / "out"
    assert officer("export", "discrepancies", "--out", str(out), "--profile", "analyst").exit_code == 0
    rows = all_rows(out)
    assert list(rows[0])[-6:] == ["previous_answer", "outcome", "resolved_on", "comment", "answered_by", "flag_key"]
    for row in rows:
        assert not re.search(r"[\u4e00-\u9fff]", row["stage"] + row["status"] + row["nationality"] + row["review"])
        reason = re.sub(r"[\u4e00-\u9fff]+区", "", row["reason"])     # district names are data
        assert not re.search(r"[\u4e00-\u9fff]", reason), row["reason"]
    missing = [r["reason"] for r in rows if r["code"] == "MISSING_STAGE"]
    assert missing and all("recorded" in text for text in missing)
    assert "China" in {r["nationality"] for r in rows}


def test_a_missing_translation_key_is_exit_2_naming_the_file_and_key(officer, tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / "i18n").mkdir()
    shipped = (Path(__file__).parents[1] / "src" / "linkage" / "locales" / "zh.toml").read_text(encoding="utf-8")
    broken = re.sub(r"(?m)^gap_exceeded = .*\n", "", shipped)
    assert broken != shipped
    (configs / "i18n" / "zh.toml").write_text(broken, encoding="utf-8")
    out = tmp_path / "out"
    result = Cli(officer.workspace, configs)("export", "discrepancies", "--out", str(out))
    assert result.exit_code == 2
    assert "i18n/zh.toml: key 'reason.gap_exceeded' missing" in error_line(result)
    assert not out.exists()


def test_the_same_workspace_exports_the_same_bytes(sample_workspace, tmp_path):
    """Two copies of one workspace, each chained again and exported as CSV and XLSX: same bytes."""
    digests = []
    for copy in ("a", "b"):
        cli = copy_workspace(sample_workspace[0], tmp_path / copy / "ws")
        assert cli("chain", "--as-of", SAMPLE_AS_OF).exit_code == 0
        files = {}
        for fmt in ("csv", "xlsx"):
            out = tmp_path / copy / fmt
            assert cli("export", "discrepancies", "--out", str(out), "--format", fmt,
                       "--profile", "district_officer").exit_code == 0
            files.update({f"{fmt}/{p.name}": p.read_bytes() for p in sorted(out.iterdir()) if p.suffix == f".{fmt}"})
            files[f"{fmt}/manifest files"] = json.dumps(
                json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]).encode()
        digests.append(files)
    assert len(digests[0]) > 10 and digests[0] == digests[1]
    # The same workspace exported again later: every byte the same, the manifest included.
    again = tmp_path / "b" / "again"
    time.sleep(1.1)
    assert cli("export", "discrepancies", "--out", str(again), "--format", "csv",
               "--profile", "district_officer").exit_code == 0
    first = tmp_path / "b" / "csv"
    assert {p.name: p.read_bytes() for p in first.iterdir()} == {p.name: p.read_bytes() for p in again.iterdir()}


@pytest.fixture(scope="module")
def xlsx_files(officer, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("xlsx") / "out"
    result = officer("export", "discrepancies", "--out", str(out), "--format", "xlsx", "--profile", "district_officer")
    assert result.exit_code == 0, result.output
    return out


def biggest(folder: Path) -> Path:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return folder / max(manifest["files"], key=lambda f: (f["rows"], f["file"]))["file"]


def test_xlsx_reads_back_formatted_and_all_text(xlsx_files, zh_files):
    from openpyxl import load_workbook

    path = biggest(xlsx_files)
    book = load_workbook(path)
    sheet = book.worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.paperSize == 9
    assert sheet.sheet_properties.pageSetUpPr.fitToPage and sheet.page_setup.fitToWidth in (None, 1)  # 1: the default
    assert sheet.page_setup.fitToHeight == 0
    rows = list(sheet.iter_rows())
    header = [c.value for c in rows[0]]
    assert header[0] == "人员编号" and header[-1] == "问题编号"
    cells = [c for row in rows for c in row if c.value is not None]
    assert all(c.data_type == "s" and isinstance(c.value, str) for c in cells)
    assert all(c.number_format == "@" for row in rows[1:] for c in row)
    assert all(c.alignment.wrap_text for c in rows[1])
    assert sheet.column_dimensions["G"].width > 30                      # the reason
    phone = header.index("电话")
    assert any(re.fullmatch(r"1\d\d \d{4} \d{4}", str(row[phone].value or "")) for row in rows[1:])
    [validation] = sheet.data_validations.dataValidation
    outcome = header.index("处理结果")
    column = rows[0][outcome].column_letter
    assert validation.type == "list" and str(validation.sqref) == f"{column}2:{column}{len(rows)}"
    lists = book.worksheets[1]
    assert lists.sheet_state == "hidden" and validation.formula1 == f"'{lists.title}'!$A$1:$A$6"
    assert [r[0].value for r in lists.iter_rows()][1] == "误报：不是同一人"
    # the same flags as the CSV of that district, in the same order
    keys = [row[-1].value for row in rows[1:]]
    assert keys == [r["问题编号"] for r in read_rows(zh_files / f"{path.stem}.csv")]


def test_an_xlsx_export_replaces_the_csv_files_of_the_one_before(officer, tmp_path):
    out = tmp_path / "out"
    assert officer("export", "discrepancies", "--out", str(out)).exit_code == 0
    assert officer("export", "discrepancies", "--out", str(out), "--format", "xlsx").exit_code == 0
    assert {p.suffix for p in out.iterdir()} == {".json", ".xlsx"}
    assert officer("export", "discrepancies", "--out", str(out)).exit_code == 0
    assert {p.suffix for p in out.iterdir()} == {".json", ".csv"}
    one = sorted(out.glob("*.csv"))[0]
    assert officer("export", "discrepancies", "--out", str(out), "--district", one.stem, "--format", "xlsx").exit_code == 0
    assert (out / f"{one.stem}.xlsx").exists() and not one.exists()


def test_libreoffice_prints_one_flag_per_row_on_landscape_pages_with_chinese_intact(xlsx_files, soffice, tmp_path):
    source = biggest(xlsx_files)
    pdf = office_convert(soffice, source, "pdf", tmp_path / "pdf", tmp_path)
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert width > height                                               # landscape
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    from openpyxl import load_workbook
    sheet = load_workbook(source).worksheets[0]
    rows = [[c.value or "" for c in row] for row in sheet.iter_rows(min_row=2)]
    assert pages <= max(1, len(rows) // 5)                              # not five pages a row
    lines = text.splitlines()
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    code, status = header.index("问题代码"), header.index("状态")
    starts = [line.split() for line in lines if re.match(r"\s*P\d{8}\s", line)]
    assert len(starts) == len(rows)                                     # each flag starts one printed line ...
    for words, row in zip(starts, rows):                                # ... with its person, status and code
        assert words[0] == row[0] and words[1] == row[status] and row[code] in words, (words, row[-1])
    assert "人员编号" in text and "缺少环节" in text and "问题编号" in text
    assert "\ufffd" not in text

"""Exports of flags through the CLI on a real workspace: per-district discrepancy CSVs (profiles,
masking, BOM, formula safety, order, manifest, atomicity) and the machine-readable flags CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from conftest import CONFIGS, error_line

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
DISCREPANCY_COLUMNS_ZH = ["人员编号", "状态", "严重程度", "问题类型", "问题代码", "环节", "说明", "应完成时间", "姓名",
                          "性别", "出生日期", "国籍", "电话", "护照号", "身份证号", "通行证号", "需核实", "关联置信度",
                          "首次发现", "依据记录", "上次答复", "处理结果", "解决日期", "备注", "答复人", "问题编号"]
ANSWER_COLUMNS_EN = ["previous_answer", "outcome", "resolved_on", "comment", "answered_by", "flag_key"]

# (person_id, code, stage, status, severity, district, confidence, review, reason, due, first_seen_run)
FLAGS = [
    ("P001", "MISSING_STAGE", "handover", "new", "high", "朝阳区", 0.99, False,
     "解除隔离后24小时内未办理社区移交登记", "2026-03-30 10:00", 2),
    ("P002", "EARLY_RELEASE", "quarantine_end", "open", "critical", "朝阳区", 0.97, False,
     "隔离未满14天即解除 =SUM(A1)", None, 1),
    ("P003", "GAP_EXCEEDED", "registration", "new", "low", "朝阳区", 0.90, True, "+1", "2026-03-29 08:00", 2),
    ("P004", "GAP_EXCEEDED", "transfer", "new", "high", "朝阳区", 0.99, False, "-2", "2026-03-29 09:00", 2),
    ("P005", "DISTRICT_MISMATCH", "handover", "new", "medium", "海淀区", 0.98, False, "@x", None, 2),
    ("P006", "IDENTITY_CONFLICT", None, "open", "high", None, 1.0, False, "\tx", None, 1),
    ("P007", "MISSING_STAGE", "registration", "resolved", "high", "朝阳区", 0.99, False, "resolved one", None, 1),
    ("P008", "OUT_OF_ORDER", "transfer", "new", "medium", "海淀区", 0.99, False, "\rx", None, 2),
]

# (source, record_id, person_id, full_name, local_name, dob, sex, nationality, passport, id_number, permit_no, phone)
RECORDS = [
    ("health", "H001", "P001", "ZHANG XIAOMING", None, "1985-03-07", "M", "CHN", "E12345678", None, None,
     "+8613800138000"),
    ("police", "GA001", "P001", "ZHANG XIAOMING", "张小明", "1985-03-07", "M", "CHN", None, "110105198503070019", None,
     "+8613800138000"),
    ("police", "GA002", "P001", "ZHANG XIAOMING", "张小明", "1985-03-07", "M", "CHN", None, None, "C98765432",
     "+8613900000000"),
    ("health", "H002", "P002", "=SUM(A1)", None, "1990-02-01", "F", "USA", "X12", None, None, "-5"),
    ("health", "H003", "P003", "+1 NAME", None, None, None, None, None, None, None, None),
    ("health", "H004", "P004", "-NAME", None, None, None, None, None, None, None, None),
    ("health", "H005", "P005", "@NAME", None, None, None, None, None, None, None, None),
    ("health", "H006", "P006", "\tNAME", None, None, None, None, None, None, None, None),
    ("health", "H008", "P008", "\rNAME", None, None, None, None, None, None, None, None),
]


def sql(cli, *statements: tuple[str, list] | str) -> None:
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    try:
        for statement in statements:
            if isinstance(statement, str):
                con.execute(statement)
            else:
                con.executemany(*statement)
    finally:
        con.close()


def add_chain_runs(cli, flags=FLAGS) -> None:
    sql(cli,
        "INSERT INTO chain_runs (run_id, as_of, started_at, finished_at) VALUES "
        "(1, '2026-03-30 00:00', '2026-03-30 01:00', '2026-03-30 01:05'), "
        "(2, '2026-03-31 00:00', '2026-03-31 01:00', '2026-03-31 01:05'), "
        "(3, '2026-04-01 00:00', '2026-04-01 01:00', NULL)",  # still running: not the current run
        ("INSERT INTO flags (run_id, flag_key, person_id, code, stage, status, severity, district, confidence, "
         "review, reason, evidence, first_seen_run, due) VALUES (2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
         [[f"{f[0]}|{f[1]}|{f[2] or ''}", *f[:9],
           json.dumps([{"record": "health:H001", "stage": "quarantine_end", "time": "2026-03-29 09:00"},
                       "police:GA001"]), f[10], f[9]] for f in flags]),
        "INSERT INTO flags (run_id, flag_key, person_id, code, stage, status, severity, district, confidence, review, "
        "reason, evidence, first_seen_run) VALUES "
        "(1, 'P009|GAP_EXCEEDED|transfer', 'P009', 'GAP_EXCEEDED', 'transfer', 'new', 'high', '朝阳区', 1, false, "
        "'an old run', '[]', 1), "
        "(3, 'P010|GAP_EXCEEDED|transfer', 'P010', 'GAP_EXCEEDED', 'transfer', 'new', 'high', '朝阳区', 1, false, "
        "'an unfinished run', '[]', 3)")


@pytest.fixture
def flagged(cli):
    sql(cli,
        ("INSERT INTO records (source, record_id, batch_id, row_no, full_name, local_name, dob, sex, nationality, "
         "passport, id_number, permit_no, phone) VALUES (?, ?, 1, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
         [[r[0], r[1], *r[3:]] for r in RECORDS]),
        ("INSERT INTO persons (source, record_id, person_id, run_id) VALUES (?, ?, ?, 1)",
         [[r[0], r[1], r[2]] for r in RECORDS]))
    add_chain_runs(cli)
    return cli


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def read_dicts(path: Path) -> list[dict[str, str]]:
    rows = read_csv(path)
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def person_row(path: Path, person_id: str, key: str = "人员编号") -> dict[str, str]:
    return next(r for r in read_dicts(path) if r[key] == person_id)


def all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def export(cli, out: Path, *args: str):
    result = cli("export", "discrepancies", "--out", str(out), *args)
    assert result.exit_code == 0, result.output
    return result


# ---- export discrepancies --------------------------------------------------------------------

def test_one_file_per_district_and_a_manifest_that_matches_them(flagged, tmp_path):
    out = tmp_path / "out"
    result = export(flagged, out)
    assert "Wrote 7 flags of chain run 2" in result.stdout
    assert all_files(out) == ["manifest.json", "unassigned.csv", "朝阳区.csv", "海淀区.csv"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == 2 and manifest["as_of"] == "2026-03-31T00:00:00"
    assert manifest["profile"] == "restricted" and manifest["rows"] == 7       # the default profile
    datetime.fromisoformat(manifest["generated_at"])
    assert manifest["counts_by_code"] == {"DISTRICT_MISMATCH": 1, "EARLY_RELEASE": 1, "GAP_EXCEEDED": 2,
                                          "IDENTITY_CONFLICT": 1, "MISSING_STAGE": 1, "OUT_OF_ORDER": 1}
    by_file = {f["file"]: f for f in manifest["files"]}
    assert {name: (f["district"], f["rows"]) for name, f in by_file.items()} == {
        "朝阳区.csv": ("朝阳区", 4), "海淀区.csv": ("海淀区", 2), "unassigned.csv": (None, 1)}
    for name, entry in by_file.items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert len(read_csv(out / name)) == entry["rows"] + 1
    # resolved flags, older runs and an unfinished run are not discrepancies
    everything = "".join((out / name).read_text(encoding="utf-8-sig") for name in by_file)
    assert "P007" not in everything and "P009" not in everything and "P010" not in everything


def test_bom_crlf_chinese_headers_and_text_round_trip(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out, "--profile", "district_officer")
    data = (out / "朝阳区.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    rows = read_csv(out / "朝阳区.csv")
    assert rows[0] == DISCREPANCY_COLUMNS_ZH
    p001 = person_row(out / "朝阳区.csv", "P001")
    assert p001["说明"] == "解除隔离后24小时内未办理社区移交登记"
    assert (p001["状态"], p001["严重程度"], p001["问题类型"], p001["问题代码"], p001["环节"]) == (
        "新增", "高", "缺少环节", "MISSING_STAGE", "社区移交")
    assert (p001["姓名"], p001["性别"], p001["出生日期"], p001["国籍"]) == ("张小明", "男", "1985-03-07", "中国")
    assert p001["应完成时间"] == "2026年3月30日 10:00" and p001["首次发现"] == "2026年3月31日 00:00"
    assert p001["需核实"] == "否" and p001["关联置信度"] == "0.99"
    assert p001["依据记录"] == "卫生健康 H001 解除隔离 2026年3月29日 09:00；公安 GA001"
    assert p001["问题编号"] == "P001|MISSING_STAGE|handover" and p001["处理结果"] == p001["上次答复"] == ""


def test_no_cell_starts_a_formula(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out, "--profile", "district_officer")
    cells = [cell for name in ("朝阳区.csv", "海淀区.csv", "unassigned.csv") for row in read_csv(out / name)
             for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_LEADS)]
    rows = {r["人员编号"]: r for name in ("朝阳区.csv", "海淀区.csv", "unassigned.csv")
            for r in read_dicts(out / name)}
    assert rows["P002"]["姓名"] == "'=SUM(A1)" and rows["P002"]["电话"] == "'-5"
    assert rows["P002"]["说明"] == "隔离未满14天即解除 =SUM(A1)"     # not at the start: left alone
    # (flags whose timeline the run does not hold keep the chain's text; an identity conflict is rebuilt)
    assert [rows[p]["说明"] for p in ("P003", "P004", "P005", "P008")] == ["'+1", "'-2", "'@x", "'\rx"]
    assert [rows[p]["姓名"] for p in ("P003", "P004", "P005", "P006", "P008")] == [
        "'+1 NAME", "'-NAME", "'@NAME", "'\tNAME", "'\rNAME"]
    assert rows["P001"]["电话"] == "138 0013 8000"   # as dialled in China: no '+', so no apostrophe either


def test_district_officer_sees_name_and_phone_and_last_4_of_documents(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out, "--profile", "district_officer")
    p001 = person_row(out / "朝阳区.csv", "P001")
    assert p001["护照号"] == "*****5678" and p001["身份证号"] == "**************0019"
    assert p001["通行证号"] == "*****5432"
    assert p001["电话"] == "138 0013 8000"       # the most frequent phone of the person's records
    p002 = person_row(out / "朝阳区.csv", "P002")
    assert p002["护照号"] == "***"                 # 4 or fewer characters: nothing shown
    text = (out / "朝阳区.csv").read_text(encoding="utf-8-sig")
    assert "E12345678" not in text and "110105198503070019" not in text and "C98765432" not in text


def test_analyst_profile_english_headers_and_no_names(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out, "--profile", "analyst")
    rows = read_dicts(out / "朝阳区.csv")
    assert list(rows[0]) == ["person_id", "code", "stage", "status", "severity", "district", "confidence", "review",
                             "reason", "due", "first_seen", "sex", "nationality", "phone", "passport", "id_number",
                             "evidence", *ANSWER_COLUMNS_EN]
    p001 = person_row(out / "朝阳区.csv", "P001", "person_id")
    assert (p001["status"], p001["severity"], p001["stage"], p001["review"]) == ("new", "high", "handover", "no")
    assert p001["phone"] == "*********8000" and p001["passport"] == "*****5678"
    assert p001["id_number"] == "**************0019" and p001["nationality"] == "China"
    text = (out / "朝阳区.csv").read_text(encoding="utf-8-sig")
    assert "张小明" not in text and "ZHANG" not in text and "1985-03-07" not in text and "13800138000" not in text
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["profile"] == "analyst"


def test_person_fields_are_hidden_unless_a_profile_says_otherwise(flagged, tmp_path):
    (flagged.config_dir / "export.toml").write_text(
        'default_profile = "minimal"\n[profiles.minimal]\nlanguage = "en"\n'
        'columns = ["person_id", "name", "dob", "passport", "phone"]\n'
        '[profiles.minimal.mask]\npassport = "last4"\nphone = "hidden"\n', encoding="utf-8")
    out = tmp_path / "out"
    export(flagged, out)
    p001 = person_row(out / "朝阳区.csv", "P001", "person_id")
    assert p001 == {"person_id": "P001", "name": "", "dob": "", "passport": "*****5678", "phone": "",
                    "previous_answer": "", "outcome": "", "resolved_on": "", "comment": "", "answered_by": "",
                    "flag_key": "P001|MISSING_STAGE|handover"}


def test_new_before_open_then_severity_then_due(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out)
    order = [(r["人员编号"], r["状态"], r["严重程度"]) for r in read_dicts(out / "朝阳区.csv")]
    assert order == [("P004", "新增", "高"), ("P001", "新增", "高"), ("P003", "新增", "低"), ("P002", "未解决", "紧急")]


def test_district_option_writes_that_file_only(flagged, tmp_path):
    out = tmp_path / "out"
    export(flagged, out, "--district", "海淀区")
    assert all_files(out) == ["manifest.json", "海淀区.csv"]
    assert [r["人员编号"] for r in read_dicts(out / "海淀区.csv")] == ["P005", "P008"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["district"] == "海淀区" and [f["file"] for f in manifest["files"]] == ["海淀区.csv"]

    export(flagged, out, "--district", "unassigned")
    assert [r["人员编号"] for r in read_dicts(out / "unassigned.csv")] == ["P006"]

    empty = export(flagged, tmp_path / "empty", "--district", "西城区", "--profile", "district_officer")
    assert "No current flags for district 西城区" in empty.stdout and "朝阳区, 海淀区, unassigned" in empty.stdout
    assert read_csv(tmp_path / "empty" / "西城区.csv") == [DISCREPANCY_COLUMNS_ZH]


def test_district_names_become_safe_file_names(cli, tmp_path):
    from linkage.export import district_file_names, safe_file_stem

    assert safe_file_stem("朝阳区") == "朝阳区"
    assert safe_file_stem("../../etc/passwd") == "_.._etc_passwd"
    assert safe_file_stem("a\\b\x00c\nd\u202e") == "a_bcd"
    assert safe_file_stem("..") == "district" and safe_file_stem("CON") == "_CON"
    assert safe_file_stem(None) == "unassigned"
    assert len(safe_file_stem("区" * 200).encode("utf-8")) <= 150
    assert district_file_names(["a/b", "a_b", None, "unassigned"]) == {
        "a/b": "a_b.csv", "a_b": "a_b_2.csv", None: "unassigned.csv", "unassigned": "unassigned_2.csv"}

    add_chain_runs(cli, [("P1", "GAP_EXCEEDED", "transfer", "new", "high", "../x", 1.0, False, "r", None, 2)])
    out = tmp_path / "out"
    export(cli, out)
    assert all_files(out) == ["_x.csv", "manifest.json"] and not (tmp_path / "x.csv").exists()


def test_shipped_profiles_equal_the_built_in_ones():
    from linkage.config import ExportConfig, load_export_config

    config, path = load_export_config(CONFIGS)
    assert path == CONFIGS / "export.toml" and config == ExportConfig()


# ---- errors: exit 2, one line, nothing left behind -------------------------------------------

def test_unknown_profile_is_an_error_naming_the_profiles(flagged, tmp_path):
    result = flagged("export", "discrepancies", "--out", str(tmp_path / "out"), "--profile", "nope")
    assert result.exit_code == 2
    assert error_line(result) == "Error: unknown export profile 'nope'; profiles: analyst, district_officer, restricted"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("toml", "expected"), [
    ('[profiles.x]\ncolumns = ["person_id", "salary"]\n', "key 'profiles.x.columns': unknown column 'salary'"),
    ('[profiles.x]\ncolumns = ["phone"]\nmask = { phone = "full" }\n',
     "key 'profiles.x.mask.phone': unknown mask 'full'; valid masks: keep, last1 ... last9"),
    ('[profiles.x]\nlanguage = "fr"\ncolumns = ["phone"]\n', "key 'profiles.x.language' must be one of"),
    ('default_profile = "x"\n[profiles.x]\ncolumns = ["phone"]\ncolour = 1\n',
     "key 'profiles.x': unknown key 'colour'; valid keys: language, columns, mask, district"),
    ('[profiles.x]\ncolumns = ["phone"]\n', "key 'default_profile': 'restricted' is not a profile; profiles: x"),
])
def test_bad_export_config_names_the_file_and_key(flagged, tmp_path, toml, expected):
    path = flagged.config_dir / "export.toml"
    path.write_text(toml, encoding="utf-8")
    result = flagged("export", "discrepancies", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    line = error_line(result)
    assert str(path) in line and expected in line, line
    assert not (tmp_path / "out").exists()


def test_no_chain_run_yet(cli, tmp_path):
    result = cli("export", "discrepancies", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert error_line(result) == "Error: no chain run yet; run 'linkage chain' first"
    assert not (tmp_path / "out").exists()
    result = cli("export", "flags", "--out", str(tmp_path / "flags.csv"))
    assert result.exit_code == 2
    assert error_line(result) == "Error: no chain run yet; run 'linkage chain' first"
    assert not (tmp_path / "flags.csv").exists()


def test_out_is_a_file(flagged, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me", encoding="utf-8")
    before = all_files(tmp_path)
    result = flagged("export", "discrepancies", "--out", str(target))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: {target} is a file; give a folder for the district files"
    assert target.read_text(encoding="utf-8") == "keep me" and all_files(tmp_path) == before


def test_a_failure_midway_leaves_no_file_and_no_temp_file(flagged, tmp_path):
    out = tmp_path / "out"
    (out / "海淀区.csv").mkdir(parents=True)        # the second district file cannot be written
    result = flagged("export", "discrepancies", "--out", str(out))
    assert result.exit_code == 2 and "海淀区.csv is a folder" in error_line(result)
    assert all_files(out) == ["海淀区.csv"]


def test_a_new_folder_is_removed_again_on_failure(flagged, tmp_path, monkeypatch):
    import linkage.export as export_module

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_module, "_write_csv", broken)
    result = flagged("export", "discrepancies", "--out", str(tmp_path / "new" / "out"))
    assert result.exit_code == 2
    assert error_line(result) == f"Error: cannot write the export to {tmp_path / 'new' / 'out'}: disk full"
    assert not (tmp_path / "new").exists()


# ---- export flags ------------------------------------------------------------------------------

def test_export_flags_raw_machine_readable(flagged, tmp_path):
    target = tmp_path / "flags.csv"
    result = flagged("export", "flags", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert "Wrote 7 flags of chain run 2" in result.stdout
    data = target.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["person_id", "code", "stage", "status", "severity", "district", "confidence", "reason"]
    assert [r[0] for r in rows[1:]] == ["P001", "P002", "P003", "P004", "P005", "P006", "P008"]
    assert rows[1] == ["P001", "MISSING_STAGE", "handover", "new", "high", "朝阳区", "0.99",
                       "解除隔离后24小时内未办理社区移交登记"]
    assert rows[2][7] == "隔离未满14天即解除 =SUM(A1)" and rows[3][7] == "+1" and rows[6][7] == "\tx"
    assert rows[6][2] == "" and rows[6][5] == ""          # no stage, no district
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_flags_include_resolved(flagged, tmp_path):
    target = tmp_path / "flags.csv"
    assert flagged("export", "flags", "--out", str(target), "--include-resolved").exit_code == 0
    rows = read_csv(target)
    assert len(rows) == 9 and ["P007", "resolved"] == [rows[7][0], rows[7][3]]


def test_export_flags_into_a_folder_is_an_error(flagged, tmp_path):
    result = flagged("export", "flags", "--out", str(tmp_path))
    assert result.exit_code == 2 and "is a folder" in error_line(result)


def test_export_flags_where_no_file_can_be_created_is_exit_2(flagged, tmp_path):
    (tmp_path / "a_file").write_text("", encoding="utf-8")
    target = tmp_path / "a_file" / "flags.csv"      # its "folder" is a file: no temp file can be made there
    result = flagged("export", "flags", "--out", str(target))
    assert result.exit_code == 2 and error_line(result) == f"Error: cannot write {target}: Not a directory"


# ---- LibreOffice opens the file as text ---------------------------------------------------------

def test_libreoffice_reads_chinese_and_no_formula(flagged, tmp_path, soffice):
    from openpyxl import load_workbook

    out = tmp_path / "out"
    export(flagged, out, "--profile", "district_officer")
    converted = tmp_path / "xlsx"
    profile = (tmp_path / "lo-profile").as_uri()
    subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--infilter=CSV:44,34,76,1",
                    "--convert-to", "xlsx", "--outdir", str(converted), str(out / "朝阳区.csv")],
                   check=True, capture_output=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)})
    sheet = load_workbook(converted / "朝阳区.xlsx").active
    cells = [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f" or str(c.value).startswith("=")]
    values = [str(c.value) for c in cells]
    assert "张小明" in values and "解除隔离后24小时内未办理社区移交登记" in values and "人员编号" in values
    assert any("=SUM(A1)" in v for v in values)                # shown as text


def test_temp_files_of_a_killed_export_are_removed_by_the_next(flagged, tmp_path):
    """A process killed while writing leaves its temp file (personal data in a hidden file); the
    next export into that folder removes it, and never a temp file of a process still running."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.run([sys.executable, "-c", (
        "import os, pathlib, signal\n"
        "from linkage.export import atomic_path\n"
        f"with atomic_path(pathlib.Path({str(out / 'clusters.csv')!r})) as temp:\n"
        "    temp.write_text('ZHANG WEI,+8613800138000')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")])
    assert killed.returncode == -signal.SIGKILL
    [left] = [p.name for p in out.iterdir()]
    assert left.startswith(".clusters.csv.") and left.endswith(".tmp")
    running = out / f".海淀区.csv.{os.getpid()}.abcdefgh.tmp"
    running.write_text("in progress", encoding="utf-8")
    export(flagged, out)
    assert left not in all_files(out) and running.name in all_files(out)


def test_a_whole_export_into_a_used_folder_removes_the_district_files_of_the_earlier_one(flagged, tmp_path):
    """A district without flags any more loses its file; files the earlier manifest does not list stay."""
    out = tmp_path / "out"
    export(flagged, out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"].append({"file": "西城区.csv", "district": "西城区", "rows": 1, "sha256": "0" * 64})
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    (out / "西城区.csv").write_text("old\n", encoding="utf-8")
    (out / "notes.txt").write_text("the officer's own file\n", encoding="utf-8")
    export(flagged, out, "--district", "海淀区")      # one district's file: the others stay
    assert (out / "西城区.csv").exists() and (out / "朝阳区.csv").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"].append({"file": "西城区.csv", "district": "西城区", "rows": 1, "sha256": "0" * 64})
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    export(flagged, out)
    assert all_files(out) == ["manifest.json", "notes.txt", "unassigned.csv", "朝阳区.csv", "海淀区.csv"]

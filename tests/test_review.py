"""Clerical review through the CLI on a real workspace of the generator's data (twins and thin
records, so that the first match makes mistakes): the review file, decisions imported from CSV,
XLSX and GB18030 files, bad rows, the round trip (decisions filled from the truth, imported,
re-matched), evaluate --labels, model threshold, and decisions on records gone."""

from __future__ import annotations

import csv
import json
import math
import shutil
import stat
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import pytest

from conftest import CONFIGS, Cli, error_line, query
from test_run import AS_OF, LINKAGE

SEED = 3          # with twins and thin records, the first match of these 400 people joins some wrongly


def _truth(folder: Path) -> dict[str, str]:
    with open(folder / "truth_entities.csv", encoding="utf-8", newline="") as handle:
        return {f"{r['source']}:{r['record_id']}": r["person_id"] for r in csv.DictReader(handle)}


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _filled(header: list[str], rows: list[list[str]], truth: dict[str, str]) -> list[list[str]]:
    """The review rows with their decision taken from the truth."""
    d, a, b = header.index("decision"), header.index("record_l"), header.index("record_r")
    out = []
    for row in rows:
        row = list(row)
        row[d] = "match" if truth[row[a]] == truth[row[b]] else "not match"
        out.append(row)
    return out


def _write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """A matched and chained workspace of 400 generated people, its first evaluation and review file."""
    root = tmp_path_factory.mktemp("review")
    data = root / "data"
    done = subprocess.run([*LINKAGE, "sample", "--people", "400", "--seed", str(SEED), "--corruption", "twins,thin",
                           "--out", str(data)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    cli = Cli(root / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    for source, name in (("immigration", "immigration.csv"), ("health", "health.csv"), ("police", "police.csv"),
                         ("commerce", "commerce.xlsx")):
        result = cli("ingest", "--source", source, str(data / name))
        assert result.exit_code == 0, result.output
    for args in (("match",), ("chain", "--as-of", AS_OF)):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    before = json.loads(cli("evaluate", "--truth", str(data / "truth_entities.csv"), "--json").stdout)
    result = cli("review", "export", "--out", str(root / "review.csv"))
    assert result.exit_code == 0, result.output
    return {"root": root, "data": data, "ws": root / "ws", "truth": _truth(data), "before": before,
            "review": root / "review.csv"}


def _copy(base: dict, tmp_path: Path) -> Cli:
    shutil.copytree(base["ws"], tmp_path / "ws", symlinks=True)
    return Cli(tmp_path / "ws", CONFIGS)


def test_the_review_file_holds_each_kind_of_pair_with_its_weights(base, tmp_path):
    path = base["review"]
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")                 # a BOM: Excel reads it as UTF-8
    assert stat.S_IMODE(path.stat().st_mode) == 0o600                    # an analyst's file: owner-only
    header, rows = _read(path)
    col = {name: i for i, name in enumerate(header)}
    reasons = {r for row in rows for r in row[col["reason"]].split("; ")}
    assert {"near the threshold", "link refused by the identity guard", "contradicting link kept for review",
            "behind an IDENTITY_CONFLICT flag"} <= reasons
    prior = json.loads(Cli(base["ws"], CONFIGS)("model", "show", "--json").stdout)["prior"]
    prior_weight = math.log2(prior / (1 - prior))
    weights = [name for name in header if name.endswith("_weight") and name != "total_weight"]
    assert len(weights) >= 5 and all(name[:-7] + "_level" in col for name in weights)
    threshold = 0.9
    near = [row for row in rows if "near the threshold" in row[col["reason"]]]
    assert len(near) == 200                                              # --limit's default
    assert {float(r[col["probability"]]) >= threshold for r in near} == {True, False}   # both sides
    for row in rows:
        parts = sum(float(row[col[name]]) for name in weights)
        assert abs(parts + prior_weight - float(row[col["total_weight"]])) < 0.005 * (len(weights) + 2), row[col["pair_key"]]
        assert row[col["pair_key"]] == "|".join(sorted((row[col["record_l"]], row[col["record_r"]])))
        assert row[col["decision"]] == "" and row[col["name_l"]] and row[col["record_r"]]
    assert len({row[col["pair_key"]] for row in rows}) == len(rows)
    # The same queue as a workbook: text cells, the same header and rows.
    xlsx = tmp_path / "review.xlsx"
    result = Cli(base["ws"], CONFIGS)("review", "export", "--out", str(xlsx), "--limit", "50")
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(xlsx, read_only=True).worksheets[0]
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0] == header
    assert sum("near the threshold" in (r[col["reason"]] or "") for r in cells[1:]) == 50
    assert all(isinstance(v, str) for r in cells[1:] for v in r if v is not None)


def test_decisions_from_csv_xlsx_and_gb18030_files_are_stored_once(base, tmp_path):
    cli = _copy(base, tmp_path)
    header, rows = _read(base["review"])
    filled = _filled(header, rows[:60], base["truth"])
    # A workbook with the columns in another order (as a reviewer's spreadsheet may have them).
    order = list(reversed(range(len(header))))
    book = openpyxl.Workbook()
    book.active.append([header[i] for i in order])
    for row in filled:
        book.active.append([row[i] for i in order])
    book.save(tmp_path / "filled.xlsx")
    result = cli("review", "import", str(tmp_path / "filled.xlsx"), "--json")
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)
    assert (stored["rows"], stored["stored"], stored["errors"]) == (60, 60, [])
    # The same decisions in Chinese, re-encoded as GB18030, three columns only: nothing changes.
    d = header.index("decision")
    words = {"match": "是同一人", "not match": "不是同一人"}
    _write(tmp_path / "gb.csv", ["note", "decision", "pair_key"],
           [["", words[r[d]], r[header.index("pair_key")]] for r in filled], encoding="gb18030")
    again = json.loads(cli("review", "import", str(tmp_path / "gb.csv"), "--json").stdout)
    assert (again["stored"], again["unchanged"]) == (0, 60)
    assert query(cli, "SELECT count(*), count(DISTINCT (source_l, record_id_l, source_r, record_id_r)) "
                      "FROM link_decisions") == [(60, 60)]
    assert query(cli, "SELECT DISTINCT origin FROM link_decisions") == [("review",)]


def test_bad_rows_are_reported_by_row_and_column_and_the_good_rows_stored(base, tmp_path):
    cli = _copy(base, tmp_path)
    header, rows = _read(base["review"])
    filled = _filled(header, rows[:5], base["truth"])
    col = {name: i for i, name in enumerate(header)}
    filled[1][col["decision"]] = "perhaps"
    filled[2][col["record_l"]] = "police:NO-SUCH-RECORD"
    filled[3][col["record_r"]] = "no key here"
    filled[4][col["decision"]] = ""
    result = cli("review", "import", str(_write(tmp_path / "bad.csv", header, filled)))
    assert result.exit_code == 2
    assert "row 3, column decision: not a decision" in result.stderr
    assert "row 4, column record_l: no such record in the workspace" in result.stderr
    assert "row 5, column record_r: not a record key" in result.stderr
    assert "bad.csv: 3 rows not stored" in error_line(result)
    for row in rows[:5]:   # no personal value of the file in any message
        for field in ("name_l", "name_r", "dob_l", "phones_l", "documents_r"):
            assert not row[col[field]] or row[col[field]] not in result.stderr
    assert "perhaps" not in result.stderr
    assert "1 without a decision skipped" in result.stdout
    assert query(cli, "SELECT count(*) FROM link_decisions") == [(1,)]
    # A newer decision on the pair replaces the older one.
    flipped = list(filled[0])
    flipped[col["decision"]] = "unsure"
    again = json.loads(cli("review", "import", str(_write(tmp_path / "newer.csv", header, [flipped])), "--json").stdout)
    assert (again["stored"], again["replaced"]) == (1, 1)
    assert query(cli, "SELECT decision FROM link_decisions") == [("unsure",)]
    # 'unsure' changes nothing: the match gives the persons it gave without it.
    persons = "SELECT source, record_id, person_id FROM persons ORDER BY ALL"
    before = query(cli, persons)
    result = cli("match", "--json")
    assert json.loads(result.stdout)["decisions"] == {"must_link": 0, "cannot_link": 0, "unsure": 1, "missing": 0}
    assert query(cli, persons) == before
    # A file without a decision column is refused whole.
    result = cli("review", "import", str(_write(tmp_path / "nodecision.csv", ["pair_key"], [["a:1|b:2"]])))
    assert result.exit_code == 2 and "expected a 'decision' column" in error_line(result)


def test_round_trip_decisions_filled_from_the_truth_raise_f1_and_are_all_respected(base, tmp_path):
    cli = _copy(base, tmp_path)
    header, rows = _read(base["review"])
    col = {name: i for i, name in enumerate(header)}
    truth = base["truth"]
    wrong = sum((row[col["same_person_now"]] == "yes") != (truth[row[col["record_l"]]] == truth[row[col["record_r"]]])
                for row in rows)
    assert wrong > 0                      # the export held pairs the first match got wrong
    result = cli("review", "import", str(_write(tmp_path / "filled.csv", header, _filled(header, rows, truth))))
    assert result.exit_code == 0, result.output
    result = cli("match", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["decisions"]["must_link"] + summary["decisions"]["cannot_link"] == len(rows)
    after = json.loads(cli("evaluate", "--truth", str(base["data"] / "truth_entities.csv"), "--json").stdout)
    before_f1, after_f1 = base["before"]["pairwise"]["f1"], after["pairwise"]["f1"]
    print(f"pairwise F1 before {before_f1:.4f}, after {after_f1:.4f}; {wrong} of {len(rows)} exported pairs wrong")
    assert after_f1 > before_f1
    assert after["pairwise"]["precision"] >= base["before"]["pairwise"]["precision"]
    # Every decision is respected by the match.
    broken = query(cli, """
        SELECT count(*) FROM link_decisions d
        JOIN persons a ON a.source = d.source_l AND a.record_id = d.record_id_l
        JOIN persons b ON b.source = d.source_r AND b.record_id = d.record_id_r
        WHERE (d.decision = 'match') <> (a.person_id = b.person_id)""")
    assert broken == [(0,)]
    # ... and by the chain's joins and moves of split travelers (linked_persons), which --labels scores.
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    labels = json.loads(cli("evaluate", "--labels", "--json").stdout)
    assert labels["match_labels"] + labels["not_match_labels"] == len(rows)
    assert (labels["precision"], labels["recall"]) == (1.0, 1.0)
    threshold = cli("model", "threshold", "--json")
    assert threshold.exit_code == 0, threshold.output
    suggestion = json.loads(threshold.stdout)
    assert 0 < suggestion["suggested"] < 1 and suggestion["f1"] == max(c["f1"] for c in suggestion["curve"])
    assert {c["threshold"] for c in suggestion["curve"]} >= {0.5, 0.9, 0.99, suggestion["suggested"]}
    plain = cli("model", "threshold")
    assert plain.stdout.splitlines()[2] == "threshold\tprecision\trecall\tF1"
    # Decided pairs leave the queue; --all brings them back.
    result = cli("review", "export", "--out", str(tmp_path / "next.csv"))
    assert result.exit_code == 0, result.output
    decided = {row[col["pair_key"]] for row in rows}
    _, later = _read(tmp_path / "next.csv")
    assert not decided & {row[0] for row in later}
    cli("review", "export", "--out", str(tmp_path / "all.csv"), "--all")
    _, every = _read(tmp_path / "all.csv")
    assert decided & {row[0] for row in every}


def test_too_few_labels_for_a_threshold_say_how_many_are_needed(base, tmp_path):
    cli = _copy(base, tmp_path)
    header, rows = _read(base["review"])
    cli("review", "import", str(_write(tmp_path / "few.csv", header, _filled(header, rows[:12], base["truth"]))))
    result = cli("model", "threshold")
    assert result.exit_code == 2
    assert "at least 30 of each are needed" in error_line(result)
    result = cli("evaluate")
    assert result.exit_code == 2 and "--labels" in error_line(result)


def test_a_decision_on_a_record_gone_is_reported_not_dropped(base, tmp_path):
    cli = _copy(base, tmp_path)
    header, rows = _read(base["review"])
    a, b = header.index("record_l"), header.index("record_r")
    other = next(row for row in rows if not {row[a], row[b]} & {rows[0][a], rows[0][b]})
    cli("review", "import", str(_write(tmp_path / "two.csv", header, _filled(header, [rows[0], other], base["truth"]))))
    source, record_id = rows[0][a].split(":", 1)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    try:
        con.execute("DELETE FROM records WHERE source = ? AND record_id = ?", [source, record_id])
    finally:
        con.close()
    result = cli("match")
    assert result.exit_code == 0, result.output
    assert "1 name records no longer in the workspace and are not applied" in result.stdout
    assert json.loads(query(cli, "SELECT decisions FROM match_runs ORDER BY run_id DESC LIMIT 1")[0][0])["missing"] == 1
    result = cli("review", "import", str(_write(tmp_path / "none.csv", header, [other])))
    assert "1 decisions in force name records no longer in the workspace" in result.stdout
    labels = cli("evaluate", "--labels", "--json")
    assert json.loads(labels.stdout)["missing"] == 1


def test_low_confidence_flags_bring_their_weakest_link(base, tmp_path):
    """With review_below raised, flags rest on links weaker than it: the queue holds each one's
    weakest link inside its person (linked, below review_below)."""
    shutil.copytree(base["ws"], tmp_path / "ws", symlinks=True)
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    chain = (configs / "chain.toml").read_text(encoding="utf-8")
    (configs / "chain.toml").write_text(chain.replace("review_below = 0.95", "review_below = 0.99999"), encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    flagged = query(cli, """SELECT count(DISTINCT person_id) FROM flags
                            WHERE run_id = (SELECT max(run_id) FROM chain_runs) AND review AND status <> 'resolved'
                              AND code <> 'IDENTITY_CONFLICT'""")[0][0]
    assert flagged > 0
    result = cli("review", "export", "--out", str(tmp_path / "q.csv"), "--limit", "500", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["by_reason"]["low_confidence"] > 0
    header, rows = _read(tmp_path / "q.csv")
    weakest = [r for r in rows if "weakest link of a low-confidence flag" in r[header.index("reason")]]
    assert weakest and all(r[header.index("same_person_now")] == "yes" for r in weakest)
    assert all(float(r[header.index("probability")]) < 0.99999 for r in weakest)

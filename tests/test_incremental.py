"""Incremental matching: a night's new and changed records are matched against the persons linked
before, through `linkage run` in real subprocesses on a real workspace, and the result equals a full
re-match with the same model (persons, person ids, links, flags)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from conftest import CONFIGS
from linkage.config import load_model_config, load_source_config
from linkage.match.incremental import run_incremental
from linkage.match.run import run_match
from linkage.match.store import latest_model
from linkage.workspace import Workspace
from test_run import AS_OF, LINKAGE, linkage

NIGHT_EVERY = 5        # the records of every 5th traveler (CSV exports) arrive the second night
EDITED = 6             # base police rows exported again the second night with another phone


def _rows(path: Path, source: str) -> tuple[list[list[str]], dict]:
    config, _ = load_source_config(CONFIGS, source)
    with open(path, encoding=config.python_encoding, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=config.delimiter))
    return rows, {"encoding": config.python_encoding, "delimiter": config.delimiter, "phone": config.fields.phone,
                  "record_id": config.record_id}


def _write(path: Path, rows: list[list[str]], how: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=how["encoding"], newline="") as handle:
        csv.writer(handle, delimiter=how["delimiter"]).writerows(rows)


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> dict:
    """A workspace after a base night and a second night of new and edited records, and a copy
    of it re-matched in full (`run --full`)."""
    root = tmp_path_factory.mktemp("incremental")
    exports = root / "exports"
    done = subprocess.run([*LINKAGE, "sample", "--people", "300", "--seed", "8", "--out", str(exports)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    base, night = root / "base", root / "night"
    edits: dict[str, str] = {}
    with open(exports / "truth_entities.csv", encoding="utf-8", newline="") as handle:
        later_people = {(r["source"], r["record_id"]) for r in csv.DictReader(handle)
                        if int(r["person_id"].lstrip("P")) % NIGHT_EVERY == 0}
    for f in exports.iterdir():
        source = f.stem
        if f.suffix != ".csv" or source not in ("immigration", "health", "police"):
            if f.suffix == ".xlsx":
                (base / source).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, base / source / f.name)
            continue
        rows, how = _rows(f, source)
        header, body = rows[0], rows[1:]
        key = header.index(how["record_id"])
        later = [r for r in body if (source, r[key]) in later_people]
        first = [r for r in body if (source, r[key]) not in later_people]
        if source == "police":
            phone = header.index(how["phone"])
            for r in [r for r in first if sum(ch.isdigit() for ch in r[phone]) >= 8][:EDITED]:
                edited = list(r)
                i = max(i for i, ch in enumerate(edited[phone]) if ch.isdigit())
                edited[phone] = edited[phone][:i] + str((int(edited[phone][i]) + 3) % 10) + edited[phone][i + 1:]
                later.append(edited)
                edits[edited[key]] = "".join(ch for ch in edited[phone] if ch.isdigit())
        _write(base / source / f.name, [header, *first], how)
        _write(night / source / f"night-{f.name}", [header, *later], how)
    workspace = root / "ws"
    assert linkage(workspace, "init").returncode == 0
    for part in (base, night):
        for folder in part.iterdir():
            shutil.copytree(folder, workspace / "inbox" / folder.name, dirs_exist_ok=True)
        done = linkage(workspace, "run", "--as-of", AS_OF, "--json")
        assert done.returncode in (0, 3), done.stderr
    full = root / "full"
    shutil.copytree(workspace, full, symlinks=True)
    done = linkage(full, "run", "--full", "--as-of", AS_OF, "--json")
    assert done.returncode in (0, 3), done.stderr
    assert json.loads(done.stdout)["model"] == "reused"
    return {"night": workspace, "full": full, "edited": edits}


def _query(workspace: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workspace / "linkage.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


PERSONS = "SELECT source, record_id, person_id FROM persons"
LINKS = ("SELECT source_l, record_id_l, source_r, record_id_r, round(weight, 9), linked, refused, conflict "
         "FROM links")
# The current flags (new or open: that depends on the run history, as do those resolved since the run before)
FLAGS = ("SELECT person_id, code, stage, reason FROM flags "
         "WHERE run_id = (SELECT max(run_id) FROM chain_runs) AND status <> 'resolved'")


def test_the_second_night_is_matched_incrementally_and_equals_a_full_match(nights):
    runs = _query(nights["night"], "SELECT incremental, records, candidate_pairs FROM match_runs ORDER BY run_id")
    assert [r[0] for r in runs] == [False, True]
    assert runs[1][2] < runs[0][2] / 2          # far fewer pairs than the first, full match
    assert _query(nights["full"], "SELECT incremental FROM match_runs ORDER BY run_id DESC LIMIT 1") == [(False,)]
    for sql in (PERSONS, LINKS, FLAGS):
        assert sorted(_query(nights["night"], sql)) == sorted(_query(nights["full"], sql)), sql


def test_an_edited_record_is_matched_again_with_its_new_values(nights):
    """A newer export of a record replaces the older copy; the record is blocked and scored again
    with its new phone, and every record keeps exactly one person."""
    workspace, edited = nights["night"], nights["edited"]
    night_run = _query(workspace, "SELECT max(run_id) FROM match_runs")[0][0]
    phones = dict(_query(workspace, "SELECT record_id, phone FROM records WHERE source = 'police'"))
    for record_id, phone in edited.items():
        assert phones[record_id] is not None and phones[record_id].endswith(phone[-4:]), record_id
    touching = _query(workspace, f"""
        SELECT DISTINCT run_id FROM links
        WHERE (source_l = 'police' AND record_id_l IN ({', '.join("'" + r + "'" for r in edited)}))
           OR (source_r = 'police' AND record_id_r IN ({', '.join("'" + r + "'" for r in edited)}))""")
    assert touching == [(night_run,)]
    assert _query(workspace, "SELECT count(*) - count(DISTINCT (source, record_id)) FROM persons") == [(0,)]
    assert _query(workspace, "SELECT count(*) FROM records ANTI JOIN persons USING (source, record_id)") == [(0,)]


def test_records_gone_and_a_later_night_still_equal_a_full_match(nights, tmp_path):
    """Records removed from the workspace take their links and persons with them; the persons they
    held together are matched again."""
    workspace = tmp_path / "ws"
    shutil.copytree(nights["night"], workspace, symlinks=True)
    gone = _query(workspace, """
        SELECT source, record_id FROM persons WHERE person_id IN (
            SELECT person_id FROM persons GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1 LIMIT 4)
        ORDER BY source, record_id LIMIT 4""")
    config, _ = load_model_config(CONFIGS)
    ws = Workspace.open(workspace)
    try:
        for source, record_id in gone:
            ws.run("drop a record", "DELETE FROM records WHERE source = ? AND record_id = ?", [source, record_id])
        model = latest_model(ws)
        rules = json.loads(ws.scalar("rules", "SELECT blocking FROM match_runs ORDER BY run_id DESC LIMIT 1"))
        from linkage.config import BlockingRule

        summary = run_incremental(ws, config, model, [BlockingRule(name=r["rule"], on=r["on"]) for r in rules])
        assert summary is not None
        after = sorted(ws.rows("persons", PERSONS))
        links = sorted(ws.rows("links", LINKS))
        assert not {(s, r) for s, r, _ in after} & set(gone)
        run_match(ws, config, model=model, rules=[BlockingRule(name=r["rule"], on=r["on"]) for r in rules])
        assert sorted(ws.rows("persons", PERSONS)) == after
        assert sorted(ws.rows("links", LINKS)) == links
    finally:
        ws.close()


@pytest.mark.parametrize("compare", ["all", ["health-police", "immigration-police", "police-police"]])
def test_pairs_touching_new_records_are_the_full_blocking_pairs_that_touch_them(nights, tmp_path, compare):
    """The stored keys joined for some records give exactly the pairs full blocking makes with
    them, with model.toml's `compare` applied."""
    from linkage.config import BlockingRule
    from linkage.match.blocking import candidate_pairs, clear_stored_keys, pairs_touching, store_keys
    from linkage.match.prepare import build_match_records

    workspace = tmp_path / "ws"
    shutil.copytree(nights["night"], workspace, symlinks=True)
    config = load_model_config(CONFIGS)[0].model_copy(update={"compare": compare})
    ws = Workspace.open(workspace)
    try:
        rules = [BlockingRule(name=r["rule"], on=r["on"]) for r in json.loads(
            ws.scalar("rules", "SELECT blocking FROM match_runs ORDER BY run_id DESC LIMIT 1"))]
        build_match_records(ws)
        sources = [r[0] for r in ws.rows("sources", "SELECT DISTINCT source FROM match_records ORDER BY 1")]
        full = candidate_pairs(ws, rules, config, sources)
        clear_stored_keys(ws)
        store_keys(ws, rules)
        ws.run("some records", "CREATE TEMP TABLE some_records AS SELECT rid FROM match_records WHERE rid % 7 = 3")
        left, right = pairs_touching(ws, rules, config, "some_records",
                                     "(SELECT rid, source FROM match_records)")
    finally:
        ws.close()
    touching = {(int(a), int(b)) for a, b in zip(full.left, full.right) if a % 7 == 3 or b % 7 == 3}
    assert touching and {(int(a), int(b)) for a, b in zip(left, right)} == touching


def test_a_night_whose_file_brings_no_record_is_a_match_that_changes_nothing(nights, tmp_path):
    """Every row of the night's file is rejected: the run still matches (incrementally) and every
    person stays as it was."""
    workspace = tmp_path / "ws"
    shutil.copytree(nights["night"], workspace, symlinks=True)
    before = sorted(_query(workspace, PERSONS))
    rows, how = _rows(next((nights["night"] / "archive").rglob("police*.csv")), "police")
    key = rows[0].index(how["record_id"])
    _write(workspace / "inbox" / "police" / "empty-ids.csv", [rows[0], *[r[:key] + [""] + r[key + 1:] for r in rows[1:4]]],
           how)
    done = linkage(workspace, "run", "--as-of", AS_OF, "--json")
    assert done.returncode in (0, 3), done.stderr
    assert _query(workspace, "SELECT incremental, candidate_pairs FROM match_runs ORDER BY run_id DESC LIMIT 1") == [
        (True, 0)]
    assert sorted(_query(workspace, PERSONS)) == before


def _decide(workspace: Path) -> dict[str, tuple[str, str]]:
    """A must-link between two persons (a pair no blocking rule makes) and a cannot-link inside a
    person of three or more linked records (transitive links would join its two records again),
    written as a review file and imported."""
    persons = _query(workspace, """
        SELECT person_id, list(source || ':' || record_id ORDER BY source, record_id) FROM persons
        GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1""")
    (_, first), (_, second), (_, third) = persons[0], persons[len(persons) // 2], persons[-1]
    decisions = {"match": (first[0], second[0]), "not_match": (third[0], third[1])}
    path = workspace.parent / f"{workspace.name}-decisions.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record_l", "record_r", "decision", "note"])
        writer.writerow([*decisions["match"], "match", "one traveler, two passports"])
        writer.writerow([*decisions["not_match"], "不是同一人", ""])
    done = linkage(workspace, "review", "import", str(path))
    assert done.returncode == 0, done.stderr
    return decisions


def _person_of(workspace: Path, key: str) -> str:
    source, record_id = key.split(":", 1)
    return _query(workspace, f"SELECT person_id FROM persons WHERE source = '{source}' AND record_id = '{record_id}'")[0][0]


def test_decisions_are_respected_by_an_incremental_night_as_by_a_full_match(nights, tmp_path):
    """Review decisions imported between nights: the next night (new and edited records, matched
    incrementally) links the must-link pair and keeps the cannot-link pair apart, and gives the
    same persons and links as a full match with the same decisions."""
    workspace = tmp_path / "ws"
    shutil.copytree(nights["night"], workspace, symlinks=True)
    decisions = _decide(workspace)
    rows, how = _rows(next((nights["night"] / "archive").rglob("night-police*.csv")), "police")
    phone = rows[0].index(how["phone"])
    edited = [r[:phone] + [r[phone][:-1] + str((int(r[phone][-1]) + 1) % 10)] + r[phone + 1:]
              for r in rows[1:] if r[phone][-1:].isdigit()][:4]
    _write(workspace / "inbox" / "police" / "third-police.csv", [rows[0], *edited], how)
    full = tmp_path / "full"
    shutil.copytree(workspace, full, symlinks=True)
    for folder, args in ((workspace, ()), (full, ("--full",))):
        done = linkage(folder, "run", *args, "--as-of", AS_OF, "--json")
        assert done.returncode in (0, 3), done.stderr
    assert _query(workspace, "SELECT incremental FROM match_runs ORDER BY run_id DESC LIMIT 1") == [(True,)]
    for folder in (workspace, full):
        applied = json.loads(_query(folder, "SELECT decisions FROM match_runs ORDER BY run_id DESC LIMIT 1")[0][0])
        assert applied == {"must_link": 1, "cannot_link": 1, "unsure": 0, "missing": 0}
        assert _person_of(folder, decisions["match"][0]) == _person_of(folder, decisions["match"][1])
        assert _person_of(folder, decisions["not_match"][0]) != _person_of(folder, decisions["not_match"][1])
    for sql in (PERSONS, LINKS):
        assert sorted(_query(workspace, sql)) == sorted(_query(full, sql)), sql


def test_decisions_alone_start_an_incremental_match(nights, tmp_path):
    """A night with no new file but new decisions matches again the persons the decisions touch."""
    workspace = tmp_path / "ws"
    shutil.copytree(nights["night"], workspace, symlinks=True)
    decisions = _decide(workspace)
    done = linkage(workspace, "run", "--as-of", AS_OF, "--json")
    assert done.returncode in (0, 3), done.stderr
    assert _query(workspace, "SELECT incremental FROM match_runs ORDER BY run_id DESC LIMIT 1") == [(True,)]
    assert _person_of(workspace, decisions["match"][0]) == _person_of(workspace, decisions["match"][1])
    assert _person_of(workspace, decisions["not_match"][0]) != _person_of(workspace, decisions["not_match"][1])

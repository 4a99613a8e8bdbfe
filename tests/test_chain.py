"""The chain: literal timelines for every flag code, the run-to-run diff, the sample against its
truth (from the true clusters and from linkage's own), and bad chain.toml / --as-of input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import CONFIGS, SAMPLE_DATA, Cli, query
from test_match import SOURCES, ingest_sample

STAGES = ["arrival", "registration", "health_check", "transfer", "quarantine_start", "quarantine_end", "handover"]
OPS_SOURCE = 'name = "ops"\nformat = "csv"\nrecord_id = "rid"\n\n[fields]\nfull_name = "name"\n\n' \
             '[extra]\ndestination_district = "dest"\n\n' + "\n".join(
                 f'[[events]]\nstage = "{s}"\ntime = "time"\nformats = ["%Y-%m-%d %H:%M"]\ndistrict = "district"\n'
                 f'when = {{ column = "kind", equals = ["{s}"] }}\n' for s in STAGES)
AS_OF = "2026-03-31T00:00"


def _person(pid: str, times: dict[str, str], district: dict[str, str] | None = None, dest: str = "朝阳区") -> list[str]:
    district = district or {}
    return [f"{pid}-{stage},{pid},{stage},{time},{district.get(stage, '朝阳区')},{dest}" for stage, time in times.items()]


FULL = {"arrival": "2026-03-01 10:00", "registration": "2026-03-01 11:00", "health_check": "2026-03-01 12:00",
        "transfer": "2026-03-01 13:00", "quarantine_start": "2026-03-01 14:00", "quarantine_end": "2026-03-15 15:00",
        "handover": "2026-03-16 09:00"}


def _without(stage: str) -> dict[str, str]:
    return {k: v for k, v in FULL.items() if k != stage}


PEOPLE = {
    "ok": (FULL, set()),
    "no_check": (_without("health_check"), {("MISSING_STAGE", "health_check")}),
    "no_handover": (_without("handover"), {("MISSING_STAGE", "handover")}),
    "pending": ({"arrival": "2026-03-30 23:00"}, set()),
    "late_reg": ({**FULL, "registration": "2026-03-01 12:30", "health_check": "2026-03-01 12:45"},
                 {("GAP_EXCEEDED", "registration")}),
    "early": ({**FULL, "quarantine_end": "2026-03-10 15:00", "handover": "2026-03-10 18:00"},
              {("EARLY_RELEASE", "quarantine_end")}),
    "order": ({**FULL, "health_check": "2026-03-01 10:30"}, {("OUT_OF_ORDER", "health_check")}),
    "order_tie": ({**FULL, "registration": "2026-03-01 12:00", "health_check": "2026-03-01 12:00",
                   "transfer": "2026-03-01 11:00", "quarantine_start": "2026-03-01 12:30"},
                  {("OUT_OF_ORDER", "transfer")}),
    "elsewhere": (FULL, {("DISTRICT_MISMATCH", "handover")}),
}


@pytest.fixture
def ops(tmp_path: Path) -> Cli:
    configs = tmp_path / "configs"
    (configs / "sources").mkdir(parents=True)
    shutil.copy(CONFIGS / "chain.toml", configs / "chain.toml")
    (configs / "sources" / "ops.toml").write_text(OPS_SOURCE, encoding="utf-8")
    rows = []
    for pid, (times, _) in PEOPLE.items():
        rows += _person(pid, times, {"handover": "海淀区"} if pid == "elsewhere" else None)
    data = tmp_path / "ops.csv"
    data.write_text("rid,name,kind,time,district,dest\n" + "\n".join(rows) + "\n", encoding="utf-8")
    clusters = tmp_path / "clusters.csv"
    clusters.write_text("source,record_id,person_id\n" + "\n".join(
        f"ops,{row.split(',')[0]},{row.split(',')[1]}" for row in rows) + "\n", encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("init").exit_code == 0
    assert cli("ingest", "--source", "ops", str(data)).exit_code == 0
    cli.clusters = clusters
    return cli


def flags_of(cli: Cli) -> dict[str, set[tuple[str, str]]]:
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"), read_only=True)
    rows = con.execute("SELECT person_id, code, stage FROM flags WHERE run_id = (SELECT max(run_id) FROM chain_runs) "
                       "AND status <> 'resolved'").fetchall()
    con.close()
    out: dict[str, set[tuple[str, str]]] = {}
    for pid, code, stage in rows:
        out.setdefault(pid, set()).add((code, stage))
    return out


def test_every_flag_code_on_literal_timelines(ops):
    result = ops("chain", "--as-of", AS_OF, "--clusters", str(ops.clusters), "--json")
    assert result.exit_code == 0, result.output
    got = flags_of(ops)
    for pid, (_, expected) in PEOPLE.items():
        assert got.get(pid, set()) == expected, pid
    timeline = json.loads(ops("timeline", "pending", "--json").stdout)
    status = {s["stage"]: s["status"] for s in timeline["stages"]}
    assert status["arrival"] == "done" and status["registration"] == "pending"
    late = json.loads(ops("timeline", "no_check", "--json").stdout)
    reason = late["flags"][0]["reason"]
    assert "Arrival 2026-03-01 10:00" in reason and "no health check recorded" in reason and "due by 2026-03-01 14:00" in reason
    tie = json.loads(ops("timeline", "order_tie", "--json").stdout)["flags"][0]["reason"]
    assert "before registration at 2026-03-01 12:00" in tie  # two earlier stages at that time: the first in order


def test_pending_becomes_missing_when_the_deadline_passes_and_the_diff_tracks_it(ops):
    assert ops("chain", "--as-of", AS_OF, "--clusters", str(ops.clusters)).exit_code == 0
    later = ops("chain", "--as-of", "2026-03-31T06:00", "--clusters", str(ops.clusters), "--json")
    summary = json.loads(later.stdout)
    assert ("MISSING_STAGE", "registration") in flags_of(ops)["pending"]
    assert summary["new"] >= 1 and summary["open"] == sum(len(v[1]) for v in PEOPLE.values())
    earlier = json.loads(ops("chain", "--as-of", AS_OF, "--clusters", str(ops.clusters), "--json").stdout)
    assert earlier["resolved"] >= 1 and earlier["new"] == 0


def test_sample_chain_from_true_clusters_equals_the_truth_file(matched_chain):
    cli = matched_chain
    assert cli("chain", "--as-of", AS_OF, "--clusters", str(SAMPLE_DATA / "truth_entities.csv")).exit_code == 0
    scores = json.loads(cli("evaluate", "--truth", str(SAMPLE_DATA / "truth_entities.csv"),
                            "--truth-flags", str(SAMPLE_DATA / "truth_flags.csv"), "--json").stdout)["flags"]
    assert set(scores) == {"MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE", "DISTRICT_MISMATCH",
                           "IDENTITY_CONFLICT"}
    for code, s in scores.items():
        assert (s["precision"], s["recall"]) == (1.0, 1.0), (code, s)


def test_sample_chain_from_linkage_clusters(matched_chain):
    cli = matched_chain
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    scores = json.loads(cli("evaluate", "--truth", str(SAMPLE_DATA / "truth_entities.csv"),
                            "--truth-flags", str(SAMPLE_DATA / "truth_flags.csv"), "--json").stdout)["flags"]
    for code, s in scores.items():
        assert s["precision"] >= 0.98 and s["recall"] >= 0.98, (code, s)


@pytest.fixture(scope="module")
def matched_chain(tmp_path_factory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("chain") / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    ingest_sample(cli, SOURCES)
    assert cli("match").exit_code == 0
    return cli


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace('after = "transfer"', 'after = "teleport"'), "names unknown stage 'teleport'"),
    (lambda t: t.replace('after = "transfer"', 'after = "handover"'), "is not an earlier stage"),
    (lambda t: t.replace('max_gap = "2h"', 'max_gap = "2 hours"', 1), "is not a duration"),
    (lambda t: t + '\n[[stages]]\nname = "home_monitoring"\nafter = "handover"\nmax_gap = "7d"\n',
     "no source records stage 'home_monitoring'"),
    (lambda t: t.replace('review_below = 0.95', 'review_below = 2'), "key 'review_below'"),
])
def test_bad_chain_config_is_refused_and_no_flags_written(ops, edit, expected):
    path = ops.config_dir / "chain.toml"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    result = ops("chain", "--as-of", AS_OF, "--clusters", str(ops.clusters))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and str(path) in result.stderr
    assert flags_of(ops) == {}


def test_bad_as_of_and_no_persons(ops):
    result = ops("chain", "--as-of", "yesterday-ish")
    assert result.exit_code == 2 and "--as-of 'yesterday-ish' is not a time" in result.stderr
    result = ops("chain", "--as-of", AS_OF)
    assert result.exit_code == 2 and "run 'linkage match' first" in result.stderr


def test_a_longer_chain_is_a_config_change_only(ops):
    path = ops.config_dir / "chain.toml"
    text = path.read_text(encoding="utf-8").replace('min_gap = "14d"', 'min_gap = "21d"')
    path.write_text(text, encoding="utf-8")
    assert ops("chain", "--as-of", AS_OF, "--clusters", str(ops.clusters)).exit_code == 0
    got = flags_of(ops)
    assert ("EARLY_RELEASE", "quarantine_end") in got["ok"]


def _complete_travelers(con) -> list[tuple[str, str]]:
    """(person, its one police handover record) of every complete, flagless traveler of the matched
    sample with at least three records."""
    flagged = {row[0] for row in duckdb.sql(
        f"SELECT DISTINCT person_id FROM read_csv('{SAMPLE_DATA / 'truth_flags.csv'}', all_varchar=true)").fetchall()}
    rows = con.execute("""
        SELECT p.person_id, any_value(p.record_id) FILTER (WHERE e.stage = 'handover')
        FROM persons p JOIN events e USING (source, record_id)
        GROUP BY p.person_id
        HAVING count(DISTINCT e.stage) = 7 AND count(*) FILTER (WHERE e.stage = 'handover') = 1
           AND count(DISTINCT p.record_id) >= 3
        ORDER BY p.person_id""").fetchall()
    truth = dict(duckdb.sql(f"SELECT source || ':' || record_id, person_id FROM "
                            f"read_csv('{SAMPLE_DATA / 'truth_entities.csv'}', all_varchar=true)").fetchall())
    return [(p, r) for p, r in rows if truth[f"police:{r}"] not in flagged]


def _split_off_a_handover(matched_chain, tmp_path, edit: str | None = None) -> tuple[Cli, str, str]:
    """A copy of the matched sample in which one complete, flagless traveler's handover record is
    made a person of its own, as if the match had split them; `edit` (SQL on `records`, the
    record as `?`) changes that record first. Returns the copy, the traveler's person and the record."""
    cli = Cli(tmp_path / "ws", CONFIGS)
    shutil.copytree(matched_chain.workspace, cli.workspace)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    person, record = _complete_travelers(con)[0]
    if edit:
        con.execute(edit, [record])
    con.execute("UPDATE persons SET person_id = 'P-SPLIT' WHERE source = 'police' AND record_id = ?", [record])
    con.close()
    return cli, person, record


def test_a_split_traveler_is_joined_from_the_timeline_without_rewriting_persons(matched_chain, tmp_path):
    cli, person, record = _split_off_a_handover(matched_chain, tmp_path)
    summary = json.loads(cli("chain", "--as-of", AS_OF, "--json").stdout)
    assert summary["merged"] >= 1
    got = flags_of(cli)
    assert not any(code == "MISSING_STAGE" for code, _ in got.get(person, set()) | got.get("P-SPLIT", set()))
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"), read_only=True)
    joined = con.execute("SELECT person_id, match_person_id FROM linked_persons WHERE record_id = ?", [record]).fetchone()
    kept = con.execute("SELECT DISTINCT person_id FROM linked_persons WHERE match_person_id = ?", [person]).fetchall()
    assert joined[1] == "P-SPLIT" and [joined[0]] == [k for (k,) in kept]     # persons itself is the match's
    assert con.execute("SELECT person_id FROM persons WHERE record_id = ?", [record]).fetchone()[0] == "P-SPLIT"
    con.close()
    exported = tmp_path / "clusters.csv"
    assert cli("export", "clusters", "--out", str(exported)).exit_code == 0
    assert f"police,{record},{joined[0]}" in exported.read_text(encoding="utf-8")


def test_someone_else_filling_the_gap_is_not_joined(matched_chain, tmp_path):
    """The same split, but the handover record is another traveler's (name, birth date, sex,
    documents and phone all theirs): the timeline fits, the records do not; the gap stays a flag."""
    other = """UPDATE records SET full_name = 'ZZYZX QUORTH', family_name = 'ZZYZX', given_name = 'QUORTH',
               local_name = NULL, name_key = 'QUORTH ZZYZX', family_phonetic = 'SS', given_phonetic = 'KR0',
               dob = DATE '1931-12-30', id_dob = NULL, sex = CASE WHEN sex = 'F' THEN 'M' ELSE 'F' END,
               passport = 'Q0000001', id_number = NULL, permit_no = NULL, doc_numbers = ['Q0000001'],
               phone = '+8613000000001', phones = ['+8613000000001'] WHERE source = 'police' AND record_id = ?"""
    cli, person, _ = _split_off_a_handover(matched_chain, tmp_path, other)
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    assert ("MISSING_STAGE", "handover") in flags_of(cli)[person]


def test_a_duplicate_record_of_one_stage_is_joined(matched_chain, tmp_path):
    """A second handover registration minutes after the first, with a permit number instead of the
    passport and no phone: a person of its own that would miss every earlier stage."""
    cli, person, record = _split_off_a_handover(matched_chain, tmp_path)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    con.execute("UPDATE persons SET person_id = ? WHERE record_id = ? AND source = 'police'", [person, record])
    con.execute("""INSERT INTO records SELECT * REPLACE (record_id || '-DUP' AS record_id, NULL AS passport,
                   'H12345678' AS permit_no, ['H12345678'] AS doc_numbers, NULL AS phone, []::VARCHAR[] AS phones)
                   FROM records WHERE source = 'police' AND record_id = ?""", [record])
    con.execute("""INSERT INTO events SELECT * REPLACE (record_id || '-DUP' AS record_id, time + INTERVAL 7 MINUTE AS time)
                   FROM events WHERE source = 'police' AND record_id = ?""", [record])
    rid = con.execute("SELECT max(rid) + 1 FROM persons").fetchone()[0]
    con.execute("INSERT INTO persons SELECT source, record_id || '-DUP', 'P-DUP', run_id, ?, ? FROM persons "
                "WHERE source = 'police' AND record_id = ?", [rid, rid, record])
    con.close()
    summary = json.loads(cli("chain", "--as-of", AS_OF, "--json").stdout)
    assert summary["merged"] >= 1
    got = flags_of(cli)
    assert "P-DUP" not in got and not any(code == "MISSING_STAGE" for code, _ in got.get(person, set()))


def test_a_relative_sharing_name_and_phone_is_not_joined_through_a_thin_record(matched_chain, tmp_path):
    """The split-off handover record is thin (name, sex and phone only) and the match put it with a
    relative of the same name and phone born 30 years later who arrived on the same flight: two
    timelines side by side whose birth dates contradict, so the thin record's agreement with both
    is no evidence that they are one; the gap stays a flag and the relative stays apart."""
    thin = """UPDATE records SET dob = NULL, id_dob = NULL, passport = NULL, id_number = NULL, permit_no = NULL,
              doc_numbers = []::VARCHAR[] WHERE source = 'police' AND record_id = ?"""
    cli, person, record = _split_off_a_handover(matched_chain, tmp_path, thin)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    dob = con.execute("SELECT any_value(dob) FROM records JOIN persons USING (source, record_id) "
                      "WHERE person_id = ? AND dob IS NOT NULL", [person]).fetchone()[0]
    con.execute("""INSERT INTO records SELECT * REPLACE (record_id || '-REL' AS record_id, ? AS dob)
                   FROM records WHERE source = 'police' AND record_id = ?""", [dob.replace(year=dob.year + 30), record])
    rid = con.execute("SELECT max(rid) + 1 FROM persons").fetchone()[0]
    con.execute("INSERT INTO persons SELECT source, record_id || '-REL', 'P-SPLIT', run_id, ?, ? FROM persons "
                "WHERE source = 'police' AND record_id = ?", [rid, rid, record])
    con.execute("""INSERT INTO events SELECT e.* REPLACE ('police' AS source, ? || '-REL' AS record_id,
                   e.time + INTERVAL 3 MINUTE AS time) FROM events e JOIN persons p USING (source, record_id)
                   WHERE p.person_id = ? AND e.stage = 'arrival'""", [record, person])
    con.close()
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    assert ("MISSING_STAGE", "handover") in flags_of(cli).get(person, set())
    assert {p for (p,) in query(cli, f"SELECT person_id FROM linked_persons WHERE record_id = '{record}-REL'")} \
        == {"P-SPLIT"}


def test_a_record_put_with_a_traveler_it_repeats_moves_to_the_traveler_whose_gap_it_fills(matched_chain, tmp_path):
    """The match put traveler A's handover record with traveler B, whose own handover is minutes
    apart from it: B loses no stage without it, A misses the handover it fills, and the record
    is A's by its fields. The chain moves it (recorded; `persons` stays the match's)."""
    cli = Cli(tmp_path / "ws", CONFIGS)
    shutil.copytree(matched_chain.workspace, cli.workspace)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    (a, record), (b, b_record) = _complete_travelers(con)[:2]
    con.execute("UPDATE persons SET person_id = ? WHERE source = 'police' AND record_id = ?", [b, record])
    con.execute("""UPDATE events SET time = (SELECT time FROM events WHERE source = 'police' AND record_id = ?
                   AND stage = 'handover') + INTERVAL 6 MINUTE WHERE source = 'police' AND record_id = ?
                   AND stage = 'handover'""", [record, b_record])
    con.close()
    assert json.loads(cli("chain", "--as-of", AS_OF, "--json").stdout)["moved"] == 1
    assert not any(code == "MISSING_STAGE" for code, _ in flags_of(cli).get(a, set()))
    assert query(cli, "SELECT source, record_id, from_person_id, person_id FROM chain_moves") == \
        [("police", record, b, a)]
    assert query(cli, f"SELECT person_id, match_person_id FROM linked_persons WHERE record_id = '{record}'") == [(a, b)]
    assert query(cli, f"SELECT person_id FROM persons WHERE record_id = '{record}'") == [(b,)]
    exported = tmp_path / "clusters.csv"
    assert cli("export", "clusters", "--out", str(exported)).exit_code == 0
    assert f"police,{record},{a}" in exported.read_text(encoding="utf-8")


def test_a_part_with_a_wrong_birth_date_that_fills_the_gap_is_joined_and_flagged(matched_chain, tmp_path):
    """The opposite of the relative: the split-off handover record carries the traveler's name and
    phone but another birth date and no document, and it has no stage of its own beside the
    traveler's. The parts complement each other, so they are joined, and the contradiction is
    flagged for the officer."""
    wrong = """UPDATE records SET dob = dob + INTERVAL 30 YEAR, id_dob = NULL, passport = NULL, id_number = NULL,
               permit_no = NULL, doc_numbers = []::VARCHAR[] WHERE source = 'police' AND record_id = ?"""
    cli, person, record = _split_off_a_handover(matched_chain, tmp_path, wrong)
    assert cli("chain", "--as-of", AS_OF).exit_code == 0
    [(joined,)] = query(cli, f"SELECT person_id FROM linked_persons WHERE record_id = '{record}'")
    assert joined in {person, "P-SPLIT"} and query(
        cli, f"SELECT DISTINCT person_id FROM linked_persons WHERE match_person_id = '{person}'") == [(joined,)]
    assert ("IDENTITY_CONFLICT", None) in flags_of(cli)[joined]


def test_two_records_put_with_one_other_traveler_both_move_back(matched_chain, tmp_path):
    """Two of traveler A's records (its handover, and its registration and health check) put with
    traveler B, who repeats those stages minutes apart: a person gives or takes one record per round, so the
    second comes back in the next round."""
    cli = Cli(tmp_path / "ws", CONFIGS)
    shutil.copytree(matched_chain.workspace, cli.workspace)
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"))
    travelers = _complete_travelers(con)
    a, handover, second = next((p, r, rows[0]) for p, r in travelers for rows in [con.execute("""
        SELECT e.source, e.record_id FROM persons p JOIN events e USING (source, record_id)
        WHERE p.person_id = ? GROUP BY ALL
        HAVING bool_and(e.stage IN ('registration', 'health_check')) ORDER BY 1, 2""",
        [p]).fetchall()] if rows)
    b = next(p for p, _ in travelers if p != a)
    for source, record in (("police", handover), second):
        con.execute("UPDATE persons SET person_id = ? WHERE source = ? AND record_id = ?", [b, source, record])
        con.execute("""UPDATE events SET time = x.time + INTERVAL 6 MINUTE
                       FROM (SELECT stage, time FROM events WHERE source = ? AND record_id = ?) x
                       WHERE events.stage = x.stage AND (events.source, events.record_id) IN
                             (SELECT (source, record_id) FROM persons WHERE person_id = ?)
                         AND NOT (events.source = ? AND events.record_id = ?)""", [source, record, b, source, record])
    con.close()
    assert json.loads(cli("chain", "--as-of", AS_OF, "--json").stdout)["moved"] == 2
    assert sorted(query(cli, "SELECT source, record_id, person_id FROM chain_moves")) == \
        sorted([("police", handover, a), (*second, a)])
    assert not any(code == "MISSING_STAGE" for code, _ in flags_of(cli).get(a, set()))

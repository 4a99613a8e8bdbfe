"""Matching end to end on the bundled sample, plus literal-row, oracle and bad-input tests."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date

import networkx as nx
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import CONFIGS, SAMPLE_DATA, Cli, query

SOURCES = [("immigration", "immigration.csv"), ("health", "health.csv"), ("police", "police.csv"),
           ("commerce", "commerce.xlsx")]


def _rules():
    from linkage.config import BlockingRule

    return [BlockingRule(name=name, on=on) for name, on in [
        ("document", ["doc_number"]), ("dob_name_prefix", ["dob", "name_key:2"]),
        ("dob_phonetic", ["dob", "name_phonetic"]), ("phone", ["phone"]),
        ("document_phonetic", ["doc_number", "name_phonetic"]),          # two lists: their cross product
        ("token_prefix_year", ["name_token:2", "birth_year"])]]


RULES = _rules()


def ingest_sample(cli: Cli, sources=SOURCES) -> None:
    for source, name in sources:
        result = cli("ingest", "--source", source, str(SAMPLE_DATA / name))
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def matched(tmp_path_factory) -> Cli:
    """The sample ingested and matched once, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("matched")
    cli = Cli(root / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    ingest_sample(cli)
    result = cli("match", "--json")
    assert result.exit_code == 0, result.output
    return cli


def test_sample_is_linked_accurately_overall_and_per_group(matched):
    result = matched("evaluate", "--truth", str(SAMPLE_DATA / "truth_entities.csv"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["records"] == query(matched, "SELECT count(*) FROM records")[0][0]
    assert report["pairwise"]["f1"] >= 0.98, report["pairwise"]
    assert report["bcubed"]["f1"] >= 0.98, report["bcubed"]
    for group, rows in report["by_group"].items():
        for name, scores in rows.items():
            if scores["true_pairs"] >= 300:
                assert scores["recall"] >= report["pairwise"]["recall"] - 0.03, (group, name, scores)


def test_export_clusters_lists_every_record_once(matched, tmp_path):
    out = tmp_path / "clusters.csv"
    result = matched("export", "clusters", "--out", str(out))
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["source", "record_id", "person_id"]
    keys = {(r["source"], r["record_id"]) for r in rows}
    assert len(keys) == len(rows) == query(matched, "SELECT count(*) FROM records")[0][0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_person_ids_are_stable_across_runs_and_new_data(tmp_path):
    cli = Cli(tmp_path / "ws", CONFIGS)
    assert cli("init").exit_code == 0
    ingest_sample(cli, SOURCES[:2])
    assert cli("match").exit_code == 0
    first = dict(((s, r), p) for s, r, p in query(cli, "SELECT source, record_id, person_id FROM persons"))
    assert cli("match").exit_code == 0
    again = dict(((s, r), p) for s, r, p in query(cli, "SELECT source, record_id, person_id FROM persons"))
    assert again == first
    ingest_sample(cli, SOURCES[2:])
    assert cli("match").exit_code == 0
    after = dict(((s, r), p) for s, r, p in query(cli, "SELECT source, record_id, person_id FROM persons"))
    kept = sum(after[k] == v for k, v in first.items())
    assert kept / len(first) >= 0.99


def test_explain_a_linked_pair_and_a_person(matched):
    a, b = query(matched, """
        SELECT source_l || ':' || record_id_l, source_r || ':' || record_id_r FROM links
        WHERE linked AND source_l <> source_r ORDER BY weight DESC LIMIT 1""")[0]
    result = matched("explain", a, b, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["linked_now"] and report["same_person"]
    names = [t["comparison"] for t in report["terms"]]
    assert {"name", "dob", "documents"} <= set(names)
    stored = query(matched, f"SELECT weight FROM links WHERE source_l || ':' || record_id_l = '{a}' "
                            f"AND source_r || ':' || record_id_r = '{b}'")[0][0]
    assert report["total_weight"] == pytest.approx(stored, abs=0.006)
    text = matched("explain", a, b)
    assert "prior" in text.stdout and "total" in text.stdout
    person = query(matched, f"SELECT person_id FROM persons WHERE source || ':' || record_id = '{a}'")[0][0]
    shown = matched("explain", "--person", person, "--json")
    keys = [r["key"] for r in json.loads(shown.stdout)["records"]]
    assert a in keys and b in keys


def test_blocking_report_counts_pairs_and_recall(matched):
    result = matched("blocking", "--truth", str(SAMPLE_DATA / "truth_entities.csv"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["recall"] >= 0.99
    assert sum(r["pairs"] for r in report["rules"]) >= report["candidate_pairs"] > 0


def test_model_show_and_save_then_score_with_the_saved_model(matched, tmp_path):
    shown = matched("model", "show", "--json")
    model = json.loads(shown.stdout)
    assert 0 < model["prior"] < 1e-2 and "name" in model["comparisons"]
    assert all(f["converged"] for f in model["fits"])
    assert "exact" in matched("model", "show").stdout
    path = tmp_path / "model.json"
    assert matched("model", "save", str(path)).exit_code == 0
    copy = Cli(tmp_path / "ws2", CONFIGS)
    shutil.copytree(matched.workspace, copy.workspace)
    result = copy("match", "--load-model", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["prior"] == pytest.approx(model["prior"])


# ---- bad input --------------------------------------------------------------------------------

def test_match_on_an_empty_workspace(cli):
    result = cli("match")
    assert result.exit_code == 2
    assert "Error: the workspace holds no records" in result.stderr


@pytest.mark.parametrize(("toml", "expected"), [
    ("threshold = 1.5\n", "key 'threshold'"),
    ('[comparisons.name]\nkind = "fuzzy"\n', "key 'comparisons.name"),
    ('[[blocking]]\nname = "x"\non = ["shoe_size"]\n', "unknown blocking field 'shoe_size'"),
    ("max_pairs = 10\n", "max_pairs = 10"),
    ('max_pairs = 10\n[[blocking]]\nname = "dob"\non = ["dob"]\n', "over max_pairs = 10"),
    ('colour = "red"\n', "unknown key 'colour'"),
])
def test_invalid_model_config_is_refused_and_nothing_written(tmp_path, toml, expected):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / "model.toml").write_text(toml, encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("init").exit_code == 0
    ingest_sample(cli, SOURCES[:1])
    result = cli("match")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert query(cli, "SELECT count(*) FROM match_runs")[0][0] == 0
    assert query(cli, "SELECT count(*) FROM persons")[0][0] == 0


def test_explain_bad_keys(matched):
    assert "is not a record key" in matched("explain", "nocolon", "police:x").stderr
    assert "is not in the workspace" in matched("explain", "police:nope", "health:nope").stderr
    assert matched("explain", "--person", "P99999999").exit_code == 2


# ---- literal rows and oracles -------------------------------------------------------------------

def test_comparison_levels_on_literal_rows(tmp_path):
    from linkage.match.compare import DateComparison, DocumentComparison, LABELS, NameComparison, PhoneComparison
    from linkage.match.prepare import prepare
    from linkage.standardize.ids import make_resident_id
    from linkage.workspace import Workspace

    rows = [
        # record_id, name, dob, passport, id, phone
        ("A1", "ZHANG XIAOMING", "1985-03-07", "E12345678", "", "13800138000"),
        ("A2", "XIAOMING ZHANG", "1985-03-07", "E12345678", "", "+86 138 0013 8000"),   # swapped, same docs
        ("A3", "ZHANG XIAOMIN", "1985-07-03", "E12345679", "", ""),                     # typo, d/m swap, 1 edit
        ("A4", "ZHANG WEI", "1985-03-08", "G99999999", "", "13900000000"),              # family only, 1 digit
        ("A5", "LI NA", "1990-01-01", "", "110105198503070019", ""),
        ("A6", "LI NA", "1990-01-01", "", make_resident_id("110105", date(1990, 1, 1), 1), ""),  # IDs differ
        ("A7", "", "", "", "", ""),                                                      # nothing: missing
    ]
    path = tmp_path / "people.csv"
    path.write_text("rid,name,dob,passport,idno,phone\n" + "\n".join(",".join(r) for r in rows) + "\n",
                    encoding="utf-8")
    configs = tmp_path / "configs"
    (configs / "sources").mkdir(parents=True)
    (configs / "sources" / "people.toml").write_text(
        'name = "people"\nformat = "csv"\nrecord_id = "rid"\nname_order = "family_first"\nphone_region = "CN"\n'
        '[fields]\nfull_name = "name"\ndob = "dob"\npassport = "passport"\nid_number = "idno"\nphone = "phone"\n',
        encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("init").exit_code == 0
    assert cli("ingest", "--source", "people", str(path)).exit_code == 0
    ws = Workspace.open(cli.workspace)
    data = prepare(ws)
    ids = dict(ws.rows("ids", "SELECT record_id, rid FROM match_records"))

    def level(comparison, a, b):
        got = comparison.levels(data, np.array([ids[a]], dtype=np.int32), np.array([ids[b]], dtype=np.int32))
        return comparison.labels[int(got[0])]

    name = NameComparison("name", LABELS["name"])
    dob = DateComparison("dob", LABELS["date"])
    docs = DocumentComparison("documents", LABELS["documents"])
    phone = PhoneComparison("phone", LABELS["phone"])
    assert level(name, "A1", "A2") == "exact"
    assert level(name, "A1", "A3") == "close"
    assert level(name, "A1", "A4") == "one part agrees"
    assert level(name, "A1", "A5") == "different"
    assert level(name, "A1", "A7") == "missing"
    assert level(dob, "A1", "A2") == "exact"
    assert level(dob, "A1", "A3") == "day/month swapped"
    assert level(dob, "A1", "A4") == "one digit off"
    assert level(dob, "A1", "A6") == "different"
    assert level(dob, "A1", "A5") == "exact"              # the birth date A5's resident ID encodes
    assert level(dob, "A1", "A7") == "missing"
    assert level(docs, "A1", "A2") == "shared"
    assert level(docs, "A1", "A3") == "one edit apart"
    assert level(docs, "A1", "A4") == "different"
    assert level(docs, "A5", "A6") == "resident IDs differ"
    assert level(docs, "A1", "A5") == "missing"           # passport vs resident ID: not comparable
    assert level(phone, "A1", "A2") == "shared"
    assert level(phone, "A1", "A4") == "different"
    assert level(phone, "A1", "A3") == "missing"
    ws.close()


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=80))
def test_components_equal_networkx(n, edges):
    from linkage.match.cluster import components

    edges = [(a % n, b % n) for a, b in edges if a % n != b % n]
    left = np.array([a for a, _ in edges], dtype=np.int32)
    right = np.array([b for _, b in edges], dtype=np.int32)
    labels = components(n, left, right)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    expected = {frozenset(c) for c in nx.connected_components(graph)}
    got: dict[int, set[int]] = {}
    for node, label in enumerate(labels):
        got.setdefault(int(label), set()).add(node)
    assert {frozenset(c) for c in got.values()} == expected


def test_em_recovers_known_parameters():
    """m and the match share of a block whose non-matches are not random pairs (their u differs from
    the random-pair u EM starts from): EM estimates the block's u as well, and finds m."""
    from linkage.match.model import em

    rng = np.random.default_rng(3)
    m = [np.array([1.0, 0.05, 0.15, 0.8]), np.array([1.0, 0.1, 0.9]), np.array([1.0, 0.02, 0.08, 0.9]),
         np.array([1.0, 0.05, 0.95])]
    block_u = [np.array([1.0, 0.7, 0.2, 0.1]), np.array([1.0, 0.6, 0.4]), np.array([1.0, 0.8, 0.15, 0.05]),
               np.array([1.0, 0.5, 0.5])]
    random_u = [np.array([1.0, 0.9, 0.08, 0.02]), np.array([1.0, 0.7, 0.3]), np.array([1.0, 0.95, 0.04, 0.01]),
                np.array([1.0, 0.5, 0.5])]
    n, share = 200_000, 0.3
    match = rng.random(n) < share
    levels = np.zeros((n, len(m)), dtype=np.int8)
    for k in range(len(m)):
        p_m, p_u = m[k][1:], block_u[k][1:]
        levels[match, k] = rng.choice(len(p_m), size=match.sum(), p=p_m) + 1
        levels[~match, k] = rng.choice(len(p_u), size=(~match).sum(), p=p_u) + 1
    patterns, counts = np.unique(levels, axis=0, return_counts=True)
    got_m, got_share, _, converged = em(patterns, counts.astype(float), random_u, [True] * len(m), 1000, 1e-8)
    assert converged
    assert got_share == pytest.approx(share, abs=0.02)
    for k in range(len(m)):
        assert np.allclose(got_m[k][1:], m[k][1:], atol=0.03)


def test_weights_never_fall_as_the_level_rises():
    """EM may put more m on a lower level than the data justify for a higher one; the trained weights
    are pooled so that "within a year" never weighs less than "different"."""
    from linkage.match.model import monotone_m

    u = np.array([1.0, 0.9, 0.05, 0.04, 0.01])
    m = np.array([1.0, 0.10, 0.001, 0.09, 0.809])       # level 2 would weigh less than level 1
    out = monotone_m(m, u)
    w = np.log2(out[1:] / u[1:])
    assert (np.diff(w) >= -1e-12).all()
    assert out[1:].sum() == pytest.approx(m[1:].sum())
    assert out[4] == m[4]


def guarded(tmp_path, header: str, fields: str, rows: list[tuple], links: list[tuple[str, str]],
            identity_weight: list[float] | None = None, identity: tuple[str, ...] = ("id_number", "dob"), extra: str = "",
            against: list[tuple[str, str, float]] | None = None):
    """Ingest literal rows of one source, then cluster the given links (each strong enough on its
    own; `identity_weight`, per link, its evidence without what a household shares; threshold 3)."""
    from linkage.match.cluster import cluster
    from linkage.match.prepare import prepare
    from linkage.workspace import Workspace

    configs = tmp_path / "configs"
    (configs / "sources").mkdir(parents=True)
    path = tmp_path / "people.csv"
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
    (configs / "sources" / "people.toml").write_text(
        'name = "people"\nformat = "csv"\nrecord_id = "rid"\nname_order = "auto"\nphone_region = "CN"\n'
        f'[fields]\n{fields}\n{extra}', encoding="utf-8")
    cli = Cli(tmp_path / "ws", configs)
    assert cli("init").exit_code == 0
    assert cli("ingest", "--source", "people", str(path)).exit_code == 0
    with Workspace.open(cli.workspace) as ws:
        data = prepare(ws)
        ids = dict(ws.rows("ids", "SELECT record_id, rid FROM match_records"))
    left = np.array([ids[a] for a, _ in links], dtype=np.int64)
    right = np.array([ids[b] for _, b in links], dtype=np.int64)
    strong = np.full(len(links), 20.0)
    own = strong if identity_weight is None else np.array(identity_weight, dtype=float)
    pairs = None
    if against:   # one comparison, which every link's records leave missing
        from linkage.match.cluster import Unseen

        pairs = Unseen(np.array([ids[a] for a, _, _ in against]), np.array([ids[b] for _, b, _ in against]),
                       np.array([[w] for _, _, w in against], dtype=float), np.ones((len(links), 1), dtype=bool))
    result = cluster(data, left, right, strong, own, threshold_weight=3.0, identity=identity, against=pairs)
    return result, {key: result.labels[ids[key]] for key in ids}


def test_guard_parts_namesakes_and_keeps_one_person_with_two_ids(tmp_path):
    """Same name, birth date and sex with two valid resident IDs: namesakes unless the link's own
    evidence (without a shared phone or address) clears the threshold; then one person whose records
    disagree, kept for review. A group that holds two IDs still takes a record with one of them."""
    from linkage.standardize.ids import make_resident_id

    def rid(region: str, born: date) -> str:
        return make_resident_id(region, born, 2)

    born_a, born_b = date(1981, 3, 9), date(1997, 3, 25)
    rows = [
        ("N1", "QIN XIUQI", "1981-03-09", rid("110108", born_a), "15968104499"),
        ("N2", "QIN XIUQI", "1981-03-09", rid("110113", born_a), "16670592512"),   # namesake
        ("N3", "QIN XIUQI", "1981-03-09", rid("110114", born_a), ""),              # namesake
        ("C1", "GAO PING", "1997-03-25", rid("320102", born_b), "13996417751"),
        ("C2", "GAO PING", "1997-03-25", rid("530102", born_b), "13996417751"),    # same person, two IDs
        ("C3", "GAO PING", "1997-03-25", rid("320102", born_b), ""),               # C1's ID again
    ]
    result, label = guarded(tmp_path, "rid,name,dob,idno,phone",
                            'full_name = "name"\ndob = "dob"\nid_number = "idno"\nphone = "phone"', rows,
                            [("N1", "N2"), ("N1", "N3"), ("C1", "C2"), ("C2", "C3")], [1.0, 1.0, 8.0, 8.0])
    assert len({label["N1"], label["N2"], label["N3"]}) == 3
    assert label["C1"] == label["C2"] == label["C3"]
    assert sorted(result.refused.tolist()) == [0, 1] and result.kept.tolist() == [2]


def test_guard_keeps_no_conflict_that_another_pair_of_the_two_groups_contradicts(tmp_path):
    """Namesakes born on one day, each with an ID and a phone of their own: the link between B2 (no
    phone) and A1 would stand on its own evidence, but B1 and A1, whose IDs differ too, hold two
    phones where the link's records held none: no conflict kept, two persons. Where the other pair
    adds nothing the link lacked, the conflict is kept as before."""
    from linkage.standardize.ids import make_resident_id

    born = date(1990, 4, 14)
    a, b = make_resident_id("120101", born, 5), make_resident_id("110107", born, 6)
    rows = [("A1", "ZHANG FEI", "1990-04-14", a, "15221247160"), ("A2", "ZHANG FEI", "1990-04-14", a, "15221247160"),
            ("B1", "ZHANG FEI", "1990-04-14", b, "17747074044"), ("B2", "ZHANG FEI", "1990-04-14", b, "")]
    fields = 'full_name = "name"\ndob = "dob"\nid_number = "idno"\nphone = "phone"'
    links = [("A1", "A2"), ("B1", "B2"), ("B2", "A1")]
    result, label = guarded(tmp_path / "apart", "rid,name,dob,idno,phone", fields, rows, links, [20.0, 20.0, 5.0],
                            against=[("B1", "A1", -13.0)])   # two phones: 5 - 13 < 3
    assert label["A1"] == label["A2"] and label["B1"] == label["B2"] and label["A1"] != label["B1"]
    assert result.refused.tolist() == [2] and result.kept.tolist() == []
    result, label = guarded(tmp_path / "one", "rid,name,dob,idno,phone", fields, rows, links, [20.0, 20.0, 5.0],
                            against=[("B1", "A1", 0.0)])   # nothing the link lacked
    assert label["A1"] == label["B1"] and result.kept.tolist() == [2]


def test_guard_lets_a_shared_resident_id_outweigh_a_new_passport_and_phone(tmp_path):
    """Different passports and different phones are no contradiction (re-issued passports, a second
    phone): with the same resident ID the records stay one person, and nothing is refused."""
    from linkage.standardize.ids import make_resident_id

    number = make_resident_id("110105", date(1990, 1, 2), 7)
    rows = [
        ("R1", "ANNA MEYER", "1990-01-02", "C01X00T47", number, "13912345678"),
        ("R2", "ANNA MEYER", "1990-01-02", "C7HF2P9K1", number, "+49 170 1234567"),
        ("R3", "ANNA MEYER", "1990-01-02", "C7HF2P9K1", "", "13812345678"),
    ]
    result, label = guarded(tmp_path, "rid,name,dob,passport,idno,phone",
                            'full_name = "name"\ndob = "dob"\npassport = "passport"\nid_number = "idno"\n'
                            'phone = "phone"', rows, [("R1", "R2"), ("R2", "R3")])
    assert label["R1"] == label["R2"] == label["R3"]
    assert result.refused.tolist() == [] and result.kept.tolist() == []


def test_guard_takes_identity_fields_from_config(tmp_path):
    """An extra field named in `identity` is a contradiction when two values are more than one edit
    apart; one edit apart is a typo. Without it in `identity`, the same links are not judged."""
    rows = [("S1", "TOBY WALKLEY", "1935-06-08", "9827400"), ("S2", "TOBY WALKLEY", "1935-06-08", "9827401"),
            ("S3", "TOBY WALKLEY", "1935-06-08", "1111111")]
    fields = 'full_name = "name"\ndob = "dob"'
    links = [("S1", "S2"), ("S2", "S3")]
    _, plain = guarded(tmp_path / "a", "rid,name,dob,ssn", fields, rows, links, [1.0, 1.0], extra='[extra]\nssn = "ssn"\n')
    assert plain["S1"] == plain["S2"] == plain["S3"]
    result, label = guarded(tmp_path / "b", "rid,name,dob,ssn", fields, rows, links, [1.0, 1.0],
                            identity=("extra.ssn",), extra='[extra]\nssn = "ssn"\n')
    assert label["S1"] == label["S2"] != label["S3"]
    assert result.refused.tolist() == [1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(7000, 7800)), min_size=1, max_size=40),
       st.sets(st.integers(0, 4)))
def test_guard_birth_date_table_equals_the_pairwise_date_levels(rows, suspects):
    """The guard's birth-date table, built in one pass per suspect component, says 'different' for
    exactly the pairs whose date comparison level is 'different'."""
    from types import SimpleNamespace

    from linkage.match.cluster import _dob_pairs_different
    from linkage.match.compare import differing_date_levels
    from linkage.match.prepare import date_digits

    labels = np.array([label for label, _ in rows], dtype=np.int64)
    days = np.array([day for _, day in rows], dtype=np.int32)
    table = _dob_pairs_different(SimpleNamespace(dob_days=days), labels, np.array(sorted(suspects), dtype=np.int64))
    expected = {}
    for label in suspects:
        met = sorted(set(days[labels == label].tolist()))
        for i, a in enumerate(met):
            for b in met[i + 1:]:
                x, y = np.array([a]), np.array([b])
                expected[(a, b)] = bool(differing_date_levels(x, y, date_digits(x), date_digits(y))[0] == 1)
    assert table == expected


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=20),
       st.sampled_from(["substitute", "insert", "delete", "swap"]), st.integers(0, 19),
       st.sampled_from("ABC789"))
@example("EW0PUG3A", "swap", 3, "A")   # an 8-character number: the swap touches both ends' four
@settings(deadline=None)
def test_document_one_edit_filter_keeps_every_pair_one_edit_apart(number, edit, position, char):
    """The cheap filter before the edit distance must never drop a pair that is one edit apart."""
    from rapidfuzz.distance import OSA

    from linkage.match.compare import number_ends

    p = position % len(number)
    other = {"substitute": number[:p] + char + number[p + 1:], "insert": number[:p] + char + number[p:],
             "delete": number[:p] + number[p + 1:], "swap": number[:p] + number[p + 1:p + 2] + number[p] + number[p + 2:]}[edit]
    if not other or OSA.distance(number, other) > 1:
        return
    head, tail, short = number_ends(np.array([number, other], dtype=object))
    assert head[0] == head[1] or tail[0] == tail[1] or short[0] or short[1]


@pytest.mark.parametrize("compare", ["all", ["health-immigration", "police-police"]])
def test_candidate_pairs_are_the_union_of_every_rule_s_pairs(matched, tmp_path, compare):
    """The numpy blocking against a plain SQL self-join per rule: the same pairs, each with the
    mask of the rules that produce it, only between compared sources, ordered by pair."""
    from linkage.config import ModelConfig
    from linkage.match.blocking import FIELD_LIST, candidate_pairs, key_expression
    from linkage.match.prepare import prepare
    from linkage.workspace import Workspace

    shutil.copytree(matched.workspace, tmp_path / "ws")
    config = ModelConfig(compare=compare)
    expected: dict[tuple[int, int], int] = {}
    with Workspace.open(tmp_path / "ws") as ws:
        data = prepare(ws)
        pairs = candidate_pairs(ws, RULES, config, data.sources)
        for bit, rule in enumerate(RULES):
            keys, same = [], []
            for i, key in enumerate(rule.on):
                field, _, prefix = key.partition(":")
                if field in FIELD_LIST:   # a list field: the two records share some (prefix of a) value
                    values = FIELD_LIST[field] if not prefix else f"list_transform({FIELD_LIST[field]}, x -> left(x, {prefix}))"
                    keys.append(f"{values} AS k{i}")
                    same.append(f"len(list_filter(list_intersect(a.k{i}, b.k{i}), x -> x IS NOT NULL AND x <> '')) > 0")
                else:
                    keys.append(f"{key_expression(key)} AS k{i}")
                    same.append(f"a.k{i} = b.k{i} AND a.k{i} <> ''")
            rows = ws.rows("oracle", f"""
                WITH k AS (SELECT rid, source, {', '.join(keys)} FROM match_records)
                SELECT DISTINCT a.rid, b.rid, a.source, b.source FROM k a JOIN k b ON {' AND '.join(same)} AND a.rid < b.rid""")
            for left, right, source_a, source_b in rows:
                if compare == "all" or f"{source_a}-{source_b}" in compare or f"{source_b}-{source_a}" in compare:
                    expected[(left, right)] = expected.get((left, right), 0) | (1 << bit)
    got = {(int(l), int(r)): int(m) for l, r, m in zip(pairs.left, pairs.right, pairs.mask)}
    assert len(got) == len(pairs.left) > 0
    assert got == expected
    assert list(got) == sorted(got)


def test_name_levels_scored_once_per_pair_of_names_equal_the_pairwise_levels(matched, tmp_path):
    """Name levels, computed once per distinct pair of name-part sets, against the same rule applied
    pair by pair: candidate pairs in both orientations and random pairs, mixed in one call."""
    from linkage.config import ModelConfig
    from linkage.match.blocking import candidate_pairs
    from linkage.match.compare import NameComparison, build_comparisons, same_code
    from linkage.match.prepare import prepare
    from linkage.workspace import Workspace

    shutil.copytree(matched.workspace, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        data = prepare(ws)
        pairs = candidate_pairs(ws, RULES, ModelConfig(), data.sources)
    rng = np.random.default_rng(5)
    left = np.concatenate([pairs.left, pairs.right, rng.integers(0, data.n, 20_000)]).astype(np.int32)
    right = np.concatenate([pairs.right, pairs.left, rng.integers(0, data.n, 20_000)]).astype(np.int32)
    name = next(c for c in build_comparisons(ModelConfig(), data) if isinstance(c, NameComparison))
    got = name.levels(data, left, right)

    s = data.strings
    row = np.stack([s[c].codes for c in ("family_name", "given_name", "family_phonetic", "given_phonetic")], axis=1)
    present = np.zeros(len(left), dtype=bool)
    exact = np.zeros(len(left), dtype=bool)
    for column in ("name_key", "local_name"):
        a, b = s[column].codes[left], s[column].codes[right]
        present |= (a >= 0) & (b >= 0)
        exact |= same_code(a, b)
    expected = np.where(exact, 7, np.where(present, 1, 0))
    scored = present & ~exact
    expected[scored] = name.part_levels(s["family_name"].values, row[left[scored]], row[right[scored]])
    # "words alike": every word of one name (two or more) equal, alike or the same syllable in
    # another romanization, checked pair by pair
    from rapidfuzz.distance import JaroWinkler

    from linkage.standardize.romanization import readings, syllables

    def writes(x: str, y: str) -> bool:
        known = syllables()
        return (y.lower() in known and y.lower() in readings(x)) or (x.lower() in known and x.lower() in readings(y))

    def alike(x: str, y: str) -> bool:
        return x == y or writes(x, y) or JaroWinkler.normalized_similarity(x, y) >= name.mid

    keys = s["name_key"]
    for i in np.nonzero(scored & (expected <= 2))[0]:
        a, b = keys.codes[left[i]], keys.codes[right[i]]
        if a < 0 or b < 0:
            continue
        wa, wb = keys.values[a].split(" "), keys.values[b].split(" ")
        shares = bool(set(wa) & set(wb))
        def found(xs, ys):
            return all(any((x == y or writes(x, y) or (shares and alike(x, y))) for y in ys) for x in xs)
        if min(len(wa), len(wb)) >= 2 and (found(wa, wb) or found(wb, wa)):
            expected[i] = 3
    assert scored.sum() > 1000 and len(set(expected[scored].tolist())) >= 4
    bad = np.nonzero(got != expected)[0]
    assert not len(bad), [(s["name_key"].values[s["name_key"].codes[left[i]]], s["name_key"].values[s["name_key"].codes[right[i]]], int(got[i]), int(expected[i])) for i in bad[:5]]
    n = len(pairs.left)
    assert (got[:n] == got[n:2 * n]).all()   # the level does not depend on the orientation


def test_a_version_3_workspace_keeps_its_persons_and_links_when_migrated(tmp_path, monkeypatch):
    """Migration 4 numbers the stored persons and turns each stored link into a pair of those numbers;
    the `links` view gives back the links as they were."""
    import linkage.workspace as workspace

    every = workspace.MIGRATIONS
    monkeypatch.setattr(workspace, "MIGRATIONS", every[:3])
    monkeypatch.setattr(workspace, "SCHEMA_VERSION", 3)
    ws = workspace.Workspace.create(tmp_path / "ws")
    persons = [("police", "B-2", "P2"), ("health", "A-9", "P1"), ("health", "A-1", "P1"), ("police", "B-1", "P3")]
    links = [(1, "health", "A-1", "health", "A-9", 12.5, 0.99, True, False, False),
             (1, "health", "A-9", "police", "B-2", -1.0, 0.33, False, False, False),
             (1, "police", "B-1", "police", "B-2", 9.0, 0.98, False, True, False)]
    with ws.transaction():
        for row in persons:
            ws.run("person", "INSERT INTO persons VALUES (?, ?, ?, 1)", list(row))
        for row in links:
            ws.run("link", "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(row))
    ws.close()
    monkeypatch.setattr(workspace, "MIGRATIONS", every)
    monkeypatch.setattr(workspace, "SCHEMA_VERSION", every[-1][0])
    with workspace.Workspace.open(tmp_path / "ws") as ws:
        assert ws.schema_version() == every[-1][0]
        numbered = ws.rows("persons", "SELECT source, record_id, rid FROM persons ORDER BY rid")
        assert numbered == [("health", "A-1", 0), ("health", "A-9", 1), ("police", "B-1", 2), ("police", "B-2", 3)]
        assert ws.rows("links", "SELECT * FROM links ORDER BY weight DESC") == sorted(links, key=lambda r: -r[5])
        assert ws.rows("pairs", "SELECT rid_l, rid_r FROM link_pairs ORDER BY weight DESC") == [(0, 1), (2, 3), (1, 3)]

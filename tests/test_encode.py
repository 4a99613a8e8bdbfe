"""Linkage without plaintext: `linkage encode`, ingest of encoded files, and matching them with
each other and with plaintext sources (on a generated sample of 300 people)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from conftest import CONFIGS, Cli, error_line, query
from linkage.encode import Encoder, Params, encode_records, key_check
from linkage.match.encoded import dice

KEY = "test-bloom-key-0123456789abcdef"
OTHER_KEY = "another-bloom-key-fedcba9876543210"
# Measured: 300 people, seed 11, health and police encoded: pairwise F1 0.995, flag F1 1.000.
F1_FLOOR = 0.95
FLAG_F1_FLOOR = 0.9


def _records(**columns) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"name_key": [None] * n, "sex": [None] * n, "dob": pl.Series([None] * n, dtype=pl.Date),
            "doc_numbers": pl.Series([[]] * n, dtype=pl.List(pl.Utf8)),
            "phones": pl.Series([[]] * n, dtype=pl.List(pl.Utf8))}
    base.update(columns)
    return pl.DataFrame(base)


def _dice(encoded, field: str, i: int, j: int) -> float:
    bits = encoded.filters[field]
    counts = np.bitwise_count(bits).sum(axis=1)
    return float(dice(bits[[i]], bits[[j]], counts[[i]], counts[[j]])[0])


def test_dice_of_identical_values_is_one_and_of_unrelated_values_low():
    frame = _records(name_key=["JOHN SMITH", "JOHN SMITH", "SMITH JOHN", "WEI ZHANG", "JON SMITH"],
                     dob=[date(1980, 5, 6), date(1980, 5, 6), date(1980, 6, 5), date(1991, 12, 30), None])
    encoded = encode_records(frame, Encoder(KEY.encode()), [])
    assert _dice(encoded, "name", 0, 1) == 1.0
    assert _dice(encoded, "name", 0, 2) == 1.0            # word order does not matter
    assert 0.75 < _dice(encoded, "name", 0, 4) < 1.0       # one letter less: similar
    assert _dice(encoded, "name", 0, 3) < 0.4              # unrelated
    assert _dice(encoded, "dob", 0, 1) == 1.0
    assert _dice(encoded, "dob", 0, 2) > _dice(encoded, "dob", 0, 3)   # day and month swapped beats unrelated
    assert not encoded.filters["dob"][4].any()             # no value: an empty filter
    assert encoded.tokens["dob"][4].to_list() == []


def test_encoding_is_deterministic_under_one_key_and_different_under_another():
    frame = _records(name_key=["MARIA TORRES"], dob=[date(1975, 1, 2)], sex=["F"],
                     doc_numbers=[["E12345678"]], phones=[["+8613800138000"]])
    one, again = (encode_records(frame, Encoder(KEY.encode()), []) for _ in range(2))
    other = encode_records(frame, Encoder(OTHER_KEY.encode()), [])
    for field in one.filters:
        assert np.array_equal(one.filters[field], again.filters[field])
        if one.filters[field].any():
            assert not np.array_equal(one.filters[field], other.filters[field]), field
    assert one.tokens["documents"].to_list() == again.tokens["documents"].to_list()
    assert one.tokens["documents"].to_list() != other.tokens["documents"].to_list()
    assert key_check(KEY.encode()) != key_check(OTHER_KEY.encode())
    # Parameters change the filters too (and are stored with every encoding).
    unfolded = encode_records(frame, Encoder(KEY.encode(), Params(fold=False)), [])
    assert unfolded.filters["name"].shape[1] == 2 * one.filters["name"].shape[1]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("encode_sample")
    cli = Cli(folder / "unused", CONFIGS)
    result = cli("sample", "--people", "300", "--seed", "11", "--out", str(folder / "data"))
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def encoded(sample: Path) -> dict[str, Path]:
    """health and police encoded with KEY."""
    cli = Cli(sample / "unused", CONFIGS)
    out = {}
    os.environ["LINKAGE_BLOOM_KEY"] = KEY
    try:
        for source in ("health", "police"):
            out[source] = sample / f"{source}.enc.parquet"
            result = cli("encode", "--source", source, str(sample / "data" / f"{source}.csv"), "--out", str(out[source]))
            assert result.exit_code == 0, result.output
    finally:
        del os.environ["LINKAGE_BLOOM_KEY"]
    return out


def _known_values(csv: Path, encoding: str, columns: list[str]) -> set[str]:
    frame = pl.read_csv(csv, encoding="utf8-lossy" if encoding == "utf-8" else encoding, infer_schema_length=0)
    values = set()
    for column in columns:
        values |= {v for v in frame.get_column(column).drop_nulls().to_list() if len(v) >= 4}
    return values


def _found(data: bytes, values: set[str], encoding: str) -> set[str]:
    return {v for v in values if v.encode(encoding) in data}


def test_the_encoded_file_holds_no_name_birth_date_document_or_phone(sample, encoded, tmp_path):
    checks = {"health": ("utf-8", ["姓名", "出生日期", "证件号码", "联系电话"]),
              "police": ("gb18030", ["姓", "名", "出生日期", "证件号码", "联系电话"])}
    for source, (encoding, columns) in checks.items():
        csv = sample / "data" / f"{source}.csv"
        values = _known_values(csv, encoding, columns)
        assert len(values) > 100
        assert _found(csv.read_bytes(), values, encoding) == values      # control: the export holds them
        # The file uncompressed, and every value of it as text: none of them.
        table = pq.read_table(encoded[source])
        plain = tmp_path / f"{source}.plain.parquet"
        pq.write_table(table, plain, compression="none")
        raw = plain.read_bytes() + encoded[source].read_bytes()
        text = json.dumps(table.drop_columns([c for c in table.column_names if c.startswith("bf.")]).to_pylist(),
                          ensure_ascii=False, default=str).encode("utf-8")
        assert _found(raw, values, "utf-8") == set()
        assert _found(raw, values, encoding) == set()
        assert _found(text, values, "utf-8") == set()
        meta = json.loads(table.schema.metadata[b"linkage.encoding"])
        assert meta["format"] == "linkage-bloom" and meta["key_check"] == key_check(KEY.encode())
        assert KEY not in json.dumps(meta)
        assert all(c.startswith(("row_no", "record_id", "col.", "bf.", "tok.")) for c in table.column_names)


@pytest.fixture(scope="module")
def mixed(sample, encoded) -> Cli:
    """health and police ingested encoded, immigration and commerce in plaintext, matched and chained."""
    cli = Cli(sample / "ws", CONFIGS)
    data = sample / "data"
    assert cli("init").exit_code == 0
    os.environ["LINKAGE_BLOOM_KEY"] = KEY
    try:
        for source, path in (("immigration", data / "immigration.csv"), ("health", encoded["health"]),
                             ("police", encoded["police"]), ("commerce", data / "commerce.xlsx")):
            result = cli("ingest", "--source", source, str(path))
            assert result.exit_code == 0, result.output
        result = cli("match")
        assert result.exit_code == 0, result.output
    finally:
        del os.environ["LINKAGE_BLOOM_KEY"]
    result = cli("chain", "--as-of", "2026-03-31T00:00")
    assert result.exit_code == 0, result.output
    return cli


def test_encoded_records_keep_their_events_and_no_identifier(sample, mixed, tmp_path):
    plain = Cli(tmp_path / "plain", CONFIGS)
    assert plain("init").exit_code == 0
    for source in ("health", "police"):
        assert plain("ingest", "--source", source, str(sample / "data" / f"{source}.csv")).exit_code == 0
    events = "SELECT source, record_id, stage, time, place, district FROM events ORDER BY ALL"
    assert query(mixed, events.replace("FROM events", "FROM events WHERE source IN ('health', 'police')")) \
        == query(plain, events)
    rows = query(mixed, """SELECT count(*), count(full_name), count(name_key), count(dob), count(phone),
                                  count(bloom), sum(len(doc_numbers)),
                                  count(extra['destination_district']), count(extra['flight_no'])
                           FROM records WHERE source IN ('health', 'police')""")[0]
    total, names, keys, dobs, phones, blooms, docs, destinations, flights = rows
    assert total > 500 and blooms == total
    assert names == keys == dobs == phones == docs == flights == 0
    assert destinations > 0          # the chain's destination district travels in plaintext
    batches = query(mixed, "SELECT source, rows_read, rows_loaded, rows_rejected FROM batches ORDER BY source")
    assert all(read == loaded + rejected for _, read, loaded, rejected in batches)


def test_explain_recomputes_the_encoded_levels_with_the_key(mixed, monkeypatch):
    (left, right), = query(mixed, """SELECT source_l || ':' || record_id_l, source_r || ':' || record_id_r
                                     FROM links WHERE linked AND source_l = 'health' AND source_r = 'immigration'
                                     ORDER BY weight DESC LIMIT 1""")
    monkeypatch.setenv("LINKAGE_BLOOM_KEY", KEY)
    result = mixed("explain", left, right)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "encoded.dob" in line)
    assert "identical" in line


def test_match_links_encoded_and_plaintext_records_and_the_chain_runs(sample, mixed):
    result = mixed("evaluate", "--truth", str(sample / "data" / "truth_entities.csv"), "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.splitlines()[-1])
    assert scores["pairwise"]["f1"] >= F1_FLOOR, scores["pairwise"]
    # Persons that hold records of an encoded and of a plaintext source.
    crossing = query(mixed, """SELECT count(*) FROM (SELECT person_id FROM persons GROUP BY person_id
                               HAVING bool_or(source IN ('health', 'police')) AND bool_or(source = 'immigration'))""")
    assert crossing[0][0] > 250
    flags = query(mixed, "SELECT count(*) FROM flags")[0][0]
    assert flags > 0
    result = mixed("evaluate", "--truth", str(sample / "data" / "truth_entities.csv"),
                   "--truth-flags", str(sample / "data" / "truth_flags.csv"), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output.splitlines()[-1])["flags"].values()
    correct = sum(c["correct"] for c in counts)
    precision, recall = correct / sum(c["predicted"] for c in counts), correct / sum(c["true"] for c in counts)
    print(f"encoded sample: pairwise F1 {scores['pairwise']['f1']:.4f}, flag P {precision:.4f} R {recall:.4f}")
    assert 2 * precision * recall / (precision + recall) >= FLAG_F1_FLOOR


def test_missing_or_wrong_key_exits_2(sample, encoded, tmp_path, monkeypatch):
    monkeypatch.delenv("LINKAGE_BLOOM_KEY", raising=False)
    monkeypatch.delenv("LINKAGE_BLOOM_KEY_FILE", raising=False)
    cli = Cli(tmp_path / "ws", CONFIGS)
    health = sample / "data" / "health.csv"
    result = cli("encode", "--source", "health", str(health), "--out", str(tmp_path / "h.parquet"))
    assert result.exit_code == 2 and "LINKAGE_BLOOM_KEY" in error_line(result)
    assert not (tmp_path / "h.parquet").exists()
    # A key file others can read is refused; the key is never printed.
    key_file = tmp_path / "bloom.key"
    key_file.write_text(OTHER_KEY)
    key_file.chmod(0o644)
    monkeypatch.setenv("LINKAGE_BLOOM_KEY_FILE", str(key_file))
    result = cli("encode", "--source", "health", str(health), "--out", str(tmp_path / "h.parquet"))
    assert result.exit_code == 2 and "owner-only" in error_line(result) and OTHER_KEY not in result.output
    key_file.chmod(0o600)
    result = cli("encode", "--source", "police", str(sample / "data" / "police.csv"), "--out", str(tmp_path / "p.parquet"))
    assert result.exit_code == 0, result.output
    # Two encodings under different keys do not go into one workspace.
    assert cli("init").exit_code == 0
    monkeypatch.delenv("LINKAGE_BLOOM_KEY_FILE")   # ingest needs no key (it checks one given)
    assert cli("ingest", "--source", "health", str(encoded["health"])).exit_code == 0
    result = cli("ingest", "--source", "police", str(tmp_path / "p.parquet"))
    assert result.exit_code == 2 and "another key" in error_line(result)
    assert query(cli, "SELECT count(*) FROM records WHERE source = 'police'")[0][0] == 0
    # Matching encoded with plaintext records needs the key, and the right one.
    assert cli("ingest", "--source", "immigration", str(sample / "data" / "immigration.csv")).exit_code == 0
    result = cli("match")
    assert result.exit_code == 2 and "LINKAGE_BLOOM_KEY" in error_line(result)
    monkeypatch.setenv("LINKAGE_BLOOM_KEY", OTHER_KEY)
    result = cli("match")
    assert result.exit_code == 2 and "not the key" in error_line(result) and OTHER_KEY not in result.output
    # An encoding of one source is not ingested as another.
    result = cli("ingest", "--source", "police", str(encoded["health"]))
    assert result.exit_code == 2 and "not of 'police'" in error_line(result)

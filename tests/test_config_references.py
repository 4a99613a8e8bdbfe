"""Fields named in model.toml and chain.toml must be fields the source configs map: a blocking key,
comparison or identity field no source maps, or a chain destination that is no mapped [extra] field,
is bad config (exit 2) in every command that reads the file, before any table is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import CONFIGS, SAMPLE_DATA, Cli

# The shipped configs without commerce: then no source maps email, employer or district.
SOURCES = ("immigration", "health", "police")
MATCH_TABLES = ("persons", "link_pairs", "match_runs", "counters")
CHAIN_TABLES = ("chain_runs", "timelines", "flags", "chain_merges")
MAPPED = ("full_name", "family_name", "doc_no", "phone", "address", "extra.destination_district", "extra.flight_no")
AS_OF = "2026-03-31T00:00"


def _configs(folder: Path) -> Path:
    (folder / "sources").mkdir(parents=True)
    shutil.copy(CONFIGS / "chain.toml", folder / "chain.toml")
    for name in SOURCES:
        shutil.copy(CONFIGS / "sources" / f"{name}.toml", folder / "sources" / f"{name}.toml")
    return folder


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A workspace holding the sample's health export (built once; each test works on a copy)."""
    root = tmp_path_factory.mktemp("refs")
    cli = Cli(root / "ws", _configs(root / "configs"))
    assert cli("init").exit_code == 0
    result = cli("ingest", "--source", "health", str(SAMPLE_DATA / "health.csv"))
    assert result.exit_code == 0, result.output
    return cli.workspace


@pytest.fixture
def cli(ingested: Path, tmp_path: Path) -> Cli:
    shutil.copytree(ingested, tmp_path / "ws")
    return Cli(tmp_path / "ws", _configs(tmp_path / "configs"))


def snapshot(cli: Cli, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(cli.workspace / "linkage.duckdb"), read_only=True)
    try:
        return {table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables}
    finally:
        con.close()


def assert_refused(result, path: Path, key: str, field: str, mapped: tuple[str, ...] = MAPPED) -> None:
    assert result.exit_code == 2, result.output
    error = result.stderr
    assert error.startswith(f"Error: {path}: "), error
    assert f"key '{key}'" in error and f"'{field}'" in error, error
    listed = error.rstrip().split(" map: ", 1)[-1].split(", ")
    assert all(name in listed for name in mapped), error
    assert "Traceback" not in result.output


MODEL_CASES = {
    "blocking on an unmapped extra": (
        '[[blocking]]\nname = "document"\non = ["doc_number"]\n\n[[blocking]]\nname = "phone"\non = ["phone"]\n\n'
        '[[blocking]]\nname = "postcode"\non = ["extra.no_such_field"]\n',
        "blocking[2].on", "extra.no_such_field"),
    "blocking on an unmapped canonical field": (
        '[[blocking]]\nname = "employer_dob"\non = ["dob", "employer:3"]\n', "blocking[0].on", "employer"),
    "comparison of an unmapped extra": (
        '[comparisons.flight]\nkind = "exact"\nfield = "extra.no_such_field"\n',
        "comparisons.flight.field", "extra.no_such_field"),
    "comparison of an unmapped canonical field": (
        '[comparisons.email]\nkind = "exact"\n', "comparisons.email", "email"),
    "comparison switched off under a wrong name": ("[comparisons]\nemial = false\n", "comparisons.emial", "emial"),
    "identity field no source maps": ('identity = ["id_number", "extra.no_such_field"]\n', "identity[1]",
                                      "extra.no_such_field"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_match_refuses_model_fields_no_source_maps(cli, case):
    toml, key, field = MODEL_CASES[case]
    path = cli.config_dir / "model.toml"
    path.write_text(toml, encoding="utf-8")
    before = snapshot(cli, MATCH_TABLES)
    result = cli("match")
    assert_refused(result, path, key, field)
    assert snapshot(cli, MATCH_TABLES) == before


@pytest.mark.parametrize("command", [("blocking",), ("explain", "--person", "P00000001"),
                                     ("match", "--model-config", "{path}")])
def test_every_command_reading_model_toml_refuses_it(cli, tmp_path, command):
    toml, key, field = MODEL_CASES["blocking on an unmapped extra"]
    path = tmp_path / "elsewhere.toml" if "--model-config" in command else cli.config_dir / "model.toml"
    path.write_text(toml, encoding="utf-8")
    before = snapshot(cli, MATCH_TABLES)
    result = cli(*(part.format(path=path) for part in command))
    assert_refused(result, path, key, field)
    assert snapshot(cli, MATCH_TABLES) == before


@pytest.mark.parametrize(("destination", "field"), [("no_such_extra", "no_such_extra"), ("district", "district")])
def test_chain_refuses_a_destination_no_source_maps(cli, destination, field):
    path = cli.config_dir / "chain.toml"
    text = path.read_text(encoding="utf-8")
    assert 'destination = "destination_district"' in text
    path.write_text(text.replace('destination = "destination_district"', f'destination = "{destination}"'),
                    encoding="utf-8")
    before = snapshot(cli, CHAIN_TABLES)
    result = cli("chain", "--as-of", AS_OF, "--clusters", str(SAMPLE_DATA / "truth_entities.csv"))
    assert_refused(result, path, "stages[6].destination", field, mapped=("destination_district", "flight_no"))
    assert snapshot(cli, CHAIN_TABLES) == before


def test_fields_the_sources_map_are_accepted(cli):
    """The same references pass once a source maps them (no false alarms on derived fields)."""
    (cli.config_dir / "model.toml").write_text(
        '[[blocking]]\nname = "flight_family"\non = ["extra.flight_no", "family_phonetic"]\n\n'
        '[[blocking]]\nname = "dob_tokens"\non = ["birth_year", "name_token:2"]\n\n'
        '[comparisons.flight]\nkind = "exact"\nfield = "extra.flight_no"\n\n'
        "[comparisons]\naddress = false\n", encoding="utf-8")
    result = cli("blocking", "--json")
    assert result.exit_code == 0, result.output

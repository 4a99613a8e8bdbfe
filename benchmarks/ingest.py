"""Ingest benchmark: the generator's N-people set, all four sources, end to end.

Times `linkage sample` and then `linkage init` + `linkage ingest` of every source into a fresh
workspace, each step a separate `linkage` process (as a cron job runs it); reports rows/s over
all rows read and the peak RSS of the largest process. Median of --runs runs.

    .venv/bin/python benchmarks/ingest.py --people 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from common import LINKAGE, REPO, SOURCES, measured



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="reuse generated data in this folder")
    parser.add_argument("--sample-runs", type=int, default=1, help="how many times to time the generator")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="linkage-bench-"))
    data = args.data or scratch / "data"
    sample_times = []
    for i in range(args.sample_runs if args.data is None else 0):
        target = data if i == 0 else scratch / f"data{i}"
        seconds, rss, _ = measured([*LINKAGE, "sample", "--people", str(args.people), "--seed", str(args.seed),
                                        "--out", str(target)])
        sample_times.append((seconds, rss))
        if target != data:
            shutil.rmtree(target)

    results = []
    for _ in range(args.runs):
        workspace = scratch / "ws"
        shutil.rmtree(workspace, ignore_errors=True)
        base = [*LINKAGE, "--workspace", str(workspace), "--config-dir", str(REPO / "configs"), "--json"]
        measured([*base, "init"])
        total_seconds, peak, rows = 0.0, 0, 0
        for source, file_name in SOURCES:
            seconds, rss, out = measured([*base, "ingest", "--source", source, str(data / file_name)])
            batch = json.loads(out.splitlines()[-1])
            assert batch["rows_read"] == batch["rows_loaded"] + batch["rows_rejected"]
            total_seconds += seconds
            peak = max(peak, rss)
            rows += batch["rows_read"]
        results.append((total_seconds, peak, rows))
        print(f"run: {rows:,} rows in {total_seconds:.1f} s = {rows / total_seconds:,.0f} rows/s, "
              f"peak RSS {peak / 2**30:.2f} GiB", flush=True)

    seconds = statistics.median(r[0] for r in results)
    peak = max(r[1] for r in results)
    rows = results[0][2]
    print(f"\nIngest of {args.people:,} people ({rows:,} rows, 4 sources), median of {args.runs} runs:")
    print(f"  wall time       {seconds:.1f} s")
    print(f"  throughput      {rows / seconds:,.0f} rows/s   (target >= 100,000)")
    print(f"  peak RSS (max)  {peak / 2**30:.2f} GiB      (target <= 4 GiB)")
    if sample_times:
        print(f"  linkage sample  {statistics.median(s for s, _ in sample_times):.1f} s median of "
              f"{len(sample_times)} (target < 90 s), peak RSS {max(r for _, r in sample_times) / 2**30:.2f} GiB")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

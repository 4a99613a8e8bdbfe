"""Chain speed: `linkage chain` (timelines, rules, chain-aware joins, flags, diff) over the
generator's N-people set, median of --runs runs, plus flag precision / recall per code.

    .venv/bin/python benchmarks/chain.py --people 1000000 --runs 3
    .venv/bin/python benchmarks/chain.py --folder bench-out/gen1000000   # reuse match.py --keep output
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from common import REPO, ingest_generator, linkage_cmd, measured

AS_OF = "2026-03-31T00:00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="data/ and a matched ws/ from match.py --keep")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="linkage-chain-"))
    try:
        folder = args.folder
        if folder is None:
            folder = scratch
            measured(linkage_cmd(folder / "ws", REPO / "configs", "sample", "--people", str(args.people),
                                 "--seed", str(args.seed), "--out", str(folder / "data")))
            ingest_generator(folder / "data", folder / "ws")
            measured(linkage_cmd(folder / "ws", REPO / "configs", "match"))
        ws, configs = folder / "ws", REPO / "configs"
        truth = folder / "data" / "truth_entities.csv"
        # The first run also joins split travelers (stored in persons); later runs measure the steady state.
        times, peaks = [], []
        for _ in range(args.runs):
            seconds, rss, out = measured(linkage_cmd(ws, configs, "chain", "--as-of", AS_OF, "--json"))
            times.append(seconds)
            peaks.append(rss)
            summary = json.loads(out.splitlines()[-1])
        _, _, out = measured(linkage_cmd(ws, configs, "evaluate", "--truth", str(truth), "--truth-flags",
                                         str(folder / "data" / "truth_flags.csv"), "--json"))
        flags = json.loads(out.splitlines()[-1])["flags"]
        print(f"\nlinkage chain over {summary['persons']:,} travelers: median {statistics.median(times):.1f} s "
              f"of {len(times)} runs ({', '.join(f'{t:.1f}' for t in times)}), peak RSS {max(peaks) / 2**30:.2f} GiB "
              "(target < 30 s)")
        print(f"{'code':<20}{'flags':>8}{'true':>8}{'precision':>11}{'recall':>9}")
        for code, s in flags.items():
            print(f"{code:<20}{s['predicted']:>8}{s['true']:>8}{s['precision']:>11.4f}{s['recall']:>9.4f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Matching speed and memory at scale: the whole `linkage match` (block, compare, train, score,
cluster) against Splink 5's check of its blocking rules' pair count + train + predict + cluster
(DuckDB backend) on the same standardized records, median of --runs runs, with ratios; accuracy
and each tool's median seconds per phase are printed alongside. Splink blocks on the rules the
linkage run chose (the same candidate pairs) and compares every field linkage compares (peers.py).

    .venv-bench/bin/python benchmarks/match.py --people 1000000 --runs 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from accuracy import generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", nargs="*", default=["splink"],
                        help="recordlinkage too, if you have the hours it takes at this scale")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the data and the matched workspace here (e.g. for benchmarks/chain.py)")
    args = parser.parse_args()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="linkage-match-"))
    try:
        folder = generator(scratch, args.people, args.seed, args.runs, args.peers)
        if args.keep:
            print(f"kept: {folder}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

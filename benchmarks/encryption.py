"""Encryption benchmark: `linkage init / ingest / match` on the same `linkage sample` data, plaintext
against an encrypted workspace (`init --encrypt`), median of --runs runs, with the ratios.

Each step is its own `linkage` process (as a cron job runs it); plaintext and encrypted runs
alternate, so that a change in the machine's load falls on both. The key is a fresh random one in
LINKAGE_KEY, never on the command line. Target: an encrypted match costs at most 25% more time.

    .venv/bin/python benchmarks/encryption.py --people 100000 --runs 3
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
from pathlib import Path

from common import LINKAGE, REPO, SOURCES, measured

MODES = ("plaintext", "encrypted")


def one_run(data: Path, workspace: Path, encrypted: bool, key: str) -> dict[str, float]:
    """init + ingest of the four sources + match; the seconds of each step (ingest summed over sources)."""
    shutil.rmtree(workspace, ignore_errors=True)
    env = {"LINKAGE_KEY": key} if encrypted else {}
    base = [*LINKAGE, "--workspace", str(workspace), "--config-dir", str(REPO / "configs")]
    seconds = {"init": measured([*base, "init", *(["--encrypt"] if encrypted else [])], env=env)[0], "ingest": 0.0}
    for source, file_name in SOURCES:
        seconds["ingest"] += measured([*base, "ingest", "--source", source, str(data / file_name)], env=env)[0]
    seconds["match"] = measured([*base, "match", "--json"], env=env)[0]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="reuse `linkage sample` data in this folder")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="linkage-bench-encryption-"))
    data = args.data or scratch / "data"
    if args.data is None:
        measured([*LINKAGE, "sample", "--people", str(args.people), "--seed", str(args.seed), "--out", str(data)])
    key = secrets.token_urlsafe(32)
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for n in range(args.runs):
            for mode in MODES if n % 2 == 0 else reversed(MODES):
                seconds = one_run(data, scratch / f"ws-{mode}", mode == "encrypted", key)
                results[mode].append(seconds)
                print(f"run {n + 1} {mode:9}: " + ", ".join(f"{step} {s:.1f} s" for step, s in seconds.items()),
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nEncryption at rest, {args.people:,} people, median of {args.runs} runs (seconds):")
    print(f"  {'step':8} {'plaintext':>10} {'encrypted':>10} {'ratio':>7}")
    for step in ("init", "ingest", "match"):
        plain = statistics.median(r[step] for r in results["plaintext"])
        enc = statistics.median(r[step] for r in results["encrypted"])
        note = "   (target <= 1.25)" if step == "match" else ""
        print(f"  {step:8} {plain:10.1f} {enc:10.1f} {enc / plain:7.2f}{note}")


if __name__ == "__main__":
    main()

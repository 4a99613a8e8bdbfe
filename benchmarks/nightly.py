"""Nightly benchmark: `linkage run` on one night's exports on top of people already linked, against
one full run over the same data.

Data: `linkage sample --people BASE+NEW`; the records of BASE people (chosen by their truth person id)
form the base exports; the records of the other NEW people, plus re-exports of a share (--changed) of
the base people's police rows with a phone number edited, form the night's exports. Both are written
in each source's own format, encoding and delimiter.

Timed, each as `linkage` processes:
- base:  init + `linkage run` of the base exports (reported, not part of the ratio);
- night: `linkage run` of the night's exports on a fresh copy of the base workspace (--runs times);
- full:  init + one `linkage run` of base and night exports together in a new workspace (--runs times).
Then `linkage run --full` on a copy of a night's workspace: are its clusters and flags the night's?

    .venv/bin/python benchmarks/nightly.py --base 1000000 --new 10000 --runs 3
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import duckdb
from common import LINKAGE, REPO, SOURCES, measured

AS_OF_BASE = "2026-03-30T00:00"
AS_OF_NIGHT = "2026-03-31T00:00"


def linkage(workspace: Path, *args: str) -> tuple[float, str]:
    seconds, _, out = measured([*LINKAGE, "--workspace", str(workspace), "--config-dir", str(REPO / "configs"),
                                *args], ok_codes=(0, 3))
    return seconds, out


def run(workspace: Path, *args: str) -> tuple[float, dict]:
    """One `linkage run --json`; every file must be ingested (a rejected file would time less work)."""
    seconds, out = linkage(workspace, "run", "--json", *args)
    summary = json.loads(out.splitlines()[-1])
    if summary.get("rejected"):
        sys.exit(f"a file was rejected: {summary['rejected']}")
    return seconds, summary


def split(data: Path, base_people: int, seed: int, changed: float, out_base: Path, out_night: Path) -> dict:
    """Write the base and night exports; returns rows per part."""
    from linkage.config import load_source_config

    truth = {}
    with open(data / "truth_entities.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            truth[(row["source"], row["record_id"])] = row["person_id"]
    people = sorted(set(truth.values()), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    base = set(people[:base_people])
    rng = random.Random(seed)
    counts = {"base": 0, "night_new": 0, "night_changed": 0}
    for source, name in SOURCES:
        config, _ = load_source_config(REPO / "configs", source)
        rows, header = _read(data / name, config)
        key = header.index(config.record_id)
        phone = header.index(config.fields.phone) if config.fields.phone in header else None
        old = [r for r in rows if truth.get((source, r[key])) in base]
        new = [r for r in rows if truth.get((source, r[key])) not in base]
        edits = []
        if source == "police" and phone is not None:
            for r in rng.sample(old, int(len(old) * changed)):
                edited = list(r)
                digits = [i for i, ch in enumerate(edited[phone]) if ch.isdigit()]
                if digits:
                    i = digits[-1]
                    edited[phone] = edited[phone][:i] + str((int(edited[phone][i]) + 1) % 10) + edited[phone][i + 1:]
                    edits.append(edited)
        _write(out_base / source / name, header, old, config)
        _write(out_night / source / name.replace(".", "-night."), header, new + edits, config)
        counts["base"] += len(old)
        counts["night_new"] += len(new)
        counts["night_changed"] += len(edits)
    return counts


def _read(path: Path, config) -> tuple[list[list[str]], list[str]]:
    if config.format == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        sheet = book[config.sheet] if config.sheet else book.active
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        return rows[1:], rows[0]
    with open(path, encoding=config.python_encoding, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=config.delimiter))
    return rows[1:], rows[0]


def _write(path: Path, header: list[str], rows: list[list[str]], config) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if config.format == "xlsx":
        import xlsxwriter

        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet(config.sheet)   # the sheet the source config reads (None: the first)
        for i, row in enumerate([header, *rows]):
            sheet.write_row(i, 0, row)
        book.close()
        return
    with open(path, "w", encoding=config.python_encoding, newline="") as handle:
        csv.writer(handle, delimiter=config.delimiter).writerows([header, *rows])


def fill(workspace: Path, *parts: Path) -> None:
    for part in parts:
        for folder in part.iterdir():
            target = workspace / "inbox" / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for f in folder.iterdir():
                shutil.copy(f, target / f.name)


def query(workspace: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workspace / "linkage.duckdb"), read_only=True)
    try:
        return sorted(con.execute(sql).fetchall())
    finally:
        con.close()


CLUSTERS = "SELECT source, record_id, person_id FROM persons"
FLAGS = ("SELECT person_id, code, stage, reason FROM flags WHERE run_id = (SELECT max(run_id) FROM chain_runs) "
         "AND status <> 'resolved'")   # resolved: what the run before had, which differs by run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.002, help="share of base police rows re-exported, edited")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="keep the folders here")
    args = parser.parse_args()

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="linkage-nightly-"))
    scratch.mkdir(parents=True, exist_ok=True)
    data = scratch / "data"
    measured([*LINKAGE, "sample", "--people", str(args.base + args.new), "--seed", str(args.seed), "--out", str(data)])
    counts = split(data, args.base, args.seed, args.changed, scratch / "base", scratch / "night")
    print(f"base exports: {counts['base']:,} rows; night: {counts['night_new']:,} rows of {args.new:,} new people "
          f"+ {counts['night_changed']:,} changed rows of people linked before", flush=True)

    base_ws = scratch / "ws-base"
    shutil.rmtree(base_ws, ignore_errors=True)
    linkage(base_ws, "init")
    fill(base_ws, scratch / "base")
    base_seconds, _ = run(base_ws, "--as-of", AS_OF_BASE)
    print(f"base run: {base_seconds:.1f} s", flush=True)

    nights, fulls, steps = [], [], []
    for i in range(args.runs):
        night_ws = scratch / f"ws-night{i}"
        shutil.rmtree(night_ws, ignore_errors=True)
        shutil.copytree(base_ws, night_ws, symlinks=True)
        fill(night_ws, scratch / "night")
        seconds, summary = run(night_ws, "--as-of", AS_OF_NIGHT)
        nights.append(seconds)
        steps.append(summary["seconds"])
        full_ws = scratch / f"ws-full{i}"
        shutil.rmtree(full_ws, ignore_errors=True)
        start, _ = linkage(full_ws, "init")
        fill(full_ws, scratch / "base", scratch / "night")
        seconds, _ = run(full_ws, "--as-of", AS_OF_NIGHT)
        fulls.append(start + seconds)
        print(f"run {i + 1}: night {nights[-1]:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in steps[-1].items())}); "
              f"full {fulls[-1]:.1f} s", flush=True)

    check = scratch / "ws-check"
    shutil.rmtree(check, ignore_errors=True)
    shutil.copytree(scratch / "ws-night0", check, symlinks=True)
    run(check, "--full", "--as-of", AS_OF_NIGHT)
    same = query(check, CLUSTERS) == query(scratch / "ws-night0", CLUSTERS)
    same_flags = query(check, FLAGS) == query(scratch / "ws-night0", FLAGS)
    night, full = statistics.median(nights), statistics.median(fulls)
    print(f"\nnight: median {night:.1f} s over {args.runs} runs (target < 30 s at 1,000,000 + 10,000 people)")
    print(f"full:  median {full:.1f} s; full / night = {full / night:.1f}x (target >= 10x)")
    print(f"night's clusters equal those of `run --full` on the same workspace: {'yes' if same else 'NO'}")
    print(f"night's flags equal those of `run --full` on the same workspace: {'yes' if same_flags else 'NO'}")
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(0 if same and same_flags else 1)


if __name__ == "__main__":
    main()

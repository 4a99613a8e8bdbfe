"""Ingest equality check: the same exports ingested by two versions of linkage give the same tables.

Ingests every source (each file set with `linkage ingest`, one process per source as a cron job
runs it) into two fresh workspaces, once with this checkout and once with the code in --base
(a folder holding another version's `src/`, e.g. from `git archive REV | tar -x -C DIR`), and
compares every table of the workspace row for row (EXCEPT ALL both ways). Columns that hold the
time of the run (started_at, finished_at, applied_at) are left out.

    .venv/bin/python benchmarks/ingest_equal.py --base /tmp/base-src --configs configs \\
        --ingest immigration=/data/immigration.csv --ingest health=/data/health.csv ...
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

TIME_COLUMNS = {"started_at", "finished_at", "applied_at"}


def ingest(workspace: Path, configs: Path, jobs: list[tuple[str, list[str]]], src: Path | None) -> None:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    base = [sys.executable, "-m", "linkage", "--workspace", str(workspace), "--config-dir", str(configs), "--json"]
    subprocess.run([*base, "init", "--force"], check=True, env=env, capture_output=True)
    for source, files in jobs:
        done = subprocess.run([*base, "ingest", "--source", source, *files], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"ingest of {source} failed ({done.returncode}): {done.stderr[-2000:]}")


def compare(left: Path, right: Path) -> list[str]:
    con = duckdb.connect()
    con.execute(f"ATTACH '{left / 'linkage.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{right / 'linkage.duckdb'}' AS b (READ_ONLY)")
    problems = []
    tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'a' "
                         "AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()
    other = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'b' "
                                       "AND table_type = 'BASE TABLE'").fetchall()}
    for (table,) in tables:
        if table not in other:
            problems.append(f"{table}: missing on one side")
            continue
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'a' AND table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall() if c not in TIME_COLUMNS]
        cols = ", ".join(f'"{c}"' for c in columns)
        n_a = con.execute(f'SELECT count(*) FROM a."{table}"').fetchone()[0]
        n_b = con.execute(f'SELECT count(*) FROM b."{table}"').fetchone()[0]
        only_a = con.execute(f'SELECT count(*) FROM (SELECT {cols} FROM a."{table}" EXCEPT ALL '
                             f'SELECT {cols} FROM b."{table}")').fetchone()[0]
        only_b = con.execute(f'SELECT count(*) FROM (SELECT {cols} FROM b."{table}" EXCEPT ALL '
                             f'SELECT {cols} FROM a."{table}")').fetchone()[0]
        status = "equal" if (n_a == n_b and only_a == 0 and only_b == 0) else "DIFFERENT"
        print(f"  {table:<22} {n_a:>9,} rows vs {n_b:>9,}; only in new {only_a:,}, only in base {only_b:,}: {status}")
        if status != "equal":
            problems.append(table)
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="folder with the other version's src/")
    parser.add_argument("--configs", type=Path, required=True)
    parser.add_argument("--ingest", action="append", required=True, metavar="SOURCE=FILE[,FILE...]")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two workspaces in this folder")
    args = parser.parse_args()
    jobs = []
    for item in args.ingest:
        source, files = item.split("=", 1)
        jobs.append((source, files.split(",")))
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="ingest-equal-"))
    new, old = scratch / "new", scratch / "base"
    ingest(new, args.configs, jobs, None)
    ingest(old, args.configs, jobs, args.base / "src")
    problems = compare(new, old)
    if args.keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        sys.exit(f"tables differ: {', '.join(problems)}")
    print("every table equal")


if __name__ == "__main__":
    main()

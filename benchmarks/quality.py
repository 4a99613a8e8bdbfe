"""Accuracy of the whole pipeline (ingest, match, chain) on data with a known truth: pairwise and
B-cubed precision / recall / F1 of the clusters and precision / recall / F1 of the chain flags per
code, with the shipped configs and the default model (no model.toml).

    .venv/bin/python benchmarks/quality.py sample --people 100000 --seeds 1 2 --corruption all-each
    .venv/bin/python benchmarks/quality.py sample --people 10000 --seeds 3 --corruption thin twins
    .venv/bin/python benchmarks/quality.py heldout --people 10000 100000 --seeds 1 2
    .venv/bin/python benchmarks/quality.py folder DIR      # DIR/configs, DIR/ingest.json, truth files

`sample` runs `linkage sample` (every profile given, one at a time; `all-each` = none and every
profile in turn, `all` = all profiles together); `heldout` runs the independent generator in
benchmarks/heldout/ with its own source configs. `folder` reads DIR/ingest.json
({"source": ["file", ...]}), DIR/configs/ and DIR/truth_entities.csv, DIR/truth_flags.csv.
Also printed: the flags of a chain run on the true clusters (`chain --truth-clusters`), which
separates what the match costs from what the chain rules themselves do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from common import HERE, PYTHON, REPO, linkage_cmd, measured

AS_OF = "2026-03-31T00:00"
SAMPLE_FILES = {"immigration": ["immigration.csv"], "health": ["health.csv"], "police": ["police.csv"],
                "commerce": ["commerce.xlsx"]}


def run_pipeline(folder: Path, configs: Path, files: dict[str, list[Path]], truth: Path, truth_flags: Path,
                 as_of: str = AS_OF) -> dict:
    """init, ingest, match, chain and evaluate in folder/ws; the figures as one dict."""
    ws = folder / "ws"
    measured(linkage_cmd(ws, configs, "init", "--force"))
    for source, paths in files.items():
        measured(linkage_cmd(ws, configs, "ingest", "--source", source, *map(str, paths)))
    seconds, rss, out = measured(linkage_cmd(ws, configs, "match", "--json"))
    match = json.loads(out.splitlines()[-1])
    _, _, out = measured(linkage_cmd(ws, configs, "chain", "--as-of", as_of, "--json"))
    _, _, out = measured(linkage_cmd(ws, configs, "evaluate", "--truth", str(truth), "--json"))
    scores = json.loads(out.splitlines()[-1])
    _, _, out = measured(linkage_cmd(ws, configs, "evaluate", "--truth", str(truth), "--truth-flags",
                                     str(truth_flags), "--json"))
    scores |= json.loads(out.splitlines()[-1])
    return {"records": match["records"], "pairs": match["candidate_pairs"], "match_s": round(seconds, 1),
            "match_rss_gib": round(rss / 2**30, 2), "pairwise": scores["pairwise"], "bcubed": scores["bcubed"],
            "flags": scores.get("flags", {})}


def flag_totals(flags: dict) -> dict:
    predicted = sum(s["predicted"] for s in flags.values())
    true = sum(s["true"] for s in flags.values())
    correct = sum(s["correct"] for s in flags.values())
    p = correct / predicted if predicted else 1.0
    r = correct / true if true else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def report(title: str, result: dict) -> None:
    pw, bc = result["pairwise"], result["bcubed"]
    totals = flag_totals(result["flags"])
    print(f"\n{title}: {result['records']:,} records, {result['pairs']:,} candidate pairs, match {result['match_s']} s, "
          f"peak RSS {result['match_rss_gib']} GiB")
    print(f"  pairwise P {pw['precision']:.4f} R {pw['recall']:.4f} F1 {pw['f1']:.4f}; "
          f"B-cubed F1 {bc['f1']:.4f}; flags P {totals['precision']:.4f} R {totals['recall']:.4f} "
          f"F1 {totals['f1']:.4f}")
    worst = min((s["precision"] for s in result["flags"].values()), default=1.0)
    print(f"  {'code':<20}{'flags':>8}{'true':>8}{'precision':>11}{'recall':>9}   (lowest precision {worst:.4f})")
    for code, s in result["flags"].items():
        print(f"  {code:<20}{s['predicted']:>8}{s['true']:>8}{s['precision']:>11.4f}{s['recall']:>9.4f}")
    sys.stdout.flush()


def sample(args, scratch: Path) -> None:
    from linkage.sample import CORRUPTIONS  # noqa: the profiles, documented in `linkage sample --help`

    profiles: list[str] = []
    for name in args.corruption:
        profiles += ["none", *CORRUPTIONS] if name == "all-each" else [name]
    for people in args.people:
        for seed in args.seeds:
            for profile in profiles:
                folder = scratch / f"sample-{people}-{seed}-{profile}"
                extra = [] if profile == "none" else ["--corruption", profile]
                measured(linkage_cmd(folder / "ws", REPO / "configs", "sample", "--people", str(people), "--seed",
                                     str(seed), "--out", str(folder / "data"), *extra))
                files = {s: [folder / "data" / f for f in names] for s, names in SAMPLE_FILES.items()}
                result = run_pipeline(folder, REPO / "configs", files, folder / "data" / "truth_entities.csv",
                                      folder / "data" / "truth_flags.csv")
                report(f"linkage sample --people {people} --seed {seed} --corruption {profile}", result)
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)


def run_folder(folder: Path, title: str) -> None:
    files = {s: [folder / f for f in names] for s, names in json.loads((folder / "ingest.json").read_text()).items()}
    result = run_pipeline(folder, folder / "configs", files, folder / "truth_entities.csv",
                          folder / "truth_flags.csv")
    report(title, result)


HELDOUT_FILES = {"immigration": "data/immigration_entries_*.csv", "health": "data/health_*.csv",
                 "police": "data/police_registrations_*.csv", "commerce": "data/commerce_foreign_employees.xlsx"}


def heldout(args, scratch: Path) -> None:
    for people in args.people:
        for seed in args.seeds:
            folder = scratch / f"heldout-{people}-{seed}"
            measured([PYTHON, str(HERE / "heldout" / "generate.py"), "--people", str(people), "--seed", str(seed),
                      "--out", str(folder)])
            files = {source: sorted(folder.glob(pattern)) for source, pattern in HELDOUT_FILES.items()}
            (folder / "ingest.json").write_text(json.dumps({s: [str(f.relative_to(folder)) for f in fs]
                                                            for s, fs in files.items()}), encoding="utf-8")
            run_folder(folder, f"held-out generator, {people:,} people, seed {seed}")
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("sample", "heldout"):
        p = sub.add_parser(name)
        p.add_argument("--people", type=int, nargs="+", default=[10_000])
        p.add_argument("--seeds", type=int, nargs="+", default=[1])
        p.add_argument("--keep", action="store_true", help="keep the folders (printed) instead of removing them")
        if name == "sample":
            p.add_argument("--corruption", nargs="+", default=["none"])
    p = sub.add_parser("folder")
    p.add_argument("path", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="linkage-quality-"))
    if getattr(args, "keep", False):
        print(f"folders in {scratch}")
    try:
        if args.mode == "sample":
            sample(args, scratch)
        elif args.mode == "heldout":
            heldout(args, scratch)
        else:
            run_folder(args.path, str(args.path))
    finally:
        if not getattr(args, "keep", False):
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

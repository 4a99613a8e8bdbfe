#!/usr/bin/env python3
"""Recompute truth_flags.csv from the written exports alone and compare.

Reads OUT/configs/sources/*.toml (columns, formats, events, `when`), OUT/configs/chain.toml,
the files in OUT/data and OUT/truth_entities.csv; groups records by the true person and applies
the chain definitions. It shares no code with generate.py, so it checks that the truth follows
from what the exports really say (after every corruption), and that truth_entities.csv names
every record exactly once.

    python benchmarks/heldout/verify_truth.py OUT
"""
from __future__ import annotations

import csv
import datetime as dt
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

import openpyxl

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def valid_id(s):
    s = (s or "").strip().upper()
    if len(s) != 18 or not s[:17].isdigit():
        return False
    try:
        dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return "10X98765432"[sum(int(c) * w for c, w in zip(s, W)) % 11] == s[17]


def dur(s):
    n, u = int(s[:-1]), s[-1]
    return dt.timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[u]: n})


def parse_time(v, fmts):
    for f in fmts:
        try:
            return dt.datetime.strptime(v, f)
        except ValueError:
            pass
    raise ValueError(f"unparseable time {v!r}")


def parse_dob(v, fmts):
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, (int, float)):
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(v))
    v = v.strip()
    for f in fmts:
        if f == "excel":
            if v.isdigit() and len(v) <= 6:
                return dt.date(1899, 12, 30) + dt.timedelta(days=int(v))
            continue
        try:
            return dt.datetime.strptime(v, f).date()
        except ValueError:
            pass
        # same shape with day and month swapped (what a careful reader recovers)
        sw = f.replace("%d", "%Q").replace("%m", "%d").replace("%Q", "%m")
        try:
            return dt.datetime.strptime(v, sw).date()
        except ValueError:
            pass
    return None


def read_rows(cfg, path):
    if cfg["format"] == "xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        ws = wb[cfg.get("sheet")] if cfg.get("sheet") else wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        head = list(next(it))
        for r in it:
            yield {h: ("" if v is None else v) for h, v in zip(head, r)}
        return
    enc = {"utf-8": "utf-8-sig"}.get(cfg.get("encoding", "utf-8"), cfg.get("encoding"))
    with open(path, encoding=enc, newline="") as f:
        yield from csv.DictReader(f, delimiter=cfg.get("delimiter", ","))


def main(out):
    out = Path(out)
    chain_cfg = tomllib.loads((out / "configs" / "chain.toml").read_text())
    stages, prev = [], None
    for st in chain_cfg["stages"]:
        stages.append(dict(name=st["name"], after=st.get("after", prev),
                           max_gap=dur(st["max_gap"]) if "max_gap" in st else None,
                           min_gap=dur(st["min_gap"]) if "min_gap" in st else None,
                           required=st.get("required", True), destination=st.get("destination")))
        prev = st["name"]
    truth = {}
    with open(out / "truth_entities.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            key = (r["source"], r["record_id"])
            assert key not in truth, f"record twice in truth: {key}"
            truth[key] = r["person_id"]
    as_of = dt.datetime.fromisoformat(sys.argv[2]) if len(sys.argv) > 2 else None
    manifest = (out / "MANIFEST.md").read_text()
    if as_of is None:
        as_of = dt.datetime.fromisoformat(manifest.split("as-of time: ")[1].split()[0])
    per = defaultdict(lambda: {"events": [], "dest": [], "ids": set(), "dobs": []})
    seen = set()
    prefix = {"immigration": "immigration_", "health": "health_", "police": "police_", "commerce": "commerce_"}
    for cfg_path in sorted((out / "configs" / "sources").glob("*.toml")):
        cfg = tomllib.loads(cfg_path.read_text())
        src = cfg["name"]
        fields, extra, fmts = cfg["fields"], cfg.get("extra", {}), cfg.get("formats", {})
        dob_col = fields.get("dob")
        doc_cols = [fields[k] for k in ("doc_no", "passport", "id_number", "permit_no") if k in fields]
        dest_col = None
        for st in stages:
            if st["destination"]:
                dest_col = extra.get(st["destination"])
        for path in sorted((out / "data").glob(prefix[src] + "*")):
            for row in read_rows(cfg, path):
                rid = str(row[cfg["record_id"]])
                key = (src, rid)
                assert key in truth, f"record missing from truth: {key}"
                assert key not in seen, f"record id twice: {key}"
                seen.add(key)
                p = per[truth[key]]
                for ev in cfg.get("events", []):
                    w = ev.get("when")
                    if w and row[w["column"]] not in w["equals"]:
                        continue
                    v = row[ev["time"]]
                    if v == "" or v is None:
                        continue
                    t = parse_time(v, ev["formats"])
                    d = row[ev["district"]] if ev.get("district") else None
                    p["events"].append((t, ev["stage"], d))
                if dest_col and row.get(dest_col):
                    p["dest"].append(row[dest_col])
                for c in doc_cols:
                    if isinstance(row[c], str) and valid_id(row[c]):
                        p["ids"].add(row[c].strip().upper())
                if dob_col:
                    d = parse_dob(row[dob_col], fmts.get(dob_col, []))
                    if d:
                        p["dobs"].append(d)
    assert seen == set(truth), f"{len(set(truth) - seen)} truth records not in any export"
    flags = set()
    names = [s["name"] for s in stages]
    for pid, p in per.items():
        if not p["events"]:
            continue
        first, fdist = {}, {}
        for t, s, d in sorted(p["events"], key=lambda e: e[0]):
            if s not in first:
                first[s], fdist[s] = t, d
        for i, st in enumerate(stages):
            s = st["name"]
            if s not in first:
                if st["required"] and (any(n in first for n in names[i + 1:]) or (
                        st["max_gap"] and st["after"] in first and first[st["after"]] + st["max_gap"] < as_of)):
                    flags.add((pid, "MISSING_STAGE", s))
                continue
            a = st["after"]
            if a in first:
                g = first[s] - first[a]
                if st["max_gap"] and g > st["max_gap"]:
                    flags.add((pid, "GAP_EXCEEDED", s))
                if st["min_gap"] and g < st["min_gap"]:
                    flags.add((pid, "EARLY_RELEASE", s))
            before = [first[n] for n in names[:i] if n in first]
            if before and first[s] < max(before):
                flags.add((pid, "OUT_OF_ORDER", s))
            if st["destination"] and p["dest"] and fdist.get(s):
                if fdist[s] != Counter(p["dest"]).most_common(1)[0][0]:
                    flags.add((pid, "DISTRICT_MISMATCH", s))
        if len(p["ids"]) > 1 or (p["dobs"] and (max(p["dobs"]) - min(p["dobs"])).days > 365):
            flags.add((pid, "IDENTITY_CONFLICT", ""))
    with open(out / "truth_flags.csv", encoding="utf-8") as f:
        written = {(r["person_id"], r["flag"], r["stage"]) for r in csv.DictReader(f)}
    only_w, only_r = written - flags, flags - written
    print(f"records: {len(seen)} (all in truth_entities exactly once)")
    print(f"flags recomputed from the files: {len(flags)}; in truth_flags.csv: {len(written)}")
    print(f"only in truth_flags.csv: {len(only_w)}; only recomputed: {len(only_r)}")
    for x in sorted(only_w)[:10]:
        print("  written only:", x)
    for x in sorted(only_r)[:10]:
        print("  recomputed only:", x)
    return 0 if not only_w and not only_r else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""The chain: every person's timeline, the rules of configs/chain.toml evaluated as of a time,
flags with evidence and a plain-language reason, and the diff against the previous run.

Everything is SQL over the workspace (one statement per concern, built here from the config);
Python only assembles the statements. A stage's time is its earliest event among the person's
records; a deadline is relative to a named earlier stage and is not checked when that stage
has no event; a required stage with no event is MISSING once a later stage has happened or its
deadline has passed, and PENDING before that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from .chain_joins import Joins, Move, find_joins, find_moves, person_keys, prepare_keys
from .config import ChainConfig, available_sources, load_model_config, load_source_config, parse_duration
from .errors import ConfigError, InputError
from .sql import quote_literal
from .workspace import Workspace

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


MOVE_ROUNDS = 4     # rounds of the chain's moves of single records (see chain_joins.find_moves)


@dataclass
class ChainSummary:
    run_id: int
    as_of: datetime
    persons: int
    flags: int
    new: int
    open: int
    resolved: int
    review: int
    by_district: list[dict] = field(default_factory=list)
    merged: int = 0
    moved: int = 0


def check_stages_recorded(config: ChainConfig, config_path: Path, config_dir: Path) -> None:
    """Every stage must be recorded by some source's [[events]]."""
    recorded: set[str] = set()
    for name in available_sources(config_dir):
        source, _ = load_source_config(config_dir, name)
        recorded.update(event.stage for event in source.events)
    for i, stage in enumerate(config.stages):
        if stage.name not in recorded:
            raise ConfigError(f"{config_path}: key 'stages[{i}].name': no source records stage '{stage.name}' "
                              f"(stages in configs/sources/*.toml [[events]]: {', '.join(sorted(recorded)) or 'none'})")


def _stages_sql(config: ChainConfig) -> str:
    rows = []
    for i, stage in enumerate(config.stages):
        after = config.after_of(i)
        max_gap = parse_duration(stage.max_gap) if stage.max_gap else None
        min_gap = parse_duration(stage.min_gap) if stage.min_gap else None
        rows.append("(" + ", ".join([
            str(i), quote_literal(stage.name), quote_literal(after) if after else "NULL::VARCHAR",
            str(max_gap) if max_gap is not None else "NULL::DOUBLE",
            str(min_gap) if min_gap is not None else "NULL::DOUBLE",
            "true" if stage.required else "false",
            quote_literal(stage.destination) if stage.destination else "NULL::VARCHAR",
            quote_literal(stage.max_gap or stage.min_gap or ""),
        ]) + ")")
    return ("CREATE OR REPLACE TEMP TABLE chain_stages AS SELECT * FROM (VALUES " + ", ".join(rows) +
            ") t(ord, stage, after_stage, max_gap_s, min_gap_s, required, destination, gap_text)")


def _traveler_stages_sql(config: ChainConfig, persons: str = "chain_persons") -> str:
    """One row per traveler (a person of `persons` with an event up to the as-of time); column s<ord>
    holds the earliest event of that stage (time, place, district, source, record_id), NULL if none
    (of events at one time, the first by source and record_id)."""
    event = "{'time': e.time, 'place': e.place, 'district': e.district, 'source': e.source, 'record_id': e.record_id}"
    # Events at the same minute (a duplicate registration) are told apart by source and record id,
    # so the record a flag names does not depend on the order DuckDB reads them in.
    order = "{'time': e.time, 'source': e.source, 'record_id': e.record_id}"
    stages = ", ".join(f"arg_min({event}, {order}) FILTER (WHERE e.stage = {quote_literal(s.name)}) AS s{i}"
                       for i, s in enumerate(config.stages))
    return f"""
    SELECT p.person_id, {stages}
    FROM events e JOIN {persons} p USING (source, record_id)
    WHERE e.time <= ? AND e.stage IN (SELECT stage FROM chain_stages)
    GROUP BY p.person_id"""


def _destination_sql(config: ChainConfig, persons: str = "chain_persons") -> str:
    """Per person and destination field (extra column), the district most of its records give
    (a tie goes to the first in sort order, so that reruns give the same flags)."""
    fields = sorted({s.destination for s in config.stages if s.destination})
    if not fields:
        return "SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS field, NULL::VARCHAR AS district WHERE false"
    return " UNION ALL ".join(
        f"""SELECT person_id, {quote_literal(f)} AS field, first(district ORDER BY n DESC, district) AS district
            FROM (SELECT p.person_id, r.extra[{quote_literal(f)}] AS district, count(*) AS n
                  FROM {persons} p JOIN records r USING (source, record_id)
                  WHERE r.extra[{quote_literal(f)}] IS NOT NULL GROUP BY ALL)
            GROUP BY person_id""" for f in fields)


def _timeline_sql(config: ChainConfig, travelers: str = "traveler_stages") -> str:
    """Every traveler x stage from `travelers` (rows of traveler_stages), one SELECT per stage: the
    stage's event, its anchor (the `after` stage's event), the latest earlier time and its stage (the
    first in stage order on a tie), the last stage that happened, and the responsible district (the
    stage's own, else the destination, else the nearest earlier stage's, else the nearest later one's).
    A traveler's stages are the columns of one row, so all of these are plain expressions."""
    names = [s.name for s in config.stages]
    happened = ", ".join(f"CASE WHEN w.s{j} IS NOT NULL THEN {j} END" for j in range(len(names)))

    def call(function: str, args: list[str], sql_type: str) -> str:
        return f"{function}({', '.join(args)})" if args else f"NULL::{sql_type}"

    parts = []
    for i, stage in enumerate(config.stages):
        event = f"w.s{i}"
        earlier, later = [f"w.s{j}" for j in range(i)], [f"w.s{j}" for j in range(i + 1, len(names))]
        after = config.after_of(i)
        anchor = f"w.s{names.index(after)}" if after else None
        earlier_stage = " ".join(f"WHEN {e}.time = earlier_max_time THEN {quote_literal(names[j])}"
                                 for j, e in enumerate(earlier))
        destination = "d.district" if stage.destination else "NULL::VARCHAR"
        districts = [f"{event}.district", destination, *(f"{e}.district" for e in reversed(earlier)),
                     *(f"{e}.district" for e in later)]
        join = (f"\n        LEFT JOIN destinations d ON d.person_id = w.person_id "
                f"AND d.field = {quote_literal(stage.destination)}") if stage.destination else ""
        parts.append(f"""
        SELECT w.person_id, s.*, {event}.time AS time, {event}.place AS place, {event}.district AS district,
               {event}.source || ':' || {event}.record_id AS record, {event}.source AS source,
               {event}.record_id AS record_id,
               {f"{anchor}.time" if anchor else "NULL::TIMESTAMP"} AS anchor_time,
               {f"{anchor}.source || ':' || {anchor}.record_id" if anchor else "NULL::VARCHAR"} AS anchor_record,
               {destination} AS destination_district,
               greatest({happened}) AS last_present,
               {call("greatest", [f"{e}.time" for e in earlier], "TIMESTAMP")} AS earlier_max_time,
               {f"CASE {earlier_stage} END" if earlier else "NULL::VARCHAR"} AS earlier_stage,
               coalesce({", ".join(districts)}) AS responsible
        FROM {travelers} w JOIN chain_stages s ON s.ord = {i}{join}""")
    return f"""
    WITH grid AS ({" UNION ALL".join(parts)}),
    marked AS (SELECT *, anchor_time + to_microseconds(CAST(max_gap_s * 1e6 AS BIGINT)) AS due FROM grid)
    SELECT *,
           CASE WHEN time IS NOT NULL THEN 'done'
                WHEN required AND (last_present > ord OR due <= ?) THEN 'missing'
                ELSE 'pending' END AS status
    FROM marked"""


def _flags_sql() -> str:
    """All flags of this evaluation: (flag key, person, code, stage, district, reason, evidence, due)."""
    fmt = "'%Y-%m-%d %H:%M'"
    label = "replace(stage, '_', ' ')"
    title = f"upper(left({label}, 1)) || substr({label}, 2)"  # the stage name as a sentence starts it
    return f"""
    CREATE OR REPLACE TEMP TABLE flag_rows AS
    WITH f AS (
        SELECT person_id, 'MISSING_STAGE' AS code, stage, responsible AS district, due,
               CASE WHEN anchor_time IS NOT NULL
                    THEN format('{{}} {{}}{{}}; no {{}} recorded{{}}', upper(left(replace(after_stage, '_', ' '), 1))
                                || substr(replace(after_stage, '_', ' '), 2), strftime(anchor_time, {fmt}),
                                coalesce(' (' || anchor_record || ')', ''), {label},
                                CASE WHEN due IS NOT NULL THEN '; due by ' || strftime(due, {fmt}) ELSE '' END)
                    ELSE format('No {{}} recorded, although a later stage has happened', {label}) END
               || CASE WHEN last_present > ord AND anchor_time IS NOT NULL THEN '; a later stage has happened' ELSE '' END
               AS reason,
               [anchor_record] AS evidence
        FROM timeline WHERE status = 'missing'
        UNION ALL
        SELECT person_id, 'OUT_OF_ORDER', stage, responsible, NULL,
               format('{{}} recorded {{}} ({{}}), before {{}} at {{}}', {title},
                      strftime(time, {fmt}), record, replace(earlier_stage, '_', ' '), strftime(earlier_max_time, {fmt})),
               [record]
        FROM timeline WHERE time IS NOT NULL AND earlier_max_time > time
        UNION ALL
        SELECT person_id, 'GAP_EXCEEDED', stage, responsible, due,
               format('{{}} at {{}} ({{}}) came {{}} h after {{}} at {{}}; allowed {{}}',
                      {title}, strftime(time, {fmt}), record,
                      round(epoch(time - anchor_time) / 3600, 1), replace(after_stage, '_', ' '),
                      strftime(anchor_time, {fmt}), gap_text),
               [anchor_record, record]
        FROM timeline WHERE time IS NOT NULL AND anchor_time IS NOT NULL AND max_gap_s IS NOT NULL
                        AND epoch(time - anchor_time) > max_gap_s
        UNION ALL
        SELECT person_id, 'EARLY_RELEASE', stage, responsible, NULL,
               format('{{}} at {{}} ({{}}), {{}} days after {{}} at {{}}; the minimum is {{}}',
                      {title}, strftime(time, {fmt}), record,
                      round(epoch(time - anchor_time) / 86400, 1), replace(after_stage, '_', ' '),
                      strftime(anchor_time, {fmt}), gap_text),
               [anchor_record, record]
        FROM timeline WHERE time IS NOT NULL AND anchor_time IS NOT NULL AND min_gap_s IS NOT NULL
                        AND epoch(time - anchor_time) < min_gap_s
        UNION ALL
        SELECT person_id, 'DISTRICT_MISMATCH', stage, destination_district, NULL,
               format('{{}} in {{}} at {{}} ({{}}), but the destination district is {{}}',
                      {title}, district, strftime(time, {fmt}), record,
                      destination_district),
               [record]
        FROM timeline WHERE time IS NOT NULL AND destination_district IS NOT NULL AND district IS NOT NULL
                        AND district <> destination_district
        UNION ALL
        SELECT c.person_id, 'IDENTITY_CONFLICT', NULL,
               (SELECT any_value(responsible ORDER BY ord DESC) FROM timeline t
                WHERE t.person_id = c.person_id AND t.responsible IS NOT NULL), NULL,
               'Records of this traveler carry contradicting identifiers (' || c.records
               || '); check which document or birth date is right', c.evidence
        FROM identity_conflicts c
    )
    SELECT f.person_id || '|' || f.code || '|' || coalesce(f.stage, '') AS flag_key, f.* FROM f"""


# The flags with the confidence of the link their person rests on: the weakest of its records'
# strongest links inside the person (1.0 without links). Only flagged persons are looked at.
FLAG_CONFIDENCE = """
    CREATE OR REPLACE TEMP TABLE current_flags AS
    WITH flagged AS (SELECT * FROM chain_persons SEMI JOIN flag_rows USING (person_id)),
    inside AS (
        SELECT a.person_id, a.source || ':' || a.record_id AS rl, b.source || ':' || b.record_id AS rr,
               l.probability
        FROM link_pairs l
        JOIN flagged a ON a.rid = l.rid_l
        JOIN flagged b ON b.rid = l.rid_r
        WHERE l.linked AND a.person_id = b.person_id),
    ends AS (SELECT person_id, rl AS record, probability FROM inside
             UNION ALL SELECT person_id, rr, probability FROM inside),
    best AS (SELECT person_id, record, max(probability) AS p FROM ends GROUP BY ALL),
    confidence AS (SELECT person_id, min(p) AS confidence FROM best GROUP BY person_id)
    SELECT f.*, coalesce(c.confidence, 1.0) AS confidence FROM flag_rows f LEFT JOIN confidence c USING (person_id)"""


def _identity_conflicts_sql(with_links: bool) -> str:
    """Persons whose records contradict: two valid resident IDs, birth dates more than a year apart,
    or (with the match's persons) a link the identity guard kept for review."""
    kept = """
        SELECT a.person_id, [a.source || ':' || a.record_id, b.source || ':' || b.record_id] AS evidence
        FROM link_pairs l
        JOIN chain_persons a ON a.rid = l.rid_l
        JOIN chain_persons b ON b.rid = l.rid_r
        WHERE l.conflict AND a.person_id = b.person_id
        UNION ALL""" if with_links else ""
    return f"""
    CREATE OR REPLACE TEMP TABLE identity_conflicts AS
    WITH ids AS (
        SELECT p.person_id, list(DISTINCT p.source || ':' || p.record_id) AS evidence
        FROM chain_persons p JOIN records r USING (source, record_id)
        WHERE r.id_number IS NOT NULL GROUP BY p.person_id HAVING count(DISTINCT r.id_number) > 1),
    encoded_ids AS (  -- encoded records (linkage encode): their resident IDs' keyed tokens
        SELECT p.person_id, list(DISTINCT p.source || ':' || p.record_id) AS evidence
        FROM chain_persons p JOIN records r USING (source, record_id)
        WHERE len(r.tokens['id_number']) > 0 GROUP BY p.person_id
        HAVING count(DISTINCT r.tokens['id_number'][1]) > 1),
    eras AS (
        SELECT p.person_id, p.source || ':' || p.record_id AS record, r.tokens['name'][1] AS name,
               r.tokens['name_era'] AS era
        FROM chain_persons p JOIN records r USING (source, record_id) WHERE len(r.tokens['name_era']) > 0),
    encoded_far AS (  -- one name, birth dates in no common two-year window: more than a year apart
        SELECT a.person_id, [a.record, b.record] AS evidence
        FROM eras a JOIN eras b ON a.person_id = b.person_id AND a.record < b.record AND a.name = b.name
        WHERE len(list_intersect(a.era, b.era)) = 0),
    dobs AS (
        SELECT p.person_id, p.source || ':' || p.record_id AS record, coalesce(r.dob, r.id_dob) AS born
        FROM chain_persons p JOIN records r USING (source, record_id) WHERE coalesce(r.dob, r.id_dob) IS NOT NULL),
    far AS (  -- more than a year apart: worth a check even where one mistyped digit explains it
        SELECT a.person_id, [a.record, b.record] AS evidence
        FROM dobs a JOIN dobs b ON a.person_id = b.person_id AND a.record < b.record
        WHERE a.person_id IN (SELECT person_id FROM dobs GROUP BY person_id HAVING max(born) - min(born) > 365)
          AND abs(a.born - b.born) > 365),
    all_ AS ({kept}
        SELECT person_id, evidence FROM ids
        UNION ALL SELECT person_id, evidence FROM encoded_ids
        UNION ALL SELECT person_id, evidence FROM encoded_far
        UNION ALL SELECT person_id, evidence FROM far)
    SELECT person_id, list_sort(list_distinct(flatten(list(evidence)))) AS evidence,
           array_to_string(list_sort(list_distinct(flatten(list(evidence)))), ', ') AS records
    FROM all_ WHERE person_id IN (SELECT person_id FROM traveler_stages) GROUP BY person_id"""


def _apply_merges(ws: Workspace, merges: dict[str, tuple[str, str, float]], table: str) -> None:
    ws.register("merges_input", pl.DataFrame({"merged": list(merges), "person_id": [m[0] for m in merges.values()],
                                              "how": [m[1] for m in merges.values()],
                                              "score": [m[2] for m in merges.values()]}).to_arrow())
    ws.run(f"apply merges to {table}", f"""
        UPDATE {table} SET person_id = m.person_id FROM merges_input m WHERE {table}.person_id = m.merged""")
    ws.unregister("merges_input")


def _moves_frame(moves: list[Move]) -> pl.DataFrame:
    return pl.DataFrame({"source": [m.source for m in moves], "record_id": [m.record_id for m in moves],
                         "from_person": [m.from_person for m in moves], "to_person": [m.to_person for m in moves],
                         "score": [m.score for m in moves]}, schema_overrides={"score": pl.Float64})


def _apply_moves(ws: Workspace, moves: list[Move]) -> None:
    ws.register("moves_input", _moves_frame(moves).to_arrow())
    ws.run("apply moves to chain_persons", """
        UPDATE chain_persons SET person_id = m.to_person FROM moves_input m
        WHERE chain_persons.source = m.source AND chain_persons.record_id = m.record_id""")
    ws.unregister("moves_input")


def _load_chain_persons(ws: Workspace, clusters: pl.DataFrame | None, source: str = "persons") -> None:
    """The temp `chain_persons`: the match's persons (`source`; `linked_persons` with the latest
    chain's joins), or given clusters (source, record_id, person_id), each record with the match's
    record number (`rid`, which its link pairs refer to)."""
    if clusters is None:
        ws.run("chain persons", "CREATE OR REPLACE TEMP TABLE chain_persons AS "
                                f"SELECT source, record_id, person_id, rid FROM {source}")
        return
    ws.register("clusters_input", clusters.select("source", "record_id", "person_id").to_arrow())
    ws.run("chain persons", """
        CREATE OR REPLACE TEMP TABLE chain_persons AS
        SELECT c.source, c.record_id, c.person_id, p.rid FROM clusters_input c LEFT JOIN persons p USING (source, record_id)""")
    ws.unregister("clusters_input")


def run_chain(ws: Workspace, config: ChainConfig, config_path: Path, config_dir: Path,
              as_of: datetime | None = None, clusters: pl.DataFrame | None = None) -> ChainSummary:
    """Evaluate the chain for every person and store the run's timelines, flags and diff.

    `clusters` (source, record_id, person_id) replaces the match's persons, e.g. to evaluate the
    rules on a curated or true linkage; links then carry no confidence (1.0) and no conflicts.
    """
    check_stages_recorded(config, config_path, config_dir)
    as_of = as_of or datetime.now().replace(microsecond=0)
    match_run = ws.rows("latest match run", "SELECT run_id FROM match_runs WHERE finished_at IS NOT NULL "
                                            "ORDER BY run_id DESC LIMIT 1")
    if not match_run and clusters is None:
        raise InputError("no persons yet; run 'linkage match' first")
    _load_chain_persons(ws, clusters)
    previous = ws.scalar("previous chain run", "SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL")
    chain_sha = hashlib.sha256(Path(config_path).read_bytes()).hexdigest()
    # The evaluation lives in temp tables outside the transaction (DuckDB plans joins of tables
    # created inside an open transaction without statistics); only the stores are transactional.
    ws.run("chain stages", _stages_sql(config))
    evaluate_timelines(ws, config, as_of)
    joins, moves = Joins(), []
    if clusters is None and config.join_splits:
        model_config, _ = load_model_config(config_dir)
        threshold = float(ws.scalar("match threshold", "SELECT threshold FROM match_runs WHERE run_id = ?",
                                    [match_run[0][0]]))
        prepare_keys(ws)
        person_keys(ws)
        for _ in range(MOVE_ROUNDS):   # a person gives or takes one record per round
            found = find_moves(ws, config, model_config, threshold, {(m.source, m.record_id) for m in moves})
            if not found:
                break
            _apply_moves(ws, found)
            changed = {p for m in found for p in (m.from_person, m.to_person)}
            person_keys(ws, changed)
            evaluate_timelines(ws, config, as_of, changed)
            moves += found
        joins = find_joins(ws, config, model_config, threshold)
    merges = joins.merges
    if merges:
        _apply_merges(ws, merges, "chain_persons")
        evaluate_timelines(ws, config, as_of, {*merges, *(kept for kept, _, _ in merges.values())})
    ws.register("review_input", pl.DataFrame({"person_id": list(joins.review), "other": list(joins.review.values())},
                                             schema={"person_id": pl.Utf8, "other": pl.Utf8}).to_arrow())
    ws.run("join review", "CREATE OR REPLACE TEMP TABLE join_review AS SELECT * FROM review_input")
    ws.unregister("review_input")
    ws.run("identity conflicts", _identity_conflicts_sql(with_links=clusters is None))
    ws.run("flags", _flags_sql())
    ws.run("flag confidence", FLAG_CONFIDENCE)
    with ws.transaction():
        run_id = ws.scalar("next chain run id", "SELECT nextval('chain_run_ids')")
        ws.run("open chain run", "INSERT INTO chain_runs (run_id, as_of, started_at, match_run_id, chain_sha256) "
                                 "VALUES (?, ?, ?, ?, ?)",
               [run_id, as_of, datetime.now(), match_run[0][0] if match_run and clusters is None else None, chain_sha])
        if moves:    # the chain's own tables: `persons` stays the match's (see linked_persons)
            ws.register("moves_input", _moves_frame(moves).to_arrow())
            ws.run("store moves", "INSERT INTO chain_moves SELECT ?, source, record_id, from_person, to_person, score "
                                  "FROM moves_input", [run_id])
            ws.unregister("moves_input")
        if merges:
            ws.register("merges_input", pl.DataFrame(
                {"merged": list(merges), "person_id": [m[0] for m in merges.values()],
                 "how": [m[1] for m in merges.values()], "score": [m[2] for m in merges.values()]}).to_arrow())
            ws.run("store merges", "INSERT INTO chain_merges SELECT ?, person_id, merged, how, score FROM merges_input",
                   [run_id])
            ws.unregister("merges_input")
        _store(ws, config, run_id, previous)
        summary = _summarize(ws, run_id, as_of)
        summary.merged = len(merges)
        summary.moved = len(moves)
        ws.run("close chain run", """
            UPDATE chain_runs SET finished_at = ?, persons = ?, flags = ?, new_flags = ?, open_flags = ?,
                   resolved_flags = ? WHERE run_id = ?""",
               [datetime.now(), summary.persons, summary.flags, summary.new, summary.open, summary.resolved, run_id])
    return summary


def evaluate_timelines(ws: Workspace, config: ChainConfig, as_of: datetime,
                       changed: set[str] | None = None) -> None:
    """Each traveler's stages, destinations and the timeline of every traveler x stage (temp tables).

    After the chain's moves or joins only the `changed` persons are evaluated again: their rows
    are replaced, everyone else's stay as they are.
    """
    persons, travelers = "chain_persons", "traveler_stages"
    if changed:
        ws.register("rejoined", pl.DataFrame({"person_id": sorted(changed)}, schema={"person_id": pl.Utf8}).to_arrow())
        persons = "(SELECT * FROM chain_persons SEMI JOIN rejoined USING (person_id))"
        travelers = "(SELECT * FROM traveler_stages SEMI JOIN rejoined USING (person_id))"
    for step, table, sql, params in [
            ("traveler stages", "traveler_stages", _traveler_stages_sql(config, persons), [as_of]),
            ("destinations", "destinations", _destination_sql(config, persons), None),
            ("timeline", "timeline", _timeline_sql(config, travelers), [as_of])]:
        if changed:
            ws.run(f"{step} of changed persons",
                   f"DELETE FROM {table} WHERE person_id IN (SELECT person_id FROM rejoined)")
            ws.run(f"{step} of changed persons", f"INSERT INTO {table} {sql}", params)
        else:
            ws.run(step, f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", params)
    if changed:
        ws.unregister("rejoined")


def _store(ws: Workspace, config: ChainConfig, run_id: int, previous: int | None) -> None:
    severity = " ".join(f"WHEN {quote_literal(code)} THEN {quote_literal(config.severity_of(code))}"
                        for code in ("MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE",
                                     "DISTRICT_MISMATCH", "IDENTITY_CONFLICT"))
    # Timelines are rebuilt every run, so only the current one is kept (flags keep their history).
    ws.run("drop earlier timelines", "DELETE FROM timelines")
    ws.run("store timelines", """
        INSERT INTO timelines SELECT ?, person_id, stage, ord, status, time, due, district, place, source, record_id
        FROM timeline""", [run_id])
    ws.run("store flags", f"""
        INSERT INTO flags
        SELECT ?, c.flag_key, c.person_id, c.code, c.stage,
               CASE WHEN p.flag_key IS NULL THEN 'new' ELSE 'open' END,
               CASE c.code {severity} END, c.district, c.confidence, c.confidence < ? OR j.other IS NOT NULL,
               c.reason || CASE WHEN c.confidence < ? THEN
                   format(' (rests on a link of confidence {{:.2f}}: check the records belong together)', c.confidence)
                   ELSE '' END
               || CASE WHEN j.other IS NOT NULL AND c.code <> 'IDENTITY_CONFLICT' THEN
                   format(' (person {{}} may be another part of this traveler: check before acting)', j.other)
                   ELSE '' END,
               to_json(list_filter(c.evidence, x -> x IS NOT NULL))::VARCHAR,
               coalesce(p.first_seen_run, ?), c.due
        FROM current_flags c
        LEFT JOIN (SELECT flag_key, first_seen_run FROM flags WHERE run_id = ? AND status <> 'resolved') p
          USING (flag_key)
        LEFT JOIN join_review j ON j.person_id = c.person_id""", [run_id, config.review_below, config.review_below, run_id, previous or -1])
    if previous is not None:
        ws.run("resolved flags", """
            INSERT INTO flags
            SELECT ?, p.flag_key, p.person_id, p.code, p.stage, 'resolved', p.severity, p.district, p.confidence,
                   p.review, p.reason, p.evidence, p.first_seen_run, p.due
            FROM flags p ANTI JOIN current_flags c USING (flag_key)
            WHERE p.run_id = ? AND p.status <> 'resolved'""", [run_id, previous])


def _summarize(ws: Workspace, run_id: int, as_of: datetime) -> ChainSummary:
    persons = ws.scalar("count travelers", "SELECT count(*) FROM traveler_stages")
    counts = dict(ws.rows("flag counts", "SELECT status, count(*) FROM flags WHERE run_id = ? GROUP BY 1", [run_id]))
    review = ws.scalar("review count", "SELECT count(*) FROM flags WHERE run_id = ? AND review AND status <> 'resolved'",
                       [run_id])
    rows = ws.rows("flags by district", """
        SELECT coalesce(district, '(unassigned)'), code,
               count(*) FILTER (WHERE status = 'new'), count(*) FILTER (WHERE status = 'open'),
               count(*) FILTER (WHERE status = 'resolved')
        FROM flags WHERE run_id = ? GROUP BY ALL ORDER BY 1, 2""", [run_id])
    new, open_, resolved = counts.get("new", 0), counts.get("open", 0), counts.get("resolved", 0)
    return ChainSummary(run_id, as_of, int(persons), new + open_, new, open_, resolved, int(review),
                        [{"district": d, "code": c, "new": n, "open": o, "resolved": r} for d, c, n, o, r in rows])


def timeline_of(ws: Workspace, person_id: str) -> dict:
    """The latest chain run's timeline and flags of one person."""
    run = ws.scalar("latest chain run", "SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL")
    if run is None:
        raise InputError("no chain run yet; run 'linkage chain' first")
    stages = ws.rows("timeline of person", """
        SELECT stage, status, time, due, district, place, source, record_id FROM timelines
        WHERE run_id = ? AND person_id = ? ORDER BY stage_order""", [run, person_id])
    if not stages:
        known = ws.scalar("person known", "SELECT count(*) FROM persons WHERE person_id = ?", [person_id])
        raise InputError(f"person {person_id} has no chain events" if known else f"no person {person_id}")
    flags = ws.rows("flags of person", """
        SELECT code, stage, status, severity, district, confidence, review, reason, evidence FROM flags
        WHERE run_id = ? AND person_id = ? ORDER BY status, code""", [run, person_id])
    as_of = ws.scalar("as of", "SELECT as_of FROM chain_runs WHERE run_id = ?", [run])
    return {
        "person_id": person_id, "as_of": str(as_of), "run_id": run,
        "stages": [{"stage": s, "status": st, "time": str(t) if t else None, "due": str(d) if d else None,
                    "district": di, "place": p, "record": f"{so}:{r}" if so else None}
                   for s, st, t, d, di, p, so, r in stages],
        "flags": [{"code": c, "stage": s, "status": st, "severity": sv, "district": d, "confidence": cf,
                   "review": rv, "reason": rs, "evidence": json.loads(ev) if ev else []}
                  for c, s, st, sv, d, cf, rv, rs, ev in flags],
    }


def evaluate_flags(ws: Workspace, truth_flags: pl.DataFrame, truth_entities: pl.DataFrame) -> dict:
    """Precision / recall / F1 per flag code of the latest run's current flags against truth flags.

    Our persons are mapped to the truth person most of their records belong to; a flag is the
    triple (truth person, code, stage).
    """
    run = ws.scalar("latest chain run", "SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL")
    if run is None:
        raise InputError("no chain run yet; run 'linkage chain' first")
    ws.register("truth_flags_input", truth_flags.to_arrow())
    ws.register("truth_entities_input", truth_entities.to_arrow())
    rows = ws.rows("flag scores", """
        WITH votes AS (
            SELECT c.person_id, t.person_id AS truth, count(*) AS n
            FROM chain_persons c JOIN truth_entities_input t USING (source, record_id) GROUP BY ALL),
        owner AS (SELECT person_id, first(truth ORDER BY n DESC, truth) AS truth FROM votes GROUP BY person_id),
        ours AS (SELECT DISTINCT o.truth AS person_id, f.code, coalesce(f.stage, '') AS stage
                 FROM flags f JOIN owner o USING (person_id) WHERE f.run_id = ? AND f.status <> 'resolved'),
        truth AS (SELECT DISTINCT person_id, flag AS code, coalesce(stage, '') AS stage FROM truth_flags_input),
        codes AS (SELECT code FROM ours UNION SELECT code FROM truth)
        SELECT c.code,
               (SELECT count(*) FROM ours o WHERE o.code = c.code),
               (SELECT count(*) FROM truth t WHERE t.code = c.code),
               (SELECT count(*) FROM ours o JOIN truth t USING (person_id, code, stage) WHERE o.code = c.code)
        FROM codes c ORDER BY c.code""", [run])
    ws.unregister("truth_flags_input")
    ws.unregister("truth_entities_input")
    out = {}
    for code, predicted, actual, hit in rows:
        p = hit / predicted if predicted else 1.0
        r = hit / actual if actual else 1.0
        out[code] = {"predicted": predicted, "true": actual, "correct": hit, "precision": round(p, 4),
                     "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}
    return out


def score_flags(ws: Workspace, truth_flags_path: Path, truth_entities: pl.DataFrame) -> dict:
    """Load a truth_flags.csv (person_id,flag,stage) and score the latest run against it."""
    path = Path(truth_flags_path)
    if not path.is_file():
        raise InputError(f"{path}: truth flags file not found")
    frame = pl.read_csv(path, infer_schema=False)
    missing = [c for c in ("person_id", "flag", "stage") if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected person_id,flag,stage")
    run = ws.scalar("latest chain run", "SELECT max(run_id) FROM chain_runs WHERE finished_at IS NOT NULL")
    match_based = ws.scalar("chain on match persons", "SELECT match_run_id IS NOT NULL FROM chain_runs WHERE run_id = ?",
                            [run]) if run is not None else True
    _load_chain_persons(ws, None if match_based else truth_entities, "linked_persons")
    return evaluate_flags(ws, frame, truth_entities)

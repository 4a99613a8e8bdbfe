"""Chain-aware joins: one traveler split into two persons by the match, found from the timeline.

A split traveler shows up as two persons each missing what the other has: the later part misses
the earlier stages, the earlier part holds later ones open (missing, or pending while not due),
or one part only repeats stages of the other minutes apart (a second handover registration with
a permit number instead of the passport). Before such flags are raised, every person with an open
stage is paired with the persons whose events of that stage fall in its window, and with those
that duplicate its stages, when the two share a key (birth date, name, one name part, document,
phone) or a scored link; the window and the key only propose a pair, the evidence below decides.

A pair is joined only on evidence, never on a fixed rule:
- the window of a stage is learned from the data (the gaps seen between the stage and its anchor
  across all travelers, widened by a slack), as is how rare it is that some other person fills it:
  the timeline adds log2(travelers / persons missing that stage with b's event in their window)
  bits (b's event belongs to someone who misses it: those are the competitors, not all travelers);
- the records' evidence is their best match weight under the trained model (scored now with the
  match's comparisons), and that weight plus the timeline's must clear the match threshold; for a
  duplicate (stages repeated minutes apart, as a relative travelling along would repeat them) or
  two timelines side by side, a pair whose records say "two people" counts its own evidence only,
  as in the match, while parts that complement each other count everything (a relative would have
  a timeline of their own);
- two persons holding the two records of a 'not match' decision (link_decisions) are never
  joined, and a record with a decision in force never moves;
- two different valid resident IDs are never joined; birth dates that differ count as the model
  weighs them (a joined traveler with two birth dates is then flagged IDENTITY_CONFLICT).
A pair that falls short but would be more likely than not the same traveler is not joined; the
flags of both are marked for review instead, naming the other part.

Before the joins, single records move (`find_moves`): a record whose person holds each of its
events twice over (a relative's thin record put with the other relative) goes to the person
missing those stages, on the same kind of evidence.

The joins and moves go into `chain_merges` and `chain_moves`, each record's keys into
`chain_record_keys` and `chain_keyed_records` (this module's tables); `persons`,
which the match owns, is never rewritten. `linked_persons` (a view) gives every record its person
after the latest chain's moves and joins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from .config import ChainConfig, ModelConfig, parse_duration
from .match.cluster import IdentityGuard
from .match.decisions import effective_view
from .match.score import Scored, score_pairs
from .workspace import Workspace

WINDOW_QUANTILES = (0.001, 0.999)
MIN_SLACK_S = 3600.0
MAX_SCORED_PAIRS_PER_JOIN = 16
NAME_PART = "~"   # prefix of the keys of one name part alone (see _key_pairs_sql)
# The records of the persons in a table of pairs (a, b), each with how many identifiers it carries
# (birth date, documents): the records to score first.
RICH_RECORDS = """
    SELECT p.person_id, p.source, p.record_id,
           (coalesce(r.dob, r.id_dob) IS NOT NULL)::INT + (len(r.doc_numbers) > 0)::INT AS n
    FROM chain_persons p JOIN records r USING (source, record_id)
    WHERE p.person_id IN (SELECT a FROM {pairs} UNION SELECT b FROM {pairs})"""


@dataclass
class Joins:
    merges: dict[str, tuple[str, str, float]] = field(default_factory=dict)   # merged -> (kept, how, bits)
    review: dict[str, str] = field(default_factory=dict)                      # person -> the other part
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)     # stage -> seconds from anchor


def learned_windows(ws: Workspace, config: ChainConfig) -> dict[str, tuple[float, float]]:
    """Per stage with an anchor, the span (seconds after the anchor) in which its event is looked
    for: the 0.1 % and 99.9 % quantiles of the gaps seen, widened by a tenth of their span (at
    least an hour), and always covering the stage's own deadline."""
    rows = ws.rows("chain join windows", f"""
        SELECT stage, quantile_cont(epoch(time - anchor_time), {WINDOW_QUANTILES[0]}),
               quantile_cont(epoch(time - anchor_time), {WINDOW_QUANTILES[1]})
        FROM timeline WHERE time IS NOT NULL AND anchor_time IS NOT NULL GROUP BY stage""")
    seen = {stage: (float(low), float(high)) for stage, low, high in rows if low is not None}
    out = {}
    for i, stage in enumerate(config.stages):
        if config.after_of(i) is None:
            continue
        deadline = max(parse_duration(stage.max_gap) if stage.max_gap else 0.0,
                       parse_duration(stage.min_gap) if stage.min_gap else 0.0)
        low, high = seen.get(stage.name, (0.0, deadline))
        slack = max(MIN_SLACK_S, 0.1 * (high - low))
        out[stage.name] = (min(low, 0.0) - slack, max(high, deadline) + slack)
    return out


@dataclass
class Move:
    """A record the chain gives to another person (see `find_moves`)."""

    source: str
    record_id: str
    from_person: str
    to_person: str
    score: float     # the record's weight with its new person, plus the timeline's bits


def find_moves(ws: Workspace, config: ChainConfig, model_config: ModelConfig, threshold: float,
               moved: set[tuple[str, str]] = frozenset()) -> list[Move]:
    """Records one person holds twice over that another person misses (see the module docstring).

    A record qualifies when every event it carries is repeated within minutes by another record
    of its person (so its person loses no stage without it), each of those stages is open in the
    other person, at least one within the stage's window (a stage after the other person's last
    one has no window of its own), the two share a key, and the record does not
    contradict the other person's identifiers. It moves when its weight with the other person
    clears the match threshold and, with the timeline's bits for filling the open stage, beats
    its weight with its own person's records (the repeated records left out: a relative's copy of
    the same event is what makes it ambiguous). A person gives and receives one record at most
    per call (the caller calls again after applying them); a record in `moved` does not move again."""
    windows = learned_windows(ws, config)
    if not windows:
        return []
    duplicate = parse_duration(config.duplicate_within)
    bucket = time_bucket(windows)
    _register_windows(ws, windows)
    try:
        _open_stages(ws)
    finally:
        ws.unregister("join_windows")
    ws.run("moves: records that fill another person's open stages", f"""
        CREATE OR REPLACE TEMP TABLE move_fits AS
        WITH ev AS (SELECT p.person_id, p.source, p.record_id, e.stage, e.time
                    FROM chain_persons p JOIN events e USING (source, record_id)),
        repeated AS (  -- events another record of the same person repeats within the duplicate span
            SELECT DISTINCT x.person_id, x.source, x.record_id, x.stage, x.time
            FROM ev x JOIN ev y ON y.person_id = x.person_id AND y.stage = x.stage
            WHERE (y.source <> x.source OR y.record_id <> x.record_id) AND abs(epoch(y.time - x.time)) <= {duplicate}),
        spare AS (SELECT x.person_id, x.source, x.record_id FROM ev x
                  LEFT JOIN repeated r USING (person_id, source, record_id, stage, time)
                  GROUP BY ALL HAVING bool_and(r.record_id IS NOT NULL)),
        -- Keys and stages are joined first (equality), then the time window is checked.
        spare_keys AS (SELECT x.person_id AS b, x.source, x.record_id, x.stage, x.time, rk.k, rk.thin,
                              {_bucket_of("x.time", bucket)} AS bucket
                       FROM spare s JOIN ev x USING (person_id, source, record_id)
                       JOIN chain_record_keys rk ON rk.source = x.source AND rk.record_id = x.record_id),
        open_keys AS ({_open_keys_sql(bucket)}),
        fit AS (SELECT DISTINCT a, b, source, record_id, stage, time
                FROM ({_key_pairs_sql("open_keys", "spare_keys", "r.b <> l.a AND r.time BETWEEN l.w_from AND l.w_to")})),
        open AS (SELECT person_id, stage FROM timeline WHERE status IN ('missing', 'pending')),
        whole AS (  -- every stage of the record is open in a (those after a's last stage have no window)
            SELECT f.a, f.b, f.source, f.record_id
            FROM (SELECT DISTINCT a, b, source, record_id FROM fit) f
            JOIN (SELECT DISTINCT source, record_id, stage FROM ev) s USING (source, record_id)
            LEFT JOIN open o ON o.person_id = f.a AND o.stage = s.stage
            GROUP BY ALL HAVING bool_and(o.stage IS NOT NULL))
        SELECT f.a, f.b, f.source, f.record_id, f.stage, epoch(f.time) AS time, 'fills' AS how
        FROM fit f SEMI JOIN whole USING (a, b, source, record_id)""")
    fits = ws.run("moves", "SELECT * FROM move_fits").pl()
    if not fits.height:
        return []
    # the record may well be its own person's (a relative's copy of the event): any traveler is the alternative
    fits = _timeline_bits(ws, fits, windows, duplicate).group_by("a", "b", "source", "record_id").agg(
        pl.max("bits_all").alias("bits"))
    ws.register("move_candidates", fits.select("a", "b", "source", "record_id").to_arrow())
    try:
        pairs = ws.run("moves: record pairs to score", f"""
            WITH rich AS ({RICH_RECORDS.format(pairs="move_candidates")}),
            repeats AS (  -- the records of b repeating an event of the record: left out of its own weight
                SELECT DISTINCT c.source, c.record_id, y.source AS source_y, y.record_id AS record_id_y
                FROM move_candidates c JOIN events x ON x.source = c.source AND x.record_id = c.record_id
                JOIN chain_persons py ON py.person_id = c.b JOIN events y ON y.source = py.source
                 AND y.record_id = py.record_id AND y.stage = x.stage AND abs(epoch(y.time - x.time)) <= {duplicate}),
            sides AS (
                SELECT c.a, c.b, c.source, c.record_id, 'a' AS side, r.source AS source_r, r.record_id AS record_id_r, r.n
                FROM move_candidates c JOIN rich r ON r.person_id = c.a
                UNION ALL
                SELECT c.a, c.b, c.source, c.record_id, 'b', r.source, r.record_id, r.n
                FROM move_candidates c JOIN rich r ON r.person_id = c.b
                WHERE NOT EXISTS (SELECT 1 FROM repeats x WHERE x.source = c.source AND x.record_id = c.record_id
                                  AND x.source_y = r.source AND x.record_id_y = r.record_id))
            SELECT a, b, source AS source_l, record_id AS record_id_l, side, source_r, record_id_r FROM sides
            QUALIFY row_number() OVER (PARTITION BY a, b, source, record_id, side
                                       ORDER BY n DESC, source_r, record_id_r) <= {MAX_SCORED_PAIRS_PER_JOIN}""").pl()
        members = ws.run("moves: records of receiving persons", """
            SELECT person_id, source, record_id FROM chain_persons
            WHERE person_id IN (SELECT a FROM move_candidates)""").pl()
    finally:
        ws.unregister("move_candidates")
    if not pairs.height:
        return []
    scored = score_pairs(ws, model_config, pairs.select("source_l", "record_id_l", "source_r", "record_id_r"),
                         also=members)
    guard = IdentityGuard(scored.data, model_config.identity)
    rid = dict(zip(zip(scored.numbers["source"], scored.numbers["record_id"]), scored.numbers["rid"]))
    receivers = _person_groups(guard, members, scored)
    weights = pairs.select("a", "b", pl.col("source_l").alias("source"), pl.col("record_id_l").alias("record_id"),
                           "side").with_columns(w=pl.Series(scored.weights)) \
        .group_by("a", "b", "source", "record_id").agg(
            wa=pl.col("w").filter(pl.col("side") == "a").max(), wb=pl.col("w").filter(pl.col("side") == "b").max())
    threshold_weight = math.log2(threshold / (1 - threshold))
    ranked = fits.join(weights, on=["a", "b", "source", "record_id"]).with_columns(
        pl.col("wb").fill_null(-1e9)).filter(pl.col("wa").is_not_null() & (pl.col("wa") >= threshold_weight)
                                             & (pl.col("wa") + pl.col("bits") > pl.col("wb"))) \
        .with_columns(score=pl.col("wa") + pl.col("bits")).sort(["score", "a", "source", "record_id"],
                                                                 descending=[True, False, False, False])
    moves, touched = [], set()
    decided = _decided_records(ws)
    for a, b, source, record_id, score in ranked.select("a", "b", "source", "record_id", "score").iter_rows():
        if a in touched or b in touched or (source, record_id) in moved or (source, record_id) in decided:
            continue
        if guard.contradict(guard.group([rid[(source, record_id)]]), receivers[a]):
            continue
        touched |= {a, b}
        moves.append(Move(source, record_id, b, a, float(score)))
    return moves


def _person_groups(guard: IdentityGuard, members: pl.DataFrame, scored: Scored) -> dict:
    """Per person of `members` (person_id, source, record_id), the guard's group of its records."""
    return {person: guard.group(rids) for person, rids in
            members.join(scored.numbers, on=["source", "record_id"]).group_by("person_id")
            .agg(pl.col("rid")).iter_rows()}


def _register_windows(ws: Workspace, windows: dict[str, tuple[float, float]]) -> None:
    ws.register("join_windows", pl.DataFrame({
        "stage": list(windows), "w_from": [w[0] for w in windows.values()],
        "w_to": [w[1] for w in windows.values()]}).to_arrow())


def find_joins(ws: Workspace, config: ChainConfig, model_config: ModelConfig, threshold: float) -> Joins:
    """The joins of split travelers in the temp tables `timeline` / `chain_persons` (see the module
    docstring); the caller applies them."""
    joins = Joins(windows=learned_windows(ws, config))
    if not joins.windows:
        return joins
    duplicate = parse_duration(config.duplicate_within)
    _register_windows(ws, joins.windows)
    try:
        candidates = _candidates(ws, duplicate, time_bucket(joins.windows))
    finally:
        ws.unregister("join_windows")
    if not candidates.height:
        return joins
    # Each stage b fills (or repeats) is evidence; the strongest one counts (they are not independent).
    candidates = _timeline_bits(ws, candidates, joins.windows, duplicate).sort("bits", descending=True) \
        .group_by("a", "b", maintain_order=True).agg(pl.first("stage"), pl.first("how"), pl.first("duplicates"),
                                                     pl.first("repeated_records"), pl.max("bits"), pl.max("bits_all"))
    candidates = _record_weights(ws, model_config, candidates)
    # Two timelines side by side: b is a traveler of its own (a relative travelling along) as well
    # as anyone's part; only complementary timelines make b's event a missing part's.
    candidates = candidates.with_columns(bits=pl.when(pl.col("side_by_side").fill_null(True))
                                         .then(pl.col("bits_all")).otherwise(pl.col("bits")))
    candidates = candidates.filter(~_contradicting(ws, candidates) & ~_decided_apart(ws, candidates))
    threshold_weight = math.log2(threshold / (1 - threshold))
    # Every record of b beyond the first that repeats a stage of a is one more duplicate record of
    # one traveler (rare: as rare as the data shows) rather than a co-traveller's own event.
    repeats = _duplicate_bits(ws, duplicate)
    candidates = candidates.with_columns(
        total=pl.col("weight") + pl.col("bits") + (pl.col("repeated_records") - 1).clip(lower_bound=0) * repeats).sort(
        ["total", "a", "b"], descending=[True, False, False])
    stages = dict(ws.rows("done stages of join candidates", """
        SELECT person_id, list(stage ORDER BY stage) FROM timeline WHERE status = 'done'
        AND person_id IN (SELECT a FROM join_pairs UNION SELECT b FROM join_pairs) GROUP BY 1"""))
    root: dict[str, str] = {}

    def find(x: str) -> str:
        while root.get(x, x) != x:
            x = root[x]
        return x

    held = {p: set(s) for p, s in stages.items()}
    for a, b, total, how, duplicates in candidates.select("a", "b", "total", "how", "duplicates").iter_rows():
        if total < threshold_weight:
            if total >= 0:    # more likely than not one traveler: an officer should look before acting
                joins.review.setdefault(a, b)
                joins.review.setdefault(b, a)
            continue
        ra, rb = find(a), find(b)
        if ra == rb or (held.get(ra, set()) & held.get(rb, set()) and not duplicates):
            continue
        keep, gone = sorted((ra, rb))
        root[gone] = keep
        held[keep] = held.get(keep, set()) | held.pop(gone, set())
        joins.merges[gone] = (keep, how, float(total))
    joins.merges = {gone: (find(gone), how, score) for gone, (_, how, score) in joins.merges.items()}
    for person in list(joins.review):
        if person in joins.merges or find(person) in joins.merges.values():
            joins.review.pop(person, None)
    return joins


def _duplicate_bits(ws: Workspace, duplicate: float) -> float:
    """log2 of how often one person holds two records of one stage within the duplicate span (a
    duplicate record), as the match's persons show it (at least one in all person-stages)."""
    share, stages = ws.rows("duplicate records", f"""
        WITH ps AS (SELECT p.person_id, e.stage, count(DISTINCT (e.source, e.record_id)) AS n,
                           epoch(max(e.time) - min(e.time)) AS span
                    FROM chain_persons p JOIN events e USING (source, record_id) GROUP BY ALL)
        SELECT count(*) FILTER (WHERE n > 1 AND span <= {duplicate}), count(*) FROM ps""")[0]
    return math.log2(max(share, 1) / max(stages, 1))


def prepare_keys(ws: Workspace) -> None:
    """Bring `chain_record_keys` (each record's keys: birth date, names, name parts, documents,
    phones; this module's table) up to date with the records: the keys of records gone or replaced
    by a newer export are dropped and those of records not keyed yet are added, so a night keys
    only its new records. `chain_keyed_records` says which copy (batch) of each record is keyed."""
    with ws.transaction():
        ws.run("join: records gone or replaced", """
            CREATE OR REPLACE TEMP TABLE stale_keyed AS
            SELECT source, record_id FROM chain_keyed_records ANTI JOIN records USING (source, record_id, batch_id)""")
        ws.run("join: keys of records gone or replaced", """
            DELETE FROM chain_record_keys k USING stale_keyed s WHERE k.source = s.source AND k.record_id = s.record_id""")
        ws.run("join: records gone or replaced", """
            DELETE FROM chain_keyed_records k USING stale_keyed s WHERE k.source = s.source AND k.record_id = s.record_id""")
        ws.run("join: records to key", """
            CREATE OR REPLACE TEMP TABLE to_key AS
            SELECT source, record_id, batch_id FROM records ANTI JOIN chain_keyed_records USING (source, record_id)""")
        ws.run("join: record keys", """
            INSERT INTO chain_record_keys
            SELECT DISTINCT r.source, r.record_id, k,
                   (coalesce(r.dob, r.id_dob) IS NOT NULL)::INT + (len(coalesce(r.doc_numbers, [])) > 0)::INT
                     + (len(coalesce(r.phones, [])) > 0)::INT <= 1 AS thin
            FROM records r SEMI JOIN to_key USING (source, record_id),
                 unnest(['d' || CAST(coalesce(r.dob, r.id_dob) AS VARCHAR), 'n' || r.name_key, 'l' || r.local_name,
                         'f' || r.family_phonetic || ' ' || r.given_phonetic,
                         -- one name part alone: a thin record with a typo in the other part (Mier, Meier)
                         '~F' || r.family_name, '~G' || r.given_name]
                        || list_transform(r.doc_numbers, x -> 'x' || x)
                        || list_transform(coalesce(r.phones, []), x -> 'p' || right(ltrim(x, '+'), 8)))
                 AS t(k)
            WHERE k IS NOT NULL""")
        ws.run("join: records keyed", "INSERT INTO chain_keyed_records SELECT * FROM to_key")
        ws.run("join: drop", "DROP TABLE stale_keyed; DROP TABLE to_key")


def _open_stages(ws: Workspace) -> None:
    """The temp table `join_open`: person, open stage, its window (needs `join_windows` registered)."""
    ws.run("join: open stages", """
        CREATE OR REPLACE TEMP TABLE join_open AS
        SELECT t.person_id, t.stage, t.anchor_time + to_microseconds(CAST(w.w_from * 1e6 AS BIGINT)) AS w_from,
               t.anchor_time + to_microseconds(CAST(w.w_to * 1e6 AS BIGINT)) AS w_to
        FROM timeline t JOIN join_windows w USING (stage)
        WHERE t.status IN ('missing', 'pending') AND t.anchor_time IS NOT NULL""")


def person_keys(ws: Workspace, changed: set[str] | None = None) -> None:
    """The temp table `join_keys`: each person's record keys (from `chain_record_keys`), and whether
    the person is thin (at most one of birth date, document, phone). With `changed`, only those
    persons' rows are made again (after the chain's moves)."""
    persons = "chain_persons"
    if changed:
        ws.register("changed_persons", pl.DataFrame({"person_id": sorted(changed)},
                                                    schema={"person_id": pl.Utf8}).to_arrow())
        persons = "(SELECT * FROM chain_persons SEMI JOIN changed_persons USING (person_id))"
    sql = f"""
        WITH keys AS (SELECT p.person_id, rk.k, rk.thin FROM chain_record_keys rk JOIN {persons} p
                      USING (source, record_id))
        SELECT DISTINCT k.person_id, k.k, t.thin
        FROM keys k JOIN (SELECT person_id, bool_or(starts_with(k, 'd'))::INT + bool_or(starts_with(k, 'x'))::INT
                                 + bool_or(starts_with(k, 'p'))::INT <= 1 AS thin
                          FROM keys GROUP BY 1) t USING (person_id)"""
    if changed:
        ws.run("join: keys of changed persons",
               "DELETE FROM join_keys WHERE person_id IN (SELECT person_id FROM changed_persons)")
        ws.run("join: keys of changed persons", f"INSERT INTO join_keys {sql}")
        ws.unregister("changed_persons")
    else:
        ws.run("join: person keys", f"CREATE OR REPLACE TEMP TABLE join_keys AS {sql}")


def time_bucket(windows: dict[str, tuple[float, float]]) -> float:
    """Seconds per time bucket of the key joins: an open stage's window spans at most about 16, so
    joining on the bucket too keeps a common key from pairing every open stage with every event of
    that stage, at any time."""
    widest = max((high - low for low, high in windows.values()), default=0.0)
    return max(3600.0, widest / 16)


def _bucket_of(column: str, bucket: float) -> str:
    return f"CAST(floor(epoch({column}) / {bucket}) AS BIGINT)"


def _open_keys_sql(bucket: float) -> str:
    """Each open stage with each key of its person, once per time bucket its window touches."""
    return f"""
        SELECT o.person_id AS a, o.stage, o.w_from, o.w_to, k.k, k.thin, b.bucket
        FROM join_open o JOIN join_keys k USING (person_id),
             unnest(range({_bucket_of("o.w_from", bucket)}, {_bucket_of("o.w_to", bucket)} + 1)) AS b(bucket)"""


def _key_pairs_sql(left: str, right: str, extra: str) -> str:
    """`left` (open stages) and `right` (events) sharing a key in one time bucket, on one stage. A key
    of one name part alone counts only when one side is thin (at most one of birth date, document,
    phone): it is there for a thin record with a typo in the other part, which has nothing else to
    be found by, and between two persons with more it would pair everyone of a common surname."""
    on = "r.stage = l.stage AND r.k = l.k AND r.bucket = l.bucket"
    part = f"starts_with(k, '{NAME_PART}')"
    # Both sides are cut to the keys the branch can join (the keys are equal), before the join.
    return f"""
        SELECT l.*, r.* EXCLUDE (stage, k, bucket, thin)
        FROM (SELECT * FROM {left} WHERE NOT {part}) l JOIN (SELECT * FROM {right} WHERE NOT {part}) r ON {on}
        WHERE {extra}
        UNION ALL
        SELECT l.*, r.* EXCLUDE (stage, k, bucket, thin)
        FROM (SELECT * FROM {left} WHERE thin AND {part}) l JOIN (SELECT * FROM {right} WHERE {part}) r ON {on}
        WHERE {extra}
        UNION ALL
        SELECT l.*, r.* EXCLUDE (stage, k, bucket, thin)
        FROM (SELECT * FROM {left} WHERE NOT thin AND {part}) l JOIN (SELECT * FROM {right} WHERE thin AND {part}) r
          ON {on}
        WHERE {extra}"""


def _candidates(ws: Workspace, duplicate: float, bucket: float) -> pl.DataFrame:
    """Pairs of persons (a with an open stage, b with that stage's event in a's window; or b
    repeating a's stages within `duplicate` seconds) that share an identifier key or a stored
    link, whose joined timeline keeps the stage order. Columns a, b, stage, time, how,
    duplicates; also left as the temp table `join_pairs`."""
    _open_stages(ws)
    # In steps, each a temp table: DuckDB then plans every join on true row counts (as one statement,
    # a second run on the same workspace was once planned into tens of GB of spill at 200,000 people).
    ws.run("join: stages done", """
        CREATE OR REPLACE TEMP TABLE join_done AS SELECT person_id, stage, ord, time, record FROM timeline
        WHERE time IS NOT NULL""")
    ws.run("join: persons missing a stage",
           "CREATE OR REPLACE TEMP TABLE join_missing AS SELECT DISTINCT person_id FROM timeline WHERE status = 'missing'")
    ws.run("join: persons sharing a link", """
        CREATE OR REPLACE TEMP TABLE join_sharing AS
        WITH linked AS (SELECT DISTINCT pa.person_id AS a, pb.person_id AS b
                        FROM link_pairs l JOIN chain_persons pa ON pa.rid = l.rid_l
                        JOIN chain_persons pb ON pb.rid = l.rid_r
                        WHERE pa.person_id <> pb.person_id)
        SELECT a, b FROM linked UNION SELECT b, a FROM linked""")
    ws.run("join: candidate pairs", f"""
        CREATE OR REPLACE TEMP TABLE join_chosen AS
        WITH
        -- Keys and stages are joined first (equality), then the time window is checked: the pairs of
        -- persons near in time alone would be far too many.
        open_keys AS ({_open_keys_sql(bucket)}),
        done_keys AS (SELECT d.person_id AS b, d.stage, d.time, k.k, k.thin,
                             CAST(floor(epoch(d.time) / {max(duplicate, 1.0)}) AS BIGINT) AS span,
                             {_bucket_of("d.time", bucket)} AS bucket
                      FROM join_done d JOIN join_keys k USING (person_id)),
        filling AS (  -- b has the stage a holds open, in a's window, and they share a key or a link
            SELECT a, b, stage, time, 'fills' AS how
            FROM ({_key_pairs_sql("open_keys", "done_keys", "r.b <> l.a AND r.time BETWEEN l.w_from AND l.w_to")})
            UNION
            SELECT o.person_id AS a, d.person_id AS b, o.stage, d.time, 'fills' AS how
            FROM join_sharing s JOIN join_open o ON o.person_id = s.a JOIN join_done d ON d.person_id = s.b AND d.stage = o.stage
            WHERE d.time BETWEEN o.w_from AND o.w_to),
        repeating AS (  -- b, which misses stages, repeats a stage of a within minutes
            SELECT x.b AS a, y.b AS b, x.stage, y.time, 'duplicates' AS how
            FROM (SELECT *, unnest([span - 1, span, span + 1]) AS near_span FROM done_keys) x
            JOIN (SELECT * FROM done_keys WHERE b IN (SELECT person_id FROM join_missing)) y
              ON y.stage = x.stage AND y.k = x.k AND y.span = x.near_span AND x.b <> y.b
            WHERE abs(epoch(y.time - x.time)) <= {duplicate}
            UNION
            SELECT x.person_id AS a, y.person_id AS b, x.stage, y.time, 'duplicates' AS how
            FROM join_sharing s JOIN join_done x ON x.person_id = s.a JOIN join_done y ON y.person_id = s.b AND y.stage = x.stage
            WHERE abs(epoch(y.time - x.time)) <= {duplicate} AND y.person_id IN (SELECT person_id FROM join_missing))
        SELECT * FROM filling UNION SELECT * FROM repeating""")
    ws.run("join: pairs", f"""
        CREATE OR REPLACE TEMP TABLE join_pairs AS
        WITH overlap AS (  -- stages both have: allowed only as duplicates (within minutes of each other)
            SELECT c.a, c.b, bool_and(abs(epoch(y.time - x.time)) <= {duplicate}) AS duplicates,
                   least(count(DISTINCT x.record), count(DISTINCT y.record)) AS repeated_records
            FROM (SELECT DISTINCT a, b FROM join_chosen) c
            JOIN join_done x ON x.person_id = c.a JOIN join_done y ON y.person_id = c.b AND y.stage = x.stage
            GROUP BY ALL),
        disorder AS (  -- the joined timeline would break the stage order
            SELECT DISTINCT c.a, c.b FROM (SELECT DISTINCT a, b FROM join_chosen) c
            JOIN join_done x ON x.person_id = c.a JOIN join_done y ON y.person_id = c.b
            WHERE y.stage <> x.stage AND ((x.ord < y.ord AND x.time > y.time) OR (x.ord > y.ord AND x.time < y.time)))
        SELECT least(c.a, c.b) AS a, greatest(c.a, c.b) AS b, c.stage, c.time, c.how,
               coalesce(o.duplicates, false) AS duplicates, coalesce(o.repeated_records, 0) AS repeated_records
        FROM join_chosen c LEFT JOIN overlap o USING (a, b) ANTI JOIN disorder USING (a, b)
        WHERE o.a IS NULL OR o.duplicates""")
    ws.run("join: drop steps", "DROP TABLE join_done; DROP TABLE join_missing; DROP TABLE join_sharing; DROP TABLE join_chosen")
    return ws.run("join pairs", "SELECT DISTINCT a, b, stage, epoch(time) AS time, how, duplicates, repeated_records "
                                "FROM join_pairs").pl()


def _timeline_bits(ws: Workspace, candidates: pl.DataFrame, windows: dict[str, tuple[float, float]],
                   duplicate: float) -> pl.DataFrame:
    """The timeline's evidence that a and b are one traveler, in bits: log2(travelers / the
    travelers b's event could otherwise belong to), the prior the records' weight carries (one in
    `travelers`) replaced by one in those. Two columns, for two alternatives to "b is a's part":

    - `bits_all`, b is any traveler: every traveler with that stage's event within half a window
      width either side (within the duplicate span for a repeated stage);
    - `bits`, b is some other traveler's part (b's timeline complements a's, so b's event is someone's
      who misses it): the persons in whom that stage is open with b's time in its window
      (`join_open`); for a repeated stage the same as `bits_all`."""
    done = ws.run("stage times", "SELECT stage, epoch(time) AS t FROM timeline WHERE time IS NOT NULL").pl()
    opened = ws.run("open windows", "SELECT stage, epoch(w_from) AS lo, epoch(w_to) AS hi FROM join_open").pl()
    travelers = max(int(ws.scalar("travelers", "SELECT count(*) FROM traveler_stages")), 1)
    by_stage = {stage: np.sort(group["t"].to_numpy()) for (stage,), group in done.group_by("stage")}
    open_by_stage = {stage: (np.sort(group["lo"].to_numpy()), np.sort(group["hi"].to_numpy()))
                     for (stage,), group in opened.group_by("stage")}
    every, parts = [], []
    for stage, time, how in candidates.select("stage", "time", "how").iter_rows():
        t = float(time)
        times = by_stage.get(stage, np.zeros(0))
        low, high = windows.get(stage, (-MIN_SLACK_S, MIN_SLACK_S))
        span = duplicate if how == "duplicates" else (high - low) / 2
        near = int(np.searchsorted(times, t + span, "right") - np.searchsorted(times, t - span, "left"))
        every.append(math.log2(travelers / max(near, 1)))
        if how != "duplicates":   # windows holding t: those opened at or before t, less those closed before t
            lo, hi = open_by_stage.get(stage, (np.zeros(0), np.zeros(0)))
            near = int(np.searchsorted(lo, t, "right") - np.searchsorted(hi, t, "left"))
        parts.append(math.log2(travelers / max(near, 1)))
    return candidates.with_columns(bits=pl.Series(parts, dtype=pl.Float64), bits_all=pl.Series(every, dtype=pl.Float64))


def _record_weights(ws: Workspace, model_config: ModelConfig, candidates: pl.DataFrame) -> pl.DataFrame:
    """Per candidate pair of persons: the best weight a link between their records would stand on,
    the records scored with the trained model (the pairs of records that carry most identifiers
    first). Two persons whose identifiers contradict (by the match's guard: two birth dates, two
    resident IDs) and who both went through some stage (two timelines side by side, as of a parent
    and a child travelling together) are judged as the guard judges a merge: only on the pairs of
    records that themselves contradict, and there on their own evidence; a thin record that agrees
    with both (one name, one phone) is no evidence that they are one traveler. Parts whose stages
    complement each other keep their whole weight: one traveler's record with a wrong birth date
    is joined, and the contradiction is flagged."""
    ws.register("join_candidates", candidates.select("a", "b").to_arrow())
    try:
        members = ws.run("join: records of candidates", """
            SELECT person_id, source, record_id FROM chain_persons
            WHERE person_id IN (SELECT a FROM join_candidates UNION SELECT b FROM join_candidates)""").pl()
        record_pairs = ws.run("join: record pairs to score", f"""
            WITH rich AS ({RICH_RECORDS.format(pairs="join_candidates")})
            SELECT c.a, c.b, pa.source AS source_l, pa.record_id AS record_id_l,
                   pb.source AS source_r, pb.record_id AS record_id_r
            FROM join_candidates c JOIN rich pa ON pa.person_id = c.a JOIN rich pb ON pb.person_id = c.b
            QUALIFY row_number() OVER (PARTITION BY c.a, c.b ORDER BY pa.n + pb.n DESC, pa.source, pa.record_id,
                                       pb.source, pb.record_id) <= {MAX_SCORED_PAIRS_PER_JOIN}""").pl()
        side_by_side = set(ws.run("join: persons who both went through a stage", """
            SELECT DISTINCT c.a, c.b FROM join_candidates c
            JOIN timeline ta ON ta.person_id = c.a JOIN timeline tb ON tb.person_id = c.b AND tb.stage = ta.stage
            WHERE ta.status = 'done' AND tb.status = 'done'""").fetchall())
    finally:
        ws.unregister("join_candidates")
    best = pl.DataFrame(schema={"a": pl.Utf8, "b": pl.Utf8, "full": pl.Float64, "stands": pl.Float64,
                                "direct": pl.Float64, "contradict": pl.Boolean, "side_by_side": pl.Boolean})
    if record_pairs.height:
        scored = score_pairs(ws, model_config, record_pairs.select("source_l", "record_id_l", "source_r",
                                                                   "record_id_r"), also=members)
        guard = IdentityGuard(scored.data, model_config.identity)
        groups = _person_groups(guard, members, scored)
        contradict = {(a, b): (a, b) in side_by_side and guard.contradict(groups[a], groups[b])
                      for a, b in candidates.select("a", "b").unique().iter_rows()}
        direct = [
            stands if contradict[(a, b)] and guard.contradict(guard.group([u]), guard.group([v])) else None
            for a, b, u, v, stands in zip(record_pairs["a"], record_pairs["b"], scored.left.tolist(),
                                          scored.right.tolist(), scored.stands.tolist())]
        best = record_pairs.select("a", "b").with_columns(
            full=pl.Series(scored.weights), stands=pl.Series(scored.stands),
            direct=pl.Series(direct, dtype=pl.Float64)).group_by("a", "b").agg(
            pl.col("full").max(), pl.col("stands").max(), pl.col("direct").max()).join(
            pl.DataFrame({"a": [a for a, _ in contradict], "b": [b for _, b in contradict],
                          "contradict": list(contradict.values()),
                          "side_by_side": [pair in side_by_side for pair in contradict]},
                         schema_overrides={"contradict": pl.Boolean, "side_by_side": pl.Boolean}),
            on=["a", "b"])
    # b filling a's open stages with a timeline that complements a's is no sign of a relative, who
    # would have a timeline of their own: there, what a household shares counts. Two timelines side
    # by side (both went through some stage), or a repeat of a's stages minutes apart, may be a
    # relative travelling along: there, only the records' own evidence.
    return candidates.join(best, on=["a", "b"], how="left").with_columns(
        weight=pl.when(pl.col("contradict")).then(pl.col("direct"))
        .when((pl.col("how") == "fills") & ~pl.col("side_by_side")).then(pl.col("full"))
        .otherwise(pl.col("stands")).fill_null(-1e9))


def _decided_records(ws: Workspace) -> set[tuple[str, str]]:
    """Records a person decided about (a must-link or cannot-link in force): the chain does not move them."""
    view = effective_view(ws)
    return set(ws.rows("records with a decision", f"""
        SELECT source_l, record_id_l FROM {view} WHERE decision IN ('match', 'not_match')
        UNION SELECT source_r, record_id_r FROM {view} WHERE decision IN ('match', 'not_match')"""))


def _decided_apart(ws: Workspace, candidates: pl.DataFrame) -> pl.Series:
    """Per candidate: do the two persons hold the two records of a cannot-link (a 'not match' decision)?"""
    view = effective_view(ws)
    ws.register("join_candidates", candidates.select("a", "b").to_arrow())
    try:
        apart = set(ws.rows("join: decided apart", f"""
            SELECT DISTINCT c.a, c.b FROM join_candidates c
            JOIN chain_persons pa ON pa.person_id = c.a JOIN chain_persons pb ON pb.person_id = c.b
            JOIN {view} d ON d.decision = 'not_match'
                 AND ((d.source_l = pa.source AND d.record_id_l = pa.record_id
                       AND d.source_r = pb.source AND d.record_id_r = pb.record_id)
                   OR (d.source_r = pa.source AND d.record_id_r = pa.record_id
                       AND d.source_l = pb.source AND d.record_id_l = pb.record_id))"""))
    finally:
        ws.unregister("join_candidates")
    return pl.Series([(a, b) in apart for a, b in candidates.select("a", "b").iter_rows()], dtype=pl.Boolean)


def _contradicting(ws: Workspace, candidates: pl.DataFrame) -> pl.Series:
    """Per candidate: do the two persons hold two different valid resident IDs (none in common)?"""
    ws.register("join_candidates", candidates.select("a", "b").to_arrow())
    try:
        bad = ws.run("join: resident IDs", """
            SELECT c.a, c.b FROM join_candidates c
            JOIN chain_persons pa ON pa.person_id = c.a JOIN records ra ON ra.source = pa.source AND ra.record_id = pa.record_id
            JOIN chain_persons pb ON pb.person_id = c.b JOIN records rb ON rb.source = pb.source AND rb.record_id = pb.record_id
            WHERE ra.id_number IS NOT NULL AND rb.id_number IS NOT NULL
            GROUP BY ALL HAVING NOT bool_or(ra.id_number = rb.id_number)""").pl()
    finally:
        ws.unregister("join_candidates")
    pairs = set(bad.select("a", "b").iter_rows())
    return pl.Series([(a, b) in pairs for a, b in candidates.select("a", "b").iter_rows()], dtype=pl.Boolean)

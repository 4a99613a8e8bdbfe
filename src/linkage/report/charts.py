"""The report's charts: pure functions from the frames of `report.data` to Altair charts.

Each function takes the data it draws and returns an `alt.Chart` (or a layered / concatenated
chart); nothing here reads the workspace or writes a file. The charts are Vega-Lite specs that the
HTML embeds with the inlined Vega libraries and that vl-convert renders to PNG.
"""

from __future__ import annotations

import altair as alt
import polars as pl

WIDTH = 560
BAR = 18                      # pixels per row of a horizontal bar chart
OUTCOME_COLORS = {"linked": "#2f7d32", "linked, identifiers contradict": "#f0a202",
                  "refused by the identity guard": "#c62828", "below the threshold": "#9e9e9e"}
STATUS_COLORS = {"done": "#2f7d32", "pending": "#90a4ae", "missing": "#c62828",
                 "new": "#c62828", "open": "#f0a202", "resolved": "#2f7d32"}


RUN_AXIS = alt.Axis(labelAngle=0)


def _count_axis(top: int | float | None) -> alt.Axis:
    """An axis of counts: whole numbers only (no 0.5 ticks when the largest count is 1 or 2)."""
    return alt.Axis(format=",d", tickCount=int(min(max(top or 1, 1), 8)))


def _top(frame: pl.DataFrame, value: str, by: list[str] | None = None) -> int:
    """The largest `value`, or the largest sum of `value` per group of `by` (a stacked bar's length)."""
    if frame.is_empty():
        return 1
    if by:
        frame = frame.group_by(by).agg(pl.col(value).sum())
    return int(frame[value].max() or 1)


def _height(rows: int) -> int:
    return max(60, rows * BAR)


def _colors(mapping: dict[str, str], present: list[str]) -> alt.Scale:
    domain = [name for name in mapping if name in present] + [name for name in present if name not in mapping]
    return alt.Scale(domain=domain, range=[mapping.get(name, "#5c6bc0") for name in domain])


def source_records(counts: pl.DataFrame) -> alt.Chart:
    """Records per source, with the rows rejected beside them."""
    long = counts.select("source", "records", "rows_rejected").unpivot(
        index="source", variable_name="what", value_name="rows").with_columns(
        pl.col("what").replace({"records": "records loaded", "rows_rejected": "rows rejected"}))
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("source:N", title=None),
        yOffset=alt.YOffset("what:N"),
        x=alt.X("rows:Q", title="rows", axis=_count_axis(_top(long, "rows"))),
        color=alt.Color("what:N", title=None, scale=alt.Scale(domain=["records loaded", "rows rejected"],
                                                              range=["#3f51b5", "#c62828"])),
        tooltip=["source:N", "what:N", alt.Tooltip("rows:Q", format=",")],
    ).properties(width=WIDTH, height=_height(2 * counts.height), title="Records per source")


def rejects(reasons: pl.DataFrame) -> alt.Chart:
    """Rejected rows and value issues by reason (a value issue also names its column)."""
    labelled = reasons.with_columns(
        what=pl.when(pl.col("kind") == "row").then(pl.lit("row rejected"))
        .when(pl.col("kind") == "value").then(pl.lit("value not standardized"))
        .otherwise(pl.lit("value kept, noted")),
        label=pl.when(pl.col("column_name") == "").then(pl.col("reason"))
        .otherwise(pl.col("column_name") + ": " + pl.col("reason")),
    ).group_by("label", "what", "source").agg(pl.col("count").sum())
    labels = labelled["label"].n_unique()
    return alt.Chart(labelled).mark_bar().encode(
        y=alt.Y("label:N", title=None, sort="-x", axis=alt.Axis(labelLimit=360)),
        x=alt.X("sum(count):Q", title="rows / values", axis=_count_axis(_top(labelled, "count", ["label"]))),
        color=alt.Color("what:N", title=None, scale=_colors(
            {"row rejected": "#c62828", "value not standardized": "#f0a202", "value kept, noted": "#90a4ae"},
            labelled["what"].unique().to_list())),
        tooltip=["source:N", "what:N", "label:N", alt.Tooltip("count:Q", format=",")],
    ).properties(width=WIDTH - 200, height=_height(labels), title="Rejects and value issues by reason")


def completeness(fields: pl.DataFrame) -> alt.Chart:
    """Share of each source's records holding each field (a heat map with the percentage written in)."""
    order = fields["field"].unique(maintain_order=True).to_list()
    base = alt.Chart(fields).encode(
        x=alt.X("source:N", title=None, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("field:N", title=None, sort=order),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", title="share filled", scale=alt.Scale(domain=[0, 1], scheme="blues")),
        tooltip=["source:N", "field:N", alt.Tooltip("filled:Q", format=","), alt.Tooltip("records:Q", format=","),
                 alt.Tooltip("share:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("share:Q", format=".0%"),
        color=alt.condition("datum.share > 0.6", alt.value("white"), alt.value("#222")),
    )
    return (cells + text).properties(width=min(WIDTH, 110 * fields["source"].n_unique()),
                                     height=_height(len(order)), title="Field completeness per source")


def model_weights(levels: pl.DataFrame, prior_weight: float) -> alt.HConcatChart:
    """Match weight log2(m/u) per comparison level (bars) beside m and u (points on a log scale)."""
    rows = levels.with_columns(
        row=pl.col("comparison") + ": " + pl.col("level") + pl.when(pl.col("tf_adjusted"))
        .then(pl.lit(" (tf)")).otherwise(pl.lit("")),
        sign=pl.when(pl.col("weight") >= 0).then(pl.lit("for a match")).otherwise(pl.lit("against")),
    ).sort("position", "level_no", descending=[False, True])
    order = rows["row"].to_list()
    height = _height(len(order))
    y = alt.Y("row:N", title=None, sort=order, axis=alt.Axis(labelLimit=320))
    weights = alt.Chart(rows).mark_bar().encode(
        y=y, x=alt.X("weight:Q", title=f"match weight (bits; prior {prior_weight:+.1f})"),
        color=alt.Color("sign:N", title=None, scale=alt.Scale(domain=["for a match", "against"],
                                                              range=["#2f7d32", "#c62828"])),
        tooltip=["comparison:N", "level:N", alt.Tooltip("weight:Q", format="+.2f"), alt.Tooltip("m:Q", format=".4g"),
                 alt.Tooltip("u:Q", format=".3g")],
    ).properties(width=260, height=height)
    mu = rows.select("row", "comparison", "level", "m", "u").unpivot(
        index=["row", "comparison", "level"], variable_name="probability", value_name="value")
    points = alt.Chart(mu).mark_point(filled=True, size=50).encode(
        y=alt.Y("row:N", title=None, sort=order, axis=None),
        x=alt.X("value:Q", title="m and u (log scale)", scale=alt.Scale(type="log", domain=[1e-6, 1], clamp=True),
                axis=alt.Axis(values=[1e-6, 1e-4, 1e-2, 1], format=".0e")),
        color=alt.Color("probability:N", title=None, scale=alt.Scale(domain=["m", "u"], range=["#1565c0", "#ef6c00"])),
        tooltip=["comparison:N", "level:N", "probability:N", alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=200, height=height)
    return alt.hconcat(weights, points, title="The trained model per comparison level").resolve_scale(
        color="independent")


def pair_weights(bins: pl.DataFrame, threshold_weight: float, threshold: float) -> alt.LayerChart:
    """Histogram of the scored pairs' match weights by outcome, with the threshold as a rule."""
    outcomes = bins["outcome"].unique().to_list()
    bars = alt.Chart(bins).mark_bar(binSpacing=0).encode(
        x=alt.X("bin_start:Q", bin="binned", title="match weight of the pair (bits)"),
        x2="bin_end:Q",
        y=alt.Y("sum(pairs):Q", title="pairs", stack=True, axis=_count_axis(_top(bins, "pairs", ["bin_start"]))),
        color=alt.Color("outcome:N", title=None, scale=_colors(OUTCOME_COLORS, outcomes)),
        tooltip=["outcome:N", "bin_start:Q", "bin_end:Q", alt.Tooltip("pairs:Q", format=",")],
    )
    marker = pl.DataFrame({"weight": [threshold_weight], "label": [f"threshold {threshold:g}"]})
    rule = alt.Chart(marker).mark_rule(color="#111", strokeDash=[6, 3], size=2).encode(x="weight:Q")
    label = alt.Chart(marker).mark_text(align="left", dx=4, dy=-6, fontSize=11).encode(
        x="weight:Q", y=alt.value(0), text="label:N")
    return (bars + rule + label).properties(width=WIDTH, height=240, title="Match weights of the scored pairs")


def cluster_sizes(sizes: pl.DataFrame) -> alt.Chart:
    """How many persons hold 1, 2, 3, ... records."""
    return alt.Chart(sizes).mark_bar(color="#3f51b5").encode(
        x=alt.X("records:O", title="records per person", axis=RUN_AXIS),
        y=alt.Y("persons:Q", title="persons", axis=_count_axis(_top(sizes, "persons"))),
        tooltip=[alt.Tooltip("records:O"), alt.Tooltip("persons:Q", format=",")],
    ).properties(width=min(WIDTH, max(160, 36 * sizes.height)), height=220, title="Cluster sizes")


def chain_funnel(funnel: pl.DataFrame) -> alt.Chart:
    """Travelers per stage of the chain, in chain order: done, pending (not yet due), missing."""
    order = funnel.sort("stage_order")["stage"].unique(maintain_order=True).to_list()
    statuses = funnel["status"].unique().to_list()
    return alt.Chart(funnel).mark_bar().encode(
        y=alt.Y("stage:N", title=None, sort=order),
        x=alt.X("travelers:Q", title="travelers", stack=True, axis=_count_axis(_top(funnel, "travelers", ["stage"]))),
        color=alt.Color("status:N", title=None, scale=_colors({k: STATUS_COLORS[k] for k in ("done", "pending", "missing")},
                                                              statuses)),
        order=alt.Order("status_rank:Q"),
        tooltip=["stage:N", "status:N", alt.Tooltip("travelers:Q", format=",")],
    ).transform_calculate(
        status_rank="datum.status == 'done' ? 0 : datum.status == 'pending' ? 1 : 2",
    ).properties(width=WIDTH, height=_height(len(order)), title="The chain: travelers per stage")


def flags_by_district(flags: pl.DataFrame) -> alt.Chart:
    """Flags per responsible district, coloured by code, one panel per status (new / open / resolved)."""
    statuses = [s for s in ("new", "open", "resolved") if s in flags["status"].to_list()]
    districts = flags["district"].n_unique()
    return alt.Chart(flags).mark_bar().encode(
        y=alt.Y("district:N", title=None, sort="-x"),
        x=alt.X("sum(flags):Q", title="flags", axis=_count_axis(_top(flags, "flags", ["district", "status"]))),
        color=alt.Color("code:N", title="code"),
        column=alt.Column("status:N", title=None, sort=statuses),
        tooltip=["district:N", "code:N", "status:N", alt.Tooltip("flags:Q", format=",")],
    ).properties(width=max(120, (WIDTH - 100) // max(len(statuses), 1)), height=_height(districts),
                 title="Flags by district and code")


def answers_by_district(answers: pl.DataFrame) -> alt.Chart:
    """Officers' answers per district, coloured by outcome."""
    return alt.Chart(answers).mark_bar().encode(
        y=alt.Y("district:N", title=None, sort="-x"),
        x=alt.X("sum(answers):Q", title="answers", axis=_count_axis(_top(answers, "answers", ["district"]))),
        color=alt.Color("outcome:N", title="outcome"),
        tooltip=["district:N", "outcome:N", alt.Tooltip("answers:Q", format=",")],
    ).properties(width=WIDTH - 200, height=_height(answers["district"].n_unique()), title="Officers' answers")


def unanswered_flags(unanswered: pl.DataFrame, overdue_days: int) -> alt.Chart:
    """Current flags without an answer per district; overdue: first seen more than `overdue_days` ago."""
    long = unanswered.with_columns(recent=pl.col("unanswered") - pl.col("overdue")).select(
        "district", pl.col("overdue").alias(f"over {overdue_days} days"),
        pl.col("recent").alias(f"{overdue_days} days or less")).unpivot(
        index="district", variable_name="age", value_name="flags")
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("district:N", title=None, sort="-x"),
        x=alt.X("sum(flags):Q", title="current flags without an answer", axis=_count_axis(_top(unanswered, "unanswered"))),
        color=alt.Color("age:N", title="first sent", scale=alt.Scale(
            domain=[f"over {overdue_days} days", f"{overdue_days} days or less"], range=["#c62828", "#90a4ae"])),
        tooltip=["district:N", "age:N", alt.Tooltip("flags:Q", format=",")],
    ).properties(width=WIDTH - 200, height=_height(unanswered.height), title="Flags still unanswered")


def match_trend(runs: pl.DataFrame) -> alt.Chart:
    """Records, persons and links per match run."""
    long = runs.select("run_id", "records", "persons", "links").unpivot(
        index="run_id", variable_name="count", value_name="value")
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("run_id:O", title="match run", axis=RUN_AXIS),
        y=alt.Y("value:Q", title=None, axis=_count_axis(_top(long, "value"))),
        color=alt.Color("count:N", title=None),
        tooltip=["run_id:O", "count:N", alt.Tooltip("value:Q", format=",")],
    ).properties(width=WIDTH, height=200, title="Match runs: records, persons, links")


def chain_trend(runs: pl.DataFrame) -> alt.Chart:
    """Flags new / open / resolved per chain run."""
    long = runs.select("run_id", "new", "open", "resolved").unpivot(
        index="run_id", variable_name="status", value_name="flags")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("run_id:O", title="chain run", axis=RUN_AXIS),
        y=alt.Y("flags:Q", title="flags", stack=True, axis=_count_axis(_top(long, "flags", ["run_id"]))),
        color=alt.Color("status:N", title=None, scale=_colors(
            {k: STATUS_COLORS[k] for k in ("new", "open", "resolved")}, ["new", "open", "resolved"])),
        tooltip=["run_id:O", "status:N", alt.Tooltip("flags:Q", format=",")],
    ).properties(width=min(WIDTH, max(160, 40 * runs.height)), height=200, title="Chain runs: flags new / open / resolved")


def nightly_seconds(steps: pl.DataFrame) -> alt.Chart:
    """Seconds per step of each nightly run."""
    return alt.Chart(steps).mark_bar().encode(
        x=alt.X("run_id:O", title="nightly run", axis=RUN_AXIS),
        y=alt.Y("sum(seconds):Q", title="seconds", stack=True),
        color=alt.Color("step:N", title="step"),
        tooltip=["run_id:O", "status:N", "step:N", alt.Tooltip("seconds:Q", format=".1f")],
    ).properties(width=min(WIDTH, max(160, 40 * steps["run_id"].n_unique())), height=200,
                 title="Nightly runs: seconds per step")

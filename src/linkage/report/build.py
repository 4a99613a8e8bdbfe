"""`linkage report`: the sections of the report from the workspace's data, the HTML file written
atomically, and (with --png) each chart as a PNG for e-mail.

A step that has not run yet gives its sections a sentence saying so, never an error: a workspace
with records but no match, or a match but no chain, still gets a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from ..errors import InputError
from ..export import atomic_path
from ..workspace import Workspace
from . import charts, data
from .html import Figure, Section, Table, render_html

TITLE = "linkage report"


@dataclass
class ReportResult:
    out_file: Path
    sections: list[str]
    charts: list[str]
    png_files: list[Path] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"out": str(self.out_file), "sections": self.sections, "charts": self.charts,
                "png": [str(p) for p in self.png_files]}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


# ---- sections ----------------------------------------------------------------------------------

def sources_section(counts: pl.DataFrame) -> Section:
    section = Section("sources", "Records per source")
    if counts.is_empty():
        section.text.append("The workspace holds no ingested sources yet ('linkage ingest' loads them).")
        return section
    section.text.append(
        f"{_plural(int(counts['records'].sum()), 'record')} from {_plural(counts.height, 'source')}: "
        f"{int(counts['rows_read'].sum()):,} rows read, {int(counts['rows_rejected'].sum()):,} rejected, "
        f"{int(counts['events'].sum()):,} events.")
    section.figures.append(Figure("source-records", charts.source_records(counts)))
    section.table = Table(["source", "rows read", "records", "rows rejected", "values not standardized",
                           "values kept, noted", "events", "batches"], counts.rows())
    return section


def rejects_section(reasons: pl.DataFrame) -> Section:
    section = Section("rejects", "Rejects and value issues by reason")
    if reasons.is_empty():
        section.text.append("No row was rejected and every value was standardized.")
        return section
    kinds = dict(reasons.group_by("kind").agg(pl.col("count").sum()).iter_rows())
    section.text.append(
        f"{_plural(kinds.get('row', 0), 'row')} rejected (not loaded), {_plural(kinds.get('value', 0), 'value')} "
        f"not standardized (dropped from their record), {_plural(kinds.get('note', 0), 'value')} kept in a "
        "normalized form and noted. "
        "Digits in value-issue reasons are shown as #; 'linkage rejects --out FILE' lists every one.")
    section.figures.append(Figure("rejects", charts.rejects(reasons)))
    top = reasons.head(12)
    section.table = Table(["source", "kind", "column", "reason", "count"], top.rows())
    section.table_caption = ("Every reason" if top.height == reasons.height
                             else f"The {top.height} most frequent of {reasons.height} reasons")
    return section


def completeness_section(fields: pl.DataFrame) -> Section:
    section = Section("completeness", "Field completeness per source")
    if fields.is_empty():
        section.text.append("No records yet.")
        return section
    section.text.append("The share of each source's records that hold each field after standardization "
                        "(documents: any document number; extra fields as extra.NAME). A field a source does not "
                        "map shows 0%.")
    section.figures.append(Figure("completeness", charts.completeness(fields)))
    return section


def model_section(model: data.ModelSummary | None) -> Section:
    section = Section("model", "The trained model")
    if model is None:
        section.text.append("No match yet: 'linkage match' trains the model.")
        return section
    section.text.append(
        f"The model of match run {model.run_id}: prior {model.prior:.3g} (weight {model.prior_weight:+.2f}), "
        f"u from {model.random_pairs:,} random pairs, threshold {model.threshold:g} "
        f"(weight {model.threshold_weight:+.2f}). A level's match weight is log2(m/u); (tf) marks a level whose "
        "weight is adjusted by how common the value is.")
    section.figures.append(Figure("model-weights", charts.model_weights(model.levels, model.prior_weight)))
    section.details = Table(["comparison", "level", "m", "u", "weight"],
                            [[r["comparison"], r["level"] + (" (tf)" if r["tf_adjusted"] else ""), f"{r['m']:.4g}",
                              f"{r['u']:.3g}", f"{r['weight']:+.2f}"] for r in model.levels.iter_rows(named=True)])
    section.details_caption = "m, u and weight of every comparison level"
    return section


def pair_weights_section(bins: pl.DataFrame, model: data.ModelSummary | None) -> Section:
    section = Section("pair-weights", "Match weights of the scored pairs")
    if model is None:
        section.text.append("No match yet: no pairs have been scored.")
        return section
    if bins.is_empty():
        section.text.append("The latest match scored no pair above probability 0.01.")
        return section
    by = dict(bins.group_by("outcome").agg(pl.col("pairs").sum()).iter_rows())
    section.text.append(
        f"{int(bins['pairs'].sum()):,} pairs kept with probability of at least 0.01: {by.get('linked', 0):,} linked, "
        f"{by.get('below the threshold', 0):,} below the threshold, {by.get('refused by the identity guard', 0):,} "
        f"refused by the identity guard, {by.get('linked, identifiers contradict', 0):,} linked although their "
        f"identifiers contradict (for review). The dashed line is the threshold {model.threshold:g} "
        f"(weight {model.threshold_weight:+.2f}).")
    section.figures.append(Figure("pair-weights", charts.pair_weights(bins, model.threshold_weight, model.threshold)))
    return section


def clusters_section(sizes: pl.DataFrame) -> Section:
    section = Section("clusters", "Cluster sizes")
    if sizes.is_empty():
        section.text.append("No match yet: no persons.")
        return section
    persons = int(sizes["persons"].sum())
    records = int((sizes["records"] * sizes["persons"]).sum())
    single = int(sizes.filter(pl.col("records") == 1)["persons"].sum())
    section.text.append(f"{_plural(persons, 'person')} from {_plural(records, 'record')}; {single:,} hold a single "
                        f"record, the largest holds {int(sizes['records'].max()):,}.")
    section.figures.append(Figure("cluster-sizes", charts.cluster_sizes(sizes)))
    return section


def funnel_section(funnel: pl.DataFrame, chain_run: data.ChainRun | None) -> Section:
    section = Section("chain", "The chain: how many travelers reached each stage")
    if chain_run is None or funnel.is_empty():
        section.text.append("No chain run yet: 'linkage chain' rebuilds the timelines.")
        return section
    section.text.append(f"Chain run {chain_run.run_id} as of {chain_run.as_of:%Y-%m-%d %H:%M}: "
                        f"{_plural(chain_run.persons, 'traveler')}. Pending: not yet due; missing: due and not "
                        "recorded (or a later stage happened).")
    section.figures.append(Figure("chain-funnel", charts.chain_funnel(funnel)))
    wide = funnel.pivot(on="status", index=["stage_order", "stage"], values="travelers").sort("stage_order")
    section.table = Table(["stage", "done", "pending", "missing"],
                          [[r["stage"], *(int(r.get(s) or 0) for s in ("done", "pending", "missing"))]
                           for r in wide.iter_rows(named=True)])
    return section


def flags_section(flags: pl.DataFrame, chain_run: data.ChainRun | None) -> Section:
    section = Section("flags", "Flags by district and code")
    if chain_run is None:
        section.text.append("No chain run yet: no flags.")
        return section
    if flags.is_empty():
        section.text.append(f"Chain run {chain_run.run_id} raised no flag.")
        return section
    by = dict(flags.group_by("status").agg(pl.col("flags").sum()).iter_rows())
    section.text.append(f"Chain run {chain_run.run_id}: {by.get('new', 0):,} new, {by.get('open', 0):,} still open, "
                        f"{by.get('resolved', 0):,} resolved since the run before, in "
                        f"{_plural(flags['district'].n_unique(), 'district')}.")
    section.figures.append(Figure("flags-by-district", charts.flags_by_district(flags)))
    wide = flags.pivot(on="status", index="code", values="flags", aggregate_function="sum").sort("code")
    section.table = Table(["code", "new", "open", "resolved"],
                          [[r["code"], *(int(r.get(s) or 0) for s in ("new", "open", "resolved"))]
                           for r in wide.iter_rows(named=True)])
    return section


def answers_section(answers: data.Answers, chain_run: data.ChainRun | None) -> Section:
    section = Section("answers", "Officers' answers")
    if not answers.table_present:
        section.text.append("No answers imported yet: officers' answers appear here once returned district files "
                            "are imported ('linkage feedback import FILE...').")
    elif answers.by_district.is_empty():
        section.text.append("No answers imported yet: the feedback table holds no answer.")
    else:
        section.text.append(f"{int(answers.by_district['answers'].sum()):,} answers from "
                            f"{_plural(answers.by_district['district'].n_unique(), 'district')}.")
        section.figures.append(Figure("answers-by-district", charts.answers_by_district(answers.by_district)))
        wide = answers.by_district.pivot(on="outcome", index="district", values="answers").fill_null(0)
        section.table = Table(wide.columns, wide.rows())
    if chain_run is not None and not answers.unanswered.is_empty():
        unanswered = int(answers.unanswered["unanswered"].sum())
        overdue = int(answers.unanswered["overdue"].sum())
        section.text.append(f"{unanswered:,} current flags have no answer; {overdue:,} of them were first sent more "
                            f"than {answers.overdue_days} days before {chain_run.as_of:%Y-%m-%d}.")
        section.figures.append(Figure("unanswered-flags", charts.unanswered_flags(answers.unanswered,
                                                                                  answers.overdue_days)))
    return section


def trends_section(match_runs: pl.DataFrame, chain_runs: pl.DataFrame, nightly: pl.DataFrame,
                   nightly_steps: pl.DataFrame) -> Section:
    section = Section("trends", "Trends over past runs")
    if match_runs.is_empty():
        section.text.append("No match run yet.")
    else:
        last = match_runs.row(-1, named=True)
        section.text.append(f"{_plural(match_runs.height, 'match run')}; the latest: {last['records']:,} records, "
                            f"{last['persons']:,} persons, {last['links']:,} links"
                            f"{' (incremental)' if last['incremental'] else ''}.")
        section.figures.append(Figure("trend-match", charts.match_trend(match_runs)))
    if chain_runs.is_empty():
        section.text.append("No chain run yet.")
    else:
        section.text.append(f"{_plural(chain_runs.height, 'chain run')}.")
        section.figures.append(Figure("trend-chain", charts.chain_trend(chain_runs)))
    if nightly.is_empty():
        section.text.append("No nightly run yet ('linkage run' records one).")
    else:
        by = dict(nightly.group_by("status").len().iter_rows())
        section.text.append(f"{_plural(nightly.height, 'nightly run')}: "
                            + ", ".join(f"{n:,} {status}" for status, n in sorted(by.items())) + ".")
        if not nightly_steps.is_empty():
            section.figures.append(Figure("trend-nightly", charts.nightly_seconds(nightly_steps)))
        section.table = Table(["run", "status", "as of", "files", "files rejected", "records", "persons",
                               "flags new", "open", "resolved"],
                              [[r[0], r[1], f"{r[2]:%Y-%m-%d %H:%M}" if r[2] else "", *r[3:]]
                               for r in nightly.tail(10).rows()])
        section.table_caption = "The latest nightly runs"
    return section


def gather_sections(ws: Workspace, overdue_days: int = data.UNANSWERED_AFTER_DAYS) -> list[Section]:
    """Every section of the report, in order, from what the workspace holds."""
    model = data.model_summary(ws)
    chain_run = data.latest_chain_run(ws)
    return [
        sources_section(data.source_counts(ws)),
        rejects_section(data.rejects_by_reason(ws)),
        completeness_section(data.field_completeness(ws)),
        model_section(model),
        pair_weights_section(data.pair_weights(ws) if model else pl.DataFrame(), model),
        clusters_section(data.cluster_sizes(ws) if model else pl.DataFrame()),
        funnel_section(data.chain_funnel(ws) if chain_run else pl.DataFrame(), chain_run),
        flags_section(data.flags_by_district(ws, chain_run.run_id) if chain_run else pl.DataFrame(), chain_run),
        answers_section(data.officers_answers(ws, chain_run, overdue_days), chain_run),
        trends_section(data.match_trend(ws), data.chain_trend(ws), data.nightly_runs(ws), data.nightly_trend(ws)),
    ]


# ---- writing -----------------------------------------------------------------------------------

def _subtitle(ws: Workspace) -> str:
    chain_run = data.latest_chain_run(ws)
    match_run = data.latest_match_run(ws)
    parts = [f"Workspace {ws.root.name or ws.root}"]
    parts.append(f"match run {match_run}" if match_run else "no match yet")
    parts.append(f"chain run {chain_run.run_id} as of {chain_run.as_of:%Y-%m-%d %H:%M}" if chain_run else "no chain yet")
    return "; ".join(parts) + "."


def write_report(ws: Workspace, out_file: Path, png_dir: Path | None = None,
                 overdue_days: int = data.UNANSWERED_AFTER_DAYS) -> ReportResult:
    """Write the HTML report to `out_file` (renamed into place only when complete) and, with
    `png_dir`, each chart as NAME.png there (created when missing). A current flag unanswered for
    more than `overdue_days` (export.toml's unanswered_after_days) is overdue."""
    out_file = Path(out_file)
    sections = gather_sections(ws, overdue_days)
    figures = [figure for section in sections for figure in section.figures]
    page = render_html(sections, TITLE, _subtitle(ws), datetime.now())
    pngs: list[Path] = []
    if png_dir is not None:
        png_dir = Path(png_dir)
        if png_dir.exists() and not png_dir.is_dir():
            raise InputError(f"--png {png_dir}: not a folder")
        try:
            png_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--png {png_dir}: cannot create the folder ({exc.strerror or type(exc).__name__})") from None
        for figure in figures:
            target = png_dir / f"{figure.name}.png"
            with atomic_path(target) as temp:
                figure.chart.save(str(temp), format="png", scale_factor=2)
            pngs.append(target)
    try:
        with atomic_path(out_file) as temp:
            temp.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {out_file}: {exc.strerror or type(exc).__name__}") from None
    return ReportResult(out_file, [s.key for s in sections], [f.name for f in figures], pngs)

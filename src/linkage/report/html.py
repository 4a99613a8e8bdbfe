"""The report's HTML page: one self-contained file, and the PNG of each chart.

`render_html` assembles the page from the sections: their text and tables as escaped HTML, each
chart as a container filled by vega-embed from the chart's Vega-Lite spec. The Vega, Vega-Lite and
vega-embed JavaScript comes inlined from the `vl-convert-python` package (which bundles them), so
the page opens with no network and nothing is fetched when it is built or viewed. After every
chart has been drawn (or has failed, with the error written into its container) the page sets
`data-charts-rendered` / `data-charts-failed` on <body>, which the browser test reads.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import altair as alt

# One bundle per vl-convert version and Vega-Lite version: building it takes seconds.
_BUNDLES: dict[str, str] = {}


@dataclass
class Table:
    """A short table: column names and rows of already formatted cells."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Figure:
    """One chart with its stable name (the container id `chart-NAME` and the PNG `NAME.png`)."""

    name: str
    chart: alt.TopLevelMixin


@dataclass
class Section:
    key: str
    title: str
    text: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    table: Table | None = None
    table_caption: str = ""
    details: Table | None = None          # a longer table, folded away
    details_caption: str = ""


def vega_lite_version() -> str:
    """The Vega-Lite version Altair writes specs for, as vl-convert names it (e.g. 'v6.4')."""
    return ".".join(alt.SCHEMA_VERSION.split(".")[:2])


def javascript_bundle() -> str:
    """vega-embed, Vega-Lite and Vega in one script (from vl-convert; no download)."""
    import vl_convert

    version = vega_lite_version()
    if version not in _BUNDLES:
        _BUNDLES[version] = vl_convert.javascript_bundle(vl_version=version)
    return _BUNDLES[version]


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with its data inlined; without the `$schema` URL (vega-embed is
    told the mode), so the page names no address at all."""
    spec = chart.to_dict()
    spec.pop("$schema", None)
    return spec


def _script_text(text: str) -> str:
    """JavaScript safe inside a <script> element: no '</script' can close it early."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def _json_text(payload: Any) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' as JSON escapes."""
    text = json.dumps(payload, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return html.escape("" if value is None else str(value))


def _table(table: Table, caption: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 980px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #555; margin-top: 0; }
nav ol { columns: 2; color: #333; }
.chart { margin: 1em 0; min-height: 40px; }
.chart-error { color: #b00020; font-weight: bold; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
caption { text-align: left; color: #555; padding-bottom: 0.3em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
details summary { cursor: pointer; color: #1a4f8b; }
@media print { .chart { page-break-inside: avoid; } }
"""

EMBED = """
(function () {
  const specs = JSON.parse(document.getElementById("linkage-specs").textContent);
  let rendered = 0, failed = 0;
  const drawn = Object.keys(specs).map(function (name) {
    const el = document.getElementById("chart-" + name);
    return vegaEmbed(el, specs[name], {mode: "vega-lite", renderer: "svg", actions: false})
      .then(function () { rendered += 1; })
      .catch(function (err) {
        failed += 1;
        el.classList.add("chart-error");
        el.textContent = "This chart could not be drawn: " + (err && err.message ? err.message : err);
      });
  });
  Promise.all(drawn).then(function () {
    document.body.setAttribute("data-charts-rendered", String(rendered));
    document.body.setAttribute("data-charts-failed", String(failed));
  });
})();
"""


def render_html(sections: list[Section], title: str, subtitle: str, generated_at: datetime) -> str:
    """The whole page: sections in order, every chart drawn in the browser from its inlined spec."""
    specs: dict[str, dict] = {}
    parts: list[str] = []
    for section in sections:
        parts.append(f'<section id="{html.escape(section.key)}" data-section="{html.escape(section.key)}">')
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<p>{html.escape(text)}</p>" for text in section.text)
        for figure in section.figures:
            specs[figure.name] = chart_spec(figure.chart)
            parts.append(f'<div class="chart" id="chart-{html.escape(figure.name)}" '
                         f'data-chart="{html.escape(figure.name)}"></div>')
        if section.table is not None and section.table.rows:
            parts.append(_table(section.table, section.table_caption))
        if section.details is not None and section.details.rows:
            parts.append(f"<details><summary>{html.escape(section.details_caption)}</summary>"
                         f"{_table(section.details, '')}</details>")
        parts.append("</section>")
    contents = "".join(f'<li><a href="#{html.escape(s.key)}">{html.escape(s.title)}</a></li>' for s in sections)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<script type="text/javascript">{_script_text(javascript_bundle())}</script>',
        "</head>",
        f'<body data-charts="{len(specs)}">',
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{html.escape(subtitle)} Written {generated_at:%Y-%m-%d %H:%M}. Counts, weights and codes '
        "only: no names, birth dates, document or phone numbers.</p>",
        f"<nav><ol>{contents}</ol></nav>",
        *parts,
        '<noscript><p class="chart-error">The charts need JavaScript (inlined in this file; no network).</p></noscript>',
        f'<script type="application/json" id="linkage-specs">{_json_text(specs)}'
        "</script>",
        f"<script>{EMBED}</script>",
        "</body>",
        "</html>",
        "",
    ])

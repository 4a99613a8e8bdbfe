"""The HTML report (`linkage report`): counts, weights and codes from the workspace as charts.

`data` reads the workspace (typed results and polars frames, aggregated in SQL), `charts` turns
those into Altair charts (pure functions), `html` assembles one self-contained page (the Vega
libraries inlined from vl-convert, no network) and `build` gathers the sections and writes the
file atomically, plus a PNG per chart on request.
"""

from .build import ReportResult, write_report

__all__ = ["ReportResult", "write_report"]

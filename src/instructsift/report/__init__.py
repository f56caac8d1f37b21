"""The HTML report: one self-contained page that shows why each example was kept or dropped.

    from instructsift.report import from_files, from_run, write_report
    write_report(from_files("scores.parquet", data="data.json", dropped="dropped.jsonl"), "report.html")
    write_report(from_run(isf.run("recipe.yaml")), "report.html")
    write_report(from_compare("compare/"), "report.html")          # compare's results.json alone
    (`compare --report` uses `from_comparison`: the results with the methods' own score tables and picks)

Modules: `data` gathers what the page shows (aligned with the score table), `readers` reads the files
beside it (dropped rows, compare's results.json, InstructMining's rule and curve), `embedmap` samples and
projects the embeddings, `figures` draws (plotly), `page` assembles the HTML. plotly is an optional extra
(`pip install 'instructsift[report]'`).
"""

from __future__ import annotations

from .data import ReportData, from_compare, from_comparison, from_files, from_run
from .page import build, plotly_missing
from .page import write as write_report

__all__ = [
    "ReportData",
    "build",
    "from_compare",
    "from_comparison",
    "from_files",
    "from_run",
    "plotly_missing",
    "write_report",
]

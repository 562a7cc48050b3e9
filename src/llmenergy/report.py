"""The HTML report: one self-contained file rendered from a Jinja template.

Images are inlined as data URIs, so the file opens offline and makes no network request.
Every number in a table is written by `format_value`, and its exact value is kept in the
cell's `data-value` attribute, so the report can be checked against the aggregated Parquet.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2
import polars as pl

# (column, heading, unit) of the summary table, in order.
SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("workload", "Workload", ""),
    ("strategy", "Strategy", ""),
    ("tasks", "Tasks", ""),
    ("reps", "Reps", ""),
    ("prompt_tokens_mean", "Prompt tokens", "mean"),
    ("output_tokens_mean", "Output tokens", "mean"),
    ("prefill_energy_j_mean", "Prefill energy", "J/task"),
    ("decode_energy_j_mean", "Decode energy", "J/task"),
    ("total_energy_j_mean", "Total energy", "J/task"),
    ("total_above_idle_j_mean", "Total above idle", "J/task"),
    ("prefill_share", "Prefill share", "%"),
    ("decode_j_per_token", "Decode energy", "J/token"),
    ("prefill_s_mean", "Prefill time", "s/task"),
    ("prefill_repeats_mean", "Prefill repeats", "mean"),
    ("decode_s_mean", "Decode time", "s/task"),
    ("short_window_tasks", "Too short to meter", "tasks"),
    ("pass_at_1", "pass@1", "%"),
    ("energy_source", "Energy source", ""),
    ("sandbox", "Sandbox", ""),
]
PERCENT_COLUMNS = {"prefill_share", "pass_at_1"}


def format_value(column: str, value: Any) -> str:
    """How a value is shown: '-' for null, percentages for shares, 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def table(frame: pl.DataFrame, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Headings and rows of cells (`text`, `value`, `column`) ready for the template."""
    present = [c for c in columns if c[0] in frame.columns]
    rows = [
        [
            {"column": name, "value": row[name], "text": format_value(name, row[name])}
            for name, _, _ in present
        ]
        for row in frame.iter_rows(named=True)
    ]
    return {"headings": [(heading, unit) for _, heading, unit in present], "rows": rows}


def data_uri(png_path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode()


def estimated_sources(summary: pl.DataFrame) -> list[str]:
    sources = summary["energy_source"].unique().sort().to_list()
    return [s for s in sources if s.startswith("estimate")]


def render(
    template_path: str | Path,
    summary: pl.DataFrame,
    figures: dict[str, str | Path],
    provenance: dict[str, Any],
) -> str:
    """The report's HTML."""
    path = Path(template_path)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path.parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(path.name).render(
        summary=table(summary, SUMMARY_COLUMNS),
        figures={name: data_uri(png) for name, png in figures.items()},
        estimated=estimated_sources(summary),
        provenance=provenance,
    )


def describe_idle(idle: dict[str, Any]) -> str:
    """One line on the idle baseline."""
    if idle["power_w"] is None:
        return f"not measurable ({idle['energy_source']})"
    return f"{idle['power_w']:.3g} W over {idle['seconds']:.1f} s ({idle['energy_source']})"

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

from llmenergy import aggregate

# (column, heading, unit) of the summary table, in order.
SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("model_revision", "Revision", ""),
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
    ("j_per_output_token", "Energy", "J/output token"),
    ("decode_j_per_token", "Decode energy", "J/token"),
    ("seconds_mean", "Time", "s/task"),
    ("prefill_s_mean", "Prefill time", "s/task"),
    ("prefill_repeats_mean", "Prefill repeats", "mean"),
    ("decode_s_mean", "Decode time", "s/task"),
    ("short_window_tasks", "Too short to meter", "tasks"),
    ("subtracted_tasks", "Decode by subtraction", "tasks"),
    ("decode_null_tasks", "Decode energy lost", "tasks"),
    ("idle_power_w", "Idle power", "W"),
    ("decode_host_energy_j_mean", "Host energy in decode", "J/task"),
    ("pass_at_1", "pass@1", "%"),
    ("code_sim_mean", "Code similarity", "%"),
    ("energy_source", "Energy source", ""),
    ("metered_device", "Metered device", ""),
    ("sandbox", "Sandbox", ""),
]
SAVINGS_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("workload", "Workload", ""),
    ("strategy", "Strategy", ""),
    ("tasks", "Paired tasks", ""),
    ("energy_saved", "Energy saved", "%"),
    ("tokens_saved", "Tokens saved", "%"),
    ("time_saved", "Time saved", "%"),
    ("base_energy_j_mean", "Baseline energy", "J/task"),
    ("energy_j_mean", "Energy incl. checks", "J/task"),
    ("check_share_of_decode", "Check overhead", "% of decode"),
    ("base_pass_at_1", "Baseline pass@1", "%"),
    ("pass_at_1", "pass@1", "%"),
    ("base_code_sim", "Baseline code similarity", "%"),
    ("code_sim", "Code similarity", "%"),
    ("flips", "Flips", "tasks"),
    ("flipped_tasks", "Flipped tasks", ""),
]
CLAIM_COLUMNS: list[tuple[str, str, str]] = [
    ("claim", "Claim", ""),
    ("study", "Study", ""),
    ("value", "Ours", "95% CI"),
    ("unit", "Measured as", ""),
    ("detail", "Where", ""),
    ("verdict", "Verdict", ""),
    ("why", "Basis", ""),
]
AMPLIFICATION_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("short_workload", "Short", "workload"),
    ("prompt_tokens_short", "Prompt", "tokens"),
    ("decode_j_per_token_short", "Decode", "J/token"),
    ("long_workload", "Long", "workload"),
    ("prompt_tokens_long", "Prompt", "tokens"),
    ("decode_j_per_token_long", "Decode", "J/token"),
    ("amplification_pct", "Amplification", "%"),
    ("same_positions", "Same positions", "first N decode tokens"),
    ("same_positions_basis", "Basis", "energy or time"),
    ("same_positions_pct", "Same-position amplification", "%"),
    ("slope_j_per_prompt_token", "Slope", "J/token per prompt token"),
    ("points", "Tasks", ""),
    ("energy_source", "Energy source", ""),
    ("note", "Note", ""),
]
SHAPE_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("attention", "Attention", ""),
    ("parameters", "Parameters", ""),
    ("layers", "Layers", ""),
    ("heads", "Heads", "query"),
    ("kv_heads", "KV heads", ""),
    ("head_dim", "Head size", ""),
    ("kv_cache_bytes_per_token", "KV cache", "bytes/token"),
    ("flops_per_token_weights", "FLOPs per token", "weights"),
    ("flops_per_context_token", "FLOPs per token", "per key attended"),
    ("prompt_tokens_short", "Short prompt", "tokens"),
    ("prefill_energy_j_short", "Prefill", "J/task"),
    ("decode_j_per_token_short", "Decode", "J/token"),
    ("prompt_tokens_long", "Long prompt", "tokens"),
    ("prefill_energy_j_long", "Prefill", "J/task"),
    ("decode_flops_per_token_long", "Decode FLOPs", "per token"),
    ("decode_j_per_token_long", "Decode", "J/token"),
    ("amplification_pct", "Amplification", "%"),
]
BABBLE_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "Model", ""),
    ("workload", "Workload", ""),
    ("outputs", "Outputs", ""),
    ("complete_syntax", "Complete by syntax", "outputs"),
    ("complete_tests", "Complete by tests", "outputs"),
    ("babble_tokens_syntax_mean", "Babble tokens", "mean"),
    ("babble_ratio_syntax", "Babble ratio (syntax)", "%"),
    ("babble_ratio_tests", "Babble ratio (tests)", "%"),
    ("babbles", "Babbles", ""),
]
PERCENT_COLUMNS = {
    "code_sim_mean",
    "code_sim",
    "base_code_sim",
    "prefill_share",
    "pass_at_1",
    "base_pass_at_1",
    "energy_saved",
    "tokens_saved",
    "time_saved",
    "check_share_of_decode",
    "babble_ratio_syntax",
    "babble_ratio_tests",
}


def format_value(column: str, value: Any) -> str:
    """How a value is shown: '-' for null, percentages for shares, 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column in PERCENT_COLUMNS:
        return f"{100 * value:.1f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def format_cell(column: str, value: Any, low: Any = None, high: Any = None) -> str:
    """A value, with its 95% interval as `[low, high]` when it has one."""
    text = format_value(column, value)
    if low is None or high is None or text == "-":
        return text
    return f"{text} [{format_value(column, low)}, {format_value(column, high)}]"


def table(frame: pl.DataFrame, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Headings and rows of cells ready for the template: `text` as shown; `value`, `low` and
    `high` exact (an interval's bounds come from the `<column>_lo`/`_hi` columns)."""
    present = [c for c in columns if c[0] in frame.columns]
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for name, _, _ in present:
            low, high = row.get(f"{name}_lo"), row.get(f"{name}_hi")
            cells.append(
                {
                    "column": name,
                    "value": row[name],
                    "low": low,
                    "high": high,
                    "text": format_cell(name, row[name], low, high),
                }
            )
        rows.append(cells)
    return {"headings": [(heading, unit) for _, heading, unit in present], "rows": rows}


def data_uri(png_path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode()


def not_run(summary: pl.DataFrame) -> list[dict[str, Any]]:
    """The runs with completions that were never run, and why (for the report's banner)."""
    if "not_run" not in summary.columns:
        return []
    rows = summary.filter(pl.col("not_run") > 0)
    return rows.select(*aggregate.KEYS, "not_run", "not_run_kinds").to_dicts()


def estimated_sources(summary: pl.DataFrame) -> list[str]:
    """The energy sources of rows whose energy is the CPU-time estimate."""
    rows = summary.filter(
        ~pl.col("energy_measured").fill_null(False) & (pl.col("metered_device") == "estimate")
    )
    return rows["energy_source"].unique().sort().to_list()


def metered_devices(summary: pl.DataFrame) -> list[str]:
    """Every device whose energy the summary's figures are (one per generation job's meter)."""
    devices = summary["metered_device"].drop_nulls().str.split(",").explode()
    return devices.unique().sort().to_list()


def render(
    template_path: str | Path,
    summary: pl.DataFrame,
    figures: dict[str, str | Path],
    provenance: dict[str, Any],
    savings: pl.DataFrame | None = None,
    babbling: pl.DataFrame | None = None,
    claims: pl.DataFrame | None = None,
    amplification: pl.DataFrame | None = None,
    shapes: pl.DataFrame | None = None,
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
        savings=table(savings, SAVINGS_COLUMNS) if savings is not None else None,
        babbling=table(babbling, BABBLE_COLUMNS) if babbling is not None else None,
        claims=table(claims, CLAIM_COLUMNS) if claims is not None else None,
        amplification=(
            table(amplification, AMPLIFICATION_COLUMNS) if amplification is not None else None
        ),
        shapes=table(shapes, SHAPE_COLUMNS) if shapes is not None else None,
        figures={name: data_uri(png) for name, png in figures.items()},
        estimated=estimated_sources(summary),
        metered=metered_devices(summary),
        not_run=not_run(summary),
        provenance=provenance,
    )


def describe_idle(summary: pl.DataFrame) -> str:
    """One line on the idle baseline: each metered device's idle power, as its generation
    jobs measured it after warm-up."""
    parts = []
    rows = summary.group_by("metered_device", "energy_source").agg(
        pl.col("idle_power_w").drop_nulls()
    )
    for row in rows.sort("metered_device").iter_rows(named=True):
        watts = row["idle_power_w"]
        if not watts:
            parts.append(f"not measured on {row['metered_device']} ({row['energy_source']})")
        else:
            parts.append(
                f"{min(watts):.3g}-{max(watts):.3g} W on {row['metered_device']} "
                f"({row['energy_source']}, per generation job after warm-up)"
            )
    return "; ".join(parts) or "no runs"

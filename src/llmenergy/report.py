"""The HTML report: one self-contained file rendered from a Jinja template.

Images are inlined as data URIs, so the file opens offline and makes no network request.
Every number in a table is written by `format_value`, and its exact value is kept in the
cell's `data-value` attribute, so the report can be checked against the aggregated Parquet.

Each aggregated table is shown as one or more HTML tables (`Table`), narrow enough to read at
a laptop's width (1366 px) without scrolling sideways; a wide one is split into tables that
repeat its key columns. A column is one line of these lists.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import polars as pl

from llmenergy import aggregate, energy, reference


class Column(NamedTuple):
    """One column of a report table: the frame's column, its heading and its unit (shown
    under the heading). `interval`: shown with its 95% interval, from the frame's
    `<name>_lo` and `<name>_hi` columns. `percent`: a share kept as a fraction, shown x100."""

    name: str
    heading: str
    unit: str = ""
    interval: bool = False
    percent: bool = False


class Table(NamedTuple):
    """One HTML table of the report: its id, its caption (empty for none) and its columns."""

    id: str
    caption: str
    columns: list[Column]


# The key columns each part of a split table repeats.
RUN_KEYS = [
    Column("model", "Model"),
    Column("workload", "Workload"),
    Column("strategy", "Strategy"),
]
MODEL_KEY = [Column("model", "Model")]

SUMMARY_TABLES: list[Table] = [
    Table(
        "summary-energy-table",
        "Energy",
        [
            *RUN_KEYS,
            Column("prefill_energy_j_mean", "Prefill energy", "J/task", interval=True),
            Column("decode_energy_j_mean", "Decode energy", "J/task", interval=True),
            Column("total_energy_j_mean", "Total energy", "J/task", interval=True),
            Column("total_above_idle_j_mean", "Total above idle", "J/task"),
            Column("prefill_share", "Prefill share", "%", interval=True, percent=True),
            Column("j_per_output_token", "Energy", "J/output token", interval=True),
            Column("decode_j_per_token", "Decode energy", "J/token", interval=True),
        ],
    ),
    Table(
        "summary-time-table",
        "Tokens and time",
        [
            *RUN_KEYS,
            Column("tasks", "Tasks"),
            Column("reps", "Reps"),
            Column("prompt_tokens_mean", "Prompt tokens", "mean"),
            Column("output_tokens_mean", "Output tokens", "mean"),
            Column("seconds_mean", "Time", "s/task", interval=True),
            Column("prefill_s_mean", "Prefill time", "s/task"),
            Column("prefill_repeats_mean", "Prefill repeats", "mean"),
            Column("decode_s_mean", "Decode time", "s/task"),
            Column("task_s_mean", "End to end", "s/task"),
        ],
    ),
    Table(
        "summary-metering-table",
        "Metering",
        [
            *RUN_KEYS,
            Column("short_window_tasks", "Too short to meter", "tasks"),
            Column("subtracted_tasks", "Decode by subtraction", "tasks"),
            Column("decode_null_tasks", "Decode energy lost", "tasks"),
            Column("idle_power_w", "Idle power", "W"),
            Column("decode_host_energy_j_mean", "Host energy in decode", "J/task"),
        ],
    ),
    Table(
        "summary-accuracy-table",
        "Accuracy",
        [
            *RUN_KEYS,
            Column("pass_at_1", "pass@1", "%, harness cut", interval=True, percent=True),
            Column("pass_at_1_raw", "pass@1", "%, whole output", interval=True, percent=True),
            Column("code_sim_mean", "Code similarity", "%", interval=True, percent=True),
        ],
    ),
    Table(
        "summary-provenance-table",
        "Provenance",
        [
            *RUN_KEYS,
            Column("model_revision", "Revision"),
            Column("energy_source", "Energy source"),
            Column("metered_device", "Metered device"),
            Column("sandbox", "Sandbox"),
        ],
    ),
]
SAVINGS_TABLES: list[Table] = [
    Table(
        "savings-table",
        "Energy, tokens and time",
        [
            *RUN_KEYS,
            Column("tasks", "Paired tasks"),
            Column("energy_saved", "Energy saved", "%", interval=True, percent=True),
            Column("tokens_saved", "Tokens saved", "%", interval=True, percent=True),
            Column("time_saved", "Time saved", "%, end to end", interval=True, percent=True),
            Column(
                "prefill_j_change",
                "Same prefills",
                "% change, this job against the baseline's: their drift",
                interval=True,
                percent=True,
            ),
            Column("base_energy_j_mean", "Baseline energy", "J/task"),
            Column("energy_j_mean", "Energy incl. checks", "J/task"),
        ],
    ),
    Table(
        "savings-checks-table",
        "The strategy's own cost",
        [
            *RUN_KEYS,
            Column("per_token_basis", "Per token against"),
            Column(
                "decode_j_per_token_change",
                "Decode J/token",
                "% change",
                interval=True,
                percent=True,
            ),
            Column(
                "extra_j_per_token",
                "Extra energy per token",
                "% change, decode and checks",
                interval=True,
                percent=True,
            ),
            Column("check_s_mean", "Check time", "s/task, overlapping decode"),
            Column("check_energy_j_mean", "Check energy", "J/task"),
            Column("check_share_of_decode", "Check energy", "% of decode", percent=True),
        ],
    ),
    Table(
        "savings-accuracy-table",
        "Accuracy",
        [
            *RUN_KEYS,
            Column("base_pass_at_1", "Baseline pass@1", "%, harness cut", percent=True),
            Column("pass_at_1", "pass@1", "%, harness cut", percent=True),
            Column("base_code_sim", "Baseline code similarity", "%", percent=True),
            Column("code_sim", "Code similarity", "%", percent=True),
            Column("flip_pairs", "Scored both ways", "tasks"),
            Column("flips", "Flips", "tasks"),
            Column("flipped_tasks", "Flipped tasks"),
            Column("unscored", "Unscored", "tasks"),
        ],
    ),
]
CLAIM_TABLES: list[Table] = [
    Table(
        "claims-table",
        "",
        [
            Column("claim", "Claim"),
            Column("study", "Study"),
            Column("value", "Ours", "the deciding model, 95% CI", interval=True),
            Column("between_runs", "Between runs", "what the interval covers"),
            Column("unit", "Measured as"),
            Column("detail", "Where"),
            Column("verdict", "Verdict"),
            Column("why", "Basis"),
        ],
    ),
    Table(
        "claims-models-table",
        "Every model, and the energy above idle",
        [
            Column("id", "Claim"),
            Column("values", "Values", "one per model, or per model and workload"),
            Column("reproduce", "Reproduce", "values"),
            Column("agree", "Same direction", "values"),
            Column("undecided", "Undecided", "values"),
            Column("contradict", "Contradict", "values"),
            Column("range_low", "Lowest"),
            Column("range_high", "Highest"),
            Column("per_model", "Each model", "value [95% CI] level"),
            Column("energy", "Judged on"),
            Column("above_idle", "Above idle", "the same figure"),
        ],
    ),
]
AMPLIFICATION_TABLES: list[Table] = [
    Table(
        "amplification-table",
        "The amplification pair: short to long workload",
        [
            *MODEL_KEY,
            Column("short_workload", "Short", "workload"),
            Column("prompt_tokens_short", "Prompt", "tokens"),
            Column("decode_j_per_token_short", "Decode", "J/token"),
            Column("long_workload", "Long", "workload"),
            Column("prompt_tokens_long", "Prompt", "tokens"),
            Column("decode_j_per_token_long", "Decode", "J/token"),
            Column("amplification_pct", "Amplification", "%", interval=True),
        ],
    ),
    Table(
        "amplification-detail-table",
        "Paired in time, like positions, and the slope over all tasks",
        [
            *MODEL_KEY,
            Column("paired_pct", "Paired in time", "%", interval=True),
            Column("paired_tasks", "Long tasks paired"),
            Column("same_positions", "Same positions", "first N decode tokens"),
            Column("same_positions_basis", "Basis", "energy or time"),
            Column("same_positions_pct", "Same-position amplification", "%", interval=True),
            Column("slope_j_per_prompt_token", "Slope", "J/token per prompt token", interval=True),
            Column("points", "Tasks"),
            Column("energy_source", "Energy source"),
            Column("note", "Note"),
        ],
    ),
]
SHAPE_TABLES: list[Table] = [
    Table(
        "shapes-table",
        "Shape",
        [
            *MODEL_KEY,
            Column("attention", "Attention"),
            Column("parameters", "Parameters"),
            Column("layers", "Layers"),
            Column("heads", "Heads", "query"),
            Column("kv_heads", "KV heads"),
            Column("head_dim", "Head size"),
            Column("kv_cache_bytes_per_token", "KV cache", "bytes/token"),
            Column("flops_per_token_weights", "FLOPs per token", "weights"),
            Column("flops_per_context_token", "FLOPs per token", "per key attended"),
        ],
    ),
    Table(
        "shapes-energy-table",
        "Energy on the amplification pair's short and long workload",
        [
            *MODEL_KEY,
            Column("workload_short", "Short", "workload"),
            Column("prompt_tokens_short", "Short prompt", "tokens"),
            Column("prefill_energy_j_short", "Prefill", "J/task"),
            Column("decode_j_per_token_short", "Decode", "J/token"),
            Column("workload_long", "Long", "workload"),
            Column("prompt_tokens_long", "Long prompt", "tokens"),
            Column("prefill_energy_j_long", "Prefill", "J/task"),
            Column("decode_flops_per_token_long", "Decode FLOPs", "per token"),
            Column("decode_j_per_token_long", "Decode", "J/token"),
            Column("amplification_pct", "Amplification", "%"),
        ],
    ),
]
BABBLE_TABLES: list[Table] = [
    Table(
        "babble-table",
        "",
        [
            Column("model", "Model"),
            Column("workload", "Workload"),
            Column("outputs", "Outputs"),
            Column("at_cap", "At the token cap", "outputs"),
            Column("at_cap_share", "At the cap", "%", percent=True),
            Column("babbles", "Babbles", "the study's: runs to the cap"),
            Column("complete_syntax", "Complete by syntax", "outputs"),
            Column("complete_tests", "Complete by tests", "outputs"),
            Column("babble_tokens_syntax_mean", "Babble tokens", "mean"),
            Column("babble_ratio_syntax", "Babble ratio (syntax)", "%", percent=True),
            Column("babble_ratio_tests", "Babble ratio (tests)", "%", percent=True),
            Column("babbles_syntax", "Babbles by syntax", "ours: the ratio"),
        ],
    ),
]
# What a GPU measured (data/reference/) beside this run's baseline, one row per model and
# workload of each (reference.comparison).
REFERENCE_TABLE = Table(
    "reference-table",
    "Measured on that GPU, and this run",
    [
        Column("where", "Where"),
        Column("model", "Model"),
        Column("workload", "Workload"),
        Column("prompt_tokens_mean", "Prompt tokens", "mean"),
        Column("output_tokens_mean", "Output tokens", "mean"),
        Column("prefill_energy_j_mean", "Prefill energy", "J/task", interval=True),
        Column("decode_j_per_token", "Decode energy", "J/token", interval=True),
        Column("prefill_share", "Prefill share", "%", interval=True, percent=True),
        Column("idle_power_w", "Idle power", "W"),
        Column("metered_device", "Metered device"),
    ],
)
CONDITIONS_TABLES: list[Table] = [
    Table(
        "conditions-table",
        "What else ran, per job",
        [
            *RUN_KEYS,
            Column("rep", "Rep"),
            Column("tasks", "Tasks"),
            Column("flagged_tasks", "Flagged"),
            Column("contended_tasks", "Contended"),
            Column("remeasured_tasks", "Measured again"),
            Column("below_idle_tasks", "Below idle"),
            Column("above_limit_tasks", "Above limit"),
            Column("other_cores_max", "Other processes", "cores, most"),
            Column("gpu_other_processes_max", "On the GPU", "processes, most"),
        ],
    ),
    Table(
        "conditions-device-table",
        "The device over the job",
        [
            *RUN_KEYS,
            Column("rep", "Rep"),
            Column("metered_device", "Metered device"),
            Column("cpu_mhz_min", "CPU clock", "MHz, lowest"),
            Column("cpu_mhz_max", "CPU clock", "MHz, highest"),
            Column("gpu_temperature_c_min", "GPU temperature", "°C, lowest"),
            Column("gpu_temperature_c_max", "GPU temperature", "°C, highest"),
            Column("gpu_sm_mhz_min", "SM clock", "MHz, lowest"),
            Column("gpu_sm_mhz_max", "SM clock", "MHz, highest"),
            Column("power_limit_w", "Power limit", "W"),
        ],
    ),
]
# How the keys of a reference's gpu.json are named in the report, in this order (any other
# key: after them, by its own name).
REFERENCE_DETAILS = {
    "caveat": "Caveat",
    "command": "Command",
    "config": "Config",
    "energy": "Energy source",
    "measured_at": "Measured at",
    "sm_clock_mhz": "SM clock, MHz",
    "max_sm_clock_mhz": "Highest SM clock, MHz",
    "memory_clock_mhz": "Memory clock, MHz",
    "power_limit_w": "Power limit, W",
    "temperature_c": "Temperature, °C",
}
# The report's tables of each aggregated table, by the name `render` takes it under.
LAYOUTS: dict[str, list[Table]] = {
    "summary": SUMMARY_TABLES,
    "savings": SAVINGS_TABLES,
    "babbling": BABBLE_TABLES,
    "claims": CLAIM_TABLES,
    "amplification": AMPLIFICATION_TABLES,
    "shapes": SHAPE_TABLES,
    "conditions": CONDITIONS_TABLES,
}


def _percent_columns() -> set[str]:
    """The columns shown as percentages: a name means one quantity in every table."""
    layouts = [*LAYOUTS.values(), [REFERENCE_TABLE]]
    columns = [c for tables in layouts for t in tables for c in t.columns]
    percent = {c.name for c in columns if c.percent}
    mixed = sorted(percent & {c.name for c in columns if not c.percent})
    if mixed:
        raise ValueError(f"report: columns both percent and not in the layouts: {mixed}")
    return percent


PERCENT_COLUMNS = _percent_columns()


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


def table(frame: pl.DataFrame, spec: Table, source: str) -> dict[str, Any]:
    """One table ready for the template: headings, and rows of cells with `text` as shown
    (`shown`, then `interval` when it has one) and `value`, `low` and `high` exact.

    Every listed column must be in `frame` (`source` names it in the error), and so must the
    bounds of a column listed with its interval; a listed column whose bounds are in the frame
    must be listed with its interval. Nothing listed is left out quietly."""
    missing = [c.name for c in spec.columns if c.name not in frame.columns]
    missing += [
        bound
        for c in spec.columns
        if c.interval
        for bound in (f"{c.name}_lo", f"{c.name}_hi")
        if bound not in frame.columns
    ]
    if missing:
        raise ValueError(
            f"report: table {spec.id} shows columns {missing} that the {source} table does "
            f"not have (it has {frame.columns})"
        )
    unshown = [
        c.name
        for c in spec.columns
        if not c.interval and {f"{c.name}_lo", f"{c.name}_hi"} <= set(frame.columns)
    ]
    if unshown:
        raise ValueError(
            f"report: table {spec.id} shows {unshown} of the {source} table without the "
            "intervals it has: list them with interval=True"
        )
    text = {c.name: frame.schema[c.name] == pl.String for c in spec.columns}
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for column in spec.columns:
            name, value = column.name, row[column.name]
            low, high = (row[f"{name}_lo"], row[f"{name}_hi"]) if column.interval else (None, None)
            shown = format_value(name, value)
            full = format_cell(name, value, low, high)
            cells.append(
                {
                    "column": name,
                    "value": value,
                    "low": low,
                    "high": high,
                    "text": full,
                    "shown": shown,
                    "interval": full[len(shown) :],
                    "is_text": text[name],
                }
            )
        rows.append(cells)
    headings = [
        {"heading": c.heading, "unit": c.unit, "is_text": text[c.name]} for c in spec.columns
    ]
    return {"id": spec.id, "caption": spec.caption, "headings": headings, "rows": rows}


def tables(frame: pl.DataFrame | None, source: str) -> list[dict[str, Any]] | None:
    """The report's tables of one aggregated table (`source`, a key of LAYOUTS); None
    without the table."""
    if frame is None:
        return None
    return [table(frame, spec, source) for spec in LAYOUTS[source]]


def reference_details(details: dict[str, Any]) -> list[tuple[str, Any]]:
    """A reference's gpu.json beyond its label, as (name, value): REFERENCE_DETAILS' keys in
    its order, then any other key by its own name, in the file's order."""
    known = [(name, details[key]) for key, name in REFERENCE_DETAILS.items() if key in details]
    return known + [(key, v) for key, v in details.items() if key not in REFERENCE_DETAILS]


def reference_section(
    summary: pl.DataFrame, references: list[reference.Reference]
) -> dict[str, Any] | None:
    """The section "Measured on a GPU": each GPU's label, details and amplification tables
    (ids of its own: `reference-<folder>-...`), and the comparison table; None without any."""
    if not references:
        return None
    records = []
    for ref, where in zip(references, reference.measured_on(references), strict=True):
        amplification = None
        if ref.amplification is not None:
            source = f"{ref.name}/{reference.AMPLIFICATION_FILE}"
            amplification = [
                table(
                    ref.amplification, spec._replace(id=f"reference-{ref.name}-{spec.id}"), source
                )
                for spec in AMPLIFICATION_TABLES
            ]
        records.append(
            {
                "label": ref.label,
                "where": where,
                "name": ref.name,
                "details": reference_details(dict(ref.details)),
                "amplification": amplification,
            }
        )
    rows = reference.comparison(references, summary)
    return {"records": records, "comparison": table(rows, REFERENCE_TABLE, "reference comparison")}


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
    references: list[reference.Reference] | None = None,
    conditions: pl.DataFrame | None = None,
) -> str:
    """The report's HTML. `references`: what a GPU measured (reference.load), if any."""
    path = Path(template_path)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path.parent),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(path.name).render(
        summary=tables(summary, "summary"),
        savings=tables(savings, "savings"),
        babbling=tables(babbling, "babbling"),
        claims=tables(claims, "claims"),
        amplification=tables(amplification, "amplification"),
        shapes=tables(shapes, "shapes"),
        conditions=tables(conditions, "conditions"),
        reference=reference_section(summary, references or []),
        figures={name: data_uri(png) for name, png in figures.items()},
        estimated=estimated_sources(summary),
        metered=metered_devices(summary),
        not_run=not_run(summary),
        provenance=provenance,
    )


def task_selection(workloads: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """How each workload's tasks were chosen, in words, for the provenance."""
    out = []
    for name, spec in sorted(workloads.items()):
        if spec.get("task_ids"):
            how = f"{len(spec['task_ids'])} listed tasks"
            if spec.get("selected_by"):
                how += f", chosen by {spec['selected_by']}"
        elif spec.get("limit"):
            how = f"the first {spec['limit']} tasks"
        else:
            how = "every task"
        out.append({"workload": name, "dataset": spec["dataset"], "how": how})
    return out


def describe_idle(summary: pl.DataFrame) -> str:
    """One line on the idle baseline: each metered device's idle power, as its generation
    jobs measured it after warm-up."""
    parts = []
    rows = summary.group_by("metered_device", "energy_source").agg(
        pl.col("idle_power_w").drop_nulls()
    )
    for row in rows.sort("metered_device").iter_rows(named=True):
        watts = row["idle_power_w"]
        if not watts and row["energy_source"] == energy.ESTIMATE_SOURCE:
            parts.append(
                f"none on {row['metered_device']} ({row['energy_source']}): the estimate "
                "models a busy core, not a device at rest, so energy above idle is not known"
            )
        elif not watts:
            parts.append(f"not measured on {row['metered_device']} ({row['energy_source']})")
        else:
            parts.append(
                f"{min(watts):.3g}-{max(watts):.3g} W on {row['metered_device']} "
                f"({row['energy_source']}, per generation job after warm-up)"
            )
    return "; ".join(parts) or "no runs"

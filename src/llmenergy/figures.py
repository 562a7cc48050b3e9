"""Figures, drawn with matplotlib's non-interactive backend in one consistent style."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from llmenergy import amplification, records

PHASE_COLOURS = {"prefill": "#4C72B0", "decode": "#DD8452"}
STYLE = {
    "figure.dpi": 100,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
}


def energy_label(summary: pl.DataFrame) -> str:
    """The y label; says 'estimated' when any plotted energy is not a measurement."""
    estimated = not summary["energy_measured"].fill_null(False).all()
    return "Energy per task (J, estimated)" if estimated else "Energy per task (J)"


@contextmanager
def _axes(figsize: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes in the house style. matplotlib loads here, on drawing, not on
    import: the workflow's parser reads FIGURES."""
    import matplotlib

    matplotlib.use("Agg")  # non-interactive: files only
    import matplotlib.pyplot as plt

    with plt.rc_context(STYLE):
        yield plt.subplots(figsize=figsize)


def save(fig: Any, out_png: str | Path) -> None:
    """Write the figure as PNG and, beside it, SVG; atomically; then close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for path, fmt in ((Path(out_png), "png"), (Path(out_png).with_suffix(".svg"), "svg")):
        with records.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt)
    plt.close(fig)


def _legend_or_empty(ax: Any, empty: bool, message: str, **legend: Any) -> None:
    """The legend of a figure with data; `message` in the middle of one without."""
    if empty:
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")
    else:
        ax.legend(frameon=False, **legend)


def energy_per_phase(summary: pl.DataFrame, out_png: str | Path) -> None:
    """Stacked bars: mean prefill and decode energy per task, per model x workload x strategy."""
    rows = summary.filter(pl.col("total_energy_j_mean").is_not_null())
    labels = [f"{r['model']}\n{r['workload']}\n{r['strategy']}" for r in rows.iter_rows(named=True)]
    prefill = rows["prefill_energy_j_mean"].to_list()
    decode = rows["decode_energy_j_mean"].to_list()
    with _axes((max(5.0, 1.6 * len(labels) + 3), 4.0)) as (fig, ax):
        positions = range(len(labels))
        ax.bar(positions, prefill, 0.6, color=PHASE_COLOURS["prefill"], label="prefill")
        ax.bar(
            positions, decode, 0.6, bottom=prefill, color=PHASE_COLOURS["decode"], label="decode"
        )
        ax.set_xticks(list(positions), labels, fontsize=8)
        ax.set_ylabel(energy_label(summary))
        ax.set_title("Energy per phase")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        if not labels:
            ax.text(0.5, 0.5, "no measured energy", ha="center", transform=ax.transAxes)
        save(fig, out_png)


def decode_cost_vs_prompt(tasks: pl.DataFrame, fits: pl.DataFrame, out_png: str | Path) -> None:
    """Decode energy per token of each unsuppressed task against its prompt length, with each
    model's fitted line."""
    rows = amplification.decode_costs(tasks)
    with _axes((6.5, 4.0)) as (fig, ax):
        for model, group in rows.group_by("model", maintain_order=True):
            name = model[0]
            points = ax.scatter(group["prompt_tokens"], group["jpt"], s=14, alpha=0.7, label=name)
            fit = fits.filter(pl.col("model") == name)
            if fit.height and fit["slope_j_per_prompt_token"][0] is not None:
                xs = [group["prompt_tokens"].min(), group["prompt_tokens"].max()]
                slope, intercept = fit["slope_j_per_prompt_token"][0], fit["intercept_j"][0]
                ax.plot(xs, [intercept + slope * x for x in xs], color=points.get_facecolor()[0])
        ax.set_xlabel("Prompt length (tokens)")
        ax.set_ylabel(energy_label(tasks).replace("per task", "per decoded token"))
        ax.set_title("Decode energy per token against prompt length")
        _legend_or_empty(ax, rows.is_empty(), "no measured decode energy", fontsize=8)
        save(fig, out_png)


def token_cost_by_position(tokens: pl.DataFrame, out_png: str | Path) -> None:
    """Cost of the i-th output token against i, per model: energy where a power timeline gave
    it, otherwise time (the figure says which)."""
    decode = (
        tokens.sort(["model", "workload", "rep", "task_id", "position"])
        .with_columns(step_s=pl.col("t_s").diff().over(["model", "workload", "task_id", "rep"]))
        .filter(pl.col("position") > 0)
    )
    by_energy = decode["energy_j"].is_not_null().any()
    column, label = ("energy_j", "Energy (J)") if by_energy else ("step_s", "Time (s)")
    means = (
        decode.drop_nulls(column)
        .group_by(["model", "position"])
        .agg(pl.col(column).mean())
        .sort(["model", "position"])
    )
    with _axes((6.5, 4.0)) as (fig, ax):
        for model, group in means.group_by("model", maintain_order=True):
            ax.plot(group["position"], group[column], linewidth=1, label=model[0])
        ax.set_xlabel("Output token position i")
        ax.set_ylabel(f"{label} of the i-th token, mean over tasks")
        title = "Cost of each decoded token"
        ax.set_title(title if by_energy else title + " (time: no power timeline here)")
        _legend_or_empty(ax, means.is_empty(), "no decoded tokens", fontsize=8)
        save(fig, out_png)


def savings_by_strategy(savings: pl.DataFrame, out_png: str | Path) -> None:
    """Share of tokens and of energy each strategy saved against the unsuppressed run, with
    the paired 95% intervals; a saving that is not known is marked, never drawn as 0%."""
    labels = [
        f"{r['model']}\n{r['workload']}\n{r['strategy']}" for r in savings.iter_rows(named=True)
    ]
    with _axes((max(5.0, 1.3 * len(labels) + 3), 4.0)) as (fig, ax):
        xs = list(range(len(labels)))
        labelled: set[str] = set()
        for name, offset, colour in (("tokens", -0.2, "#55A868"), ("energy", 0.2, "#C44E52")):
            column = f"{name}_saved"
            for x, row in zip(xs, savings.iter_rows(named=True), strict=True):
                value = row[column]
                if value is None:
                    ax.text(x + offset, 0, "n/a", ha="center", va="bottom", fontsize=7)
                    continue
                low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
                error = None
                if low is not None and high is not None:
                    error = [[100 * (value - low)], [100 * (high - value)]]
                label = None if name in labelled else f"{name} saved"
                labelled.add(name)
                ax.bar(
                    x + offset, 100 * value, 0.4, yerr=error, capsize=3, color=colour, label=label
                )
        ax.axhline(0, color="#333", linewidth=0.8)
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel("Saved against no suppression (%), 95% CI")
        ax.set_title("Savings of each babbling-suppression strategy")
        _legend_or_empty(
            ax,
            not labels,
            "no suppression strategy was run",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
        save(fig, out_png)


def energy_vs_accuracy(summary: pl.DataFrame, out_png: str | Path) -> None:
    """Mean energy per task against pass@1, one point per model x workload x strategy."""
    rows = summary.filter(
        pl.col("total_energy_j_mean").is_not_null() & pl.col("pass_at_1").is_not_null()
    )
    markers = {records.BASELINE: "o", "stopwords": "s", "syntax": "^", "oracle": "D"}
    with _axes((6.5, 4.0)) as (fig, ax):
        for row in rows.iter_rows(named=True):
            ax.scatter(
                row["total_energy_j_mean"],
                100 * row["pass_at_1"],
                marker=markers.get(row["strategy"], "o"),
                s=40,
                label=f"{row['model']} / {row['workload']} / {row['strategy']}",
            )
        ax.set_xlabel(energy_label(summary))
        ax.set_ylabel("pass@1 (%)")
        ax.set_title("Energy against accuracy, per strategy")
        _legend_or_empty(
            ax,
            rows.is_empty(),
            "no task with both energy and a pass/fail score",
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
        save(fig, out_png)


ATTENTION_COLOURS = {"multi-head": "#C44E52", "grouped-query": "#4C72B0", "multi-query": "#55A868"}


def amplification_vs_kv_cache(shapes: pl.DataFrame, out_png: str | Path) -> None:
    """Amplification of decode J/token (the amplification pair, short to long workload) against
    KV-cache bytes per token, one point per model, coloured by attention kind
    (architectures.energy_by_shape)."""
    rows = [
        row
        for row in shapes.iter_rows(named=True)
        if row["amplification_pct"] is not None and math.isfinite(row["amplification_pct"])
    ]
    with _axes((7.0, 4.5)) as (fig, ax):
        for kind, colour in ATTENTION_COLOURS.items():
            mine = [row for row in rows if row["attention"] == kind]
            if mine:
                ax.scatter(
                    [row["kv_cache_bytes_per_token"] / 1024 for row in mine],
                    [row["amplification_pct"] for row in mine],
                    s=40,
                    color=colour,
                    label=kind,
                )
        for row in rows:
            ax.annotate(
                row["model"].removesuffix("-random"),
                (row["kv_cache_bytes_per_token"] / 1024, row["amplification_pct"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        ax.axhline(0, color="#333", linewidth=0.8)
        widths = {row["dtype_bytes"] for row in rows}
        width = f", {8 * widths.pop()}-bit values" if len(widths) == 1 else ""
        ax.set_xlabel(f"KV-cache bytes per token (KiB{width})")
        ax.set_ylabel("Decode J/token, long vs short workload of the pair (%)")
        estimated = any(row["energy_measured"] is not True for row in rows)
        title = "Decode energy per token amplified by long prompts"
        ax.set_title(title + (" (estimated energy)" if estimated else ""))
        _legend_or_empty(
            ax,
            not rows,
            "no amplification: each model needs two workloads of different lengths",
            loc="upper left",
        )
        save(fig, out_png)


@dataclass(frozen=True)
class Figure:
    """One figure of the report: how it is drawn, and from which of the run's tables (by
    name, as the figures rule reads them: summary, savings, amplification, shapes, tasks,
    tokens), in the order `draw` takes them before the PNG's path."""

    draw: Callable[..., None]
    tables: tuple[str, ...]


# The report's figures, in its order. A figure of tables the rule reads already is its
# function and its line here.
FIGURES: dict[str, Figure] = {
    "energy_per_phase": Figure(energy_per_phase, ("summary",)),
    "decode_cost_vs_prompt": Figure(decode_cost_vs_prompt, ("tasks", "amplification")),
    "token_cost_by_position": Figure(token_cost_by_position, ("tokens",)),
    "savings_by_strategy": Figure(savings_by_strategy, ("savings",)),
    "energy_vs_accuracy": Figure(energy_vs_accuracy, ("summary",)),
    "amplification_vs_kv_cache": Figure(amplification_vs_kv_cache, ("shapes",)),
}


def draw(tables: Mapping[str, pl.DataFrame], outputs: Mapping[str, str | Path]) -> None:
    """Every figure, from `tables` by name, to its PNG (`outputs`, by figure name)."""
    for name, figure in FIGURES.items():
        figure.draw(*(tables[table] for table in figure.tables), outputs[name])

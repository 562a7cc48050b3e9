"""Figures, drawn with matplotlib's non-interactive backend in one consistent style."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from llmenergy import records

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
    sources = set(summary["energy_source"].to_list())
    estimated = any(source.startswith("estimate") for source in sources)
    return "Energy per task (J, estimated)" if estimated else "Energy per task (J)"


def energy_per_phase(summary: pl.DataFrame, out_png: str | Path) -> None:
    """Stacked bars: mean prefill and decode energy per task, per model x workload x strategy."""
    rows = summary.filter(pl.col("total_energy_j_mean").is_not_null())
    labels = [f"{r['model']}\n{r['workload']}\n{r['strategy']}" for r in rows.iter_rows(named=True)]
    prefill = rows["prefill_energy_j_mean"].to_list()
    decode = rows["decode_energy_j_mean"].to_list()
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(labels) + 3), 4.0))
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
        fig.tight_layout()
        with records.atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)

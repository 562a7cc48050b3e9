"""What a real GPU measured, shipped beside the workflow and shown beside this run's numbers.

Each folder of `data/reference/` (one per run on a GPU, e.g. `nvidia-h200-2026-12-04-1/`)
holds `gpu.json` (where, when and how it was measured), the workflow's `summary.csv` of that run
and, optionally, its amplification table as `amplification.csv`. Layout: docs/design.md, "The
report and its claims".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from llmenergy import amplification
from llmenergy.stopping import BASELINE

GPU_FILE = "gpu.json"
SUMMARY_FILE = "summary.csv"
AMPLIFICATION_FILE = "amplification.csv"
FILES = (GPU_FILE, SUMMARY_FILE, AMPLIFICATION_FILE)
LABEL_KEYS = ("gpu", "driver", "date")

# The comparison's columns: text, then numbers (each with its 95% interval where it has one).
TEXT_COLUMNS = ["model", "workload", "metered_device"]
INTERVAL_COLUMNS = ["prefill_energy_j_mean", "decode_j_per_token", "prefill_share"]
NUMBER_COLUMNS = ["prompt_tokens_mean", "output_tokens_mean", *INTERVAL_COLUMNS, "idle_power_w"]
BOUNDS = [f"{name}_{end}" for name in INTERVAL_COLUMNS for end in ("lo", "hi")]
# A reference's summary.csv must have these (strategy: only the baseline is compared).
SUMMARY_COLUMNS = [*TEXT_COLUMNS, "strategy", "energy_measured", *NUMBER_COLUMNS, *BOUNDS]
COMPARISON_COLUMNS = [
    "where",
    "model",
    "workload",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "prefill_energy_j_mean",
    "decode_j_per_token",
    "prefill_share",
    "idle_power_w",
    "metered_device",
]


@dataclass(frozen=True, eq=False)
class Reference:
    """One GPU's records: its folder's name, the GPU, driver and date it was measured on, the
    rest of its gpu.json in order (command, config, clocks, versions), its summary and its
    amplification table (None: not shipped)."""

    name: str
    gpu: str
    driver: str
    date: str
    details: tuple[tuple[str, Any], ...]
    summary: pl.DataFrame
    amplification: pl.DataFrame | None = None

    @property
    def label(self) -> str:
        return f"{self.gpu}, driver {self.driver}, {self.date}"


def load(root: Path) -> list[Reference]:
    """Every GPU's records under `root`, by folder name; none when `root` does not exist."""
    if not root.is_dir():
        return []
    return [load_one(folder) for folder in sorted(p for p in root.iterdir() if p.is_dir())]


def load_one(folder: Path) -> Reference:
    """One folder's records; a missing file, key or column is an error that names the file."""
    gpu_file, summary_file = folder / GPU_FILE, folder / SUMMARY_FILE
    for path in (gpu_file, summary_file):
        if not path.is_file():
            raise ValueError(f"reference: {path} is missing (a GPU record holds {FILES[:2]})")
    facts = json.loads(gpu_file.read_text(encoding="utf-8"))
    if not isinstance(facts, dict):
        raise ValueError(f"reference: {gpu_file} is not a JSON object")
    absent = [key for key in LABEL_KEYS if not facts.get(key)]
    if absent:
        raise ValueError(f"reference: {gpu_file} lacks {absent} (it must say {LABEL_KEYS})")
    summary = pl.read_csv(summary_file)
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"reference: {summary_file} lacks the columns {missing}")
    if not summary["energy_measured"].fill_null(False).all():
        raise ValueError(
            f"reference: {summary_file} has rows whose energy was not measured (energy_measured "
            "false): a GPU record holds measured energy only"
        )
    amplification_file = folder / AMPLIFICATION_FILE
    return Reference(
        name=folder.name,
        gpu=str(facts["gpu"]),
        driver=str(facts["driver"]),
        date=str(facts["date"]),
        details=tuple((k, v) for k, v in facts.items() if k not in LABEL_KEYS),
        summary=summary,
        amplification=_amplification_table(amplification_file),
    )


def _amplification_table(path: Path) -> pl.DataFrame | None:
    """A shipped amplification table (None: not shipped), the columns added to the table
    since it was measured (amplification.SCHEMA) null: it has no value for them."""
    if not path.is_file():
        return None
    table = pl.read_csv(path)
    absent = [name for name in amplification.SCHEMA if name not in table.columns]
    return table.with_columns(
        pl.lit(None, amplification.SCHEMA[name]).alias(name) for name in absent
    )


def _rows(summary: pl.DataFrame, where: pl.Expr) -> pl.DataFrame:
    """A summary's baseline rows in the comparison's columns and types."""
    return summary.filter(pl.col("strategy") == BASELINE).select(
        where.alias("where"),
        *(pl.col(c).cast(pl.String) for c in TEXT_COLUMNS),
        *(pl.col(c).cast(pl.Float64) for c in [*NUMBER_COLUMNS, *BOUNDS]),
    )


def this_run() -> pl.Expr:
    """How the current run's rows are labelled: measured or estimated, and the source."""
    measured = pl.col("energy_measured").fill_null(False)
    how = pl.when(measured).then(pl.lit("measured")).otherwise(pl.lit("estimated"))
    return pl.format("this run: {} ({})", how, pl.col("energy_source"))


def measured_on(references: Sequence[Reference]) -> list[str]:
    """How each reference's rows are labelled: "measured: " and its label, and its folder's
    name where another reference has the same label (one GPU measured twice in a day)."""
    labels = [r.label for r in references]
    return [
        f"measured: {r.label}" + (f" ({r.name})" if labels.count(r.label) > 1 else "")
        for r in references
    ]


def comparison(references: Sequence[Reference], summary: pl.DataFrame) -> pl.DataFrame:
    """Each reference's baseline rows (strategy `none`), labelled as measured on its GPU, then
    the current run's, labelled as this run's: COMPARISON_COLUMNS and the intervals' bounds."""
    wheres = measured_on(references)
    parts = [_rows(r.summary, pl.lit(w)) for r, w in zip(references, wheres, strict=True)]
    parts.append(_rows(summary, this_run()))
    columns = [*COMPARISON_COLUMNS, *BOUNDS]
    return pl.concat(parts, how="vertical").select(columns)

"""Aggregation of generation and score records into one summary table (Polars, lazy).

One summary row per model x workload x strategy x energy source. Energy means are over the
tasks whose energy was measured (`energy_tasks` says how many); a mean over none is null.
Energy is reported gross and above idle: idle power (measured by the same kind of meter before
the runs) times the phase's duration is subtracted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

KEYS = ["model", "workload", "strategy"]


def scan(paths: Sequence[str | Path]) -> pl.LazyFrame:
    if not paths:
        raise ValueError("no input files to aggregate")
    return pl.scan_parquet([str(p) for p in paths])


def per_task(
    generations: pl.LazyFrame, scores: pl.LazyFrame, idle: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Generation records joined with their scores and the idle power of their meter, one row
    per task and repetition."""
    score_columns = scores.select([*KEYS, "rep", "task_id", "passed", "error_kind", "sandbox"])
    joined = generations.join(score_columns, on=[*KEYS, "rep", "task_id"], how="left")
    if idle is None:
        joined = joined.with_columns(idle_power_w=pl.lit(None, dtype=pl.Float64))
    else:
        # Idle power counts only for rows measured by the same kind of meter.
        idle_power = idle.select("energy_source", idle_power_w=pl.col("power_w"))
        joined = joined.join(idle_power, on="energy_source", how="left")
    return joined.with_columns(
        total_energy_j=pl.col("prefill_energy_j") + pl.col("decode_energy_j"),
        prefill_above_idle_j=pl.col("prefill_energy_j")
        - pl.col("idle_power_w") * pl.col("prefill_s"),
        decode_above_idle_j=pl.col("decode_energy_j") - pl.col("idle_power_w") * pl.col("decode_s"),
    ).with_columns(
        total_above_idle_j=pl.col("prefill_above_idle_j") + pl.col("decode_above_idle_j"),
    )


def summarize(tasks: pl.LazyFrame) -> pl.DataFrame:
    """The summary table: one row per model x workload x strategy x energy source."""
    measured = pl.col("total_energy_j").is_not_null()
    return (
        tasks.group_by([*KEYS, "energy_source"])
        .agg(
            tasks=pl.col("task_id").n_unique(),
            reps=pl.col("rep").n_unique(),
            records=pl.len(),
            energy_tasks=measured.sum(),
            prompt_tokens_mean=pl.col("prompt_tokens").mean(),
            output_tokens_mean=pl.col("output_tokens").mean(),
            output_tokens_total=pl.col("output_tokens").sum(),
            prefill_s_mean=pl.col("prefill_s").mean(),
            decode_s_mean=pl.col("decode_s").mean(),
            prefill_energy_j_mean=pl.col("prefill_energy_j").filter(measured).mean(),
            decode_energy_j_mean=pl.col("decode_energy_j").filter(measured).mean(),
            total_energy_j_mean=pl.col("total_energy_j").filter(measured).mean(),
            idle_power_w=pl.col("idle_power_w").first(),
            prefill_above_idle_j_mean=pl.col("prefill_above_idle_j").filter(measured).mean(),
            decode_above_idle_j_mean=pl.col("decode_above_idle_j").filter(measured).mean(),
            total_above_idle_j_mean=pl.col("total_above_idle_j").filter(measured).mean(),
            prefill_repeats_mean=pl.col("prefill_repeats").mean(),
            short_window_tasks=pl.col("energy_flags").str.contains("window-short").sum(),
            prefill_share=(
                pl.col("prefill_energy_j").filter(measured).sum()
                / pl.col("total_energy_j").filter(measured).sum()
            ),
            # Decode produces every output token but the first (which prefill yields).
            decode_j_per_token=(
                pl.col("decode_energy_j").filter(measured).sum()
                / (pl.col("output_tokens").filter(measured) - 1).sum()
            ),
            pass_at_1=pl.col("passed").cast(pl.Float64).mean(),
            scored=pl.col("passed").is_not_null().sum(),
            sandbox=pl.col("sandbox").unique().sort().str.join(","),
        )
        .with_columns(
            pl.when(pl.col("energy_tasks") > 0)
            .then(pl.col("prefill_share"))
            .otherwise(None)
            .alias("prefill_share"),
            # 0/0 (no decode tokens) and x/0 are not a per-token figure.
            pl.when(pl.col("decode_j_per_token").is_finite())
            .then(pl.col("decode_j_per_token"))
            .otherwise(None)
            .alias("decode_j_per_token"),
        )
        .sort([*KEYS, "energy_source"])
        .collect()
    )


def aggregate(
    generation_paths: Sequence[str | Path],
    score_paths: Sequence[str | Path],
    idle_path: str | Path | None = None,
) -> pl.DataFrame:
    idle = pl.scan_parquet(str(idle_path)) if idle_path is not None else None
    return summarize(per_task(scan(generation_paths), scan(score_paths), idle))

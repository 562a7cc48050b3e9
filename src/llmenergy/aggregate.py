"""Aggregation of generation and score records into one summary table (Polars, lazy).

One summary row per model x workload x strategy x energy source. Energy means are over the
tasks whose energy was measured (`energy_tasks` says how many; `prefill_null_tasks` and
`decode_null_tasks` how many each phase lost); a mean over none is null. Energy is the
accelerator's (the device that ran the model, `metered_device`), gross and above idle: the idle
power each generation job measured on that device times the phase's duration is subtracted.
Host energy (RAPL beside a GPU) has its own columns and never enters the claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from llmenergy import stats

KEYS = ["model", "workload", "strategy"]


def scan(paths: Sequence[str | Path]) -> pl.LazyFrame:
    if not paths:
        raise ValueError("no input files to aggregate")
    return pl.scan_parquet([str(p) for p in paths])


def per_task(generations: pl.LazyFrame, scores: pl.LazyFrame) -> pl.LazyFrame:
    """Generation records joined with their scores, one row per task and repetition."""
    columns = [*KEYS, "rep", "task_id", "passed", "error_kind", "sandbox"]
    if "code_sim" in scores.collect_schema().names():
        score_columns = scores.select([*columns, "code_sim"])
    else:  # HumanEval-only score files of older runs
        score_columns = scores.select(columns).with_columns(code_sim=pl.lit(None, pl.Float64))
    joined = generations.join(score_columns, on=[*KEYS, "rep", "task_id"], how="left")
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
            model_revision=pl.col("model_revision").unique().sort().str.join(","),
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
            metered_device=pl.col("metered_device").unique().sort().str.join(","),
            energy_measured=pl.col("energy_measured").all(),
            idle_power_w=pl.col("idle_power_w").mean(),
            prefill_null_tasks=pl.col("prefill_energy_j").is_null().sum(),
            decode_null_tasks=pl.col("decode_energy_j").is_null().sum(),
            subtracted_tasks=pl.col("energy_flags").str.contains("decode-by-subtraction").sum(),
            host_energy_source=pl.col("host_energy_source")
            .drop_nulls()
            .unique()
            .sort()
            .str.join(","),
            prefill_host_energy_j_mean=pl.col("prefill_host_energy_j").mean(),
            decode_host_energy_j_mean=pl.col("decode_host_energy_j").mean(),
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
            code_sim_mean=pl.col("code_sim").mean(),
            scored=(pl.col("passed").is_not_null() | pl.col("code_sim").is_not_null()).sum(),
            # Completions that were never run (no sandbox here, or running them is off).
            not_run=pl.col("error_kind").str.starts_with("not-run").sum(),
            not_run_kinds=pl.col("error_kind")
            .filter(pl.col("error_kind").str.starts_with("not-run"))
            .unique()
            .sort()
            .str.join(","),
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
    generation_paths: Sequence[str | Path], score_paths: Sequence[str | Path]
) -> pl.DataFrame:
    return summarize(per_task(scan(generation_paths), scan(score_paths)))


def with_check_energy(tasks: pl.LazyFrame) -> pl.LazyFrame:
    """Total energy including the stopping strategy's own checks. Checks run on the CPU in
    other processes: a meter whose figure covers the CPU packages (RAPL as the accelerator)
    has them in its windows already; for the others their own energy is added."""
    checks = (
        pl.when(pl.col("energy_covers_cpu").fill_null(False))
        .then(0.0)
        .otherwise(pl.col("check_energy_j").fill_null(0.0))
    )
    return tasks.with_columns(energy_with_checks_j=pl.col("total_energy_j") + checks)


def savings(tasks: pl.LazyFrame) -> pl.DataFrame:
    """Each strategy against the `none` baseline, paired per task and repetition: shares of
    energy, tokens and time saved, and the tasks whose pass/fail differs (flips)."""
    tasks = with_check_energy(tasks)
    pair = ["model", "workload", "rep", "task_id"]
    base = tasks.filter(pl.col("strategy") == "none").select(
        *pair,
        base_energy_j=pl.col("total_energy_j"),
        base_tokens=pl.col("output_tokens"),
        base_s=pl.col("prefill_s") + pl.col("decode_s"),
        base_passed=pl.col("passed"),
        base_code_sim=pl.col("code_sim"),
    )
    paired = (
        tasks.filter(pl.col("strategy") != "none")
        .join(base, on=pair, how="inner")
        .with_columns(
            seconds=pl.col("prefill_s") + pl.col("decode_s") + pl.col("check_s").fill_null(0),
            both_measured=pl.col("energy_with_checks_j").is_not_null()
            & pl.col("base_energy_j").is_not_null(),
            flipped=pl.col("passed").ne_missing(pl.col("base_passed")),
        )
    )
    measured = pl.col("both_measured")
    return (
        paired.group_by(KEYS)
        .agg(
            tasks=pl.len(),
            energy_tasks=measured.sum(),
            base_energy_j_mean=pl.col("base_energy_j").filter(measured).mean(),
            energy_j_mean=pl.col("energy_with_checks_j").filter(measured).mean(),
            energy_saved=1
            - pl.col("energy_with_checks_j").filter(measured).sum()
            / pl.col("base_energy_j").filter(measured).sum(),
            tokens_saved=1 - pl.col("output_tokens").sum() / pl.col("base_tokens").sum(),
            time_saved=1 - pl.col("seconds").sum() / pl.col("base_s").sum(),
            check_s_mean=pl.col("check_s").mean(),
            check_share_of_decode=pl.col("check_energy_j").filter(measured).sum()
            / pl.col("decode_energy_j").filter(measured).sum(),
            base_pass_at_1=pl.col("base_passed").cast(pl.Float64).mean(),
            pass_at_1=pl.col("passed").cast(pl.Float64).mean(),
            base_code_sim=pl.col("base_code_sim").mean(),
            code_sim=pl.col("code_sim").mean(),
            flips=pl.col("flipped").sum(),
            flipped_tasks=pl.col("task_id").filter(pl.col("flipped")).unique().sort().str.join(" "),
        )
        .with_columns(
            [
                pl.when(pl.col("energy_tasks") > 0).then(pl.col(c)).otherwise(None).alias(c)
                for c in ("energy_saved", "check_share_of_decode")
            ]
        )
        .with_columns(pl.col(pl.Float64).fill_nan(None))
        .sort(KEYS)
        .collect()
    )


def babbling(metrics: pl.LazyFrame, threshold: float) -> pl.DataFrame:
    """Per model and workload: mean babble ratio by each rule, and whether the model babbles
    (mean ratio by the syntax rule at or above `threshold`)."""
    return (
        metrics.group_by(["model", "workload"])
        .agg(
            outputs=pl.len(),
            complete_syntax=pl.col("answer_tokens_syntax").is_not_null().sum(),
            complete_tests=pl.col("answer_tokens_tests").is_not_null().sum(),
            babble_tokens_syntax_mean=pl.col("babble_tokens_syntax").mean(),
            babble_ratio_syntax=pl.col("babble_ratio_syntax").mean(),
            babble_ratio_tests=pl.col("babble_ratio_tests").mean(),
        )
        .with_columns(babbles=pl.col("babble_ratio_syntax").fill_null(0.0) >= threshold)
        .sort(["model", "workload"])
        .collect()
    )


# Intervals in the summary: (column, kind, numerator, denominator); a mean takes one column.
INTERVALS: list[tuple[str, str, str, str | None]] = [
    ("prefill_energy_j_mean", "mean", "prefill_energy_j", None),
    ("decode_energy_j_mean", "mean", "decode_energy_j", None),
    ("total_energy_j_mean", "mean", "total_energy_j", None),
    ("prefill_share", "ratio", "prefill_energy_j", "total_energy_j"),
    ("j_per_output_token", "ratio", "total_energy_j", "output_tokens"),
    ("decode_j_per_token", "ratio", "decode_energy_j", "decode_tokens"),
    ("seconds_mean", "mean", "seconds", None),
    ("pass_at_1", "mean", "passed_f", None),
    ("code_sim_mean", "mean", "code_sim", None),
]


def _matrix(group: pl.DataFrame, column: str, tasks: list[str], reps: list[int]) -> np.ndarray:
    """tasks x reps values of `column` (NaN where missing)."""
    out = np.full((len(tasks), len(reps)), np.nan)
    task_at = {t: i for i, t in enumerate(tasks)}
    rep_at = {r: j for j, r in enumerate(reps)}
    rows = group.select("task_id", "rep", column).drop_nulls(column)
    out[[task_at[t] for t in rows["task_id"]], [rep_at[r] for r in rows["rep"]]] = rows[
        column
    ].to_numpy()
    return out


def intervals(
    tasks: pl.LazyFrame, resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0
) -> pl.DataFrame:
    """Bootstrap 95% intervals (over tasks, and repetitions within tasks) of the summary's
    statistics: one row per model x workload x strategy x energy source."""
    frame = (
        tasks.with_columns(
            # Energy statistics use only tasks whose energy was measured, as in summarize.
            measured=pl.col("total_energy_j").is_not_null(),
            seconds=pl.col("prefill_s") + pl.col("decode_s"),
            passed_f=pl.col("passed").cast(pl.Float64),
            decode_tokens=(pl.col("output_tokens") - 1).cast(pl.Float64),
        )
        .with_columns(
            [
                pl.when(pl.col("measured")).then(pl.col(c)).otherwise(None).alias(c)
                for c in ("output_tokens", "decode_tokens")
            ]
        )
        .collect()
    )
    columns = sorted({c for _, _, a, b in INTERVALS for c in (a, b) if c is not None})
    where = {name: i for i, name in enumerate(columns)}
    wanted = [(where[a], where[b] if b else None) for _, _, a, b in INTERVALS]
    rows = []
    for keys, group in frame.group_by([*KEYS, "energy_source"], maintain_order=True):
        tasks_ids = group["task_id"].unique().sort().to_list()
        reps = group["rep"].unique().sort().to_list()
        indices = stats.resample_indices(len(tasks_ids), len(reps), resamples, seed)
        row = dict(zip([*KEYS, "energy_source"], keys, strict=True))
        if len(reps) == 1 and group.height == len(tasks_ids):
            # One repetition: every statistic of every draw from one matrix product.
            values = (
                group.sort("task_id")
                .select([pl.col(c).cast(pl.Float64) for c in columns])
                .to_numpy()
            )
            found = stats.column_intervals(values, wanted, indices, stats.DEFAULT_LEVEL)
        else:
            found = []
            for _, kind, first, second in INTERVALS:
                values = _matrix(group, first, tasks_ids, reps)
                if kind == "mean":
                    found.append(stats.bootstrap_mean(values, indices))
                else:
                    assert second is not None
                    denominator = _matrix(group, second, tasks_ids, reps)
                    found.append(stats.bootstrap_ratio(values, denominator, indices))
        for (name, *_), interval in zip(INTERVALS, found, strict=True):
            row[f"{name}_lo"], row[f"{name}_hi"] = interval.low, interval.high
            if name == "j_per_output_token":
                row[name] = interval.mean
        rows.append(row)
    schema = {k: pl.String() for k in [*KEYS, "energy_source"]}
    for name, *_ in INTERVALS:
        schema[f"{name}_lo"] = pl.Float64()
        schema[f"{name}_hi"] = pl.Float64()
    schema["j_per_output_token"] = pl.Float64()
    return pl.DataFrame(rows, schema=schema, orient="row")


def summary_with_intervals(tasks: pl.LazyFrame, resamples: int = stats.DEFAULT_RESAMPLES):
    """The summary table with the bootstrap interval of each statistic beside it."""
    summary = summarize(tasks).with_columns(
        seconds_mean=pl.col("prefill_s_mean") + pl.col("decode_s_mean")
    )
    bounds = intervals(tasks, resamples)
    return summary.join(bounds, on=[*KEYS, "energy_source"], how="left")

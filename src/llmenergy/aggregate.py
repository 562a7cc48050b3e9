"""Aggregation of generation and score records into one summary table (Polars, lazy).

One summary row per model x workload x strategy x energy source. Energy means are over the
tasks whose energy was measured (`energy_tasks` says how many; `prefill_null_tasks` and
`decode_null_tasks` how many each phase lost); a mean over none is null. Energy is the
accelerator's (the device that ran the model, `metered_device`), gross and above idle: the idle
power each generation job measured on that device times the phase's duration is subtracted.
Host energy (RAPL beside a GPU) has its own columns and never enters the claims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from llmenergy import conditions, records, stats
from llmenergy.records import BASELINE, decode_tokens

KEYS = ["model", "workload", "strategy"]


def scan(paths: Sequence[str | Path], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """The tables at `paths`, one after the other, each first held to `schema`'s columns
    (records.conform): a record kept from an earlier run of the workflow, written before a
    column was renamed, reads under the new name; one that lacks a column, or has one the
    schema does not know, is refused with its path and what to do."""
    if not paths:
        raise ValueError("no input files to aggregate")
    return pl.concat([records.conform(pl.scan_parquet(str(p)), p, schema) for p in paths])


def per_task(generations: pl.LazyFrame, scores: pl.LazyFrame) -> pl.LazyFrame:
    """Generation records joined with their scores, one row per task and repetition."""
    columns = [*KEYS, "rep", "task_id", "passed", "error_kind", "sandbox", "code_sim", "passed_raw"]
    score_columns = scores.select(columns)
    joined = generations.join(score_columns, on=[*KEYS, "rep", "task_id"], how="left")
    return (
        joined.with_columns(
            total_energy_j=pl.col("prefill_energy_j") + pl.col("decode_energy_j"),
            prefill_above_idle_j=pl.col("prefill_energy_j")
            - pl.col("idle_power_w") * pl.col("prefill_s"),
            decode_above_idle_j=pl.col("decode_energy_j")
            - pl.col("idle_power_w") * pl.col("decode_s"),
            control_decode_above_idle_j=pl.col("control_decode_energy_j")
            - pl.col("idle_power_w") * pl.col("control_decode_s"),
        )
        .with_columns(
            total_above_idle_j=pl.col("prefill_above_idle_j") + pl.col("decode_above_idle_j"),
        )
        .sort([*KEYS, "energy_source", "task_id", "rep"])
    )  # sums in one order, whatever the input's


def summarize(tasks: pl.LazyFrame) -> pl.DataFrame:
    """The summary table: one row per model x workload x strategy x energy source."""
    measured = pl.col("total_energy_j").is_not_null()
    return (
        tasks.group_by([*KEYS, "energy_source"], maintain_order=True)
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
            task_s_mean=pl.col("task_s").mean(),
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
            flagged_tasks=flagged().sum(),
            remeasured_tasks=(pl.col("remeasured") > 0).sum(),
            prefill_share=(
                pl.col("prefill_energy_j").filter(measured).sum()
                / pl.col("total_energy_j").filter(measured).sum()
            ),
            decode_j_per_token=(
                pl.col("decode_energy_j").filter(measured).sum()
                / decode_tokens().filter(measured).sum()
            ),
            pass_at_1=pl.col("passed").cast(pl.Float64).mean(),
            pass_at_1_raw=pl.col("passed_raw").cast(pl.Float64).mean(),
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


def _flags() -> pl.Expr:
    """A record's energy flags, as a list."""
    return pl.col("energy_flags").fill_null("").str.split(",")


def flagged() -> pl.Expr:
    """Whether a record's measurement was flagged: contended, or a mean power outside its
    device's bounds (conditions.FLAGS)."""
    return _flags().list.set_intersection(list(conditions.FLAGS)).list.len() > 0


def _with_flag(flag: str) -> pl.Expr:
    return _flags().list.contains(flag)


def measurement_conditions(generations: pl.LazyFrame) -> pl.DataFrame:
    """One row per generation job (model x workload x strategy x repetition): its tasks, how
    many were flagged and for what, how many were measured again, the most CPU cores other
    processes kept busy, and the CPU clock and the GPU's temperature, SM clock and power limit
    over the job (their drift)."""
    return (
        generations.group_by([*KEYS, "rep"], maintain_order=True)
        .agg(
            metered_device=pl.col("metered_device").unique().sort().str.join(","),
            tasks=pl.len(),
            flagged_tasks=flagged().sum(),
            contended_tasks=_with_flag(conditions.CONTENDED).sum(),
            remeasured_tasks=(pl.col("remeasured") > 0).sum(),
            below_idle_tasks=_with_flag(conditions.POWER_BELOW_IDLE).sum(),
            above_limit_tasks=_with_flag(conditions.POWER_ABOVE_LIMIT).sum(),
            other_cores_max=pl.col("other_cores").max(),
            cpu_mhz_min=pl.col("cpu_mhz").min(),
            cpu_mhz_max=pl.col("cpu_mhz").max(),
            gpu_other_processes_max=pl.col("gpu_other_processes").max(),
            gpu_temperature_c_min=pl.col("gpu_temperature_c").min(),
            gpu_temperature_c_max=pl.col("gpu_temperature_c").max(),
            gpu_sm_mhz_min=pl.col("gpu_sm_mhz").min(),
            gpu_sm_mhz_max=pl.col("gpu_sm_mhz").max(),
            power_limit_w=pl.col("power_limit_w").max(),
        )
        .sort([*KEYS, "rep"])
        .collect()
    )


def aggregate(
    generation_paths: Sequence[str | Path], score_paths: Sequence[str | Path]
) -> pl.DataFrame:
    generations = scan(generation_paths, records.GENERATION_SCHEMA)
    return summarize(per_task(generations, scan(score_paths, records.SCORE_SCHEMA_WITH_CODE_SIM)))


def with_check_energy(tasks: pl.LazyFrame) -> pl.LazyFrame:
    """Total energy including the stopping strategy's own checks, each counted once. Checks run
    on the CPU in other processes: a meter whose figure covers the CPU packages (RAPL as the
    accelerator) has them in its windows already; for the others their own energy is added,
    and a task whose checks ran without an energy figure has no total."""
    ran_checks = pl.col("check_s").is_not_null()
    covered = pl.col("energy_covers_cpu").fill_null(False)
    checks = pl.when(covered | ~ran_checks).then(pl.lit(0.0)).otherwise(pl.col("check_energy_j"))
    return tasks.with_columns(
        energy_with_checks_j=pl.col("total_energy_j") + checks,
        above_idle_with_checks_j=pl.col("total_above_idle_j") + checks,
        decode_with_checks_j=pl.col("decode_energy_j") + checks,
        decode_above_idle_with_checks_j=pl.col("decode_above_idle_j") + checks,
    )


PAIR = ["model", "workload", "rep", "task_id"]


def paired(tasks: pl.LazyFrame) -> pl.DataFrame:
    """Each strategy's task beside the same task and repetition of the `none` baseline."""
    tasks = with_check_energy(tasks).with_columns(decode_tokens=decode_tokens())
    base = tasks.filter(pl.col("strategy") == BASELINE).select(
        *PAIR,
        base_energy_j=pl.col("total_energy_j"),
        base_above_idle_j=pl.col("total_above_idle_j"),
        base_decode_energy_j=pl.col("decode_energy_j"),
        base_prefill_energy_j=pl.col("prefill_energy_j"),
        base_decode_above_idle_j=pl.col("decode_above_idle_j"),
        base_decode_tokens=pl.col("decode_tokens"),
        base_tokens=pl.col("output_tokens"),
        base_task_s=pl.col("task_s"),
        base_passed=pl.col("passed"),
        base_passed_raw=pl.col("passed_raw"),
        base_code_sim=pl.col("code_sim"),
    )
    return (
        tasks.filter(pl.col("strategy") != BASELINE)
        .join(base, on=PAIR, how="inner")
        .with_columns(
            both_measured=pl.col("energy_with_checks_j").is_not_null()
            & pl.col("base_energy_j").is_not_null(),
            # Only a task scored pass/fail on both sides can flip.
            flip_pair=pl.col("passed").is_not_null() & pl.col("base_passed").is_not_null(),
            unscored_pair=~(
                (pl.col("passed").is_not_null() & pl.col("base_passed").is_not_null())
                | (pl.col("code_sim").is_not_null() & pl.col("base_code_sim").is_not_null())
            ),
        )
        .with_columns(flipped=pl.col("flip_pair") & (pl.col("passed") != pl.col("base_passed")))
        .sort([*KEYS, "task_id", "rep"])
        .collect()
    )


@dataclass(frozen=True)
class RatioStatistic:
    """A paired statistic of column sums whose core is a product of ratios of sums, Q
    (stats.ratio_product_interval's terms), reported as a share saved (1 - Q) or a change
    (Q - 1), with the interval of Q carried over."""

    terms: tuple[stats.RatioTerm, ...]
    saved: bool = False

    def __call__(self, sums: np.ndarray) -> np.ndarray:
        q: np.ndarray | float = 1.0
        for num, den, power in self.terms:
            q = q * (sums[..., num] / sums[..., den]) ** power
        return 1.0 - q if self.saved else q - 1.0

    def interval(self, columns: np.ndarray) -> stats.Interval:
        q = stats.ratio_product_interval(columns, self.terms)

        def value(end: float | None) -> float | None:
            return None if end is None else (1.0 - end if self.saved else end - 1.0)

        low, high = (q.high, q.low) if self.saved else (q.low, q.high)
        return stats.Interval(value(q.mean), value(low), value(high))


_saved = RatioStatistic(((0, 1, 1),), saved=True)
_per_token_change = RatioStatistic(((0, 1, 1), (2, 3, -1)))
# The change of one sum against another over the same tokens: of energy per token too.
_change = RatioStatistic(((0, 1, 1),))


# Paired statistics of the savings table: name, the columns summed, the statistic of the sums.
PAIRED_STATISTICS: list[tuple[str, tuple[str, ...], RatioStatistic]] = [
    ("energy_saved", ("energy_with_checks_j", "base_energy_j"), _saved),
    ("tokens_saved", ("output_tokens", "base_tokens"), _saved),
    ("time_saved", ("task_s", "base_task_s"), _saved),
    (
        "decode_j_per_token_change",
        ("decode_energy_j", "decode_tokens", "base_decode_energy_j", "base_decode_tokens"),
        _per_token_change,
    ),
    # The oracle's whole extra energy per decoded token: its decode energy and its checks'.
    (
        "extra_j_per_token",
        ("decode_with_checks_j", "decode_tokens", "base_decode_energy_j", "base_decode_tokens"),
        _per_token_change,
    ),
    # The same work in both jobs: each task's prefill (same prompt, same model, no stopper
    # yet). Its change is how much faster or slower the strategy's job ran than the
    # baseline's, which every figure against the baseline's job carries and its interval,
    # over tasks of one pair of jobs, cannot see.
    ("prefill_j_change", ("prefill_energy_j", "base_prefill_energy_j"), _change),
]
# The same, above idle: points beside the gross figures the claims are judged on.
ABOVE_IDLE_STATISTICS: list[tuple[str, tuple[str, ...], RatioStatistic]] = [
    ("energy_saved_above_idle", ("above_idle_with_checks_j", "base_above_idle_j"), _saved),
    (
        "extra_j_per_token_above_idle",
        (
            "decode_above_idle_with_checks_j",
            "decode_tokens",
            "base_decode_above_idle_j",
            "base_decode_tokens",
        ),
        _per_token_change,
    ),
]


# The per-token statistics again, against the strategy's own same-tokens control (decoded
# right after it in its job) instead of the baseline's job: what a job that ran a control
# reports (per_token_basis), so that the machine's drift between jobs is not in them.
SAME_TOKENS_STATISTICS: dict[str, tuple[tuple[str, ...], RatioStatistic]] = {
    "decode_j_per_token_change": (("decode_energy_j", "control_decode_energy_j"), _change),
    "extra_j_per_token": (("decode_with_checks_j", "control_decode_energy_j"), _change),
    "extra_j_per_token_above_idle": (
        ("decode_above_idle_with_checks_j", "control_decode_above_idle_j"),
        _change,
    ),
}
SAME_TOKENS, BASELINE_JOB = "same tokens, same job", "baseline job"


def per_token_basis(group: pl.DataFrame) -> str:
    """What a strategy's per-token changes are measured against: its same-tokens control
    where its job ran one, else the baseline's job."""
    controls = group.get_column("control_decode_energy_j", default=None)
    return SAME_TOKENS if controls is not None and controls.is_not_null().any() else BASELINE_JOB


def _statistics(
    statistics: list[tuple[str, tuple[str, ...], RatioStatistic]], basis: str
) -> list[tuple[str, tuple[str, ...], RatioStatistic]]:
    if basis != SAME_TOKENS:
        return statistics
    return [
        (name, *SAME_TOKENS_STATISTICS.get(name, (columns, statistic)))
        for name, columns, statistic in statistics
    ]


def paired_intervals(group: pl.DataFrame) -> dict[str, float | str | None]:
    """Each paired statistic of one model x workload x strategy, with its t interval over
    tasks (RatioStatistic; a task's repetitions summed; pairs missing a column left out); the
    per-token changes against the same-tokens control where the job ran one
    (per_token_basis)."""
    basis = per_token_basis(group)
    out: dict[str, float | str | None] = {"per_token_basis": basis}
    for name, columns, statistic in _statistics(PAIRED_STATISTICS, basis):
        complete = group.drop_nulls(list(columns))
        per_task = complete.group_by("task_id").agg(pl.col(list(columns)).sum()).sort("task_id")
        values = per_task.select(pl.col(list(columns)).cast(pl.Float64)).to_numpy()
        interval = statistic.interval(values)
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = (
            interval.mean,
            interval.low,
            interval.high,
        )
    for name, columns, statistic in _statistics(ABOVE_IDLE_STATISTICS, basis):
        sums = group.drop_nulls(list(columns)).select(pl.col(list(columns)).cast(pl.Float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            point = float(statistic(sums.sum().to_numpy()[0])) if sums.height else None
        out[name] = point if point is not None and np.isfinite(point) else None
    return out


def savings(tasks: pl.LazyFrame) -> pl.DataFrame:
    """Each strategy against the `none` baseline, paired per task and repetition: shares of
    energy (checks included once), tokens and end-to-end time saved, the change of decode
    energy per token, each with a paired t interval over tasks (paired_intervals); accuracy
    both ways and the tasks whose pass/fail differs (flips, over tasks scored pass/fail on
    both sides)."""
    pairs = paired(tasks)
    measured = pl.col("both_measured")
    table = (
        pairs.lazy()
        .group_by(KEYS, maintain_order=True)
        .agg(
            tasks=pl.len(),
            energy_tasks=measured.sum(),
            base_energy_j_mean=pl.col("base_energy_j").filter(measured).mean(),
            energy_j_mean=pl.col("energy_with_checks_j").filter(measured).mean(),
            base_task_s_mean=pl.col("base_task_s").mean(),
            task_s_mean=pl.col("task_s").mean(),
            check_s_mean=pl.col("check_s").mean(),
            check_energy_j_mean=pl.col("check_energy_j").mean(),
            check_share_of_decode=pl.col("check_energy_j").filter(measured).sum()
            / pl.col("decode_energy_j").filter(measured).sum(),
            base_pass_at_1=pl.col("base_passed").cast(pl.Float64).mean(),
            pass_at_1=pl.col("passed").cast(pl.Float64).mean(),
            base_pass_at_1_raw=pl.col("base_passed_raw").cast(pl.Float64).mean(),
            pass_at_1_raw=pl.col("passed_raw").cast(pl.Float64).mean(),
            base_code_sim=pl.col("base_code_sim").mean(),
            code_sim=pl.col("code_sim").mean(),
            flip_pairs=pl.col("flip_pair").sum(),
            flips=pl.col("flipped").sum(),
            flipped_tasks=pl.col("task_id").filter(pl.col("flipped")).unique().sort().str.join(" "),
            unscored=pl.col("unscored_pair").sum(),
        )
        .with_columns(
            pl.when(pl.col("energy_tasks") > 0)
            .then(pl.col("check_share_of_decode"))
            .otherwise(None)
            .alias("check_share_of_decode")
        )
        .with_columns(pl.col(pl.Float64).fill_nan(None))
        .sort(KEYS)
        .collect()
    )
    bounds = [
        {**dict(zip(KEYS, keys, strict=True)), **paired_intervals(group)}
        for keys, group in pairs.group_by(KEYS, maintain_order=True)
    ]
    schema: dict[str, pl.DataType] = {k: pl.String() for k in [*KEYS, "per_token_basis"]}
    for name, *_ in PAIRED_STATISTICS:
        schema.update({name: pl.Float64(), f"{name}_lo": pl.Float64(), f"{name}_hi": pl.Float64()})
    schema.update({name: pl.Float64() for name, *_ in ABOVE_IDLE_STATISTICS})
    bounds_frame = pl.DataFrame(bounds, schema=schema, orient="row")
    return table.join(bounds_frame, on=KEYS, how="left").sort(KEYS)


def babbling(
    metrics: pl.LazyFrame,
    stops: pl.LazyFrame,
    cap_share: float,
    threshold: float,
    eos_ignored: bool = False,
) -> pl.DataFrame:
    """Per model and workload: whether the model babbles in the study's sense (at least
    `cap_share` of its unsuppressed outputs run to the token cap instead of ending), and by
    our finer measure (its mean babble ratio by the syntax rule at or above `threshold`,
    `babbles_syntax`), with the mean babble ratio by each rule. `stops` holds each output's
    `stop_reason`; where every output was made to run to the cap (`eos_ignored`), the study's
    measure is null."""
    keys = ["model", "workload", "rep", "task_id"]
    ends = stops.filter(pl.col("strategy") == BASELINE).select(*keys, "stop_reason")
    at_cap = pl.col("stop_reason") == "max_tokens"
    return (
        metrics.join(ends, on=keys, how="left")
        .sort(["model", "workload", "strategy", "rep", "task_id"])
        .group_by(["model", "workload"], maintain_order=True)
        .agg(
            outputs=pl.len(),
            at_cap=at_cap.sum(),
            at_cap_share=at_cap.mean(),
            complete_syntax=pl.col("answer_tokens_syntax").is_not_null().sum(),
            complete_tests=pl.col("answer_tokens_tests").is_not_null().sum(),
            babble_tokens_syntax_mean=pl.col("babble_tokens_syntax").mean(),
            babble_ratio_syntax=pl.col("babble_ratio_syntax").mean(),
            babble_ratio_tests=pl.col("babble_ratio_tests").mean(),
        )
        .with_columns(
            babbles=pl.when(pl.lit(eos_ignored) | pl.col("at_cap_share").is_null())
            .then(None)
            .otherwise(pl.col("at_cap_share") >= cap_share),
            babbles_syntax=pl.col("babble_ratio_syntax").fill_null(0.0) >= threshold,
        )
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
    ("pass_at_1_raw", "mean", "passed_raw_f", None),
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
            passed_raw_f=pl.col("passed_raw").cast(pl.Float64),
            decode_tokens=decode_tokens().cast(pl.Float64),
        )
        .with_columns(
            [
                pl.when(pl.col("measured")).then(pl.col(c)).otherwise(None).alias(c)
                # Every energy statistic and its denominator, as the summary's means take them.
                for c in ("prefill_energy_j", "decode_energy_j", "output_tokens", "decode_tokens")
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

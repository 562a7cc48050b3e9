"""How much a long prompt raises decode energy per token, per model and energy source.

Four figures, on the unsuppressed runs (strategy `none`), each with a 95% interval:
- the study's: decode J/token on the long workload of a named pair (`analysis.amplification`)
  against the short one, each a ratio of sums (decode energy over decoded tokens, tasks
  and repetitions pooled), as a percentage change; the interval is a Welch t interval on
  the log of the two ratios, each side's variance taken over its tasks (a task's repetitions
  summed), since the long side of the default has four tasks (stats.percent_change_interval);
- paired in time: each long task's decode J/token against that of the short tasks decoded
  right before and right after it in the same job (the pair job interleaves them), one log
  ratio per long task, their geometric mean with a t interval over the long tasks
  (stats.geometric_change_interval): a machine whose speed drifts over the job moves a long
  task and its neighbours alike, which the study's figure, over all tasks of each side, cannot
  tell from a difference between tasks; the claim is judged on this figure where it exists;
- like with like: the same over the first N decode positions of every task and repetition
  that has them (`analysis.same_positions`), so that workloads that decode for different
  lengths compare equal work, with the same interval; from per-token energy where a power
  timeline gave it, else from per-token time (`same_positions_basis` says which);
- the slope of per-task decode J/token on prompt tokens (least squares, +-1.96 standard
  errors).
Without a named pair, the workloads with the shortest and the longest mean prompt are
compared; a tie between two workloads is reported as a note, never broken silently. Every
computation sorts its input first and draws nothing at random, so the same records give the
same table in any row order.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from llmenergy import records, stats
from llmenergy.records import BASELINE, decode_tokens

Z95 = 1.96
GROUP = ["model", "energy_source"]

SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "energy_source": pl.String(),
    "short_workload": pl.String(),
    "long_workload": pl.String(),
    "prompt_tokens_short": pl.Float64(),
    "prompt_tokens_long": pl.Float64(),
    "decode_j_per_token_short": pl.Float64(),
    "decode_j_per_token_long": pl.Float64(),
    "amplification_pct": pl.Float64(),
    "amplification_pct_lo": pl.Float64(),
    "amplification_pct_hi": pl.Float64(),
    "amplification_above_idle_pct": pl.Float64(),
    "paired_pct": pl.Float64(),
    "paired_pct_lo": pl.Float64(),
    "paired_pct_hi": pl.Float64(),
    "paired_tasks": pl.Int64(),
    "same_positions": pl.Int64(),
    "same_positions_basis": pl.String(),
    "same_positions_tasks": pl.Int64(),
    "same_positions_pct": pl.Float64(),
    "same_positions_pct_lo": pl.Float64(),
    "same_positions_pct_hi": pl.Float64(),
    "slope_j_per_prompt_token": pl.Float64(),
    "slope_j_per_prompt_token_lo": pl.Float64(),
    "slope_j_per_prompt_token_hi": pl.Float64(),
    "intercept_j": pl.Float64(),
    "points": pl.Int64(),
    "note": pl.String(),
}


@dataclass(frozen=True)
class Pair:
    short: str | None
    long: str | None
    note: str = ""


def pick_pair(prompt_means: dict[str, float], named: dict[str, str] | None) -> Pair:
    """The (short, long) workloads to compare: the named pair, else the shortest and the
    longest mean prompt. A named workload without data, or a tie at either end, is a note."""
    if named:
        missing = [w for w in (named["short"], named["long"]) if w not in prompt_means]
        if missing:
            return Pair(None, None, f"no unsuppressed run of {', '.join(missing)}")
        return Pair(named["short"], named["long"])
    if len(prompt_means) < 2:
        return Pair(None, None, "needs two workloads")
    ordered = sorted(prompt_means.items(), key=lambda item: (item[1], item[0]))
    for end, (name, mean) in (("shortest", ordered[0]), ("longest", ordered[-1])):
        tied = sorted(w for w, m in prompt_means.items() if m == mean and w != name)
        if tied:
            return Pair(
                None,
                None,
                f"{name} and {', '.join(tied)} tie for the {end} prompts: name the pair in "
                "analysis.amplification",
            )
    return Pair(ordered[0][0], ordered[-1][0])


def decode_costs(tasks: pl.DataFrame) -> pl.DataFrame:
    """The unsuppressed tasks that decoded a token with measured decode energy, each with its
    decode energy per decoded token (`jpt`)."""
    return tasks.filter(
        (pl.col("strategy") == BASELINE)
        & (decode_tokens() > 0)
        & pl.col("decode_energy_j").is_not_null()
    ).with_columns(jpt=pl.col("decode_energy_j") / decode_tokens())


def _matrices(
    rows: pl.DataFrame, numerator: pl.Expr, denominator: pl.Expr
) -> tuple[np.ndarray, np.ndarray]:
    """One workload's numerators and denominators as tasks x reps matrices: task_id rows and
    rep columns, each in sorted order whatever the rows' order; NaN where no row is."""
    if rows.is_empty():
        return np.empty((0, 1)), np.empty((0, 1))
    cells = rows.select(
        task=pl.col("task_id").rank("dense") - 1,
        rep=pl.col("rep").rank("dense") - 1,
        num=numerator.cast(pl.Float64),
        den=denominator.cast(pl.Float64),
    )
    at = cells["task"].to_numpy(), cells["rep"].to_numpy()
    shape = (int(at[0].max()) + 1, int(at[1].max()) + 1)
    num, den = np.full(shape, np.nan), np.full(shape, np.nan)
    num[at], den[at] = cells["num"].to_numpy(), cells["den"].to_numpy()
    return num, den


def _decode_sides(tasks: pl.DataFrame, pair: Pair) -> tuple[tuple, tuple]:
    def side(workload: str) -> tuple[np.ndarray, np.ndarray]:
        rows = tasks.filter(pl.col("workload") == workload)
        return _matrices(rows, pl.col("decode_energy_j"), decode_tokens())

    return side(pair.short), side(pair.long)  # type: ignore[arg-type]


def _above_idle_change(tasks: pl.DataFrame, pair: Pair) -> float | None:
    """The amplification on decode energy above idle (a point, beside the gross figure the
    claims are judged on); None where a side has no idle power (the estimate has none)."""

    if "decode_above_idle_j" not in tasks.columns:
        return None

    def per_token(workload: str) -> float | None:
        rows = tasks.filter(
            (pl.col("workload") == workload) & pl.col("decode_above_idle_j").is_not_null()
        )
        tokens = float(rows.select(decode_tokens().sum()).item()) if rows.height else 0.0
        return float(rows["decode_above_idle_j"].sum()) / tokens if tokens else None

    short, long = per_token(pair.short), per_token(pair.long)  # type: ignore[arg-type]
    return stats.percent_change(short, long)


def _paired_in_time(group: pl.DataFrame, pair: Pair) -> tuple[stats.Interval, int]:
    """The amplification paired in time, and how many long tasks it rests on. On each device
    and repetition, in the order the tasks began (`started_s`), each long task is set against
    the nearest short task before it and after it: its decode J/token over theirs (their
    energy over their tokens). A task's repetitions' log ratios are averaged. A long task
    without a short one on either side is left out: the two workloads were decoded in
    separate jobs, or the records kept no start times."""
    if "started_s" not in group.columns:
        return stats.Interval(None, None, None), 0
    rows = group.filter(
        pl.col("workload").is_in([pair.short, pair.long]) & pl.col("started_s").is_not_null()
    ).sort("metered_device", "rep", "started_s", "task_id", nulls_last=True)
    logs: dict[str, list[float]] = {}
    for _, run in rows.group_by("metered_device", "rep", maintain_order=True):
        is_long = (run["workload"] == pair.long).to_list()
        energy = run["decode_energy_j"].to_list()
        tokens = run.select(decode_tokens())[:, 0].to_list()
        shorts = [i for i, long in enumerate(is_long) if not long]
        for k in (i for i, long in enumerate(is_long) if long):
            after = bisect.bisect(shorts, k)  # the first short task after k
            if after == 0 or after == len(shorts):
                continue
            near = shorts[after - 1], shorts[after]
            beside = sum(energy[i] for i in near) / sum(tokens[i] for i in near)
            logs.setdefault(run["task_id"][k], []).append(math.log(energy[k] / tokens[k] / beside))
    per_task = [float(np.mean(logs[task])) for task in sorted(logs)]
    return stats.geometric_change_interval(per_task), len(per_task)


def _same_position_sides(
    tokens: pl.DataFrame, pair: Pair, positions: int
) -> tuple[str | None, int, tuple | None]:
    """Per task and repetition, the cost of decode positions 1..N ((energy or seconds), N),
    for those that decoded that far; energy when every one of those tokens has it, else time."""
    window = tokens.filter(pl.col("position").is_between(1, positions))
    per_task = window.group_by("workload", "task_id", "rep").agg(
        count=pl.len(),
        energy=pl.col("energy_j").sum(),
        energy_known=pl.col("energy_j").is_not_null().all(),
        seconds=(pl.col("t_s") - pl.col("previous_t_s")).sum(),
    )
    per_task = per_task.filter(pl.col("count") == positions).sort("workload", "task_id", "rep")
    if per_task.is_empty():
        return None, 0, None
    basis = "energy" if per_task["energy_known"].all() else "time"
    column = "energy" if basis == "energy" else "seconds"

    def side(workload: str) -> tuple[np.ndarray, np.ndarray]:
        rows = per_task.filter(pl.col("workload") == workload)
        return _matrices(rows, pl.col(column), pl.lit(positions))

    return basis, per_task.height, (side(pair.short), side(pair.long))  # type: ignore[arg-type]


def table(
    tasks: pl.DataFrame,
    tokens: pl.DataFrame | None,
    named: dict[str, str] | None = None,
    positions: int = 16,
) -> pl.DataFrame:
    """The amplification table from per-task rows (aggregate.per_task, collected) and
    per-token rows with the run keys (model, workload, strategy, rep, task_id, position, t_s,
    energy_j)."""
    base = decode_costs(tasks).sort([*GROUP, "workload", "task_id", "rep"])
    if tokens is not None:
        tokens = (
            tokens.filter(pl.col("strategy") == BASELINE)
            .sort("model", "workload", "rep", "task_id", "position")
            .with_columns(
                previous_t_s=pl.col("t_s").shift(1).over("model", "workload", "rep", "task_id")
            )
        )
    rows = []
    for (model, source), group in base.group_by(GROUP, maintain_order=True):
        means = dict(group.group_by("workload").agg(pl.col("prompt_tokens").mean()).iter_rows())
        pair = pick_pair(means, named)
        row: dict = dict.fromkeys(SCHEMA) | {"model": model, "energy_source": source}
        row["note"] = pair.note or None
        fit = stats.linear_fit(group["prompt_tokens"].to_numpy(), group["jpt"].to_numpy())
        if fit is not None:
            row.update(
                slope_j_per_prompt_token=fit.slope, intercept_j=fit.intercept, points=fit.points
            )
            if fit.slope_se is not None:
                row.update(
                    slope_j_per_prompt_token_lo=fit.slope - Z95 * fit.slope_se,
                    slope_j_per_prompt_token_hi=fit.slope + Z95 * fit.slope_se,
                )
        if pair.short is not None and pair.long is not None:
            short, long = _decode_sides(group, pair)
            change = stats.percent_change_interval(short, long)
            row.update(
                short_workload=pair.short,
                long_workload=pair.long,
                prompt_tokens_short=means[pair.short],
                prompt_tokens_long=means[pair.long],
                decode_j_per_token_short=float(np.nansum(short[0]) / np.nansum(short[1])),
                decode_j_per_token_long=float(np.nansum(long[0]) / np.nansum(long[1])),
                amplification_pct=change.mean,
                amplification_pct_lo=change.low,
                amplification_pct_hi=change.high,
                amplification_above_idle_pct=_above_idle_change(group, pair),
            )
            paired, paired_tasks = _paired_in_time(group, pair)
            row.update(
                paired_pct=paired.mean,
                paired_pct_lo=paired.low,
                paired_pct_hi=paired.high,
                paired_tasks=paired_tasks,
            )
            if tokens is not None:
                mine = tokens.filter(pl.col("model") == model)
                basis, count, sides = _same_position_sides(mine, pair, positions)
                if sides is not None:
                    same = stats.percent_change_interval(*sides)
                    row.update(
                        same_positions=positions,
                        same_positions_basis=basis,
                        same_positions_tasks=count,
                        same_positions_pct=same.mean,
                        same_positions_pct_lo=same.low,
                        same_positions_pct_hi=same.high,
                    )
        rows.append(row)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def token_rows(paths: Sequence[str], runs: Sequence[dict]) -> pl.DataFrame:
    """Per-token rows of every run, each with its run's keys (the files hold only the task),
    each file held to the token record's columns (records.conform)."""
    frames = [
        records.conform(pl.scan_parquet(path), path, records.TOKEN_SCHEMA)
        .collect()
        .with_columns(
            model=pl.lit(run["model"]),
            workload=pl.lit(run["workload"]),
            strategy=pl.lit(run["strategy"]),
            rep=pl.lit(int(run["rep"]), pl.Int64),
        )
        for path, run in zip(paths, runs, strict=True)
    ]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()

"""Statistics of the report: bootstrap confidence intervals and the prefill amplification fit.

Intervals of one group's statistics are percentile bootstraps over tasks; with several
repetitions, a two-stage bootstrap resamples tasks and then repetitions within each task. One
set of resampling indices serves every statistic of a group, so its intervals are consistent
with each other. A change between two groups of different tasks (the amplification) is a
Welch t interval instead (percent_change_interval): one side may have only a few tasks. So
is a paired product of ratios of sums, a strategy against its baseline over the same tasks
(ratio_product_interval): twelve tasks of unequal length are too few for a percentile
bootstrap. Ratios paired in time (the amplification's long tasks, each against the short
tasks decoded beside it) get a one-sample t interval on their logs (geometric_change_interval).
Whether two runs agree within their intervals is their normalized error (normalized_error).
What varies between runs beyond those intervals (the machine's state) is a figure's standard
deviation over repeated runs (between_run_sd), which widens a run's interval (widened).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float | None
    low: float | None
    high: float | None


def _quantiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Resampling:
    """Bootstrap draws: tasks (resamples x tasks) and, with reps > 1, repetitions within each
    drawn task (resamples x tasks x reps). With one repetition, `weights` counts how often
    each task was drawn (resamples x tasks), so a statistic of every draw is one product."""

    task_idx: np.ndarray
    rep_idx: np.ndarray | None
    weights: np.ndarray | None


def resample_indices(
    tasks: int, reps: int, resamples: int, seed: int | np.random.SeedSequence
) -> Resampling:
    rng = np.random.default_rng(seed)
    task_idx = rng.integers(0, tasks, size=(resamples, tasks))
    if reps > 1:
        rep_idx = rng.integers(0, reps, size=(resamples, tasks, reps))
        return Resampling(task_idx, rep_idx, None)
    offsets = (np.arange(resamples) * tasks)[:, None]
    counts = np.bincount((task_idx + offsets).ravel(), minlength=resamples * tasks)
    return Resampling(task_idx, None, counts.reshape(resamples, tasks).astype(float))


def _draw(matrix: np.ndarray, indices: Resampling) -> np.ndarray:
    """The resampled values of a tasks x reps matrix, flattened per resample."""
    task_idx, rep_idx = indices.task_idx, indices.rep_idx
    draws = matrix[task_idx, 0] if rep_idx is None else matrix[task_idx[..., None], rep_idx]
    return draws.reshape(draws.shape[0], -1)


def _weighted_sums(matrix: np.ndarray, indices: Resampling) -> tuple[np.ndarray, np.ndarray]:
    """Per resample: the sum of the values drawn and how many were not NaN."""
    if indices.weights is not None:
        column = matrix[:, 0]
        present = ~np.isnan(column)
        return indices.weights @ np.where(present, column, 0.0), indices.weights @ present
    draws = _draw(matrix, indices)
    present = ~np.isnan(draws)
    return np.where(present, draws, 0.0).sum(axis=1), present.sum(axis=1)


def bootstrap_mean(
    values: np.ndarray,
    indices: Resampling,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Mean of a tasks x reps matrix (NaN: not measured) and its bootstrap interval."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.size == 0 or np.isnan(values).all():
        return Interval(None, None, None)
    sums, counts = _weighted_sums(values, indices)
    means = sums[counts > 0] / counts[counts > 0]
    mean = float(np.nanmean(values))
    if means.size == 0:
        return Interval(mean, None, None)
    low, high = _quantiles(means, level)
    return Interval(mean, low, high)


def _pairs(numerator: np.ndarray, denominator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tasks x reps numerators and denominators with every pair where either is NaN set to
    zero on both sides, so that sums leave it out."""
    num, den = (np.asarray(m, dtype=float) for m in (numerator, denominator))
    if num.ndim == 1:
        num, den = num[:, None], den[:, None]
    keep = ~(np.isnan(num) | np.isnan(den))
    return np.where(keep, num, 0.0), np.where(keep, den, 0.0)


def _ratio_draws(num: np.ndarray, den: np.ndarray, indices: Resampling) -> np.ndarray:
    """sum(num) / sum(den) of every draw (NaN where a draw's denominator sums to zero)."""
    n_sum, _ = _weighted_sums(num, indices)
    d_sum, _ = _weighted_sums(den, indices)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d_sum != 0, n_sum / d_sum, np.nan)


def bootstrap_ratio(
    numerator: np.ndarray,
    denominator: np.ndarray,
    indices: Resampling,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """sum(numerator) / sum(denominator) over tasks x reps, with its bootstrap interval
    (pairs where either is NaN are left out)."""
    num, den = _pairs(numerator, denominator)
    if den.sum() == 0:
        return Interval(None, None, None)
    ratios = _ratio_draws(num, den, indices)
    ratios = ratios[~np.isnan(ratios)]
    point = float(num.sum() / den.sum())
    if ratios.size == 0:
        return Interval(point, None, None)
    low, high = _quantiles(ratios, level)
    return Interval(point, low, high)


def t_quantile(probability: float, df: float) -> float:
    """Student's t quantile at `probability` for `df` >= 1 degrees of freedom (Welch's are
    fractional): its density integrated numerically and inverted by bisection, since numpy
    has no t distribution."""
    if not 0.0 < probability < 1.0 or not df >= 1.0:
        raise ValueError(f"t_quantile: needs 0 < probability < 1 and df >= 1: {probability}, {df}")
    target = abs(probability - 0.5)
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def mass(t: float) -> float:  # P(0 < T < t)
        x = np.linspace(0.0, t, 4001)
        return float(np.trapezoid(np.exp(log_scale - (df + 1) / 2 * np.log1p(x * x / df)), x))

    low, high = 0.0, 1.0
    while mass(high) < target:
        low, high = high, 2 * high
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if mass(middle) < target else (low, middle)
    return math.copysign((low + high) / 2, probability - 0.5)


@dataclass(frozen=True)
class LogRatio:
    """A group's R = sum(numerator) / sum(denominator), the variance of log R and the number
    of tasks it rests on."""

    ratio: float
    variance: float
    tasks: int


def log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> LogRatio | None:
    """R over a tasks x reps matrix pair (pairs where either is NaN left out) and the variance
    of log R, linearized over tasks: each task's repetitions are summed first (they share its
    level, so they are one observation of it), and the residuals y_i - R x_i of the task sums
    give var(R) = sum(residual^2) / (n (n - 1) mean(x)^2). None where R is not positive."""
    num, den = _pairs(numerator, denominator)
    y, x = num.sum(axis=1), den.sum(axis=1)
    y, x = y[x != 0], x[x != 0]
    if x.size == 0 or y.sum() <= 0 or x.sum() <= 0:
        return None
    ratio = float(y.sum() / x.sum())
    if x.size < 2:
        return LogRatio(ratio, math.nan, int(x.size))
    residuals = (y - ratio * x) / x.mean()
    variance = float(residuals @ residuals / (x.size * (x.size - 1))) / ratio**2
    return LogRatio(ratio, variance, int(x.size))


def _percent_ends(point: float, centre: float, half: float) -> Interval:
    """A percentage change and its interval, from an interval centre +- half on the log."""
    return Interval(point, 100.0 * math.expm1(centre - half), 100.0 * math.expm1(centre + half))


def percent_change_interval(
    base: tuple[np.ndarray, np.ndarray],
    other: tuple[np.ndarray, np.ndarray],
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """100 x (R_other / R_base - 1) for two groups of different tasks (log_ratio of each),
    with a Welch t interval on log(R_other / R_base): the two variances added, the degrees of
    freedom Welch-Satterthwaite's, the ends taken back to a percentage. Not a bootstrap: with
    the four long tasks of the default amplification, a percentile bootstrap's interval is
    too narrow (it treats four tasks as the whole population and its quantiles ignore how
    few they are; tests/test_stats.py measures its coverage beside this one's). No interval
    where a group has fewer than two tasks."""
    sides = log_ratio(*base), log_ratio(*other)
    if sides[0] is None or sides[1] is None:
        return Interval(None, None, None)
    point = 100.0 * (sides[1].ratio / sides[0].ratio - 1.0)
    if any(side.tasks < 2 for side in sides):
        return Interval(point, None, None)
    variance = sum(side.variance for side in sides)
    if variance == 0:
        return Interval(point, point, point)
    df = variance**2 / sum(side.variance**2 / (side.tasks - 1) for side in sides)
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(variance)
    centre = math.log(sides[1].ratio / sides[0].ratio)
    return _percent_ends(point, centre, half)


def geometric_change_interval(
    log_ratios: Sequence[float] | np.ndarray, level: float = DEFAULT_LEVEL
) -> Interval:
    """100 x (the geometric mean of paired ratios - 1), from each pair's log ratio, with a
    one-sample t interval on their mean (n - 1 degrees of freedom) taken back to a
    percentage. No interval with fewer than two pairs."""
    logs = np.asarray(log_ratios, dtype=float)
    if logs.size == 0:
        return Interval(None, None, None)
    centre = float(logs.mean())
    point = 100.0 * math.expm1(centre)
    if logs.size < 2:
        return Interval(point, None, None)
    half = (
        t_quantile(0.5 + level / 2, logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    )
    return _percent_ends(point, centre, half)


@dataclass(frozen=True)
class Fit:
    """Least-squares line y = intercept + slope x, with the slope's standard error."""

    slope: float
    intercept: float
    slope_se: float | None
    points: int


def linear_fit(x: np.ndarray, y: np.ndarray) -> Fit | None:
    """Ordinary least squares of y on x (None with fewer than two distinct x)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    se = None
    if x.size > 2:
        residuals = y - (intercept + slope * x)
        se = float(np.sqrt(residuals @ residuals / (x.size - 2) / ((x - x.mean()) ** 2).sum()))
    return Fit(float(slope), float(intercept), se, int(x.size))


def percent_change(low: float | None, high: float | None) -> float | None:
    """100 x (high - low) / low, as the study reports the amplification."""
    if low is None or high is None or low == 0:
        return None
    return 100.0 * (high - low) / low


def normalized_error(first: Interval, second: Interval) -> float | None:
    """E_n, the normalized error of two measurements of one quantity (ISO 13528's
    interlaboratory check): |x1 - x2| / sqrt(U1^2 + U2^2), each U the distance from a value to
    its interval's end on the side facing the other value (so a skewed interval counts the
    side that matters). Two runs agree within their intervals where E_n <= 1: with honest 95%
    intervals that holds about 95% of the time, where each value lying inside the other's
    interval holds only about 83% of the time even then (their difference varies by both).
    None where either lacks a value or an interval; inf where both intervals are points and
    the values differ."""
    ends = (first.mean, first.low, first.high, second.mean, second.low, second.high)
    if any(end is None for end in ends):
        return None
    x1, low1, high1, x2, low2, high2 = (float(end) for end in ends)  # type: ignore[arg-type]
    if x1 == x2:
        return 0.0
    up = x2 > x1
    u1 = high1 - x1 if up else x1 - low1
    u2 = x2 - low2 if up else high2 - x2
    combined = math.hypot(u1, u2)
    return abs(x2 - x1) / combined if combined > 0 else math.inf


def between_run_sd(values: Sequence[float | None]) -> float | None:
    """The standard deviation of a figure's value over repeated runs of one configuration on
    one machine: ISO 5725's reproducibility sd s_R, which holds both each run's own sampling
    error over its tasks and what the machine's state adds between runs (runs without a value
    left out). None with fewer than two values."""
    known = [float(value) for value in values if value is not None and math.isfinite(value)]
    if len(known) < 2:
        return None
    return float(np.std(known, ddof=1))


def widened(interval: Interval, sd: float, runs: int, level: float = DEFAULT_LEVEL) -> Interval:
    """A run's interval for the machine's long-run mean of a figure, given the figure's sd over
    `runs` earlier runs (between_run_sd): each side at least t sd from the value, t Student's
    quantile on runs - 1 degrees of freedom, since (x - mean) / s_R is Student's t for a new
    run x alike to those (tests/test_between_runs.py measures its coverage). A side of the run's
    own interval that is wider stays (a run noisier than those). The value stays; an interval
    without ends stays without."""
    if runs < 2:
        raise ValueError(f"widened: an sd over runs needs at least 2 runs, got {runs}")
    ends = (interval.mean, interval.low, interval.high)
    if any(end is None or not math.isfinite(end) for end in ends) or sd <= 0:
        return interval
    mean, low, high = (float(end) for end in ends)  # type: ignore[arg-type]
    reach = t_quantile(0.5 + level / 2, runs - 1) * sd
    return Interval(mean, min(low, mean - reach), max(high, mean + reach))


def column_intervals(
    columns: np.ndarray, ratios: list[tuple[int, int | None]], indices: Resampling, level: float
) -> list[Interval]:
    """Intervals of many statistics of one group at once (one repetition per task): `columns`
    is tasks x k (NaN: not measured); each (i, None) in `ratios` asks for the mean of column
    i, each (i, j) for sum(column i) / sum(column j) over tasks where both are present."""
    assert indices.weights is not None, "several repetitions: use bootstrap_mean/ratio"
    present = ~np.isnan(columns)
    filled = np.where(present, columns, 0.0)
    out = []
    for i, j in ratios:
        if j is None:
            keep = present[:, i]
            num, den = filled[:, i], keep.astype(float)
        else:
            keep = present[:, i] & present[:, j]
            num, den = np.where(keep, filled[:, i], 0.0), np.where(keep, filled[:, j], 0.0)
        if not keep.any() or den.sum() == 0:
            out.append(Interval(None, None, None))
            continue
        both = indices.weights @ np.stack([num, den], axis=1)  # one product for every draw
        valid = both[:, 1] != 0
        point = float(num.sum() / den.sum())
        if not valid.any():
            out.append(Interval(point, None, None))
            continue
        low, high = _quantiles(both[valid, 0] / both[valid, 1], level)
        out.append(Interval(point, low, high))
    return out


# A ratio of two columns' sums in a product of ratios: numerator column, denominator column,
# and its power (1: multiplies, -1: divides).
RatioTerm = tuple[int, int, int]


def ratio_product_interval(
    columns: np.ndarray, terms: Sequence[RatioTerm], level: float = DEFAULT_LEVEL
) -> Interval:
    """Q = the product of (sum of numerator / sum of denominator) ** power over `terms`, from
    a tasks x k table of task sums (complete rows only; a task's repetitions summed first),
    with a t interval on log Q. Its variance is linearized over tasks: task i moves log Q by
    u_i = sum of power (num_i - R den_i) / (R mean(den)), var = sum(u^2) / (n (n - 1)). Its
    degrees of freedom are Satterthwaite's for tasks whose spread grows with their weight,
    w_i^2 = sum of (den_i / mean(den))^2, df = (sum w^2)^2 / sum w^4 (n when all weigh
    alike): where two 256-token tasks among twelve of 23-106 carry most of a sum, a t on
    n - 1 covered a planted change in 91-93% of data sets of that shape, this one in 97-98%
    (tests/test_savings.py). No interval with fewer than two tasks, or where a ratio is not
    positive."""
    table = np.asarray(columns, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return Interval(None, None, None)
    sums = table.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = [sums[num] / sums[den] for num, den, _ in terms]
        point = float(np.prod([r**power for r, (_, _, power) in zip(ratios, terms, strict=True)]))
    if not math.isfinite(point):
        return Interval(None, None, None)
    tasks = table.shape[0]
    if tasks < 2 or any(not ratio > 0 for ratio in ratios):
        return Interval(point, None, None)
    influence = np.zeros(tasks)
    weights = np.zeros(tasks)
    for ratio, (num, den, power) in zip(ratios, terms, strict=True):
        mean_den = table[:, den].mean()
        influence += power * (table[:, num] - ratio * table[:, den]) / (ratio * mean_den)
        weights += (table[:, den] / mean_den) ** 2
    variance = float(influence @ influence) / (tasks * (tasks - 1))
    if variance == 0:
        return Interval(point, point, point)
    df = max(1.0, weights.sum() ** 2 / float(weights @ weights))
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(variance)
    return Interval(point, point * math.exp(-half), point * math.exp(half))

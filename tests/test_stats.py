"""Statistics on data with known answers: interval coverage, planted slopes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmenergy import stats


def test_bootstrap_interval_covers_true_mean_about_95_percent():
    rng = np.random.default_rng(7)
    true_mean, draws, covered = 5.0, 300, 0
    for seed in range(draws):
        sample = rng.gamma(shape=4.0, scale=true_mean / 4.0, size=60)  # skewed, like energy
        interval = stats.bootstrap_mean(sample, stats.resample_indices(60, 1, 1000, seed))
        covered += interval.low <= true_mean <= interval.high
    assert 0.91 <= covered / draws <= 0.98


def test_two_stage_bootstrap_with_repetitions():
    rng = np.random.default_rng(3)
    task_means = rng.normal(10.0, 2.0, size=40)
    values = task_means[:, None] + rng.normal(0, 0.5, size=(40, 3))  # 3 repetitions per task
    one = stats.bootstrap_mean(values, stats.resample_indices(40, 3, 2000, 0))
    assert one.mean == pytest.approx(values.mean())
    assert one.low < one.mean < one.high
    # The interval reflects the spread between tasks (sd 2 / sqrt 40 ~ 0.32).
    assert 0.8 < one.high - one.low < 2.0


def test_nan_values_are_left_out_not_zero():
    values = np.array([1.0, 3.0, np.nan, np.nan])
    interval = stats.bootstrap_mean(values, stats.resample_indices(4, 1, 500, 0))
    assert interval.mean == pytest.approx(2.0)
    assert (
        stats.bootstrap_mean(np.full(3, np.nan), stats.resample_indices(3, 1, 10, 0)).mean is None
    )


def test_ratio_interval():
    rng = np.random.default_rng(1)
    den = rng.uniform(50, 150, size=80)
    num = 0.25 * den + rng.normal(0, 2, size=80)
    interval = stats.bootstrap_ratio(num, den, stats.resample_indices(80, 1, 1000, 0))
    assert interval.mean == pytest.approx(num.sum() / den.sum())
    assert interval.low < 0.25 < interval.high


def test_regression_recovers_a_planted_slope():
    rng = np.random.default_rng(11)
    prompt = rng.uniform(100, 5000, size=200)
    jpt = 4.0 + 6e-4 * prompt + rng.normal(0, 0.05, size=200)  # J/token grows with prompt
    fit = stats.linear_fit(prompt, jpt)
    assert fit is not None and fit.points == 200
    assert fit.slope == pytest.approx(6e-4, rel=0.03)
    assert fit.intercept == pytest.approx(4.0, abs=0.05)
    assert abs(fit.slope - 6e-4) < 3 * fit.slope_se
    assert stats.linear_fit([1.0, 1.0], [2.0, 3.0]) is None  # no spread in x
    assert stats.percent_change(4.0, 5.0) == pytest.approx(25.0)
    assert stats.percent_change(None, 5.0) is None


def test_matrix_product_path_equals_direct_bootstrap():
    rng = np.random.default_rng(5)
    a = rng.normal(3, 1, 50)
    b = rng.uniform(1, 2, 50)
    a[[3, 9]] = np.nan
    indices = stats.resample_indices(50, 1, 800, 2)
    fast = stats.column_intervals(np.stack([a, b], axis=1), [(0, None), (0, 1)], indices, 0.95)
    slow = [stats.bootstrap_mean(a, indices), stats.bootstrap_ratio(a, b, indices)]
    for got, want in zip(fast, slow, strict=True):
        assert got.mean == pytest.approx(want.mean)
        assert got.low == pytest.approx(want.low) and got.high == pytest.approx(want.high)


@pytest.mark.parametrize(
    ("df", "quantile"),
    # Student's t at 97.5%, from any printed table.
    [(1, 12.7062), (3, 3.1824), (10, 2.2281), (30, 2.0423), (1e6, 1.9600)],
)
def test_t_quantile_matches_the_table(df, quantile):
    assert stats.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-quantile, abs=1e-4)


# The default amplification pair's decoded tokens: 12 HumanEval tasks, 4 long CU tasks.
SHORT_TOKENS = np.array([90, 255, 67, 105, 99, 255, 82, 47, 64, 96, 123, 53], dtype=float)
LONG_TOKENS = np.array([49, 299, 299, 299], dtype=float)


def _two_groups(rng: np.random.Generator, change: float) -> tuple[tuple, tuple]:
    """Decode energies of the two groups: J/token 0.060 on the short side, (1 + change) times
    that on the long, each task's times a lognormal factor of log-sd 0.035 (the spread of
    per-task J/token on the machine) and, one task in seven, a slow spell of +8 to +20%, drawn
    alike on both sides, so the true change of the ratio of expected sums is `change`."""

    def side(j_per_token: float, tokens: np.ndarray) -> tuple:
        factor = np.exp(rng.normal(0, 0.035, tokens.size))
        factor *= 1 + (rng.random(tokens.size) < 1 / 7) * rng.uniform(0.08, 0.2, tokens.size)
        return (j_per_token * factor * tokens)[:, None], tokens[:, None]

    return side(0.060, SHORT_TOKENS), side(0.060 * (1 + change), LONG_TOKENS)


def _percentile_bootstrap(base: tuple, other: tuple, seed: int) -> tuple[float, float]:
    """The interval this module gave the amplification before: each group's tasks resampled
    apart, the percentile interval of the change."""
    streams = np.random.SeedSequence(seed).spawn(2)
    draws = []
    for (num, den), stream in zip((base, other), streams, strict=True):
        weights = stats.resample_indices(num.shape[0], 1, 1000, stream).weights
        draws.append((weights @ num[:, 0]) / (weights @ den[:, 0]))
    return tuple(np.quantile(100 * (draws[1] / draws[0] - 1), [0.025, 0.975]))


def test_the_change_interval_covers_a_planted_10_percent_with_four_long_tasks():
    """Over 400 data sets shaped like the default pair (12 and 4 tasks) with a planted +10%,
    the Welch t interval covers it in at least 92% (95% when written); the percentile
    bootstrap in 86%, too few for a 95% interval, and that is why it was replaced."""
    rng = np.random.default_rng(11)
    welch = bootstrap = 0
    for data_set in range(400):
        base, other = _two_groups(rng, 0.10)
        interval = stats.percent_change_interval(base, other)
        welch += interval.low <= 10.0 <= interval.high
        low, high = _percentile_bootstrap(base, other, data_set)
        bootstrap += low <= 10.0 <= high
    assert welch / 400 >= 0.92
    assert bootstrap / 400 <= welch / 400 - 0.03


def test_the_change_interval_at_its_boundaries():
    rng = np.random.default_rng(3)
    # No change planted: the interval spans zero.
    base, other = _two_groups(rng, 0.0)
    none_planted = stats.percent_change_interval(base, other)
    assert none_planted.low < 0.0 < none_planted.high
    # The same J/token in every task: no spread, the interval is the point, 1.2 / 1.0 - 1.
    flat = (SHORT_TOKENS[:, None], SHORT_TOKENS[:, None])
    exact = stats.percent_change_interval(flat, (1.2 * LONG_TOKENS[:, None], LONG_TOKENS[:, None]))
    assert exact.mean == exact.low == exact.high == pytest.approx(20.0)
    # One task on a side: a value, and no interval.
    one = stats.percent_change_interval(base, (other[0][:1], other[1][:1]))
    assert one.mean is not None and one.low is None and one.high is None
    # Nothing decoded on a side: nothing.
    empty = stats.percent_change_interval(base, (np.zeros((4, 1)), np.zeros((4, 1))))
    assert empty == stats.Interval(None, None, None)


def test_a_tasks_repetitions_count_once_in_the_change_interval():
    """A second repetition that copies the first adds no certainty: the interval rests on
    the tasks, not on rows."""
    base, other = _two_groups(np.random.default_rng(5), 0.10)
    twice = tuple(np.hstack([m, m]) for m in other)
    once = stats.percent_change_interval(base, other)
    again = stats.percent_change_interval(base, twice)
    assert (again.mean, again.low, again.high) == pytest.approx((once.mean, once.low, once.high))


def test_a_product_of_ratios_interval_on_tasks_that_weigh_alike_is_a_t_on_n_minus_one():
    """Equal denominators: df = n (weights alike), the variance linearized by hand."""
    rng = np.random.default_rng(4)
    num = 0.7 * np.exp(rng.normal(0, 0.05, 12)) * 100
    den = np.full(12, 100.0)
    interval = stats.ratio_product_interval(np.column_stack([num, den]), [(0, 1, 1)])
    ratio = num.sum() / den.sum()
    residuals = (num - ratio * den) / (ratio * 100.0)
    half = stats.t_quantile(0.975, 12) * np.sqrt(residuals @ residuals / (12 * 11))
    assert interval.mean == pytest.approx(ratio)
    assert (interval.low, interval.high) == pytest.approx(
        (ratio * np.exp(-half), ratio * np.exp(half))
    )


def test_a_product_of_ratios_interval_at_its_boundaries():
    tokens = np.array([91, 256, 68, 106], dtype=float)
    # No change planted, a spread: the interval of Q spans 1.
    rng = np.random.default_rng(8)
    noisy = np.column_stack(
        [
            tokens * np.exp(rng.normal(0, 0.05, 4)),
            tokens,
            tokens * np.exp(rng.normal(0, 0.05, 4)),
            tokens,
        ]
    )
    spans = stats.ratio_product_interval(noisy, [(0, 1, 1), (2, 3, -1)])
    assert spans.low < 1.0 < spans.high
    # The same J/token in every task: no spread, the interval is the point, 1.2 / 1.0.
    flat = np.column_stack([1.2 * tokens, tokens, tokens, tokens])
    exact = stats.ratio_product_interval(flat, [(0, 1, 1), (2, 3, -1)])
    assert (exact.mean, exact.low, exact.high) == pytest.approx((1.2, 1.2, 1.2), abs=1e-12)
    # One task: a value, and no interval.
    one = stats.ratio_product_interval(flat[:1], [(0, 1, 1), (2, 3, -1)])
    assert one.mean == pytest.approx(1.2) and one.low is None and one.high is None
    # Nothing in a denominator, or a ratio that is not positive: no interval on the log.
    assert stats.ratio_product_interval(np.zeros((4, 2)), [(0, 1, 1)]).mean is None
    negative = np.column_stack([-tokens, tokens])
    assert stats.ratio_product_interval(negative, [(0, 1, 1)]) == stats.Interval(-1.0, None, None)
    assert stats.ratio_product_interval(np.zeros((0, 2)), [(0, 1, 1)]).mean is None


def test_two_runs_agree_within_their_intervals_up_to_a_normalized_error_of_one():
    interval = stats.Interval
    # Uncertainties add in quadrature: 5 apart, 3 and 4 of interval facing each other.
    assert stats.normalized_error(interval(10, 7, 13), interval(15, 11, 19)) == 1.0
    beyond = stats.normalized_error(interval(10, 7, 13), interval(15.5, 11.5, 19.5))
    assert beyond == pytest.approx(1.1)
    # Each value just outside the other's interval, yet the two agree within their intervals.
    both_outside = interval(10, 8, 12), interval(12.5, 10.5, 14.5)
    assert stats.normalized_error(*both_outside) == pytest.approx(2.5 / math.hypot(2, 2))
    # A skewed interval counts its side facing the other value, in either order.
    skewed = interval(10, 9, 20), interval(14, 11, 30)
    assert stats.normalized_error(*skewed) == pytest.approx(4 / math.hypot(10, 3))
    assert stats.normalized_error(*reversed(skewed)) == stats.normalized_error(*skewed)
    assert stats.normalized_error(interval(3, 1, 5), interval(3, 2, 9)) == 0.0
    assert stats.normalized_error(interval(3, 3, 3), interval(4, 4, 4)) == math.inf
    assert stats.normalized_error(interval(3, None, None), interval(4, 1, 9)) is None
    assert stats.normalized_error(interval(None, None, None), interval(4, 1, 9)) is None


def test_two_runs_of_one_planted_truth_agree_and_a_shift_between_them_does_not():
    """400 pairs of runs shaped like the default amplification pair (12 short and 4 long
    tasks, each window's noise and slow spells drawn anew in every run). With the same truth
    (+10%), the two Welch intervals agree (E_n <= 1) in at least 93% of pairs (96% when
    written), while each value lies inside the other's interval in far fewer (71% when
    written): the test the benchmark of repeated runs applies is the first. A machine 20%
    slower on the long workload in the second run only, which no interval of one run can
    see, is told apart: they agree in at most 35% (24% when written)."""
    rng = np.random.default_rng(17)
    agree = inside = shifted = 0
    for _ in range(400):
        first = stats.percent_change_interval(*_two_groups(rng, 0.10))
        second = stats.percent_change_interval(*_two_groups(rng, 0.10))
        agree += stats.normalized_error(first, second) <= 1
        inside += first.low <= second.mean <= first.high and second.low <= first.mean <= second.high
        slower = stats.percent_change_interval(*_two_groups(rng, 1.10 * 1.20 - 1))
        shifted += stats.normalized_error(first, slower) <= 1
    assert agree / 400 >= 0.93
    assert inside / 400 <= agree / 400 - 0.1
    assert shifted / 400 <= 0.35

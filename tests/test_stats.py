"""Statistics on data with known answers: interval coverage, planted slopes."""

from __future__ import annotations

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

"""The amplification table on planted data, whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from llmenergy import amplification, configuration, generation

PAIR = {"short": "he", "long": "cu-long"}


def planted(
    growth: float = 0.0, lengths: dict[str, int] | None = None, tasks: int = 12, seed: int = 1
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-task and per-token rows of one model: a decode token at position p costs
    base x (1 + growth x p) J, where base is 1.0 on `he` and 1.2 on `cu-long` (20% more),
    times a per-task factor around 1; `he` decodes 50 tokens, `cu-long` 300 (by default).
    A third workload (`cu`) shares `cu-long`'s prompts but answers in 10 tokens."""
    lengths = lengths or {"he": 50, "cu-long": 300, "cu": 10}
    bases = {"he": 1.0, "cu-long": 1.2, "cu": 1.2}
    prompts = {"he": 150, "cu-long": 5000, "cu": 5000}
    rng = np.random.default_rng(seed)
    task_rows, token_rows = [], []
    for workload, decode_tokens in lengths.items():
        for i in range(tasks):
            factor = 1 + rng.normal(0, 0.03)
            energies = [
                bases[workload] * factor * (1 + growth * p) for p in range(1, decode_tokens + 1)
            ]
            task_id = f"{workload}/{i}"
            task_rows.append(
                {
                    "model": "m",
                    "energy_source": "zeus:nvml",
                    "workload": workload,
                    "strategy": "none",
                    "rep": 1,
                    "task_id": task_id,
                    "prompt_tokens": prompts[workload] + i,
                    "output_tokens": decode_tokens + 1,
                    "decode_energy_j": sum(energies),
                }
            )
            token_rows.append(
                {"position": 0, "t_s": 0.1, "energy_j": 5.0, "task_id": task_id}
                | {"workload": workload}
            )
            for p, e in enumerate(energies, start=1):
                token_rows.append(
                    {"position": p, "t_s": 0.1 + 0.02 * p * bases[workload], "energy_j": e}
                    | {"task_id": task_id, "workload": workload}
                )
    tokens = pl.DataFrame(token_rows).with_columns(
        model=pl.lit("m"), strategy=pl.lit("none"), rep=pl.lit(1, pl.Int64)
    )
    return pl.DataFrame(task_rows), tokens


def test_the_named_pair_recovers_the_planted_20_percent():
    tasks, tokens = planted()
    (row,) = amplification.table(tasks, tokens, PAIR, positions=16).iter_rows(named=True)
    assert (row["short_workload"], row["long_workload"]) == ("he", "cu-long")
    assert row["amplification_pct_lo"] < row["amplification_pct"] < row["amplification_pct_hi"]
    assert row["amplification_pct_lo"] <= 20.0 <= row["amplification_pct_hi"]
    assert row["amplification_pct"] == pytest.approx(20.0, abs=3.0)
    assert row["same_positions_basis"] == "energy"
    assert row["same_positions_pct_lo"] <= 20.0 <= row["same_positions_pct_hi"]


def test_same_positions_are_unmoved_by_decode_lengths():
    """With a cost that grows along the decode, the whole-decode figure mixes in the longer
    decode of `cu-long`; over the same 16 positions the answer stays 20%, whatever the lengths."""
    growing, tokens = planted(growth=0.01)
    (row,) = amplification.table(growing, tokens, PAIR, positions=16).iter_rows(named=True)
    assert row["amplification_pct"] > 60.0  # 300 vs 50 decode tokens, each dearer than the last
    assert row["same_positions_pct_lo"] <= 20.0 <= row["same_positions_pct_hi"]
    other_lengths, other_tokens = planted(growth=0.01, lengths={"he": 200, "cu-long": 40})
    (other,) = amplification.table(other_lengths, other_tokens, PAIR, 16).iter_rows(named=True)
    assert other["same_positions_pct"] == pytest.approx(row["same_positions_pct"], abs=0.5)
    assert other["amplification_pct"] < 20.0  # the whole-decode figure moved the other way


def test_time_basis_where_no_token_has_energy():
    tasks, tokens = planted()
    tokens = tokens.with_columns(energy_j=pl.lit(None, pl.Float64))
    (row,) = amplification.table(tasks, tokens, PAIR, positions=16).iter_rows(named=True)
    assert row["same_positions_basis"] == "time"
    assert row["same_positions_pct"] == pytest.approx(20.0, abs=1e-6)  # 0.024 s vs 0.02 s


def test_shuffled_rows_give_the_same_table():
    tasks, tokens = planted()
    first = amplification.table(tasks, tokens, PAIR)
    again = amplification.table(
        tasks.sample(fraction=1.0, shuffle=True, seed=7),
        tokens.sample(fraction=1.0, shuffle=True, seed=8),
        PAIR,
    )
    assert first.equals(again)


def test_a_tie_or_a_missing_workload_is_said_not_picked():
    tasks, tokens = planted()
    # cu and cu-long share their prompts: the longest end is a tie.
    (row,) = amplification.table(tasks, tokens, None).iter_rows(named=True)
    assert row["amplification_pct"] is None
    assert "cu" in row["note"] and "tie" in row["note"] and "analysis.amplification" in row["note"]
    without_long = tasks.filter(pl.col("workload") != "cu-long")
    (row,) = amplification.table(without_long, tokens, PAIR).iter_rows(named=True)
    assert row["amplification_pct"] is None and "cu-long" in row["note"]
    # No tie: shortest and longest by mean prompt.
    two = tasks.filter(pl.col("workload") != "cu")
    (row,) = amplification.table(two, tokens, None).iter_rows(named=True)
    assert (row["short_workload"], row["long_workload"]) == ("he", "cu-long")


def test_the_config_names_an_existing_pair():
    config = {
        "datasets": {},
        "workloads": {},
        "analysis": {"amplification": {"short": "he", "long": "nope"}},
    }
    with pytest.raises(configuration.ConfigError, match=r"analysis\.amplification\.short"):
        configuration.check(config)


def _mean_one(rng: np.random.Generator, sd: float, size: tuple[int, ...]) -> np.ndarray:
    """Lognormal factors of mean 1, sd the sd of their log."""
    return np.exp(rng.normal(-sd * sd / 2, sd, size))


def many_data_sets(data_sets: int, tasks: int, reps: int, seed: int) -> pl.DataFrame:
    """Per-task rows of independent data sets, each its own model, with `tasks` tasks on `he`
    and on `cu-long`: a repetition's decode energy is J/token x its task's level x the task's
    decoded tokens x the repetition's noise, J/token 1.0 on `he` and 1.2 on `cu-long`. Level
    (sd 0.3 of its log) and noise (sd 0.1) are lognormal with mean 1 and drawn apart from the
    tokens (100-299), so the ratio of expected sums, which the ratio of sums estimates, is 20%
    above on `cu-long`, exactly."""
    rng = np.random.default_rng(seed)
    shape = (data_sets, 2, tasks, reps)
    level = _mean_one(rng, 0.3, (data_sets, 2, tasks, 1))
    noise = _mean_one(rng, 0.1, shape)
    decoded = rng.integers(100, 300, (data_sets, 2, tasks, 1))  # greedy: the same every rep
    j_per_token = np.array([1.0, 1.2])[:, None, None]
    index = np.indices(shape).reshape(4, -1)
    return pl.DataFrame(
        {
            "model": np.char.add("m", index[0].astype(str)),
            "workload": np.array(["he", "cu-long"])[index[1]],
            "task_id": np.char.add(np.array(["he/", "cu-long/"])[index[1]], index[2].astype(str)),
            "rep": index[3],
            "prompt_tokens": np.array([150, 5000])[index[1]],
            "output_tokens": np.broadcast_to(decoded + 1, shape).ravel(),
            "decode_energy_j": (j_per_token * level * decoded * noise).ravel(),
        }
    ).with_columns(energy_source=pl.lit("zeus:nvml"), strategy=pl.lit("none"))


@pytest.mark.parametrize("reps", [1, 3])
def test_the_interval_covers_the_planted_20_percent_in_nine_data_sets_of_ten(reps):
    """A task's repetitions share its level: an interval that resampled them as independent
    rows covered the truth in about seven data sets of ten with 3 repetitions."""
    found = amplification.table(many_data_sets(200, 30, reps, seed=reps), None, PAIR)
    assert found.height == 200
    covered = (found["amplification_pct_lo"] <= 20.0) & (found["amplification_pct_hi"] >= 20.0)
    assert covered.mean() >= 0.90


def test_copies_of_a_repetition_add_no_certainty():
    """Three identical repetitions of every task are one measurement: the same interval."""
    once = many_data_sets(1, 30, 1, seed=5)
    thrice = pl.concat([once.with_columns(rep=pl.lit(rep, pl.Int64)) for rep in (0, 1, 2)])
    (one,) = amplification.table(once, None, PAIR).iter_rows(named=True)
    (three,) = amplification.table(thrice, None, PAIR).iter_rows(named=True)
    for name in ("amplification_pct", "amplification_pct_lo", "amplification_pct_hi"):
        assert three[name] == pytest.approx(one[name], rel=1e-9), name


def test_repetitions_in_any_row_order_give_the_same_table():
    repeated = many_data_sets(3, 10, 3, seed=2)
    shuffled = repeated.sample(fraction=1.0, shuffle=True, seed=9)
    assert amplification.table(repeated, None, PAIR).equals(
        amplification.table(shuffled, None, PAIR)
    )


def test_above_idle_amplification_beside_the_gross_one() -> None:
    """An idle draw of 0.4 J per decoded token on both workloads: gross J/token 1.0 and 1.2
    (+20%), above idle 0.6 and 0.8 (+33%). The estimate has no idle power: no figure."""
    tasks, tokens = planted(0.0)
    idle = tasks.with_columns(
        decode_above_idle_j=pl.col("decode_energy_j") - 0.4 * (pl.col("output_tokens") - 1)
    )
    row = amplification.table(idle, tokens, PAIR).row(0, named=True)
    assert row["amplification_pct"] == pytest.approx(20.0, abs=2.0)
    assert row["amplification_above_idle_pct"] == pytest.approx(100 / 3, abs=3.0)
    no_idle = idle.with_columns(decode_above_idle_j=pl.lit(None, pl.Float64))
    assert amplification.table(no_idle, tokens, PAIR)["amplification_above_idle_pct"][0] is None


def drifting_job(
    amplification_pct: float, drift: float, seed: int, long_tasks: int = 4, long_tokens: int = 300
):
    """Per-task rows of one pair job as the pair job decodes it (generation.interleaved: 12
    short tasks, `long_tasks` long ones spread among them), on a machine whose speed walks
    randomly over the job: each task's cost is the last one's times exp(N(0, drift)). A long
    task's decode J/token is the planted amplification above a short one's; each task also
    has a 3% cost of its own, and decodes 40-256 tokens (the long ones `long_tokens`)."""
    rng = np.random.default_rng(seed)
    speed, started, rows = 0.0, 0.0, []
    for side, index in generation.interleaved([12, long_tasks]):
        speed += rng.normal(0, drift)
        workload = ("he", "cu-long")[side]
        tokens = long_tokens if side else int(rng.integers(40, 257))
        jpt = np.exp(speed + rng.normal(0, 0.03)) * (1 + side * amplification_pct / 100)
        rows.append(
            {"model": "m", "energy_source": "estimate:cpu-time", "metered_device": "estimate"}
            | {"workload": workload, "strategy": "none", "rep": 1, "task_id": f"{workload}/{index}"}
            | {"prompt_tokens": 5000 if side else 150, "output_tokens": tokens + 1}
            | {"decode_energy_j": jpt * tokens, "started_s": started}
        )
        started += tokens * 0.08
    return pl.DataFrame(rows)


def _pooled_and_paired(tasks: pl.DataFrame) -> tuple[tuple, tuple]:
    (row,) = amplification.table(tasks, None, PAIR).iter_rows(named=True)
    return (
        (row["amplification_pct_lo"], row["amplification_pct_hi"]),
        (row["paired_pct_lo"], row["paired_pct_hi"]),
    )


def _walking_jobs(long_tasks: int, long_tokens: int) -> list[tuple[tuple, tuple]]:
    """Both intervals of 200 pair jobs, +15% planted, the speed walking 8% per task."""
    return [
        _pooled_and_paired(drifting_job(15.0, 0.08, seed, long_tasks, long_tokens))
        for seed in range(200)
    ]


@pytest.fixture(scope="module")
def four_long_jobs() -> list[tuple[tuple, tuple]]:
    """The earlier shape, 4 long tasks of 300 tokens, shared by the tests that read it."""
    return _walking_jobs(4, 300)


def test_pairing_in_time_keeps_coverage_and_narrows_what_a_drifting_machine_widens(
    four_long_jobs,
):
    """A machine whose speed drifts over the job by 8% per task (the 2-core machine's slow
    spells, a GPU warming): the figure over all tasks of each side counts the drift as a
    difference between tasks; each long task against its neighbours in time does not. Both
    cover the planted +15%; the paired interval is the narrower."""
    pooled, paired = zip(*four_long_jobs, strict=True)
    covered = [[low <= 15.0 <= high for low, high in ends] for ends in (pooled, paired)]
    widths = [np.median([high - low for low, high in ends]) for ends in (pooled, paired)]
    assert np.mean(covered[1]) >= 0.9 and np.mean(covered[0]) >= 0.9
    assert widths[1] < 0.7 * widths[0]


def test_twelve_short_long_tasks_hold_the_level_four_long_ones_lose(four_long_jobs):
    """The default's shape, 12 long tasks of 100 tokens, against the earlier 4 of 300, at this
    machine's walk of 8% per task (counted per task, so shorter long tasks get no credit for
    walking less): the paired interval still covers the planted +15% in nine jobs of ten, is
    under half as wide (11.2 against 23.2 points in the median), and keeps its low end above
    zero in every job, where four long tasks leave zero inside in about one job in five."""
    paired = {
        "default": [ends[1] for ends in _walking_jobs(12, 100)],
        "earlier": [ends[1] for ends in four_long_jobs],
    }
    width = {name: np.median([high - low for low, high in ends]) for name, ends in paired.items()}
    above_zero = {name: np.mean([low > 0 for low, _ in ends]) for name, ends in paired.items()}
    assert np.mean([low <= 15.0 <= high for low, high in paired["default"]]) >= 0.9
    assert width["default"] < 0.5 * width["earlier"]
    assert above_zero["default"] >= 0.98 and above_zero["earlier"] <= 0.85


def test_paired_in_time_with_no_amplification_spans_zero_on_a_steady_machine_too():
    """No amplification, no drift: the paired interval spans zero in nine data sets of ten
    (here it rests on each long task's two neighbours, not on all twelve short tasks, and is
    the wider of the two: 10.3 against 7.8 points in the median)."""
    spans = [
        low <= 0.0 <= high
        for low, high in (
            _pooled_and_paired(drifting_job(0.0, 0.0, seed))[1] for seed in range(200)
        )
    ]
    assert np.mean(spans) >= 0.9


def test_a_long_task_without_a_short_one_on_either_side_is_left_out():
    job = drifting_job(15.0, 0.0, seed=3)
    (row,) = amplification.table(job, None, PAIR).iter_rows(named=True)
    assert row["paired_tasks"] == 4
    first_long = job.filter(pl.col("workload") == "cu-long")["task_id"][0]
    moved = job.with_columns(
        started_s=pl.when(pl.col("task_id") == first_long)
        .then(pl.col("started_s").min() - 1.0)
        .otherwise(pl.col("started_s"))
    )
    (row,) = amplification.table(moved, None, PAIR).iter_rows(named=True)
    assert row["paired_tasks"] == 3
    assert row["paired_pct_lo"] < row["paired_pct"] < row["paired_pct_hi"]


@pytest.mark.parametrize(
    "change",
    [
        # The two workloads in separate jobs, the long one after: no long task between shorts.
        lambda job: job.with_columns(
            started_s=pl.col("started_s") + (pl.col("workload") == "cu-long") * 1e4
        ),
        # Records kept from before start times were recorded.
        lambda job: job.with_columns(started_s=pl.lit(None, pl.Float64)),
        # Each workload on a device of its own (two jobs at once on a multi-GPU box).
        lambda job: job.with_columns(metered_device=pl.col("workload")),
    ],
)
def test_no_pairing_in_time_where_the_tasks_were_not_decoded_between_each_other(change):
    (row,) = amplification.table(change(drifting_job(15.0, 0.0, seed=3)), None, PAIR).iter_rows(
        named=True
    )
    assert row["paired_tasks"] == 0
    assert row["paired_pct"] is None and row["paired_pct_lo"] is None
    assert row["amplification_pct_lo"] <= 15.0 <= row["amplification_pct_hi"]

"""Claims: each level at its boundaries, planted truths through the library's own tables,
each metric on small tables worked out by hand, and the committed claims file."""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
import pytest
import yaml
from test_savings import _baseline, _generation, _oracle_row

from llmenergy import aggregate, amplification, claims, records, run_summary
from llmenergy.claims import Value

from conftest import REPO

SPEC = claims.load(REPO / "config/claims.yaml")
BY_ID = {claim["id"]: claim for claim in SPEC}
AMPLIFICATION = ((1.3, 51.8), (0.0, None))  # the study's range, the claim's direction
OVERHEAD = ((0.0, 24.0), (None, 24.0))
SHARE = ((0.1, 3.4), (0.0, 50.0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Value(2.0, 1.0, 3.0), claims.REPRODUCES),  # inside [0, 50], meets 0.1-3.4
        (Value(3.6, 3.4, 3.8), claims.REPRODUCES),  # touching counts (closed ranges)
        (Value(20.0, 10.0, 30.0), claims.SAME_DIRECTION),  # under 50 but beyond the study
        (Value(49.0, 3.5, 50.0), claims.SAME_DIRECTION),  # touches the boundary from inside
        (Value(70.0, 60.0, 80.0), claims.CONTRADICTS),  # wholly over 50
        (Value(51.0, 50.1, 52.0), claims.CONTRADICTS),  # just past the boundary
        (Value(45.0, 40.0, 55.0), claims.UNDECIDED),  # spans 50
        (Value(45.0, 2.0, 50.1), claims.UNDECIDED),  # meets the study's range, but spans 50
        (Value(20.0), claims.UNDECIDED),  # an estimate without an interval: too few tasks
        (Value(20.0, 20.0, 20.0, tasks=1), claims.UNDECIDED),  # the bootstrap of one task
        (Value(20.0, 19.0, 21.0, tasks=2), claims.SAME_DIRECTION),
        (Value(20.0, exact=True), claims.SAME_DIRECTION),  # a count needs none
        (Value(None, missing="not run"), claims.UNMEASURABLE),
    ],
)
def test_levels_settle_the_sign_before_the_study_range(value: Value, expected: str) -> None:
    verdict, why = claims.level(value, *SHARE)
    assert verdict == expected
    assert (why is not None) == (expected in (claims.UNDECIDED, claims.UNMEASURABLE))


@pytest.mark.parametrize(
    ("value", "ranges"),
    [
        # A planted -20%: the interval meets the study's 1.3-51.8% only at its top end.
        (Value(-20.0, -60.0, 1.3), AMPLIFICATION),
        (Value(5.0, -40.0, 60.0), AMPLIFICATION),
        # The oracle's overhead of a default run: it spans 24% and reaches below 0.
        (Value(36.5, -7.6, 85.6), OVERHEAD),
    ],
)
@pytest.mark.parametrize("estimated", [False, True])
def test_intervals_across_the_boundary_are_undecided_measured_or_estimated(
    value: Value, ranges: tuple, estimated: bool
) -> None:
    verdict, why = claims.level(value, *ranges)
    assert verdict == claims.UNDECIDED and "spans the claim's boundary" in why
    assert claims.capped(verdict, estimated) == claims.UNDECIDED


def test_estimates_cap_only_what_points_one_way() -> None:
    assert claims.capped(claims.REPRODUCES, True) == "same direction (estimated)"
    assert claims.capped(claims.SAME_DIRECTION, True) == "same direction (estimated)"
    assert claims.capped(claims.CONTRADICTS, True) == "contradicts (estimated)"
    assert claims.capped(claims.UNDECIDED, True) == claims.UNDECIDED
    assert claims.capped(claims.UNMEASURABLE, True) == claims.UNMEASURABLE
    assert claims.capped(claims.REPRODUCES, False) == claims.REPRODUCES


def test_open_ends_and_the_overhead_ceiling() -> None:
    assert claims.level(Value(60.0, 55.0, 70.0), *AMPLIFICATION)[0] == "same direction"
    assert claims.level(Value(-5.0, -9.0, -1.0), *AMPLIFICATION)[0] == "contradicts"
    assert claims.level(Value(-8.0, -12.0, -4.0), *OVERHEAD)[0] == "same direction"
    assert claims.level(Value(30.0, 24.5, 40.0), *OVERHEAD)[0] == "contradicts"


def test_the_weakest_model_decides_and_unmeasured_models_do_not_count() -> None:
    levels = [claims.REPRODUCES, claims.SAME_DIRECTION, claims.UNDECIDED, claims.CONTRADICTS]
    for weakest in range(len(levels)):
        assert claims.combine(levels[: len(levels) - weakest]) == levels[-1 - weakest]
    assert claims.combine([claims.REPRODUCES, claims.UNMEASURABLE]) == claims.REPRODUCES
    assert claims.combine([claims.UNMEASURABLE]) == claims.UNMEASURABLE
    with pytest.raises(ValueError, match="over_models"):
        claims.combine([claims.REPRODUCES], "best")


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    # Clopper-Pearson bounds from the beta quantiles (scipy.stats.beta.ppf), rounded.
    [(0, 1, 0.0, 0.975), (1, 1, 0.025, 1.0), (3, 10, 0.06674, 0.65245), (0, 10, 0.0, 0.30850)],
)
def test_binomial_interval_matches_clopper_pearson(successes, trials, low, high) -> None:
    assert claims.binomial_interval(successes, trials) == pytest.approx((low, high), abs=1e-4)


def test_binomial_interval_covers_at_least_its_level() -> None:
    """Exact intervals are conservative: over every share on a grid, the chance that the
    interval of a draw covers it is at least 95% (summed over all outcomes, no sampling)."""
    import math

    trials = 12
    bounds = [claims.binomial_interval(k, trials) for k in range(trials + 1)]
    for share in [i / 40 for i in range(1, 40)]:
        coverage = sum(
            math.comb(trials, k) * share**k * (1 - share) ** (trials - k)
            for k, (low, high) in enumerate(bounds)
            if low <= share <= high
        )
        assert coverage >= 0.95 - 1e-9, share


def _summary(he_share: tuple[float, float, float], cu_share: tuple[float, float, float]):
    rows = []
    for workload, (share, low, high) in (("he", he_share), ("cu", cu_share)):
        rows.append(
            {
                "model": "m",
                "workload": workload,
                "strategy": "none",
                "energy_source": "zeus:nvml",
                "energy_measured": True,
                "prefill_share": share,
                "prefill_share_lo": low,
                "prefill_share_hi": high,
                # Above idle: 1 J of 4 in prefill on he, 3 of 4 on cu.
                "prefill_above_idle_j_mean": 1.0 if workload == "he" else 3.0,
                "total_above_idle_j_mean": 4.0,
            }
        )
    return pl.DataFrame(rows)


SAVED = ["energy_saved", "decode_j_per_token_change", "extra_j_per_token"]


def _savings(rows: list[dict[str, Any]]) -> pl.DataFrame:
    full = [
        {
            "model": "m",
            "workload": "he",
            "flips": 0,
            "flip_pairs": 10,
            "unscored": 0,
            "energy_saved_above_idle": None,
            "extra_j_per_token_above_idle": None,
            **{f"{c}{s}": None for c in SAVED for s in ("", "_lo", "_hi")},
            **row,
        }
        for row in rows
    ]
    floats = {f"{c}{s}": pl.Float64 for c in SAVED for s in ("", "_lo", "_hi")}
    floats |= {"energy_saved_above_idle": pl.Float64, "extra_j_per_token_above_idle": pl.Float64}
    return pl.DataFrame(full, schema_overrides=floats)


def _babbling(models: dict[str, bool | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": list(models),
            "workload": ["he"] * len(models),
            "babbles": list(models.values()),
            "babbles_syntax": [False] * len(models),
        },
        schema_overrides={"babbles": pl.Boolean},
    )


def _amplification(rows: list[tuple[str, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            dict.fromkeys(amplification.SCHEMA)
            | {"model": model, "amplification_pct": value, "amplification_pct_lo": low}
            | {"amplification_pct_hi": high, "short_workload": "he", "long_workload": "cu"}
            for model, value, low, high in rows
        ],
        schema=amplification.SCHEMA,
    )


def _tables(
    savings: pl.DataFrame, babbles: bool = True, task_choice: dict[str, str] | None = None
) -> claims.Tables:
    return claims.Tables(
        _summary((0.02, 0.01, 0.03), (0.7, 0.6, 0.8)),
        savings,
        _babbling({"m": babbles}),
        _amplification([("m", 12.0, 4.0, 20.0)]),
        {"he": "humaneval", "cu": "cu"},
        {"m": "hub"},
        task_choice or {},
    )


ORACLE = {
    "strategy": "oracle",
    "energy_saved": 0.5,
    "energy_saved_lo": 0.4,
    "energy_saved_hi": 0.6,
    "energy_saved_above_idle": 0.55,
    "decode_j_per_token_change": 0.05,
    "decode_j_per_token_change_lo": 0.01,
    "decode_j_per_token_change_hi": 0.09,
    "extra_j_per_token": 0.08,
    "extra_j_per_token_lo": 0.02,
    "extra_j_per_token_hi": 0.14,
    "flips": 0,
}
SYNTAX = {"strategy": "syntax", "energy_saved": 0.3, "flips": 1, "flip_pairs": 10}


def _rows(tables: claims.Tables, estimated: bool = False) -> dict[str, dict[str, Any]]:
    table = claims.evaluate(SPEC, tables, "measured (zeus:nvml)", estimated)
    return {row["id"]: row for row in table.iter_rows(named=True)}


def test_every_claim_on_measured_energy_worked_by_hand() -> None:
    rows = _rows(_tables(_savings([ORACLE, SYNTAX])))
    # Prefill share 2% [1, 3] meets the study's 0.1-3.4%; CU 70% [60, 80] meets 65-84%.
    assert (rows["decode-dominates"]["value"], rows["decode-dominates"]["value_lo"]) == (2.0, 1.0)
    assert rows["decode-dominates"]["verdict"] == "reproduces"
    assert rows["decode-dominates"]["energy"] == "gross"
    assert rows["decode-dominates"]["above_idle"] == "m on he: 25.0"
    assert rows["prefill-dominates-cu"]["verdict"] == "reproduces"
    assert rows["amplification"]["verdict"] == "reproduces"  # 12% [4, 20] in 1.3..51.8
    assert rows["amplification"]["above_idle"] == "m: not known"
    # One model of one babbles: 100% [2.5, 100], which holds the study's 30%.
    babbling = rows["babbling-models"]
    assert babbling["value"] == 100.0 and babbling["value_lo"] == pytest.approx(2.5)
    assert babbling["verdict"] == "reproduces" and babbling["energy"] is None
    # The oracle's 50% [40, 60] meets 44-89%; syntax's 30% is beside it, not the verdict.
    saves = rows["suppression-saves"]
    assert (saves["value"], saves["value_lo"], saves["value_hi"]) == (50.0, 40.0, 60.0)
    assert saves["verdict"] == "reproduces"
    assert "syntax: 30.0%" in saves["detail"] and saves["above_idle"] == "m on he: 55.0"
    # The oracle flips nothing, by construction (syntax's flip is shown, not judged).
    kept = rows["accuracy-kept"]
    assert kept["verdict"] == "reproduces (by construction)"
    assert "same tests that score it" in kept["why"]
    assert "syntax: 1 of 10" in kept["detail"]
    # The overhead judged is decode's +5% and the checks' +3% together: 8% [2, 14].
    overhead = rows["oracle-overhead"]
    assert (overhead["value"], overhead["value_hi"]) == pytest.approx((8.0, 14.0))
    assert overhead["verdict"] == "reproduces"
    assert "decode J/token +5.0%, checks +3.0%" in overhead["detail"]
    for row in rows.values():
        assert row["why"].endswith(
            "measured (zeus:nvml), gross" if row["energy"] else claims.OUTPUT_BASIS
        )


def test_the_same_numbers_on_estimated_energy() -> None:
    rows = _rows(_tables(_savings([ORACLE, SYNTAX])), estimated=True)
    assert rows["decode-dominates"]["verdict"] == "same direction (estimated)"
    assert rows["suppression-saves"]["verdict"] == "same direction (estimated)"
    # Claims on what the models wrote are not estimates.
    assert rows["accuracy-kept"]["verdict"] == "reproduces (by construction)"
    assert rows["babbling-models"]["verdict"] == "reproduces"


def test_contradicting_and_missing_values() -> None:
    flipped = {**ORACLE, "flips": 2, "energy_saved": -0.2, "energy_saved_lo": -0.3}
    rows = _rows(_tables(_savings([{**flipped, "energy_saved_hi": -0.1}])))
    assert rows["accuracy-kept"]["verdict"] == "contradicts"
    assert rows["accuracy-kept"]["why"].startswith("a defect, not a finding")
    assert rows["suppression-saves"]["verdict"] == "contradicts"  # -20% [-30, -10]
    # Without the oracle, the suppression claims cannot be judged, whatever syntax did.
    rows = _rows(_tables(_savings([SYNTAX])))
    assert rows["suppression-saves"]["verdict"] == "not measurable here"
    assert "oracle" in rows["suppression-saves"]["why"]
    assert rows["oracle-overhead"]["verdict"] == "not measurable here"
    # No model babbles: nothing to suppress.
    rows = _rows(_tables(_savings([ORACLE]), babbles=False))
    assert rows["suppression-saves"]["why"].startswith("no model babbles here")
    # Tasks never scored both ways cannot flip: not a count of zero.
    rows = _rows(_tables(_savings([{**ORACLE, "flip_pairs": 0}])))
    assert rows["accuracy-kept"]["verdict"] == "not measurable here"


def test_one_model_that_does_not_babble_cannot_contradict_some_models_babble() -> None:
    rows = _rows(_tables(_savings([ORACLE]), babbles=False))
    babbling = rows["babbling-models"]
    assert (babbling["value"], babbling["value_lo"]) == (0.0, 0.0)
    assert babbling["value_hi"] == pytest.approx(97.5)
    assert babbling["verdict"] == claims.UNDECIDED
    # Ten models, none babbling: 0% [0, 30.8], wholly outside "some": contradicts.
    none_of_ten = _babbling({f"m{i}": False for i in range(10)})
    tables = claims.Tables(
        _summary((0.02, 0.01, 0.03), (0.7, 0.6, 0.8)),
        _savings([ORACLE]),
        none_of_ten,
        _amplification([]),
        {"he": "humaneval", "cu": "cu"},
    )
    babbling = claims.evaluate(SPEC[3:4], tables, "measured", False).row(0, named=True)
    assert babbling["value_hi"] == pytest.approx(30.85, abs=0.01)
    assert babbling["verdict"] == claims.UNDECIDED  # 30.85 > 1e-7: still spans "some"
    assert claims.level(Value(0.0, 0.0, 0.0, exact=True), (30.0, 30.0), (1e-7, 100.0))[0] == (
        claims.CONTRADICTS
    )


def test_a_claim_over_models_is_judged_on_every_model() -> None:
    # +10% [5, 15] reproduces; +250% [200, 300] raises decode J/token beyond the study;
    # +30% [-5, 65] spans zero. The smallest value alone would have said "reproduces".
    tables = claims.Tables(
        _summary((0.02, 0.01, 0.03), (0.7, 0.6, 0.8)),
        _savings([]),
        _babbling({}),
        _amplification(
            [("a", 10.0, 5.0, 15.0), ("b", 250.0, 200.0, 300.0), ("c", 30.0, -5.0, 65.0)]
        ),
        {"he": "humaneval", "cu": "cu"},
    )
    row = claims.evaluate([BY_ID["amplification"]], tables, "measured", False).row(0, named=True)
    assert (row["values"], row["reproduce"], row["agree"], row["undecided"]) == (3, 1, 1, 1)
    assert row["contradict"] == 0
    assert (row["range_low"], row["range_high"]) == (10.0, 250.0)
    assert row["verdict"] == claims.UNDECIDED
    assert (row["value"], row["value_lo"], row["value_hi"]) == (30.0, -5.0, 65.0)
    assert row["detail"].startswith("c; cu against he")
    assert "a: 10.0 [5.0, 15.0] reproduces" in row["per_model"]
    assert "b: 250.0 [200.0, 300.0] same direction" in row["per_model"]


def test_one_model_on_three_workloads_counts_three_values_not_three_models() -> None:
    # The share claims judge one value per model and workload: one model on three HumanEval
    # workloads (shares 2% [1, 3], 2% [1, 3] and 20% [10, 30]) is three values, and the
    # summary says so rather than "3 models".
    shares = {"he0": (2.0, 1.0, 3.0), "he2": (2.0, 1.0, 3.0), "hecot": (20.0, 10.0, 30.0)}
    summary = pl.concat(
        _summary(tuple(x / 100 for x in share), (0.7, 0.6, 0.8))
        .filter(pl.col("workload") == "he")
        .with_columns(workload=pl.lit(name))
        for name, share in shares.items()
    )
    kinds = dict.fromkeys(shares, "humaneval")
    tables = claims.Tables(summary, _savings([]), _babbling({}), _amplification([]), kinds)
    row = claims.evaluate([BY_ID["decode-dominates"]], tables, "measured", False).row(0, named=True)
    assert (row["values"], row["reproduce"], row["agree"]) == (3, 2, 1)
    line = run_summary._value(row)
    assert "3 values: 2 reproduce, 1 same direction" in line
    assert "models:" not in line


def test_planted_check_cost_of_all_decode_energy_contradicts_the_overhead_claim() -> None:
    """The oracle decodes as the baseline does, token for token, and its checks cost as
    much again as decoding: +100% energy per decoded token, though decode J/token is
    unchanged. Judged on decode J/token alone, it would reproduce "costs little"."""
    base = _baseline()
    oracle = [
        _generation(
            "oracle",
            row["task_id"],
            **{k: row[k] for k in ("prefill_energy_j", "decode_energy_j", "output_tokens")},
            **{k: row[k] for k in ("prefill_s", "decode_s", "task_s")},
            check_s=1.0,
            check_energy_j=row["decode_energy_j"],
        )
        for row in base
    ]
    savings = pl.DataFrame([_oracle_row(base + oracle)])
    assert savings["decode_j_per_token_change"][0] == pytest.approx(0.0)
    assert savings["extra_j_per_token"][0] == pytest.approx(1.0)
    tables = claims.Tables(
        _summary((0.02, 0.01, 0.03), (0.7, 0.6, 0.8)),
        savings,
        _babbling({"m": True}),
        _amplification([]),
        {"he": "humaneval", "cu": "cu"},
    )
    row = claims.evaluate([BY_ID["oracle-overhead"]], tables, "measured", False).row(0, named=True)
    assert row["value"] == pytest.approx(100.0) and row["verdict"] == claims.CONTRADICTS
    assert "decode J/token +0.0%, checks +100.0%" in row["detail"]


def _metrics_and_stops(model: str, stops: list[str], ratios: list[float | None]) -> tuple:
    keys = [
        {"model": model, "workload": "he", "strategy": "none", "rep": 1, "task_id": f"T/{i}"}
        for i in range(len(stops))
    ]
    metrics = pl.DataFrame(
        [
            k
            | {
                "answer_tokens_syntax": None if r is None else 10,
                "babble_tokens_syntax": None if r is None else int(100 * r),
                "babble_ratio_syntax": r,
                "answer_tokens_tests": None,
                "babble_tokens_tests": None,
                "babble_ratio_tests": None,
            }
            for k, r in zip(keys, ratios, strict=True)
        ],
        schema=records.BABBLE_SCHEMA,
    )
    ends = pl.DataFrame([k | {"stop_reason": s} for k, s in zip(keys, stops, strict=True)])
    return metrics, ends


def test_the_study_babbling_is_running_to_the_cap_not_our_syntax_ratio() -> None:
    # Model "cap" never closes its function and runs to the cap every time (null ratios);
    # model "prints" closes it, adds three print lines (40% babble by syntax) and ends at EOS.
    cap_metrics, cap_stops = _metrics_and_stops("cap", ["max_tokens"] * 4, [None] * 4)
    prints_metrics, prints_stops = _metrics_and_stops("prints", ["eos"] * 4, [0.4] * 4)
    table = aggregate.babbling(
        pl.concat([cap_metrics, prints_metrics]).lazy(),
        pl.concat([cap_stops, prints_stops]).lazy(),
        cap_share=0.5,
        threshold=0.2,
    )
    rows = {row["model"]: row for row in table.iter_rows(named=True)}
    assert (rows["cap"]["babbles"], rows["cap"]["babbles_syntax"]) == (True, False)
    assert (rows["prints"]["babbles"], rows["prints"]["babbles_syntax"]) == (False, True)
    assert rows["cap"]["at_cap_share"] == 1.0
    # The share at its boundary: 2 of 4 at the cap babbles at 0.5, not at 0.51.
    half_metrics, half_stops = _metrics_and_stops("half", ["max_tokens", "eos"] * 2, [0.1] * 4)
    for cap_share, babbles in ((0.5, True), (0.51, False)):
        half = aggregate.babbling(half_metrics.lazy(), half_stops.lazy(), cap_share, 0.2)
        assert half["babbles"].to_list() == [babbles]
    # Every output forced to the cap says nothing of babbling.
    forced = aggregate.babbling(cap_metrics.lazy(), cap_stops.lazy(), 0.5, 0.2, eos_ignored=True)
    assert forced["babbles"].to_list() == [None]


def test_a_task_choice_by_outcome_is_named_on_the_claims_it_shapes() -> None:
    choice = claims.task_choice({"he": {"selected_by": "python select.py"}, "cu": {"limit": 3}})
    assert choice == {"he": "chosen by a model's outcome (python select.py)"}
    rows = _rows(_tables(_savings([ORACLE]), task_choice=choice))
    named = "tasks of he chosen by a model's outcome (python select.py)"
    for claim in ("decode-dominates", "amplification", "suppression-saves", "oracle-overhead"):
        assert named in rows[claim]["detail"], claim
    assert named not in rows["prefill-dominates-cu"]["detail"]


def test_estimated_energy_has_no_above_idle_figure() -> None:
    tables = _tables(_savings([ORACLE]))
    summary = tables.summary.with_columns(
        prefill_above_idle_j_mean=pl.lit(None, pl.Float64),
        total_above_idle_j_mean=pl.lit(None, pl.Float64),
    )
    estimated = dataclasses.replace(tables, summary=summary)
    row = claims.evaluate(SPEC[:1], estimated, "on estimated energy", True).row(0, named=True)
    assert row["above_idle"] == claims.NO_IDLE


def test_claims_file_is_checked_against_its_schema(tmp_path) -> None:
    for claim in SPEC:
        assert claim["metric"] in claims.METRICS, claim["id"]
    document = yaml.safe_load((REPO / "config/claims.yaml").read_text())
    schema = yaml.safe_load((REPO / "config/claims.schema.yaml").read_text())
    assert set(schema["properties"]["claims"]["items"]["properties"]["metric"]["enum"]) == set(
        claims.METRICS
    )
    path = tmp_path / "claims.yaml"
    for broken, message in (
        ({"direction": [0.0]}, r"claims/0/direction \(claim decode-dominates\)"),
        ({"over_model": "weakest"}, r"claims/0 \(claim decode-dominates\).*over_model"),
        ({"metric": "prefill_shares"}, r"claims/0/metric \(claim decode-dominates\)"),
    ):
        document["claims"][0] = {**SPEC[0], **broken}
        path.write_text(yaml.safe_dump(document))
        with pytest.raises(ValueError, match=message):
            claims.load(path, REPO / "config/claims.schema.yaml")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ((0.12, 0.05, 0.19), "the same prefills cost 12.0% [5.0, 19.0] in its job"),
        ((-0.08, -0.15, -0.01), "the same prefills cost -8.0% [-15.0, -1.0] in its job"),
        ((0.09, 0.0, 0.19), None),  # an interval reaching zero: no drift shown
        ((0.02, -0.03, 0.07), None),
    ],
)
def test_a_saving_between_two_jobs_that_ran_at_different_speeds_says_so(change, said) -> None:
    value, low, high = change
    drift = {"prefill_j_change": value, "prefill_j_change_lo": low, "prefill_j_change_hi": high}
    saves = _rows(_tables(_savings([ORACLE | drift, SYNTAX])))["suppression-saves"]
    assert saves["value"] == 50.0 and "syntax: 30.0%" in saves["detail"]
    if said is None:
        assert "prefills" not in saves["detail"]
    else:
        assert said in saves["detail"] and "drift between the two jobs" in saves["detail"]


@pytest.mark.parametrize(
    ("paired", "judged"),
    [
        # Long tasks decoded between short ones: the claim rests on the paired figure.
        ({"paired_pct": 9.0, "paired_pct_lo": 2.0, "paired_pct_hi": 16.0}, (9.0, 2.0, 16.0)),
        # One long task paired: a point without an interval says nothing of its spread.
        ({"paired_pct": 9.0, "paired_pct_lo": None, "paired_pct_hi": None}, (12.0, -1.0, 25.0)),
        ({}, (12.0, -1.0, 25.0)),
    ],
)
def test_the_amplification_claim_rests_on_the_figure_paired_in_time_where_there_is_one(
    paired: dict[str, float | None], judged: tuple[float, float, float]
) -> None:
    table = _amplification([("m", 12.0, -1.0, 25.0)]).with_columns(
        **{name: pl.lit(value, pl.Float64) for name, value in paired.items()},
        paired_tasks=pl.lit(4 if paired.get("paired_pct_lo") is not None else 1, pl.Int64),
    )
    tables = dataclasses.replace(_tables(_savings([ORACLE])), amplification=table)
    (value,) = claims.amplification_pct(tables)
    assert (value.value, value.low, value.high) == judged
    assert ("paired in time: each of 4 long tasks" in value.detail) == (judged[0] == 9.0)
    assert "(over all tasks: 12%)" in value.detail or judged[0] == 12.0

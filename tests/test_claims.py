"""Claims: each verdict branch, each metric on small tables worked out by hand, and the
committed claims file."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
import yaml

from llmenergy import amplification, claims
from llmenergy.claims import Value

from conftest import REPO

SPEC = yaml.safe_load((REPO / "config/claims.yaml").read_text())["claims"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Value(2.0, 1.0, 3.0), claims.REPRODUCES),  # meets the study's [0.1, 3.4]
        (Value(3.0, 3.4, 3.4), claims.REPRODUCES),  # touching counts (closed ranges)
        (Value(20.0, 10.0, 30.0), claims.SAME_DIRECTION),  # under 50 but beyond the study
        (Value(70.0, 60.0, 80.0), claims.CONTRADICTS),  # wholly over 50
        (Value(45.0, 40.0, 55.0), claims.UNMEASURABLE),  # spans 50: undecided
        (Value(20.0), claims.SAME_DIRECTION),  # no interval: the point decides
        (Value(None, missing="not run"), claims.UNMEASURABLE),
    ],
)
def test_level_branches(value: Value, expected: str) -> None:
    verdict, why = claims.level(value, (0.1, 3.4), (0.0, 50.0))
    assert verdict == expected
    assert (why is not None) == (expected == claims.UNMEASURABLE)


def test_open_ended_ranges() -> None:
    # Amplification: the study's +1.3..51.8%, any rise points the same way.
    assert claims.level(Value(60.0, 55.0, 70.0), (1.3, 51.8), (0.0, None))[0] == "same direction"
    assert claims.level(Value(-5.0, -9.0, -1.0), (1.3, 51.8), (0.0, None))[0] == "contradicts"
    # Oracle overhead: at most 24% in the study, anything under points the same way.
    assert claims.level(Value(-8.0, -12.0, -4.0), (0.0, 24.0), (None, 24.0))[0] == (
        "same direction"
    )


def test_estimated_energy_never_reproduces() -> None:
    assert claims.capped(claims.REPRODUCES, True) == "same direction (estimated)"
    assert claims.capped(claims.SAME_DIRECTION, True) == "same direction (estimated)"
    assert claims.capped(claims.CONTRADICTS, True) == "contradicts (estimated)"
    assert claims.capped(claims.UNMEASURABLE, True) == claims.UNMEASURABLE
    assert claims.capped(claims.REPRODUCES, False) == claims.REPRODUCES


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
            }
        )
    return pl.DataFrame(rows)


def _savings(rows: list[dict[str, Any]]) -> pl.DataFrame:
    columns = ["energy_saved", "decode_j_per_token_change", "check_share_of_decode"]
    full = [
        {
            "model": "m",
            "workload": "he",
            "flips": 0,
            "flip_pairs": 10,
            "unscored": 0,
            **{f"{c}{s}": None for c in columns for s in ("", "_lo", "_hi")},
            **row,
        }
        for row in rows
    ]
    floats = {f"{c}{s}": pl.Float64 for c in columns for s in ("", "_lo", "_hi")}
    return pl.DataFrame(full, schema_overrides=floats)


def _tables(savings: pl.DataFrame, babbles: bool = True) -> claims.Tables:
    amp = pl.DataFrame(
        [
            dict.fromkeys(amplification.SCHEMA)
            | {"model": "m", "amplification_pct": 12.0, "amplification_pct_lo": 4.0}
            | {"amplification_pct_hi": 20.0, "short_workload": "he", "long_workload": "cu"}
        ],
        schema=amplification.SCHEMA,
    )
    return claims.Tables(
        _summary((0.02, 0.01, 0.03), (0.7, 0.6, 0.8)),
        savings,
        pl.DataFrame({"model": ["m"], "workload": ["he"], "babbles": [babbles]}),
        amp,
        {"he": "humaneval", "cu": "cu"},
        {"m": "hub"},
    )


ORACLE = {
    "strategy": "oracle",
    "energy_saved": 0.5,
    "energy_saved_lo": 0.4,
    "energy_saved_hi": 0.6,
    "decode_j_per_token_change": 0.05,
    "decode_j_per_token_change_lo": 0.01,
    "decode_j_per_token_change_hi": 0.09,
    "check_share_of_decode": 0.03,
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
    assert rows["prefill-dominates-cu"]["verdict"] == "reproduces"
    assert rows["amplification"]["verdict"] == "reproduces"  # 12% [4, 20] in 1.3..51.8
    # One model of one babbles: 100%, pointing the way of "some models babble", not 30%.
    assert rows["babbling-models"]["value"] == 100.0
    assert rows["babbling-models"]["verdict"] == "same direction"
    # The oracle's 50% [40, 60] meets 44-89%; syntax's 30% is beside it, not the verdict.
    saves = rows["suppression-saves"]
    assert (saves["value"], saves["value_lo"], saves["value_hi"]) == (50.0, 40.0, 60.0)
    assert saves["verdict"] == "reproduces"
    assert "syntax: 30.0%" in saves["detail"]
    # The oracle flips nothing (syntax's flip is shown, not judged).
    assert rows["accuracy-kept"]["verdict"] == "reproduces"
    assert "syntax: 1 of 10" in rows["accuracy-kept"]["detail"]
    overhead = rows["oracle-overhead"]
    assert (overhead["value"], overhead["value_hi"]) == (5.0, 9.0)
    assert overhead["verdict"] == "reproduces"
    assert "3.0% of decode energy" in overhead["detail"]


def test_the_same_numbers_on_estimated_energy() -> None:
    rows = _rows(_tables(_savings([ORACLE, SYNTAX])), estimated=True)
    assert rows["decode-dominates"]["verdict"] == "same direction (estimated)"
    assert rows["suppression-saves"]["verdict"] == "same direction (estimated)"
    # Claims on what the models wrote are not estimates.
    assert rows["accuracy-kept"]["verdict"] == "reproduces"


def test_contradicting_and_missing_values() -> None:
    flipped = {**ORACLE, "flips": 2, "energy_saved": -0.2, "energy_saved_lo": -0.3}
    rows = _rows(_tables(_savings([{**flipped, "energy_saved_hi": -0.1}])))
    assert rows["accuracy-kept"]["verdict"] == "contradicts"
    assert rows["suppression-saves"]["verdict"] == "contradicts"  # -20% [-30, -10]
    # Without the oracle, the suppression claims cannot be judged, whatever syntax did.
    rows = _rows(_tables(_savings([SYNTAX])))
    assert rows["suppression-saves"]["verdict"] == "not measurable here"
    assert "oracle" in rows["suppression-saves"]["why"]
    assert rows["oracle-overhead"]["verdict"] == "not measurable here"
    # No model babbles: nothing to suppress.
    rows = _rows(_tables(_savings([ORACLE]), babbles=False))
    assert rows["babbling-models"]["verdict"] == "contradicts"  # 0% of models
    assert rows["suppression-saves"]["why"] == "no model babbles here"
    # Tasks never scored both ways cannot flip: not a count of zero.
    rows = _rows(_tables(_savings([{**ORACLE, "flip_pairs": 0}])))
    assert rows["accuracy-kept"]["verdict"] == "not measurable here"


def test_claims_file_names_known_metrics_and_ranges() -> None:
    for claim in SPEC:
        assert claim["metric"] in claims.METRICS, claim["id"]
        for key in ("study_range", "direction"):
            assert len(claim[key]) == 2, (claim["id"], key)
    with pytest.raises(ValueError, match="decode-dominates needs direction"):
        claims.evaluate(
            [{**SPEC[0], "direction": None}], _tables(_savings([ORACLE])), "measured", False
        )

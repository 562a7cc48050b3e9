"""The study's claims against our numbers: each claim's value here, its interval, a verdict.

Claims are data (config/claims.yaml); each names a metric, computed here from the aggregated
tables in the claim's unit (percentages as %), with its 95% interval where it has one. The
verdict is a level (`level`): `reproduces` when our interval meets the study's range, `same
direction` when it lies inside the range where the claim's statement is true, `contradicts`
when it lies outside it, and `not measurable here` with the reason (a workload or strategy
that was not run, no babbling model, an interval that spans the claim's boundary). An energy
claim on estimated energy is at most `same direction (estimated)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

REPRODUCES, SAME_DIRECTION, CONTRADICTS = "reproduces", "same direction", "contradicts"
UNMEASURABLE = "not measurable here"
ESTIMATED = " (estimated)"
LEVELS = (REPRODUCES, SAME_DIRECTION, CONTRADICTS, UNMEASURABLE)
# The suppression claims are judged on the test oracle, the method the study's authors
# describe in their follow-up; these deployable strategies are shown beside it.
JUDGED_STRATEGY = "oracle"
ALTERNATIVES = ("stopwords", "syntax")

Range = tuple[float | None, float | None]


@dataclass(frozen=True)
class Tables:
    summary: pl.DataFrame
    savings: pl.DataFrame
    babbling: pl.DataFrame
    amplification: pl.DataFrame
    workload_kinds: dict[str, str]  # workload -> humaneval | cu | cu-long | other
    model_kinds: dict[str, str] | None = None  # model -> its source kind

    def text_models(self) -> list[str] | None:
        """Models whose text means something (not random weights); None: all of them."""
        if self.model_kinds is None:
            return None
        return [m for m, kind in self.model_kinds.items() if kind != "random"]


OUTPUT_BASIS = "from the models' outputs and the tasks' tests"
RANDOM_TEXT = "only random-weight models ran: their text is noise, so babbling is not measured"


@dataclass(frozen=True)
class Value:
    value: float | None
    low: float | None = None
    high: float | None = None
    detail: str = ""
    missing: str | None = None  # why it cannot be measured here


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _pct_text(row: dict[str, Any], column: str) -> str:
    """A saving as '12.3% [4.5, 20.1]', or 'no energy' where it is null."""
    if row.get(column) is None:
        return "no energy"
    low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    text = f"{100 * row[column]:.1f}%"
    return text + (f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None else "")


def _baseline_rows(tables: Tables, kind: str) -> pl.DataFrame:
    workloads = [w for w, k in tables.workload_kinds.items() if k == kind]
    return tables.summary.filter(
        (pl.col("strategy") == "none")
        & pl.col("workload").is_in(workloads)
        & pl.col("prefill_share").is_not_null()
    )


def _extreme_share(tables: Tables, kind: str, largest: bool) -> Value:
    rows = _baseline_rows(tables, kind)
    if rows.is_empty():
        return Value(None, missing=f"no {kind} workload with measured energy was run")
    row = rows.sort("prefill_share", "model", "workload", descending=[largest, False, False]).row(
        0, named=True
    )
    return Value(
        _pct(row["prefill_share"]),
        _pct(row.get("prefill_share_lo")),
        _pct(row.get("prefill_share_hi")),
        f"{row['model']} on {row['workload']}",
    )


def prefill_share_humaneval(tables: Tables) -> Value:
    return _extreme_share(tables, "humaneval", largest=True)


def prefill_share_cu(tables: Tables) -> Value:
    return _extreme_share(tables, "cu", largest=False)


def amplification_pct(tables: Tables) -> Value:
    rows = tables.amplification.filter(pl.col("amplification_pct").is_not_null())
    if rows.is_empty():
        notes = tables.amplification["note"].drop_nulls().unique().sort().to_list()
        return Value(
            None,
            missing="; ".join(notes) or "needs workloads of different prompt lengths per model",
        )
    row = rows.sort("amplification_pct", "model").row(0, named=True)
    values = rows["amplification_pct"]
    return Value(
        row["amplification_pct"],
        row["amplification_pct_lo"],
        row["amplification_pct_hi"],
        detail=f"{row['model']}, {row['long_workload']} against {row['short_workload']}; range "
        f"{values.min():.1f}% to {values.max():.1f}% over {rows.height} model(s)",
    )


def _humaneval_babbling(tables: Tables) -> pl.DataFrame:
    workloads = [w for w, k in tables.workload_kinds.items() if k == "humaneval"]
    rows = tables.babbling.filter(pl.col("workload").is_in(workloads))
    models = tables.text_models()
    return rows if models is None else rows.filter(pl.col("model").is_in(models))


def babbling_share(tables: Tables) -> Value:
    rows = _humaneval_babbling(tables)
    if rows.is_empty():
        if tables.text_models() == []:
            return Value(None, missing=RANDOM_TEXT)
        return Value(None, missing="no HumanEval workload was run")
    per_model = rows.group_by("model").agg(pl.col("babbles").any())
    babblers = per_model.filter(pl.col("babbles"))["model"].sort().to_list()
    return Value(
        100.0 * len(babblers) / per_model.height,
        detail=f"{len(babblers)} of {per_model.height}: {', '.join(babblers) or 'none'}",
    )


def _babbling_savings(tables: Tables) -> tuple[pl.DataFrame, str | None]:
    """Savings rows of the models that babble on HumanEval, or why there are none."""
    babblers = _humaneval_babbling(tables).filter(pl.col("babbles"))
    rows = tables.savings.join(babblers.select("model", "workload"), on=["model", "workload"])
    if tables.savings.is_empty():
        return rows, "no suppression strategy was run"
    if rows.is_empty():
        return rows, RANDOM_TEXT if tables.text_models() == [] else "no model babbles here"
    if rows.filter(pl.col("strategy") == JUDGED_STRATEGY).is_empty():
        return rows, f"the {JUDGED_STRATEGY} strategy was not run on a babbling model"
    return rows, None


def _alternatives(rows: pl.DataFrame, model: str, workload: str, describe) -> str:
    """What the deployable strategies did on the same model and workload."""
    parts = [
        f"{r['strategy']}: {describe(r)}"
        for r in rows.filter(
            (pl.col("model") == model)
            & (pl.col("workload") == workload)
            & pl.col("strategy").is_in(ALTERNATIVES)
        )
        .sort("strategy")
        .iter_rows(named=True)
    ]
    return ("; " + "; ".join(parts)) if parts else ""


def energy_saved_babbling(tables: Tables) -> Value:
    rows, missing = _babbling_savings(tables)
    if missing:
        return Value(None, missing=missing)
    judged = rows.filter(
        (pl.col("strategy") == JUDGED_STRATEGY) & pl.col("energy_saved").is_not_null()
    )
    if judged.is_empty():
        return Value(None, missing="no measured or estimated energy (replayed outputs)")
    row = judged.sort("energy_saved", "model", "workload").row(0, named=True)
    return Value(
        _pct(row["energy_saved"]),
        _pct(row["energy_saved_lo"]),
        _pct(row["energy_saved_hi"]),
        detail=f"{row['model']} on {row['workload']} with the {JUDGED_STRATEGY}"
        + _alternatives(
            rows, row["model"], row["workload"], lambda r: _pct_text(r, "energy_saved")
        ),
    )


def flips(tables: Tables) -> Value:
    rows, missing = _babbling_savings(tables)
    if missing:
        return Value(None, missing=missing)
    judged = rows.filter(pl.col("strategy") == JUDGED_STRATEGY)
    pairs = int(judged["flip_pairs"].sum())
    if pairs == 0:
        return Value(None, missing="no task was scored pass/fail both with and without the oracle")
    others = rows.filter(pl.col("strategy").is_in(ALTERNATIVES))
    beside = "; ".join(
        f"{r['strategy']}: {r['flips']} of {r['flip_pairs']}"
        for r in others.group_by("strategy")
        .agg(pl.col("flips").sum(), pl.col("flip_pairs").sum())
        .sort("strategy")
        .iter_rows(named=True)
    )
    unscored = int(judged["unscored"].sum())
    return Value(
        float(judged["flips"].sum()),
        detail=f"of {pairs} task(s) scored both ways"
        + (f", {unscored} unscored" if unscored else "")
        + (f"; {beside}" if beside else ""),
    )


def oracle_overhead(tables: Tables) -> Value:
    rows = tables.savings.filter(
        (pl.col("strategy") == JUDGED_STRATEGY) & pl.col("decode_j_per_token_change").is_not_null()
    )
    if rows.is_empty():
        return Value(None, missing="the oracle strategy was not run with energy")
    row = rows.sort("decode_j_per_token_change", "model", descending=[True, False]).row(
        0, named=True
    )
    checks = row.get("check_share_of_decode")
    return Value(
        _pct(row["decode_j_per_token_change"]),
        _pct(row["decode_j_per_token_change_lo"]),
        _pct(row["decode_j_per_token_change_hi"]),
        detail=f"{row['model']} on {row['workload']}; the checks' own energy: "
        + ("not known" if checks is None else f"{100 * checks:.1f}% of decode energy"),
    )


METRICS: dict[str, Callable[[Tables], Value]] = {
    f.__name__: f
    for f in (
        prefill_share_humaneval,
        prefill_share_cu,
        amplification_pct,
        babbling_share,
        energy_saved_babbling,
        flips,
        oracle_overhead,
    )
}


def _meets(interval: Range, other: Range) -> bool:
    """Whether two closed ranges (None: open) share a point."""
    (a, b), (c, d) = interval, other
    return (d is None or a is None or a <= d) and (c is None or b is None or c <= b)


def _inside(interval: Range, other: Range) -> bool:
    (a, b), (c, d) = interval, other
    return (c is None or (a is not None and a >= c)) and (d is None or (b is not None and b <= d))


def level(value: Value, study_range: Range, direction: Range) -> tuple[str, str | None]:
    """The verdict for our value and its interval (a point where there is none), and why
    it cannot be measured where it cannot."""
    if value.value is None:
        return UNMEASURABLE, value.missing
    ours = (
        value.low if value.low is not None else value.value,
        value.high if value.high is not None else value.value,
    )
    if _meets(ours, study_range):
        return REPRODUCES, None
    if _inside(ours, direction):
        return SAME_DIRECTION, None
    if not _meets(ours, direction):
        return CONTRADICTS, None
    return UNMEASURABLE, (
        f"our interval [{ours[0]:.3g}, {ours[1]:.3g}] spans the claim's boundary: "
        "more tasks or repetitions would decide"
    )


def capped(verdict: str, estimated: bool) -> str:
    """On estimated energy a claim can at most point the same way, never reproduce."""
    if not estimated or verdict == UNMEASURABLE:
        return verdict
    return (CONTRADICTS if verdict == CONTRADICTS else SAME_DIRECTION) + ESTIMATED


def _range(claim: dict[str, Any], key: str) -> Range:
    bounds = claim.get(key)
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ValueError(f"claims: {claim.get('id')} needs {key}: [low, high] (null: open end)")
    return bounds[0], bounds[1]


SCHEMA = {
    "id": pl.String(),
    "claim": pl.String(),
    "study": pl.String(),
    "unit": pl.String(),
    "value": pl.Float64(),
    "value_lo": pl.Float64(),
    "value_hi": pl.Float64(),
    "study_low": pl.Float64(),
    "study_high": pl.Float64(),
    "detail": pl.String(),
    "verdict": pl.String(),
    "why": pl.String(),
}


def evaluate(
    claims: list[dict[str, Any]], tables: Tables, basis: str, estimated: bool
) -> pl.DataFrame:
    """One row per claim: the study's value and range, ours with its interval, the verdict and
    why. `basis` says what energy claims rest on, `estimated` whether that is an estimate;
    output claims rest on the models' outputs."""
    rows = []
    for claim in claims:
        if claim["metric"] not in METRICS:
            raise KeyError(f"claims: {claim['id']} names unknown metric {claim['metric']!r}")
        value = METRICS[claim["metric"]](tables)
        study_range = _range(claim, "study_range")
        verdict, reason = level(value, study_range, _range(claim, "direction"))
        on_energy = claim.get("basis", "energy") == "energy"
        rows.append(
            {
                "id": claim["id"],
                "claim": claim["claim"],
                "study": claim["study"],
                "unit": claim["unit"],
                "value": value.value,
                "value_lo": value.low,
                "value_hi": value.high,
                "study_low": study_range[0],
                "study_high": study_range[1],
                "detail": value.detail,
                "verdict": capped(verdict, estimated and on_energy),
                "why": reason or (basis if on_energy else OUTPUT_BASIS),
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def is_estimated(summary: pl.DataFrame) -> bool:
    """Whether any energy in the summary is not a measurement (then none of it is judged as
    one)."""
    rows = summary.filter(pl.col("energy_source").is_not_null())
    return rows.is_empty() or not rows["energy_measured"].fill_null(False).all()


def energy_basis(summary: pl.DataFrame) -> str:
    """What the energy numbers rest on, for the claims table."""
    sources = sorted(set(summary["energy_source"].drop_nulls().to_list()))
    if not sources:
        return "no energy"
    measured = summary["energy_measured"].fill_null(False)
    if not measured.any():
        return "on estimated energy (" + ", ".join(sources) + "): not a measurement"
    if not measured.all():
        return "partly measured (" + ", ".join(sources) + "): some rows are not measurements"
    return "measured (" + ", ".join(sources) + ")"


def workload_kind(spec: dict[str, Any], dataset_format: str) -> str:
    """humaneval, cu (LongBench-format with a short answer), cu-long, or other."""
    if dataset_format == "humaneval":
        return "humaneval"
    if dataset_format.startswith("longbench"):
        return "cu" if spec["max_new_tokens"] <= 16 else "cu-long"
    return "other"

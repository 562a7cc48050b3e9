"""The study's claims against our numbers: each claim's value here, its interval, a verdict.

Claims are data (config/claims.yaml); each names a metric, computed here from the aggregated
tables. A verdict is `holds`, `does not hold`, or `not measurable here` with the reason (a
workload or strategy that was not run, no measured energy, no babbling model...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

HOLDS, FAILS, UNMEASURABLE = "holds", "does not hold", "not measurable here"


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
    row = rows.sort("prefill_share", descending=largest).row(0, named=True)
    return Value(
        row["prefill_share"],
        row.get("prefill_share_lo"),
        row.get("prefill_share_hi"),
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
        len(babblers) / per_model.height,
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
    return rows, None


def energy_saved_babbling(tables: Tables) -> Value:
    rows, missing = _babbling_savings(tables)
    if missing:
        return Value(None, missing=missing)
    rows = rows.filter(pl.col("energy_saved").is_not_null())
    if rows.is_empty():
        return Value(None, missing="no measured or estimated energy (replayed outputs)")
    best = rows.sort("energy_saved", descending=True).unique(["model", "workload"], keep="first")
    row = best.sort("energy_saved").row(0, named=True)
    return Value(
        row["energy_saved"], detail=f"{row['model']} on {row['workload']} with {row['strategy']}"
    )


def flips(tables: Tables) -> Value:
    rows, missing = _babbling_savings(tables)
    if missing:
        return Value(None, missing=missing)
    total = int(rows["flips"].sum())
    return Value(float(total), detail=f"over {rows.height} model x workload x strategy rows")


def oracle_overhead(tables: Tables) -> Value:
    rows = tables.savings.filter(
        (pl.col("strategy") == "oracle") & pl.col("check_share_of_decode").is_not_null()
    )
    if rows.is_empty():
        return Value(None, missing="the oracle strategy was not run with energy")
    row = rows.sort("check_share_of_decode", descending=True).row(0, named=True)
    return Value(row["check_share_of_decode"], detail=f"{row['model']} on {row['workload']}")


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


def verdict(value: Value, holds: list[float | None]) -> str:
    if value.value is None:
        return UNMEASURABLE
    low, high = holds
    inside = (low is None or value.value >= low) and (high is None or value.value <= high)
    return HOLDS if inside else FAILS


def evaluate(claims: list[dict[str, Any]], tables: Tables, basis: str) -> pl.DataFrame:
    """One row per claim: the study's value, ours with its interval, the verdict and why.
    `basis` says what energy claims rest on; output claims rest on the models' outputs."""
    rows = []
    for claim in claims:
        if claim["metric"] not in METRICS:
            raise KeyError(f"claims: {claim['id']} names unknown metric {claim['metric']!r}")
        value = METRICS[claim["metric"]](tables)
        rows.append(
            {
                "id": claim["id"],
                "claim": claim["claim"],
                "study": claim["study"],
                "unit": claim["unit"],
                "value": value.value,
                "low": value.low,
                "high": value.high,
                "detail": value.detail,
                "verdict": verdict(value, claim["holds"]),
                "why": value.missing
                or (basis if claim.get("basis", "energy") == "energy" else OUTPUT_BASIS),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.String(),
            "claim": pl.String(),
            "study": pl.String(),
            "unit": pl.String(),
            "value": pl.Float64(),
            "low": pl.Float64(),
            "high": pl.Float64(),
            "detail": pl.String(),
            "verdict": pl.String(),
            "why": pl.String(),
        },
        orient="row",
    )


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

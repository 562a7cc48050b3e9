"""The study's claims against our numbers: each claim's value here, per model, and a verdict.

Claims are data (config/claims.yaml, checked against config/claims.schema.yaml); each names a
metric, computed here from the aggregated tables in the claim's unit (percentages as %). A
metric gives one value per model (or per model and workload) with its 95% interval, or one
value for all models together (a count, with its exact binomial interval). Each value gets a
level (`level`), the sign settled first:

- `contradicts`: the interval lies wholly outside the range where the claim's statement is
  true (its `direction`);
- `same direction`: it lies wholly inside that range;
- `reproduces`: it lies wholly inside that range and also meets the study's own range;
- `undecided`, with the reason: anything else (the interval spans the claim's boundary; no
  interval, too few tasks);
- `not measurable here`, with the reason: no value at all.

The claim's level over its values follows its `over_models` rule (`weakest`: the weakest
level of any model). On estimated energy an energy claim that would be at least `same
direction` is `same direction (estimated)`; `contradicts` becomes `contradicts (estimated)`;
`undecided` stays. The rule is written once, as a table, in docs/design.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import polars as pl
import yaml

from llmenergy import aggregate, between_runs, datasets, models, stats
from llmenergy.records import BASELINE

REPRODUCES, SAME_DIRECTION, CONTRADICTS = "reproduces", "same direction", "contradicts"
UNDECIDED = "undecided"
UNMEASURABLE = "not measurable here"
ESTIMATED = " (estimated)"
BY_CONSTRUCTION = " (by construction)"
LEVELS = (REPRODUCES, SAME_DIRECTION, UNDECIDED, CONTRADICTS, UNMEASURABLE)
# From the weakest to the strongest support of a claim.
STRENGTH = {CONTRADICTS: 0, UNDECIDED: 1, SAME_DIRECTION: 2, REPRODUCES: 3}
# The suppression claims are judged on the test oracle, the method the study's authors
# describe in their follow-up; these deployable strategies are shown beside it.
JUDGED_STRATEGY = "oracle"
ALTERNATIVES = ("stopwords", "syntax")
GROSS = "gross"
MIN_TASKS = 2

Range = tuple[float | None, float | None]


@dataclass(frozen=True)
class Tables:
    summary: pl.DataFrame
    savings: pl.DataFrame
    babbling: pl.DataFrame
    amplification: pl.DataFrame
    workload_kinds: dict[str, str]  # workload -> humaneval | cu | cu-long | other
    model_kinds: dict[str, str] | None = None  # model -> its source kind
    # workload -> how its tasks were chosen, where a config chose them by a model's outcome
    task_choice: dict[str, str] = field(default_factory=dict)

    def text_models(self) -> list[str] | None:
        """Models whose text means something (not random weights); None: all of them."""
        if self.model_kinds is None:
            return None
        kinds = self.model_kinds.items()
        return [m for m, kind in kinds if not models.SOURCE_KINDS[kind].seeded]


OUTPUT_BASIS = "from the models' outputs and the tasks' tests"
RANDOM_TEXT = "only random-weight models ran: their text is noise, so babbling is not measured"
NO_IDLE = "not known (the meter has no idle power)"


@dataclass(frozen=True)
class Value:
    """One model's value (or all models' together) in the claim's unit, its interval, and the
    same figure above idle where the claim rests on energy (`above_idle`, a point)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    detail: str = ""
    missing: str | None = None  # why it cannot be measured here
    of: str = ""  # the model (and workload) the value is of; "" for all models
    exact: bool = False  # a count, not an estimate: a point needs no interval
    above_idle: float | None = None
    workloads: tuple[str, ...] = ()  # the workloads it rests on
    tasks: int | None = None  # how many tasks it rests on, where the table says
    model: str = ""  # the model it is of; "" for all models
    # An energy claim's value: its interval over tasks alone (`low` and `high` are the one it
    # is judged on) and what that interval says of runs.
    over_tasks: tuple[float | None, float | None] | None = None
    across_runs: between_runs.Term | None = None


def _missing(reason: str) -> list[Value]:
    return [Value(None, missing=reason)]


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _pct_text(row: dict[str, Any], column: str) -> str:
    """A saving as '12.3% [4.5, 20.1]', or 'no energy' where it is null."""
    if row.get(column) is None:
        return "no energy"
    low, high = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    text = f"{100 * row[column]:.1f}%"
    return text + (f" [{100 * low:.1f}, {100 * high:.1f}]" if low is not None else "")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _baseline_rows(tables: Tables, kind: str) -> pl.DataFrame:
    workloads = [w for w, k in tables.workload_kinds.items() if k == kind]
    return tables.summary.filter(
        (pl.col("strategy") == BASELINE)
        & pl.col("workload").is_in(workloads)
        & pl.col("prefill_share").is_not_null()
    ).sort("model", "workload")


def _shares(tables: Tables, kind: str) -> list[Value]:
    rows = _baseline_rows(tables, kind)
    if rows.is_empty():
        return _missing(f"no {kind} workload with measured energy was run")
    return [
        Value(
            _pct(row["prefill_share"]),
            _pct(row.get("prefill_share_lo")),
            _pct(row.get("prefill_share_hi")),
            of=f"{row['model']} on {row['workload']}",
            model=row["model"],
            above_idle=_pct(
                _ratio(row.get("prefill_above_idle_j_mean"), row.get("total_above_idle_j_mean"))
            ),
            workloads=(row["workload"],),
            tasks=row.get("energy_tasks"),
        )
        for row in rows.iter_rows(named=True)
    ]


def prefill_share_humaneval(tables: Tables) -> list[Value]:
    return _shares(tables, "humaneval")


def prefill_share_cu(tables: Tables) -> list[Value]:
    return _shares(tables, "cu")


def amplification_pct(tables: Tables) -> list[Value]:
    rows = tables.amplification.filter(pl.col("amplification_pct").is_not_null()).sort("model")
    if rows.is_empty():
        notes = tables.amplification["note"].drop_nulls().unique().sort().to_list()
        return _missing("; ".join(notes) or "needs workloads of different prompt lengths per model")
    return [_amplification_value(row) for row in rows.iter_rows(named=True)]


def _amplification_value(row: dict[str, Any]) -> Value:
    """One model's amplification: paired in time where its long tasks were decoded between
    short ones (amplification.table's `paired_pct`, with an interval), else the study's
    figure over all tasks of each side."""
    pair = f"{row['long_workload']} against {row['short_workload']}"
    paired = row.get("paired_pct_lo") is not None
    figure = "paired_pct" if paired else "amplification_pct"
    return Value(
        row[figure],
        row[f"{figure}_lo"],
        row[f"{figure}_hi"],
        detail=(
            f"{pair}, paired in time: each of {row['paired_tasks']} long tasks against the "
            f"short tasks decoded beside it (over all tasks: {row['amplification_pct']:.3g}%)"
            if paired
            else pair
        ),
        of=row["model"],
        model=row["model"],
        above_idle=row.get("amplification_above_idle_pct"),
        workloads=(row["short_workload"], row["long_workload"]),
    )


def _humaneval_babbling(tables: Tables) -> pl.DataFrame:
    workloads = [w for w, k in tables.workload_kinds.items() if k == "humaneval"]
    rows = tables.babbling.filter(pl.col("workload").is_in(workloads))
    text_models = tables.text_models()
    return rows if text_models is None else rows.filter(pl.col("model").is_in(text_models))


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial share: every share whose test of
    the count observed does not reject it at 1 - level, two-sided."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes in {trials} trials")
    tail = (1.0 - level) / 2.0

    def at_most(k: int, p: float) -> float:
        return sum(math.comb(trials, i) * p**i * (1 - p) ** (trials - i) for i in range(k + 1))

    def solve(f: Callable[[float], float]) -> float:
        low, high = 0.0, 1.0  # f falls from >= 0 to <= 0 over [0, 1]
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if f(middle) > 0 else (low, middle)
        return (low + high) / 2

    lower = 0.0 if successes == 0 else solve(lambda p: tail - (1 - at_most(successes - 1, p)))
    upper = 1.0 if successes == trials else solve(lambda p: at_most(successes, p) - tail)
    return lower, upper


def babbling_share(tables: Tables) -> list[Value]:
    rows = _humaneval_babbling(tables).filter(pl.col("babbles").is_not_null())
    if rows.is_empty():
        if tables.text_models() == []:
            return _missing(RANDOM_TEXT)
        if not _humaneval_babbling(tables).is_empty():
            return _missing("babbling by the token cap is not measurable with ignore_eos")
        return _missing("no HumanEval workload was run")
    per_model = rows.group_by("model").agg(
        pl.col("babbles").any(), pl.col("babbles_syntax").fill_null(False).any()
    )
    babblers = per_model.filter(pl.col("babbles"))["model"].sort().to_list()
    ours = per_model.filter(pl.col("babbles_syntax"))["model"].sort().to_list()
    low, high = binomial_interval(len(babblers), per_model.height)
    return [
        Value(
            100.0 * len(babblers) / per_model.height,
            100.0 * low,
            100.0 * high,
            detail=f"{len(babblers)} of {per_model.height} run to the token cap: "
            f"{', '.join(babblers) or 'none'}; by our syntax ratio: "
            f"{', '.join(ours) or 'none'}",
            exact=True,
        )
    ]


def _babbling_savings(tables: Tables) -> tuple[pl.DataFrame, str | None]:
    """Savings rows of the models that babble on HumanEval, or why there are none."""
    babblers = _humaneval_babbling(tables).filter(pl.col("babbles").fill_null(False))
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
    return "; ".join(parts)


def _drift_text(row: dict[str, Any]) -> str:
    """What the same prefills say of the strategy's job against the baseline's, where their
    interval leaves out zero: the two jobs ran at different speeds, and a saving measured
    between them carries that (aggregate.PAIRED_STATISTICS, `prefill_j_change`)."""
    low, high = row.get("prefill_j_change_lo"), row.get("prefill_j_change_hi")
    if low is None or high is None or _meets((low, high), (0.0, 0.0)):
        return ""
    return (
        f"the same prefills cost {_pct_text(row, 'prefill_j_change')} in its job against the "
        "baseline's: a drift between the two jobs that this saving carries"
    )


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def energy_saved_babbling(tables: Tables) -> list[Value]:
    rows, missing = _babbling_savings(tables)
    if missing:
        return _missing(missing)
    judged = rows.filter(
        (pl.col("strategy") == JUDGED_STRATEGY) & pl.col("energy_saved").is_not_null()
    ).sort("model", "workload")
    if judged.is_empty():
        return _missing("no measured or estimated energy (replayed outputs)")
    return [
        Value(
            _pct(row["energy_saved"]),
            _pct(row["energy_saved_lo"]),
            _pct(row["energy_saved_hi"]),
            detail=_joined(
                _drift_text(row),
                _alternatives(
                    rows, row["model"], row["workload"], lambda r: _pct_text(r, "energy_saved")
                ),
            ),
            of=f"{row['model']} on {row['workload']}",
            model=row["model"],
            above_idle=_pct(row.get("energy_saved_above_idle")),
            workloads=(row["workload"],),
            tasks=row.get("energy_tasks"),
        )
        for row in judged.iter_rows(named=True)
    ]


def flips(tables: Tables) -> list[Value]:
    rows, missing = _babbling_savings(tables)
    if missing:
        return _missing(missing)
    judged = rows.filter(pl.col("strategy") == JUDGED_STRATEGY)
    pairs = int(judged["flip_pairs"].sum())
    if pairs == 0:
        return _missing("no task was scored pass/fail both with and without the oracle")
    others = rows.filter(pl.col("strategy").is_in(ALTERNATIVES))
    beside = "; ".join(
        f"{r['strategy']}: {r['flips']} of {r['flip_pairs']}"
        for r in others.group_by("strategy")
        .agg(pl.col("flips").sum(), pl.col("flip_pairs").sum())
        .sort("strategy")
        .iter_rows(named=True)
    )
    unscored = int(judged["unscored"].sum())
    return [
        Value(
            float(judged["flips"].sum()),
            detail=f"of {pairs} task(s) scored both ways"
            + (f", {unscored} unscored" if unscored else "")
            + (f"; {beside}" if beside else ""),
            exact=True,
            workloads=tuple(sorted(set(judged["workload"].to_list()))),
        )
    ]


def oracle_overhead(tables: Tables) -> list[Value]:
    """The whole extra energy per decoded token under the oracle: the change of decode
    J/token and the checks' own energy per token, judged as their sum."""
    rows = tables.savings.filter(
        (pl.col("strategy") == JUDGED_STRATEGY) & pl.col("extra_j_per_token").is_not_null()
    ).sort("model", "workload")
    if rows.is_empty():
        return _missing("the oracle strategy was not run with energy")
    values = []
    for row in rows.iter_rows(named=True):
        decode, whole = row["decode_j_per_token_change"], row["extra_j_per_token"]
        checks = None if decode is None else whole - decode
        values.append(
            Value(
                _pct(whole),
                _pct(row["extra_j_per_token_lo"]),
                _pct(row["extra_j_per_token_hi"]),
                detail="decode J/token "
                + ("not known" if decode is None else f"{100 * decode:+.1f}%")
                + ", checks "
                + ("not known" if checks is None else f"{100 * checks:+.1f}%")
                + "; against "
                + (
                    "the same tokens decoded without checks right after, in its job"
                    if row.get("per_token_basis") == aggregate.SAME_TOKENS
                    else "the baseline's job"
                ),
                of=f"{row['model']} on {row['workload']}",
                model=row["model"],
                above_idle=_pct(row.get("extra_j_per_token_above_idle")),
                workloads=(row["workload"],),
                tasks=row.get("energy_tasks"),
            )
        )
    return values


METRICS: dict[str, Callable[[Tables], list[Value]]] = {
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
    """The level of one value and why, where that needs saying: the sign first (inside the
    claim's direction, outside it, or across its boundary), then the study's range."""
    if value.value is None:
        return UNMEASURABLE, value.missing
    if not value.exact and value.tasks is not None and value.tasks < MIN_TASKS:
        # The bootstrap of one task has no width: it says nothing of the spread.
        return UNDECIDED, f"{value.tasks} task(s): too few for an interval"
    if value.low is None or value.high is None:
        if not value.exact:
            return UNDECIDED, "no interval: too few tasks"
        ours: Range = (value.value, value.value)
    else:
        ours = (value.low, value.high)
    if _inside(ours, direction):
        return (REPRODUCES if _meets(ours, study_range) else SAME_DIRECTION), None
    if not _meets(ours, direction):
        return CONTRADICTS, None
    return UNDECIDED, (
        f"the interval [{ours[0]:.3g}, {ours[1]:.3g}] spans the claim's boundary: "
        "more tasks or repetitions would decide"
    )


def combine(levels: Sequence[str], rule: str = "weakest") -> str:
    """The claim's level over its models' levels; models that could not be measured are
    left out (all of them: not measurable)."""
    if rule != "weakest":
        raise ValueError(f"claims: unknown over_models rule {rule!r}")
    known = [lv for lv in levels if lv in STRENGTH]
    return min(known, key=STRENGTH.__getitem__) if known else UNMEASURABLE


def capped(verdict: str, estimated: bool) -> str:
    """On estimated energy a claim can at most point the same way, never reproduce; what is
    undecided or not measurable stays so."""
    if not estimated or verdict in (UNDECIDED, UNMEASURABLE):
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
    "range_low": pl.Float64(),
    "range_high": pl.Float64(),
    "values": pl.Int64(),  # one per model, or per model and workload (the claim's unit)
    "reproduce": pl.Int64(),
    "agree": pl.Int64(),
    "undecided": pl.Int64(),
    "contradict": pl.Int64(),
    "energy": pl.String(),
    "above_idle": pl.String(),
    "study_low": pl.Float64(),
    "study_high": pl.Float64(),
    "detail": pl.String(),
    "per_model": pl.String(),
    "verdict": pl.String(),
    "why": pl.String(),
    "flagged_tasks": pl.Int64(),  # tasks of its workloads whose measurement was flagged
    # The deciding value's interval over this run's tasks alone, the sd over runs its interval
    # above was widened to (null: not widened), and what that interval covers.
    "over_tasks_lo": pl.Float64(),
    "over_tasks_hi": pl.Float64(),
    "between_run_sd": pl.Float64(),
    "between_runs": pl.String(),
}


def _interval_text(value: Value) -> str:
    text = f"{value.value:.1f}"
    if value.low is not None and value.high is not None:
        text += f" [{value.low:.1f}, {value.high:.1f}]"
    return text


def _per_model_text(judged: list[tuple[Value, str]]) -> str:
    return "; ".join(
        f"{v.of}: {_interval_text(v)} {lv}" for v, lv in judged if v.of and v.value is not None
    )


def _above_idle_text(values: list[Value], on_energy: bool, estimated: bool) -> str | None:
    if not on_energy:
        return None
    if estimated and all(v.above_idle is None for v in values):
        return NO_IDLE
    parts = [
        f"{v.of + ': ' if v.of else ''}"
        + ("not known" if v.above_idle is None else f"{v.above_idle:.1f}")
        for v in values
        if v.value is not None
    ]
    return "; ".join(parts) or None


def _task_choice(values: list[Value], tables: Tables) -> str:
    """Where the tasks a claim rests on were chosen by a model's outcome: say so."""
    chosen = sorted({w for v in values for w in v.workloads if w in tables.task_choice})
    return "; ".join(f"tasks of {w} {tables.task_choice[w]}" for w in chosen)


def judge(
    claim: dict[str, Any], values: list[Value], estimated: bool
) -> tuple[dict[str, Any], Value, list[tuple[Value, str]]]:
    """The claim's row fields from its values: each value's level, the counts, the claim's
    level by its rule, and the value that decided it."""
    study_range, direction = _range(claim, "study_range"), _range(claim, "direction")
    on_energy = claim.get("basis", "energy") == "energy"
    judged = []
    for value in values:
        lv, why = level(value, study_range, direction)
        judged.append((replace(value, missing=why), lv))
    verdict = combine([lv for _, lv in judged], claim.get("over_models", "weakest"))
    deciding = next(
        (v for v, lv in judged if lv == verdict),
        judged[0][0] if judged else Value(None),
    )
    measured = [v.value for v, lv in judged if v.value is not None]
    count = {lv: sum(1 for _, x in judged if x == lv) for lv in LEVELS}
    fields = {
        "value": deciding.value,
        "value_lo": deciding.low,
        "value_hi": deciding.high,
        "range_low": min(measured) if measured else None,
        "range_high": max(measured) if measured else None,
        "values": len(measured),
        "reproduce": count[REPRODUCES],
        "agree": count[SAME_DIRECTION],
        "undecided": count[UNDECIDED],
        "contradict": count[CONTRADICTS],
        "energy": GROSS if on_energy else None,
        "verdict": capped(verdict, estimated and on_energy),
        "why": deciding.missing,
    }
    reason = claim.get("by_construction")
    if reason and verdict in (REPRODUCES, SAME_DIRECTION):
        fields["verdict"] += BY_CONSTRUCTION
        fields["why"] = reason
    elif reason and verdict == CONTRADICTS:
        fields["why"] = f"a defect, not a finding: {reason}"
    return fields, deciding, judged


def _energy_sources(summary: pl.DataFrame, value: Value) -> list[str]:
    """The meters of the rows a value rests on (its model's, on its workloads)."""
    rows = summary
    if value.workloads:
        rows = rows.filter(pl.col("workload").is_in(list(value.workloads)))
    if value.model:
        rows = rows.filter(pl.col("model") == value.model)
    return rows["energy_source"].drop_nulls().unique().sort().to_list()


def across_runs(
    claim_id: str,
    values: list[Value],
    summary: pl.DataFrame,
    calibration: between_runs.Calibration | None,
) -> list[Value]:
    """An energy claim's values with the interval each is judged on: over tasks, widened to
    the claim's sd over runs where the calibration applies to it (between_runs.term)."""
    widened = []
    for value in values:
        if value.value is None:
            widened.append(value)
            continue
        term = between_runs.term(
            calibration, claim_id, _energy_sources(summary, value), value.model
        )
        ends = term.widen(stats.Interval(value.value, value.low, value.high))
        widened.append(
            replace(
                value,
                low=ends.low,
                high=ends.high,
                over_tasks=(value.low, value.high),
                across_runs=term,
            )
        )
    return widened


def evaluate(
    claims: list[dict[str, Any]],
    tables: Tables,
    basis: str,
    estimated: bool,
    calibration: between_runs.Calibration | None = None,
) -> pl.DataFrame:
    """One row per claim: the study's value and range, ours (the value that decided the
    verdict, its interval, the range over models and how many models reached each level),
    the verdict and why. `basis` says what energy claims rest on, `estimated` whether that is
    an estimate; output claims rest on the models' outputs. An energy claim's values are
    judged on their interval widened to the claim's sd over runs where `calibration` holds
    one for them (across_runs)."""
    rows = []
    for claim in claims:
        if claim["metric"] not in METRICS:
            raise KeyError(f"claims: {claim['id']} names unknown metric {claim['metric']!r}")
        on_energy = claim.get("basis", "energy") == "energy"
        values = METRICS[claim["metric"]](tables)
        if on_energy:
            values = across_runs(claim["id"], values, tables.summary, calibration)
        fields, deciding, judged = judge(claim, values, estimated)
        study_range = _range(claim, "study_range")
        details = [
            part
            for part in (
                deciding.of,
                deciding.detail,
                _task_choice(values, tables),
            )
            if part
        ]
        flagged = flagged_tasks(tables.summary, values) if on_energy else 0
        rows.append(
            {
                "id": claim["id"],
                "claim": claim["claim"],
                "study": claim["study"],
                "unit": claim["unit"],
                **fields,
                "above_idle": _above_idle_text(values, on_energy, estimated),
                "study_low": study_range[0],
                "study_high": study_range[1],
                "detail": "; ".join(details),
                "per_model": _per_model_text(judged) or None,
                "why": "; ".join(
                    p
                    for p in (
                        fields["why"],
                        (f"{basis}, {GROSS}") if on_energy else OUTPUT_BASIS,
                        FLAGGED.format(flagged) if flagged else None,
                    )
                    if p
                ),
                "flagged_tasks": flagged,
                **_runs_fields(deciding),
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def _runs_fields(deciding: Value) -> dict[str, Any]:
    """The deciding value's interval over tasks alone, and what its interval covers."""
    term = deciding.across_runs
    low, high = deciding.over_tasks or (deciding.low, deciding.high)
    text = None if term is None else term.text
    if text and term.sd is not None and low is not None and high is not None:
        text = f"[{low:.3g}, {high:.3g}] over this run's tasks, {text}"
    return {
        "over_tasks_lo": low,
        "over_tasks_hi": high,
        "between_run_sd": None if term is None else term.sd,
        "between_runs": text,
    }


FLAGGED = (
    "rests on {} task(s) whose measurement was flagged (contended, or a power outside its "
    "device's bounds: the report's measurement conditions)"
)


def flagged_tasks(summary: pl.DataFrame, values: list[Value]) -> int:
    """Flagged tasks in the runs of the workloads a claim's values rest on (all runs where
    they name none)."""
    if "flagged_tasks" not in summary.columns:
        return 0
    workloads = {w for value in values for w in value.workloads}
    rows = summary.filter(pl.col("workload").is_in(sorted(workloads))) if workloads else summary
    return int(rows["flagged_tasks"].sum())


def load(path: str | Path, schema: str | Path | None = None) -> list[dict[str, Any]]:
    """The claims of a claims file, checked against its schema (claims.schema.yaml beside
    it), so a typo stops the run before the first job; the error names the claim and key."""
    path = Path(path)
    schema_path = Path(schema) if schema else path.with_name("claims.schema.yaml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(document, yaml.safe_load(schema_path.read_text(encoding="utf-8")))
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path)
        if len(error.absolute_path) >= 2 and isinstance(document, dict):
            entry = document["claims"][error.absolute_path[1]]
            where += f" (claim {entry.get('id', '?')})" if isinstance(entry, dict) else ""
        raise ValueError(f"{path}: {where or 'top'}: {error.message}") from None
    unknown = sorted({c["metric"] for c in document["claims"]} - set(METRICS))
    if unknown:
        raise ValueError(f"{path}: metric(s) {', '.join(unknown)} not in llmenergy.claims")
    return document["claims"]


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
    known = datasets.FORMATS.get(dataset_format)
    if known is None:
        return "other"
    if known.study_kind == "cu":
        return "cu" if spec["max_new_tokens"] <= 16 else "cu-long"
    return known.study_kind


def task_choice(workloads: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each workload whose task ids a config chose by what a model did on them, and how."""
    return {
        name: f"chosen by a model's outcome ({spec['selected_by']})"
        for name, spec in workloads.items()
        if spec.get("selected_by")
    }

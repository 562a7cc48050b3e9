"""What varies between runs: each energy claim's standard deviation over repeated runs of a
configuration on one machine, which a run's interval over its tasks cannot see.

All of a run's tasks share the machine's state: how fast a virtual machine runs, what else a
laptop or a GPU node is doing, its clocks. That state moves a claim's value from run to run
(docs/design.md, "Between runs"). The config's `between_runs` section holds each claim's sd
over runs (`stats.between_run_sd`, which `benchmarks/verdicts_twice.py` prints for the runs it
compares), with the meter, the models and the machine it was measured on. A claim's values on
that meter and those models are judged on their interval widened to it (`stats.widened`); any
other value keeps its interval over tasks, and the claims table says which each is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmenergy import stats

APPLIED = "widened to the sd of its value over runs, {sd:.3g} ({runs} runs: {measured_on})"
NOT_CALIBRATED = "over this run's tasks only: no sd over runs is known for {what}"


@dataclass(frozen=True)
class Calibration:
    """Each claim's standard deviation over runs (claim id -> sd, in the claim's unit),
    estimated from `runs` runs on one meter (a records' `energy_source`) and `models`, on the
    machine `measured_on` describes."""

    energy_source: str
    models: tuple[str, ...]
    runs: int
    measured_on: str
    sd: Mapping[str, float]


@dataclass(frozen=True)
class Term:
    """What a claim's interval says of the runs: the sd over runs it is widened to and how
    many runs that sd rests on (None, 0: not widened), and the words for the report."""

    sd: float | None
    text: str
    runs: int = 0

    def widen(self, interval: stats.Interval) -> stats.Interval:
        """The interval a value is judged on: over tasks, widened where an sd applies."""
        return interval if self.sd is None else stats.widened(interval, self.sd, self.runs)


def from_config(section: Mapping[str, Any] | None) -> Calibration | None:
    """The config's `between_runs` section (checked by the config schema), or None."""
    if not section:
        return None
    return Calibration(
        energy_source=section["energy_source"],
        models=tuple(section["models"]),
        runs=int(section["runs"]),
        measured_on=section["measured_on"],
        sd={claim: float(sd) for claim, sd in section["sd"].items()},
    )


def check_claims(calibration: Calibration | None, claim_ids: Iterable[str]) -> None:
    """Stop before any job runs where the section names a claim the claims file lacks."""
    if calibration is None:
        return
    unknown = sorted(set(calibration.sd) - set(claim_ids))
    if unknown:
        raise ValueError(
            f"config between_runs.sd: {', '.join(unknown)} not a claim of config/claims.yaml"
        )


def term(
    calibration: Calibration | None, claim_id: str, sources: Iterable[str], model: str
) -> Term:
    """The sd that applies to one value of a claim: the calibration's, where the value rests
    on the very meter and model it was estimated on; otherwise none, and why."""
    sources = sorted(set(sources))
    if calibration is None:
        return Term(None, NOT_CALIBRATED.format(what="this configuration"))
    if sources != [calibration.energy_source]:
        meters = ", ".join(sources) or "no meter"
        what = f"energy from {meters} (known for {calibration.energy_source})"
        return Term(None, NOT_CALIBRATED.format(what=what))
    if model not in calibration.models:
        return Term(None, NOT_CALIBRATED.format(what=f"model {model or 'all models'}"))
    if claim_id not in calibration.sd:
        return Term(None, NOT_CALIBRATED.format(what=f"claim {claim_id}"))
    sd = calibration.sd[claim_id]
    words = APPLIED.format(sd=sd, runs=calibration.runs, measured_on=calibration.measured_on)
    return Term(sd, words, calibration.runs)


def calibrate(runs: Mapping[str, Sequence[float | None]]) -> dict[str, float | None]:
    """Each claim's sd over several runs (claim id -> its value in each run): the figures a
    config's `between_runs.sd` takes."""
    return {claim: stats.between_run_sd(values) for claim, values in runs.items()}

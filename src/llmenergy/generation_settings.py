"""What one generation job is asked to do, from its config: how prompts are rendered and cut,
how many tokens it may decode, and how far the meter may repeat work to fill its windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmenergy.conditions import Bounds


@dataclass(frozen=True)
class GenerationSettings:
    """A run's settings beside its model, tasks, meter and strategy.

    `prompt_budget` cuts a prompt's middle to that many tokens (workloads.prompt_and_ids).
    With `ignore_eos`, every task decodes exactly `max_new_tokens` (unless a stopper cuts).
    `idle_seconds` of the metered device at rest are measured before the first task (not the
    estimate's). The oracle's checks cost their CPU time x `check_watts_per_core` where RAPL
    cannot read the packages (an estimate; null without a power figure). `bounds` say when
    a window counts as contended and a mean power as implausible (conditions.Bounds). A job of
    a strategy in `same_tokens_control` decodes each task's kept tokens again without it, right
    after it (generation.same_tokens_control).
    """

    prompt_style: str
    max_new_tokens: int
    prompt_budget: int | None = None
    ignore_eos: bool = False
    max_prefill_repeats: int = 64
    max_task_repeats: int = 64
    idle_seconds: float = 0.0
    check_watts_per_core: float | None = None
    bounds: Bounds = field(default_factory=Bounds)
    same_tokens_control: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        model: dict[str, Any],
        max_new_tokens: int,
        prompt_budget: int | None,
        ignore_eos: bool,
        energy: dict[str, Any],
    ) -> GenerationSettings:
        """The settings of a job of `model` (its config entry) under the config's `energy`."""
        return cls(
            prompt_style=model["prompt_style"],
            max_new_tokens=max_new_tokens,
            prompt_budget=prompt_budget,
            ignore_eos=ignore_eos,
            max_prefill_repeats=energy["max_prefill_repeats"],
            max_task_repeats=energy["max_task_repeats"],
            idle_seconds=float(energy["idle_seconds"]),
            check_watts_per_core=energy["watts_per_core"],
            bounds=Bounds.of(energy.get("conditions", {})),
            same_tokens_control=frozenset(energy.get("same_tokens_control", ())),
        )

"""The `none` strategy, the baseline: no stopper; decoding ends at EOS or the token cap."""

from __future__ import annotations

from llmenergy.stopping.base import BASELINE, Stopper, StopTask, Strategy, register


def make(task: StopTask) -> Stopper | None:
    return None


STRATEGY = register(Strategy(BASELINE, make, summary="decode to EOS or max_new_tokens"))

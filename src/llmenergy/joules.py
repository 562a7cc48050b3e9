"""The energy of one window: the metered device's (the accelerator's) and the host's beside it.

The two figures travel together through every reading, phase and record, and are divided,
subtracted and nulled together; a figure that was not read (None) stays None through all of it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Joules:
    """Energy (J) of one window: the accelerator's, and the host's beside it (None: not read)."""

    accelerator: float | None
    host: float | None = None

    def __truediv__(self, n: float) -> Joules:
        """Per part, as a window's energy per pass where it held `n` passes."""
        return Joules(_div(self.accelerator, n), _div(self.host, n))

    def __sub__(self, other: Joules) -> Joules:
        return Joules(_sub(self.accelerator, other.accelerator), _sub(self.host, other.host))


# Neither figure: what a window too short for its meter resolves.
NONE = Joules(None, None)


def _div(joules: float | None, n: float) -> float | None:
    return None if joules is None else joules / n


def _sub(joules: float | None, less: float | None) -> float | None:
    return None if joules is None or less is None else joules - less

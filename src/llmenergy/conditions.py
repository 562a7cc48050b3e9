"""What else the machine was doing while a metered window was open, and whether a reading
is plausible.

Every window reads, at its edges, the CPU time other processes took (from `/proc/stat`, less
this process's own) and the CPUs' clock; on a GPU also NVML's other processes on the metered
GPUs, utilisation, temperature, SM clock and power limit; on RAPL packages their power limit.
A window is *contended* when other processes kept more cores busy than the job leaves free by
more than `max_other_cores`, or ran on its GPU (`max_gpu_processes`); the decoding loop
measures such a task again, up to `max_remeasures` times, and flags it where it stays
contended. A measured window whose mean power lies below the device's idle power (less
`below_idle_margin`) or above its power limit (plus `above_limit_margin`) is flagged: it
cannot be what the device drew for that work. Each bound is a key of the config's
`energy.conditions` (docs/configuration.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol

CONTENDED = "contended"
POWER_BELOW_IDLE = "power-below-idle"
POWER_ABOVE_LIMIT = "power-above-limit"
FLAGS = (CONTENDED, POWER_BELOW_IDLE, POWER_ABOVE_LIMIT)


@dataclass(frozen=True)
class Conditions:
    """What one window (or, merged, one task's windows) ran beside; None where not read.

    `other_cores`: the mean number of CPU cores other processes kept busy over `window_s`, the
    windows' time. `gpu_other_processes`: the most processes other than this one seen on the
    metered GPUs at an edge. The GPU's state (`gpu_*`), the CPUs' clock and the metered
    device's power limit (the GPUs' or the RAPL packages', summed) are read at the window's
    end."""

    other_cores: float | None = None
    window_s: float = 0.0
    cpu_mhz: float | None = None
    gpu_other_processes: int | None = None
    gpu_utilization_pct: float | None = None
    gpu_temperature_c: float | None = None
    gpu_sm_mhz: float | None = None
    power_limit_w: float | None = None

    def then(self, later: Conditions) -> Conditions:
        """These windows and a later one: other processes' cores over both windows' time, the
        most processes on the GPU at any edge, the later state."""
        window_s = self.window_s + later.window_s
        other_cores = _most(self.other_cores, later.other_cores)
        if self.other_cores is not None and later.other_cores is not None and window_s > 0:
            other_cpu_s = self.other_cores * self.window_s + later.other_cores * later.window_s
            other_cores = other_cpu_s / window_s
        return replace(
            later,
            other_cores=other_cores,
            window_s=window_s,
            gpu_other_processes=_most(self.gpu_other_processes, later.gpu_other_processes),
        )

    def columns(self) -> dict[str, Any]:
        """The record's columns (records.GENERATION_SCHEMA): all but the windows' time."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "window_s"}


UNREAD = Conditions()


# /proc/stat counts in scheduler ticks (10 ms), each CPU's rounded at each edge: over windows
# shorter than this, other processes' cores read too coarsely (±0.08 cores at 0.5 s on 2 CPUs)
# to call a window contended.
JUDGED_S = 0.5


def _most(a: Any, b: Any) -> Any:
    present = [value for value in (a, b) if value is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class Bounds:
    """When a window counts as contended, how often a contended task is measured again, and
    which mean powers are implausible (`energy.conditions`)."""

    max_other_cores: float = 0.25
    max_gpu_processes: int = 0
    max_remeasures: int = 1
    below_idle_margin: float = 0.1
    above_limit_margin: float = 0.05

    @classmethod
    def of(cls, config: dict[str, Any]) -> Bounds:
        """From the config's `energy.conditions` (absent keys take their defaults)."""
        return cls(**(config or {}))

    def contended(self, conditions: Conditions, free_cores: float) -> bool:
        """Whether other processes took more than the `free_cores` the job leaves them (plus
        `max_other_cores`) over windows long enough to tell (`JUDGED_S`), or ran on the
        metered GPUs."""
        cpu = conditions.other_cores if conditions.window_s >= JUDGED_S else None
        gpu = conditions.gpu_other_processes
        return (cpu is not None and cpu > free_cores + self.max_other_cores) or (
            gpu is not None and gpu > self.max_gpu_processes
        )

    def power_flags(self, mean_w: float | None, idle_w: float | None, limit_w: float | None):
        """Flags for a measured window's mean power against the device's idle and limit."""
        if mean_w is None:
            return []
        flags = []
        if idle_w is not None and mean_w < idle_w * (1 - self.below_idle_margin):
            flags.append(POWER_BELOW_IDLE)
        if limit_w is not None and mean_w > limit_w * (1 + self.above_limit_margin):
            flags.append(POWER_ABOVE_LIMIT)
        return flags


def busy_seconds(stat: str, cpus: Collection[int]) -> float:
    """CPU seconds the `cpus` have spent busy, from /proc/stat's text: their lines' all but
    idle and iowait."""
    busy = 0
    for line in stat.splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            ticks = [int(value) for value in values[:7]]
            busy += sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def job_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity: a Slurm job's or a container's cpuset,
    not the whole node), where its model and its checks compete with other processes."""
    return frozenset(os.sched_getaffinity(0))


def job_cores() -> int:
    return len(job_cpus())


def cpu_mhz() -> float | None:
    """The CPUs' mean current clock (cpufreq, else /proc/cpuinfo); None where neither says."""
    found = [
        int(path.read_text()) / 1000
        for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")
    ]
    if not found:
        info = Path("/proc/cpuinfo")
        lines = info.read_text().splitlines() if info.exists() else []
        found = [float(line.split(":")[1]) for line in lines if line.startswith("cpu MHz")]
    return sum(found) / len(found) if found else None


class Probe(Protocol):
    """Reads a window's conditions: `begin()` at its start, `end(started)` at its end."""

    def begin(self) -> Any: ...

    def end(self, started: Any) -> Conditions: ...


class CpuProbe:
    """Other processes' CPU time over the window: the busy time of the job's CPUs
    (`job_cpus`) less this process's own (its threads; its children, such as the oracle's
    checks, count as others: they contend for the same cores). Other jobs on the node's
    other CPUs take nothing from this one."""

    def __init__(self, own_cpu_s: Callable[[], float] = time.process_time) -> None:
        self._own = own_cpu_s
        self._cpus = job_cpus()

    def _busy(self) -> float:
        return busy_seconds(Path("/proc/stat").read_text(), self._cpus)

    def begin(self) -> tuple[float, float, float]:
        return self._busy(), self._own(), time.perf_counter()

    def end(self, started: tuple[float, float, float]) -> Conditions:
        busy0, own0, wall0 = started
        busy = self._busy()
        wall = max(time.perf_counter() - wall0, 1e-9)
        # /proc/stat counts in scheduler ticks: a window of a few ticks reads coarsely.
        others = max(0.0, (busy - busy0) - (self._own() - own0))
        return Conditions(other_cores=others / wall, window_s=wall, cpu_mhz=cpu_mhz())


class GpuProbe:
    """The CPU's conditions and NVML's view of the metered GPUs (`gpus.device_state`)."""

    def __init__(self, nvml_indices: Sequence[int], own_on_device: bool) -> None:
        self._indices = tuple(nvml_indices)
        self._own_on_device = own_on_device
        self._cpu = CpuProbe()

    def _states(self) -> list[Any]:
        from llmenergy import gpus

        return [gpus.device_state(index, self._own_on_device) for index in self._indices]

    def begin(self) -> tuple[Any, list[Any]]:
        return self._cpu.begin(), self._states()

    def end(self, started: tuple[Any, list[Any]]) -> Conditions:
        cpu_started, before = started
        after = self._states()
        others = [s.other_processes for s in [*before, *after] if s.other_processes is not None]
        return replace(
            self._cpu.end(cpu_started),
            gpu_other_processes=max(others) if others else None,
            gpu_utilization_pct=_total([s.utilization_pct for s in after], max),
            gpu_temperature_c=_total([s.temperature_c for s in after], max),
            gpu_sm_mhz=_total([s.sm_mhz for s in after], min),
            power_limit_w=_total([s.power_limit_w for s in after], sum),
        )


def package_power_limit_w(zone: Path) -> float | None:
    """The most a RAPL package zone lets its package draw over any window: the highest of its
    constraints' power limits (long term, short term, peak where stated), since a window
    shorter than the long-term limit's time window may run above it. None where the zone
    states no limit (or zero, which means none is set)."""
    limits = []
    for path in zone.glob("constraint_*_power_limit_uw"):
        try:
            microwatts = int(path.read_text())
        except (OSError, ValueError):
            continue  # unreadable: this limit tells nothing
        if microwatts > 0:
            limits.append(microwatts / 1e6)
    return max(limits) if limits else None


class PackageProbe:
    """The CPU's conditions and the metered RAPL packages' power limit, summed, at the
    window's end (a limit can be changed while a job runs). `zones`: each package's powercap
    folder, None where its limit cannot be read (a package read through a daemon)."""

    def __init__(self, zones: Sequence[Path | None]) -> None:
        self._zones = tuple(zones)
        self._cpu = CpuProbe()

    def begin(self) -> tuple[float, float, float]:
        return self._cpu.begin()

    def end(self, started: tuple[float, float, float]) -> Conditions:
        limits = [None if zone is None else package_power_limit_w(zone) for zone in self._zones]
        return replace(self._cpu.end(started), power_limit_w=_total(limits, sum))


def _total(values: list[Any], combine: Callable[[list[float]], float]) -> float | None:
    """Several devices' values as one (the hottest, the slowest clock, the limits' sum); None
    where one is unread."""
    return None if not values or None in values else float(combine(values))

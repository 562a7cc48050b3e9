"""Energy meters with named windows: `begin(name)` then `end(name) -> Reading`.

Backends:
- `zeus`: Zeus's ZeusMonitor over the counters that exist here: NVML total energy per GPU and
  RAPL package (+ DRAM) per CPU socket. Only indices that exist are passed (Zeus raises on
  others). On GPUs a Zeus PowerMonitor can also keep a power timeline, from which the energy
  of each decoded token is integrated.
- `estimate`: no counter exists (laptops in containers, CI). Energy is modelled as the
  process's CPU time x a configured power per busy core. It is an estimate, labelled as one.

`open_meter(config)` picks a backend: `auto` takes Zeus when a counter exists and the estimate
otherwise; `zeus` fails clearly when no counter exists; `estimate` always estimates.

A counter cannot resolve a window much shorter than its update period: every meter says how
long a window must be (`min_window_s`); the decoding loop repeats prefill until its window is
that long, and reports a shorter decode window's energy as null with a flag.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ESTIMATE_SOURCE = "estimate:cpu-time"
# Shortest window each kind of meter resolves, unless the config says otherwise: NVML's energy
# counter updates every ~10-100 ms depending on the GPU, RAPL's every ~1 ms; CPU-time
# accounting is exact to the scheduler tick or better.
DEFAULT_MIN_WINDOW_S = {"gpu": 0.1, "cpu": 0.05, "estimate": 0.01}


class EnergyUnavailableError(RuntimeError):
    """Raised when a measured backend is requested but no energy counter exists."""


@dataclass(frozen=True)
class Reading:
    """Energy and time of one window. `energy_j` is None when it could not be measured.

    `start` and `end` are wall-clock times (time.time()), to align with power timelines.
    """

    name: str
    seconds: float
    energy_j: float | None
    source: str
    start: float = 0.0
    end: float = 0.0


class Meter(Protocol):
    source: str
    min_window_s: float

    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> Reading: ...

    def interval_energies(self, intervals: Sequence[tuple[float, float]]) -> list[float | None]:
        """Energy of each (start, end) wall-clock interval, or None where no timeline exists."""
        ...


class EstimateMeter:
    """Energy estimated as process CPU seconds x watts per busy core (a model, not a reading)."""

    source = ESTIMATE_SOURCE

    def __init__(
        self, watts_per_core: float, min_window_s: float = DEFAULT_MIN_WINDOW_S["estimate"]
    ) -> None:
        if watts_per_core <= 0:
            raise ValueError(f"energy.watts_per_core must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self.min_window_s = min_window_s
        self._open: dict[str, tuple[float, float, float]] = {}

    def begin(self, name: str) -> None:
        self._open[name] = (time.time(), time.perf_counter(), time.process_time())

    def end(self, name: str) -> Reading:
        start, wall0, cpu0 = self._open.pop(name)
        cpu_s = time.process_time() - cpu0
        return Reading(
            name=name,
            seconds=time.perf_counter() - wall0,
            energy_j=cpu_s * self.watts_per_core,
            source=self.source,
            start=start,
            end=time.time(),
        )

    def interval_energies(self, intervals: Sequence[tuple[float, float]]) -> list[float | None]:
        return [None] * len(intervals)  # no timeline: per-token energy is not estimated


@dataclass(frozen=True)
class Counters:
    """Which energy counters Zeus can read on this machine."""

    gpu_indices: tuple[int, ...]
    cpu_indices: tuple[int, ...]

    @property
    def any(self) -> bool:
        return bool(self.gpu_indices or self.cpu_indices)


def available_counters() -> Counters:
    """Probe NVML and RAPL through Zeus; return the indices that exist."""
    from zeus.device.cpu import rapl
    from zeus.device.gpu import nvml_is_available

    gpus: tuple[int, ...] = ()
    if nvml_is_available():
        from zeus.device import get_gpus

        gpus = tuple(range(len(get_gpus())))
    cpus: tuple[int, ...] = ()
    if rapl.rapl_is_available():
        from zeus.device import get_cpus

        cpus = tuple(range(len(get_cpus())))
    return Counters(gpu_indices=gpus, cpu_indices=cpus)


def zeus_source(counters: Counters, dram: bool) -> str:
    """The label of what a Zeus reading covers, e.g. `zeus:gpu` or `zeus:cpu+dram`."""
    parts = []
    if counters.gpu_indices:
        parts.append("gpu")
    if counters.cpu_indices:
        parts.append("cpu+dram" if dram else "cpu")
    return "zeus:" + "+".join(parts)


def integrate_power(timeline: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Energy (J) over [start, end] of a power timeline [(time, watts)], trapezoidal, with
    the power at the edges interpolated linearly (held constant outside the samples)."""
    if end < start:
        raise ValueError(f"interval ends before it starts: {start} > {end}")
    if not timeline:
        raise ValueError("empty power timeline")
    times = [t for t, _ in timeline]

    def power_at(moment: float) -> float:
        i = bisect.bisect_left(times, moment)
        if i == 0:
            return timeline[0][1]
        if i == len(times):
            return timeline[-1][1]
        (t0, p0), (t1, p1) = timeline[i - 1], timeline[i]
        return p0 + (p1 - p0) * (moment - t0) / (t1 - t0) if t1 > t0 else p1

    inside = [(t, p) for t, p in timeline if start < t < end]
    points = [(start, power_at(start)), *inside, (end, power_at(end))]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(points))


class ZeusMeter:
    """Named windows over Zeus's monitor; energy is the sum over every counter it reads."""

    def __init__(
        self,
        counters: Counters,
        min_window_s: float | None = None,
        power_timeline: bool = False,
    ) -> None:
        if not counters.any:
            raise EnergyUnavailableError(
                "energy.backend is 'zeus' but neither NVML (GPU) nor RAPL (CPU) counters exist "
                "on this machine; use backend 'auto' or 'estimate'"
            )
        from zeus.monitor import ZeusMonitor

        self.counters = counters
        if min_window_s is None:
            min_window_s = DEFAULT_MIN_WINDOW_S["gpu" if counters.gpu_indices else "cpu"]
        self.min_window_s = min_window_s
        self._monitor = ZeusMonitor(
            gpu_indices=list(counters.gpu_indices),
            cpu_indices=list(counters.cpu_indices),
        )
        self._power = None
        if power_timeline and counters.gpu_indices:
            from zeus.monitor.power import PowerMonitor

            self._power = PowerMonitor(
                gpu_indices=list(counters.gpu_indices), max_samples_per_gpu=200_000
            )
        self.source = zeus_source(counters, dram=False)
        self._starts: dict[str, float] = {}

    def begin(self, name: str) -> None:
        self._monitor.begin_window(name, sync_execution=bool(self.counters.gpu_indices))
        self._starts[name] = time.time()

    def end(self, name: str) -> Reading:
        measurement = self._monitor.end_window(name, sync_execution=bool(self.counters.gpu_indices))
        end = time.time()
        parts: list[float] = list(measurement.gpu_energy.values())
        parts += list((measurement.cpu_energy or {}).values())
        dram = list((measurement.dram_energy or {}).values())
        self.source = zeus_source(self.counters, dram=bool(dram))
        return Reading(
            name=name,
            seconds=float(measurement.time),
            energy_j=float(sum(parts) + sum(dram)) if parts else None,
            source=self.source,
            start=self._starts.pop(name),
            end=end,
        )

    def interval_energies(self, intervals: Sequence[tuple[float, float]]) -> list[float | None]:
        """GPU energy of each interval from the power timeline (None without one)."""
        if self._power is None or not intervals:
            return [None] * len(intervals)
        margin = 1.0  # seconds of samples either side, for interpolation at the edges
        timelines = self._power.get_all_power_timelines(
            start_time=min(start for start, _ in intervals) - margin,
            end_time=max(end for _, end in intervals) + margin,
        )
        domain = "device_instant" if "device_instant" in timelines else "device_average"
        per_gpu = timelines.get(domain, {})
        if not per_gpu or any(len(line) < 2 for line in per_gpu.values()):
            return [None] * len(intervals)
        return [
            sum(integrate_power(line, start, end) for line in per_gpu.values())
            for start, end in intervals
        ]


def open_meter(config: dict[str, Any]) -> Meter:
    """Open the meter that `config` (the `energy` section) asks for."""
    backend = config.get("backend", "auto")
    min_window_s = config.get("min_window_s")
    estimate_window = float(min_window_s or DEFAULT_MIN_WINDOW_S["estimate"])
    if backend == "estimate":
        return EstimateMeter(float(config["watts_per_core"]), estimate_window)
    if backend not in ("auto", "zeus"):
        raise ValueError(f"energy.backend must be auto, zeus or estimate, got {backend!r}")
    counters = available_counters()
    if backend == "auto" and not counters.any:
        return EstimateMeter(float(config["watts_per_core"]), estimate_window)
    return ZeusMeter(counters, min_window_s, bool(config.get("power_timeline", True)))


def measure_idle(meter: Meter, seconds: float) -> Reading:
    """Measure the machine (or, for the estimate, this process) while it does nothing."""
    meter.begin("idle")
    time.sleep(seconds)
    return meter.end("idle")


def gpu_state() -> list[dict[str, Any]]:
    """Name, driver, clocks, temperature and power limit of each GPU (empty without NVML)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no NVML: nothing to describe
        return []
    states = []
    driver = pynvml.nvmlSystemGetDriverVersion()
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        states.append(
            {
                "index": index,
                "name": pynvml.nvmlDeviceGetName(handle),
                "driver": driver,
                "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
                "memory_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
                "temperature_c": pynvml.nvmlDeviceGetTemperature(
                    handle, pynvml.NVML_TEMPERATURE_GPU
                ),
                "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000,
            }
        )
    return states

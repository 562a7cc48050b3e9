"""Energy meters with named windows: `begin(name)` then `end(name) -> Reading`.

Backends:
- `zeus`: Zeus's ZeusMonitor over the counters that exist here: NVML total energy per GPU and
  RAPL package (+ DRAM) per CPU socket. Only indices that exist are passed (Zeus raises on
  others).
- `estimate`: no counter exists (most laptops in containers, CI). Energy is modelled as the
  process's CPU time x a configured power per busy core. It is an estimate, labelled as one.

`open_meter(config)` picks a backend: `auto` takes Zeus when a counter exists and the estimate
otherwise; `zeus` fails clearly when no counter exists; `estimate` always estimates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

ESTIMATE_SOURCE = "estimate:cpu-time"


class EnergyUnavailableError(RuntimeError):
    """Raised when a measured backend is requested but no energy counter exists."""


@dataclass(frozen=True)
class Reading:
    """Energy and time of one window. `energy_j` is None when it could not be measured."""

    name: str
    seconds: float
    energy_j: float | None
    source: str


class Meter(Protocol):
    source: str

    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> Reading: ...


class EstimateMeter:
    """Energy estimated as process CPU seconds x watts per busy core (a model, not a reading)."""

    source = ESTIMATE_SOURCE

    def __init__(self, watts_per_core: float) -> None:
        if watts_per_core <= 0:
            raise ValueError(f"energy.watts_per_core must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self._open: dict[str, tuple[float, float]] = {}

    def begin(self, name: str) -> None:
        self._open[name] = (time.perf_counter(), time.process_time())

    def end(self, name: str) -> Reading:
        wall0, cpu0 = self._open.pop(name)
        cpu_s = time.process_time() - cpu0
        return Reading(
            name=name,
            seconds=time.perf_counter() - wall0,
            energy_j=cpu_s * self.watts_per_core,
            source=self.source,
        )


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


class ZeusMeter:
    """Named windows over Zeus's monitor; energy is the sum over every counter it reads."""

    def __init__(self, counters: Counters) -> None:
        if not counters.any:
            raise EnergyUnavailableError(
                "energy.backend is 'zeus' but neither NVML (GPU) nor RAPL (CPU) counters exist "
                "on this machine; use backend 'auto' or 'estimate'"
            )
        from zeus.monitor import ZeusMonitor

        self.counters = counters
        self._monitor = ZeusMonitor(
            gpu_indices=list(counters.gpu_indices),
            cpu_indices=list(counters.cpu_indices),
        )
        self.source = zeus_source(counters, dram=False)

    def begin(self, name: str) -> None:
        self._monitor.begin_window(name, sync_execution=bool(self.counters.gpu_indices))

    def end(self, name: str) -> Reading:
        measurement = self._monitor.end_window(name, sync_execution=bool(self.counters.gpu_indices))
        parts: list[float] = list(measurement.gpu_energy.values())
        parts += list((measurement.cpu_energy or {}).values())
        dram = list((measurement.dram_energy or {}).values())
        source = zeus_source(self.counters, dram=bool(dram))
        self.source = source
        return Reading(
            name=name,
            seconds=float(measurement.time),
            energy_j=float(sum(parts) + sum(dram)) if parts else None,
            source=source,
        )


def open_meter(config: dict[str, Any]) -> Meter:
    """Open the meter that `config` (the `energy` section) asks for."""
    backend = config.get("backend", "auto")
    if backend == "estimate":
        return EstimateMeter(float(config["watts_per_core"]))
    counters = available_counters()
    if backend == "zeus":
        return ZeusMeter(counters)
    if backend == "auto":
        if counters.any:
            return ZeusMeter(counters)
        return EstimateMeter(float(config["watts_per_core"]))
    raise ValueError(f"energy.backend must be auto, zeus or estimate, got {backend!r}")


def measure_idle(meter: Meter, seconds: float) -> Reading:
    """Measure the machine (or, for the estimate, this process) while it does nothing."""
    meter.begin("idle")
    time.sleep(seconds)
    return meter.end("idle")

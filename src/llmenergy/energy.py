"""Energy meters with named windows: `begin(name)` then `end(name) -> Reading`.

What is metered is the device that runs the model (its *accelerator*), and nothing else:
- a model on `cuda:N` is metered on GPU N alone (NVML's energy counter through Zeus, indices
  counted after `CUDA_VISIBLE_DEVICES` as torch counts them); `energy.gpus` names others;
- a model on the CPU is metered on the CPU packages (RAPL through Zeus) where RAPL is readable;
- otherwise energy is estimated: the process's CPU time x a configured power per busy core,
  labelled as an estimate everywhere (`measured` is false).

The host (RAPL package and DRAM beside a GPU accelerator, DRAM beside a CPU-package one) is read
into its own figure, `host_energy_j`, never added to the accelerator's. A host that cannot be
read leaves that figure null and the accelerator reading untouched.

A counter cannot resolve a window much shorter than its update period: every meter says how
long a window must be (`min_window_s`, 1 s on NVML: ten updates of its ~100 ms counter), and the
decoding loop repeats work until its window is that long.

On GPUs a Zeus PowerMonitor keeps a power timeline, polled every `power_update_period_s`, from
which each token's energy is integrated with the last sample held until the next (Zeus keeps a
sample only when the value changes). Only the instantaneous power field can carry per-token
energy: where a GPU offers only NVML's one-second average, per-token energy is null and flagged.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

ESTIMATE_SOURCE = "estimate:cpu-time"
# Shortest window each kind of meter resolves, unless the config says otherwise: ten updates of
# NVML's ~100 ms energy counter; RAPL updates every ~1 ms; CPU-time accounting is exact to the
# scheduler tick or better.
DEFAULT_MIN_WINDOW_S = {"gpu": 1.0, "cpu": 0.05, "estimate": 0.01}
DEFAULT_POWER_UPDATE_PERIOD_S = 0.1
# Why a token's energy is null although its GPU is metered.
PER_TOKEN_AVERAGE_ONLY = "per-token-average-only"


class EnergyUnavailableError(RuntimeError):
    """Raised when a measured backend is requested but no energy counter exists."""


@dataclass(frozen=True)
class Reading:
    """Energy and time of one window. `energy_j` is None when it could not be measured.

    `energy_j` is the accelerator's (`device`); `host_energy_j` the host's beside it, or None.
    `start` and `end` are wall-clock times (time.time()), to align with power timelines.
    """

    name: str
    seconds: float
    energy_j: float | None
    source: str
    start: float = 0.0
    end: float = 0.0
    measured: bool = False
    device: str = "estimate"
    host_energy_j: float | None = None


class Meter(Protocol):
    source: str  # how energy is known: "zeus:nvml", "zeus:rapl", "estimate:cpu-time"
    device: str  # what it covers: "gpu:1 NVIDIA H100 80GB HBM3", "cpu-package", "estimate"
    measured: bool  # read from a counter (not a model)
    covers_cpu: bool  # the accelerator figure includes the CPU packages (and so the checks)
    host_source: str | None  # how host energy is known, None where it is not read
    min_window_s: float
    per_token_flag: str | None  # why per-token energy is null, where it is by construction

    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> Reading: ...

    def interval_energies(self, intervals: Sequence[tuple[float, float]]) -> list[float | None]:
        """Energy of each (start, end) wall-clock interval, or None where no timeline exists."""
        ...


class EstimateMeter:
    """Energy estimated as process CPU seconds x watts per busy core (a model, not a reading)."""

    source = ESTIMATE_SOURCE
    device = "estimate"
    measured = False
    covers_cpu = False  # this process only: checks in other processes are not in it
    host_source = None
    per_token_flag = None

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


@dataclass(frozen=True)
class Accelerator:
    """The device a model runs on, as the meter reads it: GPUs by Zeus index, or the CPU
    packages."""

    kind: str  # "gpu" or "cpu-package"
    indices: tuple[int, ...]


def accelerator_for(
    model_device: str, counters: Counters, gpus: Sequence[int] | None = None
) -> Accelerator | None:
    """What to meter for a model on `model_device`: the GPUs `gpus` names (energy.gpus), else
    the model's own GPU, else the CPU packages for a CPU model; None where that has no counter."""
    if gpus is not None:
        missing = [g for g in gpus if g not in counters.gpu_indices]
        if missing or not gpus:
            raise EnergyUnavailableError(
                f"energy.gpus names GPU(s) {list(gpus)}, but NVML here has "
                f"{list(counters.gpu_indices) or 'none'} (indices after CUDA_VISIBLE_DEVICES)"
            )
        return Accelerator("gpu", tuple(gpus))
    if str(model_device).startswith("cuda"):
        _, _, index = str(model_device).partition(":")
        gpu = int(index or 0)
        return Accelerator("gpu", (gpu,)) if gpu in counters.gpu_indices else None
    if counters.cpu_indices:
        return Accelerator("cpu-package", counters.cpu_indices)
    return None


def held_energy(timeline: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Energy (J) over [start, end] of a change-only power timeline [(time, watts)] sorted by
    time: each sample's power holds until the next. None when no sample precedes `start`."""
    if end < start:
        raise ValueError(f"interval ends before it starts: {start} > {end}")
    times = [t for t, _ in timeline]
    first = bisect.bisect_right(times, start) - 1
    if first < 0:
        return None
    total = 0.0
    for i in range(first, len(timeline)):
        seg_start = max(timeline[i][0], start)
        seg_end = min(timeline[i + 1][0], end) if i + 1 < len(timeline) else end
        if seg_start >= end:
            break
        total += timeline[i][1] * max(0.0, seg_end - seg_start)
    return total


def _around(
    timeline: Sequence[tuple[float, float]], start: float, end: float
) -> Sequence[tuple[float, float]]:
    """The samples that hold over [start, end]: the last one at or before `start` (all before
    it, if none is), and those up to `end`."""
    times = [t for t, _ in timeline]
    first = max(bisect.bisect_right(times, start) - 1, 0)
    return timeline[first : bisect.bisect_right(times, end)]


def gpu_names(indices: Sequence[int]) -> dict[int, str]:
    from zeus.device import get_gpus

    gpus = get_gpus()
    return {index: gpus.get_name(index) for index in indices}


def nvml_index(visible_index: int, cuda_visible_devices: str | None) -> int | str:
    """The NVML index (PCI bus order) of the GPU that is `visible_index` after
    `CUDA_VISIBLE_DEVICES`, so that a record names the same GPU whatever a job could see; the
    entry itself where it is not an index (a UUID)."""
    if cuda_visible_devices is None:
        return visible_index
    entry = cuda_visible_devices.split(",")[visible_index].strip()
    return int(entry) if entry.isdigit() else entry


def gpu_labels(indices: Sequence[int]) -> str:
    """The label of each metered GPU, `gpu:<NVML index> <name>`, comma-separated."""
    names = gpu_names(indices)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return ",".join(f"gpu:{nvml_index(i, visible)} {names[i]}" for i in indices)


def instant_power_readable(indices: Sequence[int]) -> bool:
    """Whether every GPU offers NVML's instantaneous power field (Volta and later mostly do;
    some offer only the one-second average)."""
    from zeus.device import get_gpus
    from zeus.device.gpu.common import ZeusGPUNotSupportedError

    gpus = get_gpus()
    try:
        for index in indices:
            gpus.get_instant_power_usage(index)
    except ZeusGPUNotSupportedError:
        return False
    return True


def _torch_has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class ZeusMeter:
    """Named windows over Zeus's monitors: one for the accelerator, one for the host."""

    def __init__(
        self,
        accelerator: Accelerator,
        host_cpus: Sequence[int] = (),
        min_window_s: float | None = None,
        power_timeline: bool = False,
        power_update_period_s: float = DEFAULT_POWER_UPDATE_PERIOD_S,
        log: Any = None,
    ) -> None:
        from zeus.monitor import ZeusMonitor

        self.accelerator = accelerator
        on_gpu = accelerator.kind == "gpu"
        if min_window_s is None:
            min_window_s = DEFAULT_MIN_WINDOW_S["gpu" if on_gpu else "cpu"]
        self.min_window_s = min_window_s
        self.measured = True
        self.covers_cpu = not on_gpu
        if on_gpu:
            self.device = gpu_labels(accelerator.indices)
            self.source = "zeus:nvml"
            self._monitor = ZeusMonitor(gpu_indices=list(accelerator.indices), cpu_indices=[])
        else:
            self.device = "cpu-package"
            self.source = "zeus:rapl"
            self._monitor = ZeusMonitor(gpu_indices=[], cpu_indices=list(accelerator.indices))
        # The host beside a GPU: its own monitor, so a RAPL that fails cannot stop the GPU's.
        self._host = None
        self.host_source: str | None = None
        if on_gpu and host_cpus:
            try:
                self._host = ZeusMonitor(gpu_indices=[], cpu_indices=list(host_cpus))
                self.host_source = "zeus:rapl"
            except Exception as error:  # unreadable RAPL: host energy stays null
                if log is not None:
                    log(f"host energy not read: RAPL failed ({error})")
        elif not on_gpu:
            self.host_source = "zeus:rapl"  # DRAM, where the packages report it
        self._power = None
        self.per_token_flag: str | None = None
        self.power_update_period_s = power_update_period_s
        if power_timeline and on_gpu:
            if instant_power_readable(accelerator.indices):
                from zeus.monitor.power import PowerMonitor

                # An explicit period: Zeus 0.16 infers 0 s otherwise and its pollers spin.
                self._power = PowerMonitor(
                    gpu_indices=list(accelerator.indices),
                    update_period=power_update_period_s,
                    power_domains=["device_instant"],
                    max_samples_per_gpu=int(4 * 3600 / power_update_period_s),
                )
            else:
                self.per_token_flag = PER_TOKEN_AVERAGE_ONLY
        self._starts: dict[str, float] = {}
        self._cuda = on_gpu and _torch_has_cuda()

    def _synchronize(self) -> None:
        """Wait for work queued on the metered GPUs (where torch drives them: a simulated
        NVML beside a CPU model has nothing to wait for, and Zeus's own sync would fail)."""
        if self._cuda:
            import torch

            for index in self.accelerator.indices:
                torch.cuda.synchronize(index)

    def begin(self, name: str) -> None:
        self._synchronize()
        self._monitor.begin_window(name, sync_execution=False)
        if self._host is not None:
            self._host.begin_window(name, sync_execution=False)
        self._starts[name] = time.time()

    def end(self, name: str) -> Reading:
        self._synchronize()
        measurement = self._monitor.end_window(name, sync_execution=False)
        host = self._host.end_window(name, sync_execution=False) if self._host else None
        end = time.time()
        if self.accelerator.kind == "gpu":
            energy_j = float(sum(measurement.gpu_energy.values()))
            host_j = None
            if host is not None:
                host_j = float(
                    sum((host.cpu_energy or {}).values()) + sum((host.dram_energy or {}).values())
                )
        else:
            energy_j = float(sum((measurement.cpu_energy or {}).values()))
            dram = measurement.dram_energy or {}
            host_j = float(sum(dram.values())) if dram else None
        return Reading(
            name=name,
            seconds=float(measurement.time),
            energy_j=energy_j,
            source=self.source,
            start=self._starts.pop(name),
            end=end,
            measured=True,
            device=self.device,
            host_energy_j=host_j,
        )

    def interval_energies(self, intervals: Sequence[tuple[float, float]]) -> list[float | None]:
        """Accelerator energy of each interval from the instantaneous power timeline."""
        if self._power is None or not intervals:
            return [None] * len(intervals)
        last = max(end for _, end in intervals)
        # Samples reach the timeline from Zeus's poller: let the one after `last` arrive.
        time.sleep(max(0.0, last + 2 * self.power_update_period_s - time.time()))
        lines = self._power.get_power_timeline("device_instant", end_time=last + 1.0)
        # The job's whole timeline, cut once to these intervals (held_energy scans what it gets).
        first = min(start for start, _ in intervals)
        lines = {gpu: _around(line, first, last) for gpu, line in lines.items()}
        energies: list[float | None] = []
        for start, end in intervals:
            parts = [held_energy(line, start, end) for line in lines.values()]
            energies.append(None if None in parts else sum(p for p in parts if p is not None))
        return energies


def open_meter(
    config: dict[str, Any], model_device: str = "cpu", log: Any = None, read_host: bool = True
) -> Meter:
    """Open the meter that `config` (the `energy` section) asks for, for a model on
    `model_device`; `read_host` false: the host (RAPL) is not read, as where other jobs
    share it."""
    backend = config.get("backend", "auto")
    min_window_s = config.get("min_window_s")
    estimate_window = float(min_window_s or DEFAULT_MIN_WINDOW_S["estimate"])
    if backend == "estimate":
        return EstimateMeter(float(config["watts_per_core"]), estimate_window)
    if backend not in ("auto", "zeus"):
        raise ValueError(f"energy.backend must be auto, zeus or estimate, got {backend!r}")
    counters = available_counters()
    accelerator = accelerator_for(model_device, counters, config.get("gpus"))
    if accelerator is None:
        if backend == "auto":
            return EstimateMeter(float(config["watts_per_core"]), estimate_window)
        raise EnergyUnavailableError(
            f"energy.backend is 'zeus' but the model's device {model_device} has no counter "
            f"here (NVML GPUs: {list(counters.gpu_indices) or 'none'}, RAPL packages: "
            f"{list(counters.cpu_indices) or 'none'}); use backend 'auto' or 'estimate', or name "
            "the GPUs to meter in energy.gpus"
        )
    return ZeusMeter(
        accelerator,
        host_cpus=counters.cpu_indices if read_host else (),
        min_window_s=min_window_s,
        power_timeline=bool(config.get("power_timeline", True)),
        power_update_period_s=float(
            config.get("power_update_period_s", DEFAULT_POWER_UPDATE_PERIOD_S)
        ),
        log=log,
    )


def measure_idle(meter: Meter, seconds: float) -> Reading:
    """Measure the metered device (or, for the estimate, this process) while it does nothing,
    for `seconds` but never less than the meter's shortest window: on NVML's ~100 ms counter a
    0.5 s window is off by up to one update, 20%."""
    meter.begin("idle")
    time.sleep(max(seconds, meter.min_window_s))
    return meter.end("idle")


def power_w(reading: Reading) -> tuple[float | None, float | None]:
    """Mean accelerator and host power of a reading (None where not read)."""
    seconds = max(reading.seconds, 1e-9)
    accelerator = None if reading.energy_j is None else reading.energy_j / seconds
    host = None if reading.host_energy_j is None else reading.host_energy_j / seconds
    return accelerator, host


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

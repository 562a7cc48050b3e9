"""Energy meters with named windows: `begin(name)` then `end(name) -> Reading`.

What is metered is the device that runs the model (its *accelerator*), and nothing else:
- a model on `cuda:N` is metered on GPU N alone (NVML's energy counter through Zeus, indices
  counted after `CUDA_VISIBLE_DEVICES` as torch counts them); `energy.gpus` names others;
- a model on the CPU is metered on the CPU packages (RAPL through Zeus) where RAPL is readable;
- otherwise energy is estimated: the process's CPU time x a configured power per busy core,
  labelled as an estimate everywhere (`measured` is false).

The host (RAPL package and DRAM beside a GPU accelerator, DRAM beside a CPU-package one) is read
into its own figure (`Joules.host`), never added to the accelerator's. A host that cannot be
read leaves that figure null and the accelerator reading untouched.

A counter cannot resolve a window much shorter than its update period: every meter says how
long a window must be (`min_window_s`, 1 s on NVML: ten updates of its ~100 ms counter), and the
decoding loop repeats work until its window is that long. NVML's windows open and close on the
counter's updates (`GpuCounters`), so that no phase's energy lands in the next phase's window.

On GPUs a Zeus PowerMonitor keeps a power timeline, polled every `power_update_period_s`, from
which each token's energy is integrated with the last sample held until the next (Zeus keeps a
sample only when the value changes), each phase's tokens from what was read during that phase
alone (`phase_energies`). Only the instantaneous power field can carry per-token energy: where
a GPU offers only NVML's one-second average, per-token energy is null and flagged.
"""

from __future__ import annotations

import bisect
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llmenergy.conditions import UNREAD, Conditions, CpuProbe, GpuProbe, PackageProbe, Probe
from llmenergy.gpus import visible as visible_gpus
from llmenergy.joules import Joules

ESTIMATE_SOURCE = "estimate:cpu-time"
# Shortest window each kind of meter resolves, unless the config says otherwise: ten updates of
# NVML's ~100 ms energy counter; RAPL updates every ~1 ms; CPU-time accounting is exact to the
# scheduler tick or better.
DEFAULT_MIN_WINDOW_S = {"gpu": 1.0, "cpu": 0.05, "estimate": 0.01}
DEFAULT_POWER_UPDATE_PERIOD_S = 0.1
# How often a window's edge reads NVML's energy counter while it waits for the counter's next
# update, and how long it waits before taking the counter for one that does not move (ten
# updates of a ~100 ms counter).
COUNTER_POLL_S = 0.001
COUNTER_WAIT_S = 1.0
# A window begun this soon after the last counter update was seen (a window's end: prefill's
# end is decode's start) starts from that update where the counter has not moved since; one
# begun later waits for the next, so that device work between windows is never taken for idle.
BACK_TO_BACK_S = 0.05
# A power sample can describe the device up to this many polling periods before a phase began:
# it is read up to a period after the field's last update, and the field (on NVML, the mean
# over its update period) covers up to a period before that update.
SETTLE_PERIODS = 3
# Why a token's energy is null although its GPU is metered: the GPU offers only the one-second
# average; decode was shorter than a power sample of its own takes (`phase_energies`).
PER_TOKEN_AVERAGE_ONLY = "per-token-average-only"
PER_TOKEN_PHASE_SHORT = "per-token-phase-short"


class EnergyUnavailableError(RuntimeError):
    """Raised when a measured backend is requested but no energy counter exists."""


@dataclass(frozen=True)
class Reading:
    """Energy and time of one window: the accelerator's (the meter's `device`) and the host's
    beside it, each None where it could not be read. How they were read is the meter's
    (`source`, `host_source`). `start` and `end` are wall-clock times (time.time()), to align
    with power timelines; `conditions` what else the machine did meanwhile.
    """

    name: str
    seconds: float
    joules: Joules
    start: float = 0.0
    end: float = 0.0
    conditions: Conditions = UNREAD


class Meter(Protocol):
    source: str  # how energy is known: "zeus:nvml", "zeus:rapl", "estimate:cpu-time"
    device: str  # what it covers: "gpu:1 NVIDIA H100 80GB HBM3", "cpu-package", "estimate"
    measured: bool  # read from a counter (not a model)
    covers_cpu: bool  # the accelerator figure includes the CPU packages (and so the checks)
    host_source: str | None  # how host energy is known, None where it is not read
    min_window_s: float
    per_token_flag: str | None  # why per-token energy is null, where it is by construction
    model_threads: int | None  # the most intra-op threads the model may use; None: the job's

    def begin(self, name: str) -> None:
        """Open window `name`; one already open by that name is an error (ValueError)."""
        ...

    def end(self, name: str) -> Reading: ...

    def idle(self, seconds: float) -> Reading:
        """A window of `seconds` with the device idle (a meter may learn idle power from it)."""
        ...

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        """Energy of each (start, end) wall-clock interval of each phase, or None where no
        timeline gives it."""
        ...


# Intervals of one kind of work each (prefill; decode's tokens), the first interval of each
# starting when that work began.
Phases = Sequence[Sequence[tuple[float, float]]]


class EstimateMeter:
    """Energy estimated as process CPU seconds x watts per busy core (a model, not a reading)."""

    source = ESTIMATE_SOURCE
    device = "estimate"
    measured = False
    covers_cpu = False  # this process only: checks in other processes are not in it
    host_source = None
    per_token_flag = None
    # One thread: with more, a thread that waits for another spins on its core (OpenMP's
    # active wait), and that wait counts as CPU time, the more so the busier the machine
    # (three times the quiet figure beside two busy processes on 2 cores, against 1.02 with
    # one thread: benchmarks/estimate_causes.py, docs/design.md). One thread's CPU time is
    # its work; the cores left over take the oracle's checks.
    model_threads = 1

    def __init__(
        self, watts_per_core: float, min_window_s: float = DEFAULT_MIN_WINDOW_S["estimate"]
    ) -> None:
        if watts_per_core <= 0:
            raise ValueError(f"energy.watts_per_core must be > 0, got {watts_per_core}")
        self.watts_per_core = watts_per_core
        self.min_window_s = min_window_s
        self._probe = CpuProbe()
        self._open: dict[str, tuple[float, float, float, Any]] = {}

    def begin(self, name: str) -> None:
        _refuse_open(name, self._open)
        probed = self._probe.begin()
        self._open[name] = (time.time(), time.perf_counter(), time.process_time(), probed)

    def end(self, name: str) -> Reading:
        start, wall0, cpu0, probed = self._open.pop(name)
        cpu_s = time.process_time() - cpu0
        seconds = time.perf_counter() - wall0
        return Reading(
            name=name,
            seconds=seconds,
            joules=Joules(cpu_s * self.watts_per_core),
            start=start,
            end=time.time(),
            conditions=self._probe.end(probed),
        )

    def idle(self, seconds: float) -> Reading:
        self.begin("idle")
        time.sleep(seconds)
        return self.end("idle")

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        return [[None] * len(phase) for phase in phases]  # no timeline: not estimated


@dataclass(frozen=True)
class Counters:
    """Which energy counters Zeus can read on this machine."""

    gpu_indices: tuple[int, ...]
    cpu_indices: tuple[int, ...]


def available_counters() -> Counters:
    """The GPUs this process can see (by index after `CUDA_VISIBLE_DEVICES`, as Zeus and torch
    count them) and the RAPL packages Zeus can read."""
    from zeus.device.cpu import rapl

    cpus: tuple[int, ...] = ()
    if rapl.rapl_is_available():
        from zeus.device import get_cpus

        cpus = tuple(range(len(get_cpus())))
    return Counters(gpu_indices=tuple(range(len(visible_gpus()))), cpu_indices=cpus)


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


def phase_energies(
    timeline: Sequence[tuple[float, float]],
    intervals: Sequence[tuple[float, float]],
    settle_s: float,
) -> list[float | None]:
    """Energy (J) of each interval of one phase (its work began at the first interval's start)
    from a change-only power timeline, using only what was read of that phase.

    A sample can describe the device up to `settle_s` before it was read (the poller's period
    and the power field's own averaging): the samples of a phase's first `settle_s` may still
    show the phase before it (prefill's 600 W in decode's first tokens). So the power in effect
    `settle_s` after the phase began is held back to its start, and later samples hold forward
    as usual: the phase's first tokens get its own power, not null, since a null among a
    task's first decode tokens would make the like-with-like amplification fall back to time
    for every task (amplification.table), and decode's power is what they drew. A phase
    shorter than `settle_s` has no sample of its own: its intervals are null (rather than
    given the phase before's power, or the one after's), as they are where no sample exists
    by then."""
    if not intervals:
        return []
    start = intervals[0][0]
    settled = start + settle_s
    if max(end for _, end in intervals) < settled:
        return [None] * len(intervals)
    times = [t for t, _ in timeline]
    at = bisect.bisect_right(times, settled) - 1
    if at < 0:
        return [None] * len(intervals)
    own = [(start, timeline[at][1]), *timeline[at + 1 :]]
    return [held_energy(own, a, b) for a, b in intervals]


@dataclass(frozen=True)
class Update:
    """An update of an energy counter as polling saw it: the counter's value (J) and when it
    changed (time.time(), midway between the read that last saw the old value and the one
    that saw the new)."""

    joules: float
    at: float


def next_updates(
    reads: Mapping[int, Callable[[], float]],
    poll_s: float = COUNTER_POLL_S,
    timeout_s: float = COUNTER_WAIT_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[int, Update] | None:
    """Poll each counter until it moves from the value it has now: each one's next update.
    None if one does not move within `timeout_s`."""
    seen = {index: (read(), clock()) for index, read in reads.items()}
    deadline = clock() + timeout_s
    updates: dict[int, Update] = {}
    while len(updates) < len(reads):
        if clock() > deadline:
            return None
        sleep(poll_s)
        for index, read in reads.items():
            if index in updates:
                continue
            value, now = read(), clock()
            before, then = seen[index]
            if value != before:
                updates[index] = Update(value, (then + now) / 2)
            seen[index] = (value, now)
    return updates


def window_energy(
    start: Update, end: Update, work: tuple[float, float], idle_w: float | None
) -> float:
    """Energy (J) of work done over `work` (wall-clock start and end) between two counter
    updates: what the counter gained, less the idle power over the time between the updates
    that is outside the work (the wait for the update after it). Where idle power is not
    known, that time's energy stays in."""
    gained = end.joules - start.joules
    if idle_w is None:
        return gained
    outside = max(0.0, work[0] - start.at) + max(0.0, end.at - work[1])
    return gained - idle_w * outside


class GpuCounters:
    """The metered GPUs' NVML energy counters, read through Zeus where they update.

    A counter that updates every ~100 ms holds, when read, the energy up to its last update: a
    window read at its two edges, as Zeus's `begin_window`/`end_window` do, is the window moved
    back by up to an update at each edge. For phases back to back that moves energy between
    them: decode's window gains the end of prefill at prefill's power and loses its own end at
    decode's. Here a window opens at an update (the one that closed the window just before,
    where it begins straight after it and the counters have not moved since, so that
    back-to-back windows share it; else the next) and closes at the first update after its
    work, with nothing but the idle device between those updates and the work: the device must
    do nothing between windows that share an update (the decoding loop synchronises it at
    every window's end). That idle time is subtracted at the idle power `idle()` measured
    (update to update), and left in before one is measured.

    Each wait lasts half an update on average, a whole one at most, and nearly a whole one
    after a window much shorter than an update. A task waits at prefill's start, at the end
    of each prefill attempt (usually two: one pass, then enough passes for the window; the
    first is short), the last of which is decode's start, and at decode's end: on a 100 ms
    counter about 0.25-0.35 s a task (0.33 s measured on the simulated NVML); decode found by
    subtraction waits twice more.

    A counter that does not move within `COUNTER_WAIT_S` (a stalled or virtualised one) is then
    read at the window's edges without waiting, and the log says so once.
    """

    def __init__(self, indices: Sequence[int], log: Callable[[str], None] | None = None) -> None:
        from zeus.device import get_gpus

        gpus = get_gpus()
        lacking = [i for i in indices if not gpus.supports_get_total_energy_consumption(i)]
        if lacking:
            raise EnergyUnavailableError(
                f"GPU(s) {lacking} have no NVML energy counter (older than Volta): "
                "their energy cannot be metered in windows"
            )
        self._reads = {
            index: (lambda index=index: gpus.get_total_energy_consumption(index) / 1000.0)
            for index in indices
        }
        self._log = log
        self._waits = True
        self._last: dict[int, Update] = {}
        self._waited = 0.0  # when the last wait ended (time.time())
        self.idle_w: dict[int, float] = {}

    def _await(self, indices: Sequence[int]) -> None:
        reads = {index: self._reads[index] for index in indices}
        updates = next_updates(reads) if self._waits and reads else None
        if updates is None:
            if self._waits and reads:
                self._waits = False
                if self._log is not None:
                    self._log(
                        f"NVML energy counter did not move in {COUNTER_WAIT_S} s: windows read "
                        "it at their edges from now on, off by up to an update each"
                    )
            now = time.time()
            updates = {index: Update(read(), now) for index, read in reads.items()}
        self._last.update(updates)
        self._waited = time.time()

    def open(self) -> dict[int, Update]:
        """The update each counter's window starts from."""
        back_to_back = self._waits and time.time() - self._waited < BACK_TO_BACK_S
        moved = [
            index
            for index, read in self._reads.items()
            if not back_to_back or index not in self._last or read() != self._last[index].joules
        ]
        self._await(moved)
        return {index: self._last[index] for index in self._reads}

    def close(
        self, opened: Mapping[int, Update], work: tuple[float, float], idle: bool = False
    ) -> float:
        """The GPUs' energy over `work`, from the updates `opened` to the next ones; with
        `idle` (nothing ran), each GPU's idle power is learnt from them first."""
        self._await(list(self._reads))
        closed = {index: self._last[index] for index in self._reads}
        if idle:
            for index, end in closed.items():
                start = opened[index]
                if end.at > start.at:
                    self.idle_w[index] = (end.joules - start.joules) / (end.at - start.at)
        return sum(
            window_energy(opened[index], closed[index], work, self.idle_w.get(index))
            for index in self._reads
        )


def gpu_labels(indices: Sequence[int]) -> str:
    """The label of each metered GPU (by index after `CUDA_VISIBLE_DEVICES`), `gpu:<NVML
    index> <name>`, comma-separated: a record names the same GPU whatever a job could see."""
    visible = visible_gpus()
    return ",".join(f"gpu:{visible[i].index} {visible[i].name}" for i in indices)


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


class RaplWindows:
    """Named windows on RAPL through Zeus: the packages' energy, and their DRAM's (None where
    they report none)."""

    def __init__(self, cpus: Sequence[int]) -> None:
        from zeus.device.cpu import get_cpus
        from zeus.monitor import ZeusMonitor

        self._monitor = ZeusMonitor(gpu_indices=[], cpu_indices=list(cpus))
        # Where Zeus reads each package (its powercap folder; none through a daemon).
        found = get_cpus().cpus
        self.zones = [Path(found[i].path) if hasattr(found[i], "path") else None for i in cpus]

    def begin(self, name: str) -> None:
        self._monitor.begin_window(name, sync_execution=False)

    def end(self, name: str) -> tuple[float, float | None]:
        measurement = self._monitor.end_window(name, sync_execution=False)
        dram = measurement.dram_energy or {}
        package = float(sum((measurement.cpu_energy or {}).values()))
        return package, float(sum(dram.values())) if dram else None


class Host(Protocol):
    """The host beside a GPU: one figure per window, or None where it is not read."""

    source: str | None  # how its energy is known

    def begin(self, name: str) -> None: ...

    def end(self, name: str) -> float | None: ...


class RaplHost:
    """The host beside a GPU on RAPL: its packages and their DRAM, as one figure."""

    source = "zeus:rapl"

    def __init__(self, cpus: Sequence[int]) -> None:
        self._windows = RaplWindows(cpus)

    def begin(self, name: str) -> None:
        self._windows.begin(name)

    def end(self, name: str) -> float | None:
        package, dram = self._windows.end(name)
        return package + (dram or 0.0)


class NoHost:
    """The host beside a GPU where it is not read."""

    source = None

    def begin(self, name: str) -> None:
        return None

    def end(self, name: str) -> None:
        return None


def host_beside_gpus(cpus: Sequence[int], log: Callable[[str], None] | None) -> Host:
    """The host beside the metered GPUs: RAPL's packages `cpus` on a monitor of their own, so
    that a RAPL that fails cannot stop the GPUs' (its energy then stays null); none to read
    where `cpus` is empty."""
    if not cpus:
        return NoHost()
    try:
        return RaplHost(cpus)
    except Exception as error:  # unreadable RAPL: host energy stays null
        if log is not None:
            log(f"host energy not read: RAPL failed ({error})")
        return NoHost()


def _unknown(phases: Phases) -> list[list[float | None]]:
    return [[None] * len(phase) for phase in phases]


@contextmanager
def main_script_hidden() -> Iterator[None]:
    """While it lasts, processes started by spawn do not run this process's main script first.
    Zeus's PowerMonitor starts its pollers so, and gives them 10 s to be ready; each would
    otherwise import the generation job's script again, and with it torch, transformers and
    Snakemake, which a loaded node (or this 2-core machine beside other work) does not finish
    in 10 s: the job then fails. The pollers need only Zeus."""
    main = sys.modules["__main__"]
    kept = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    # multiprocessing.spawn runs the main module again by its spec's name, else by its file.
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(kept)


class PowerTimeline:
    """The metered GPUs' instantaneous power, polled by Zeus's PowerMonitor every `period_s`,
    from which each interval's energy is integrated (`phase_energies`)."""

    def __init__(self, indices: Sequence[int], period_s: float) -> None:
        from zeus.monitor.power import PowerMonitor

        self._indices = tuple(indices)
        self._period_s = period_s
        self._settle_s = SETTLE_PERIODS * period_s
        # An explicit period: Zeus 0.16 infers 0 s otherwise and its pollers spin.
        with main_script_hidden():
            self._monitor = PowerMonitor(
                gpu_indices=list(indices),
                update_period=period_s,
                power_domains=["device_instant"],
                max_samples_per_gpu=int(4 * 3600 / period_s),
            )

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        """Energy of each interval, each phase from what was read of it alone."""
        intervals = [interval for phase in phases for interval in phase]
        if not intervals:
            return _unknown(phases)
        last = max(end for _, end in intervals)
        # Samples reach the timeline from Zeus's poller: let the one after `last` arrive.
        time.sleep(max(0.0, last + 2 * self._period_s - time.time()))
        lines = self._monitor.get_power_timeline("device_instant", end_time=last + 1.0)
        # The job's whole timeline, cut once to these intervals (held_energy scans what it gets).
        first = min(start for start, _ in intervals)
        cut = [_around(lines.get(gpu, []), first, last) for gpu in self._indices]
        energies = []
        for phase in phases:
            per_gpu = [phase_energies(line, phase, self._settle_s) for line in cut]
            energies.append([_total(parts) for parts in zip(*per_gpu, strict=True)])
        return energies


class NoTimeline:
    """No power timeline: no interval's energy is known."""

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        return _unknown(phases)


def _total(parts: Sequence[float | None]) -> float | None:
    """The sum over GPUs, or None where one of them has none."""
    return None if None in parts else sum(p for p in parts if p is not None)


@dataclass(frozen=True)
class _Open:
    """A window begun: its work's start (time.time(), perf_counter()) and the GPUs' updates it
    starts from (none on RAPL)."""

    start: float
    perf: float
    updates: Mapping[int, Update]
    probed: Any


class Metered(Protocol):
    """The accelerator as a Zeus meter reads it, with the host beside it: what a `ZeusMeter`
    says of its windows, and how each is opened and closed."""

    source: str
    device: str
    covers_cpu: bool
    host_source: str | None
    per_token_flag: str | None
    default_min_window_s: float
    probe: Probe  # what else the machine does while a window is open

    def synchronize(self) -> None:
        """Wait for the work queued on the device."""
        ...

    def begin(self, name: str) -> Mapping[int, Update]:
        """Open window `name`; the counter updates it starts from (none where it has none)."""
        ...

    def end(
        self, name: str, opened: Mapping[int, Update], work: tuple[float, float], idle: bool
    ) -> Joules:
        """Close window `name`, whose work ran over `work` (wall-clock start and end)."""
        ...

    def interval_energies(self, phases: Phases) -> list[list[float | None]]: ...


class MeteredGpus:
    """GPUs on NVML's energy counters through Zeus, read at their updates (`GpuCounters`), the
    host beside them on RAPL where it is read, and a power timeline for each token's energy
    where the GPUs offer instantaneous power."""

    source = "zeus:nvml"
    covers_cpu = False
    default_min_window_s = DEFAULT_MIN_WINDOW_S["gpu"]

    def __init__(
        self,
        indices: Sequence[int],
        host_cpus: Sequence[int] = (),
        power_timeline: bool = False,
        power_update_period_s: float = DEFAULT_POWER_UPDATE_PERIOD_S,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.indices = tuple(indices)
        self.device = gpu_labels(indices)
        self._counters = GpuCounters(indices, log)
        self._host = host_beside_gpus(host_cpus, log)
        self.host_source = self._host.source
        self._timeline: PowerTimeline | NoTimeline = NoTimeline()
        self.per_token_flag: str | None = None
        if power_timeline:
            if instant_power_readable(indices):
                self._timeline = PowerTimeline(indices, power_update_period_s)
            else:
                self.per_token_flag = PER_TOKEN_AVERAGE_ONLY
        self._cuda = _torch_has_cuda()
        self.probe: Probe = GpuProbe(
            [visible_gpus()[i].index for i in indices], own_on_device=self._cuda
        )

    def synchronize(self) -> None:
        """Wait for work queued on the metered GPUs (where torch drives them: a simulated
        NVML beside a CPU model has nothing to wait for, and Zeus's own sync would fail)."""
        if self._cuda:
            import torch

            for index in self.indices:
                torch.cuda.synchronize(index)

    def begin(self, name: str) -> Mapping[int, Update]:
        updates = self._counters.open()
        self._host.begin(name)  # after the GPUs' wait: the host's window is the work's alone
        return updates

    def end(
        self, name: str, opened: Mapping[int, Update], work: tuple[float, float], idle: bool
    ) -> Joules:
        """With `idle` (the GPUs did nothing in the window), their idle power is learnt from
        it first (`GpuCounters.close`)."""
        host = self._host.end(name)
        return Joules(self._counters.close(opened, work, idle), host)

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        return self._timeline.interval_energies(phases)


class MeteredPackages:
    """The CPU packages on RAPL through Zeus, with their DRAM as the host beside them."""

    source = "zeus:rapl"
    device = "cpu-package"
    covers_cpu = True  # the checks run on the packages, so they are in the figure
    host_source = "zeus:rapl"  # DRAM, where the packages report it
    per_token_flag = None
    default_min_window_s = DEFAULT_MIN_WINDOW_S["cpu"]

    def __init__(self, cpus: Sequence[int]) -> None:
        self._windows = RaplWindows(cpus)
        self.probe: Probe = PackageProbe(self._windows.zones)

    def synchronize(self) -> None:
        return None  # the model's work on the CPU is done when its call returns

    def begin(self, name: str) -> Mapping[int, Update]:
        self._windows.begin(name)
        return {}

    def end(
        self, name: str, opened: Mapping[int, Update], work: tuple[float, float], idle: bool
    ) -> Joules:
        package, dram = self._windows.end(name)
        return Joules(package, dram)

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        return _unknown(phases)  # no power timeline on RAPL


class ZeusMeter:
    """Named windows over Zeus on one metered accelerator (`MeteredGpus` or
    `MeteredPackages`), which says what is read and how."""

    measured = True
    model_threads = None  # a counter reads what the device spent, waits included: they are real

    def __init__(self, metered: Metered, min_window_s: float | None = None) -> None:
        self.metered = metered
        if min_window_s is None:
            min_window_s = metered.default_min_window_s
        self.min_window_s = min_window_s
        self._open: dict[str, _Open] = {}

    @property
    def source(self) -> str:
        return self.metered.source

    @property
    def device(self) -> str:
        return self.metered.device

    @property
    def covers_cpu(self) -> bool:
        return self.metered.covers_cpu

    @property
    def host_source(self) -> str | None:
        return self.metered.host_source

    @property
    def per_token_flag(self) -> str | None:
        return self.metered.per_token_flag

    def begin(self, name: str) -> None:
        _refuse_open(name, self._open)
        self.metered.synchronize()
        # The probe reads before the counters start and after they stop: its NVML calls and
        # /proc reads take the device's idle power for milliseconds, a fixed amount a window
        # that would weigh on short windows' J/token and that the window's time leaves out.
        probed = self.metered.probe.begin()
        updates = self.metered.begin(name)
        self._open[name] = _Open(time.time(), time.perf_counter(), updates, probed)

    def end(self, name: str, idle: bool = False) -> Reading:
        """The window `name`'s reading; with `idle` (the device did nothing in it), the GPUs'
        idle power is learnt from it, and their energy is that power x its time."""
        self.metered.synchronize()
        end, seconds = time.time(), time.perf_counter()
        opened = self._open.pop(name)
        joules = self.metered.end(name, opened.updates, (opened.start, end), idle)
        conditions = self.metered.probe.end(opened.probed)
        return Reading(
            name=name,
            seconds=seconds - opened.perf,
            joules=joules,
            start=opened.start,
            end=end,
            conditions=conditions,
        )

    def idle(self, seconds: float) -> Reading:
        self.begin("idle")
        time.sleep(seconds)
        return self.end("idle", idle=True)

    def interval_energies(self, phases: Phases) -> list[list[float | None]]:
        """Accelerator energy of each interval from the instantaneous power timeline, each
        phase from what was read of it alone (`phase_energies`); None without one."""
        return self.metered.interval_energies(phases)


def _refuse_open(name: str, open_windows: Mapping[str, object]) -> None:
    """A window begun again before it ended would lose its first start: refuse it."""
    if name in open_windows:
        raise ValueError(f"energy window {name!r} is already open")


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
    metered: Metered
    if accelerator.kind == "gpu":
        metered = MeteredGpus(
            accelerator.indices,
            host_cpus=counters.cpu_indices if read_host else (),
            power_timeline=bool(config.get("power_timeline", True)),
            power_update_period_s=float(
                config.get("power_update_period_s", DEFAULT_POWER_UPDATE_PERIOD_S)
            ),
            log=log,
        )
    else:
        metered = MeteredPackages(accelerator.indices)
    return ZeusMeter(metered, min_window_s)


def measure_idle(meter: Meter, seconds: float) -> Reading:
    """Measure the metered device (or, for the estimate, this process) while it does nothing,
    for `seconds` but never less than the meter's shortest window: on NVML's ~100 ms counter a
    0.5 s window is off by up to one update, 20%. A GPU meter takes this idle power for the
    idle time its later windows hold (`GpuCounters`)."""
    return meter.idle(max(seconds, meter.min_window_s))


def power_w(reading: Reading) -> tuple[float | None, float | None]:
    """Mean accelerator and host power of a reading (None where not read)."""
    watts = reading.joules / max(reading.seconds, 1e-9)  # joules per second
    return watts.accelerator, watts.host

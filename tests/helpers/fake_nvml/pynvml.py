"""A stand-in for NVIDIA's `pynvml` (nvidia-ml-py), for tests only: this machine has no GPU,
and the real Zeus code must still run on NVML as it behaves on one.

Put this folder first on PYTHONPATH and point FAKE_NVML_SPEC at a JSON file:
    {"epoch": <time.time()>, "update_s": 0.1, "polls_dir": "<folder or null>",
     "phase_log": "<file or null>",
     "gpus": [{"name": "...", "uuid": "...", "watts": 300.0,
               "high_watts": null, "period_s": null, "instant": true, "arch": 9,
               "counter": "moving", "phase_watts": null, "limit_watts": 700.0}, ...],
     "others": [{"gpu": 0, "pid": 4242, "watts": 200.0, "start": 0.0, "end": 5.0,
                 "memory_mib": 1024}, ...]}
Each GPU draws `watts` (or a square wave between `watts` and `high_watts` with `period_s`),
whatever the machine does, unless it has `phase_watts` (as {"prefill": 600.0, "decode": 350.0})
and the spec names a `phase_log`: then it draws what the generating process does. That
process appends a line `<time.time()> <phase>` to the log whenever its work changes (a phase
`prefill@long` draws `phase_watts["prefill@long"]` where given, else `phase_watts["prefill"]`);
from the last line on, the GPU draws that phase's power, and its own `watts` (idle) in a
phase it has no power for, and before the first line. A line may also be a mark (as the
harness's `measure@<workload>/<task_id>#<attempt>`, written with the device idle), which
draws idle power as any phase without power does.
Other processes (`others`, optional) run on a GPU (`gpu`, its index) while
`start <= now - epoch < end`: each of `start` and `end` is seconds from the epoch, or the
name of a phase-log line, which stands for the time of that line's first appearance (a
`start` not yet logged has not begun, an `end` not yet logged has not come; no `start`:
from the epoch, no `end`: for ever). While it runs, the GPU lists it among its compute
processes (`nvmlDeviceGetComputeRunningProcesses`: its `pid`, `memory_mib` of memory) and
draws its `watts` on top of its own, in its energy counter and both power fields alike.
The generating process itself is never listed (it runs on the CPU).
As NVML documents:
- the total-energy counter (mJ) advances with that power and changes only every `update_s`;
- the instantaneous power field is the mean power of the last update period, refreshed every
  update period; GPUs with `"instant": false` answer NOT_SUPPORTED for it (as GPUs that only
  offer the one-second average do);
- the average power field is the mean over the last second;
- `"counter": "frozen"` holds the energy counter still and `"unsupported"` answers
  NOT_SUPPORTED for it (as some virtualised GPUs may), for the GPU kit's gate;
- the power limit is the GPU's `limit_watts` (700 W where not given);
- utilisation (`nvmlDeviceGetUtilizationRates`) is, for `.gpu`, 100 while the GPU works
  (its phase-log phase is one it has power for, or another process runs on it) and 0
  otherwise, and for `.memory` half that.
Everything is computed from the clock, the spec and the phase log, so the spawned processes of
Zeus's power monitor see the same GPUs. Each power-field read appends its time to
`polls_dir/<pid>` when `polls_dir` is set, so a test can tell how often the monitor polls.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_MEMORY = 20
NVML_ERROR_UNKNOWN = 999

NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_HOPPER = 9
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_POWER_SCOPE_MEMORY = 2
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
COUNTER_BASE_MJ = 123_456_789  # a counter that has run for a while before the test
DEFAULT_LIMIT_W = 700.0


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def _nvmlGetFunctionPointer(name: str) -> None:  # Zeus takes its presence for official bindings
    return None


@dataclass(frozen=True)
class _Handle:
    index: int


def _spec() -> dict[str, Any]:
    path = os.environ.get("FAKE_NVML_SPEC")
    if not path:
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _gpu(handle: _Handle) -> dict[str, Any]:
    return _spec()["gpus"][handle.index]


def _base_energy_j(gpu: dict[str, Any], seconds: float) -> float:
    """Energy the GPU draws by its own `watts` (and square wave) from the epoch to `seconds`."""
    low = float(gpu["watts"])
    high, period = gpu.get("high_watts"), gpu.get("period_s")
    if high is None or not period:
        return low * seconds
    half = period / 2
    full, rest = divmod(seconds, period)
    return full * half * (low + high) + min(rest, half) * low + max(0.0, rest - half) * high


@dataclass
class _PhaseLog:
    """The phase log as read so far: each line's time (seconds from the epoch) and phase, and
    per GPU the energy drawn up to each line. Read on from where the last read stopped: every
    NVML call of every process reads it."""

    offset: int = 0
    times: list[float] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    energies: dict[int, list[float]] = field(default_factory=dict)


_LOGS: dict[str, _PhaseLog] = {}


def _phase_log(spec: dict[str, Any]) -> _PhaseLog:
    path = spec["phase_log"]
    log = _LOGS.setdefault(path, _PhaseLog())
    try:
        with open(path, "rb") as file:
            file.seek(log.offset)
            new = file.read()
    except FileNotFoundError:  # nothing generated yet
        return log
    complete = new[: new.rfind(b"\n") + 1]  # a line still being written waits for the next read
    log.offset += len(complete)
    for line in complete.decode().splitlines():
        stamp, phase = line.split()
        log.times.append(float(stamp) - spec["epoch"])
        log.phases.append(phase)
    return log


def _phase_power(gpu: dict[str, Any], phase: str) -> float | None:
    watts = gpu["phase_watts"]
    return watts.get(phase, watts.get(phase.partition("@")[0]))


def _segment_j(gpu: dict[str, Any], phase: str, start: float, end: float) -> float:
    """Energy drawn from `start` to `end` (seconds from the epoch) in `phase`."""
    watts = _phase_power(gpu, phase)
    if watts is None:
        return _base_energy_j(gpu, end) - _base_energy_j(gpu, start)
    return float(watts) * (end - start)


def _energy_j(spec: dict[str, Any], index: int, seconds: float) -> float:
    """Energy GPU `index` drew from the epoch to `seconds` after it: its own and that of the
    other processes running on it."""
    others = sum(
        float(other["watts"]) * max(0.0, min(seconds, end) - start)
        for other, start, end in _others(spec, index)
    )
    return _own_energy_j(spec, index, seconds) + others


def _bound(spec: dict[str, Any], bound: float | str) -> float | None:
    """An other process's `start` or `end` as seconds from the epoch: a number as it is, the
    name of a phase-log line as the time it first appears; None where it has not yet."""
    if not isinstance(bound, str):
        return float(bound)
    if not spec.get("phase_log"):
        raise ValueError(f"an other process bound by the phase-log line {bound!r} needs a log")
    log = _phase_log(spec)
    return log.times[log.phases.index(bound)] if bound in log.phases else None


def _others(spec: dict[str, Any], index: int) -> list[tuple[dict[str, Any], float, float]]:
    """The other processes on GPU `index` that have begun, each with its span (seconds from
    the epoch) as known now: one whose end is not logged yet runs on for ever."""
    found = []
    for other in spec.get("others") or []:
        if int(other["gpu"]) != index:
            continue
        start = _bound(spec, other.get("start", 0.0))
        if start is None:
            continue
        end = _bound(spec, other["end"]) if other.get("end") is not None else None
        found.append((other, start, math.inf if end is None else end))
    return found


def _running(spec: dict[str, Any], index: int, seconds: float) -> list[dict[str, Any]]:
    """The other processes running on GPU `index` at `seconds` from the epoch."""
    return [other for other, start, end in _others(spec, index) if start <= seconds < end]


def _own_energy_j(spec: dict[str, Any], index: int, seconds: float) -> float:
    """Energy GPU `index` drew by itself (no other process's) from the epoch to `seconds`."""
    gpu = spec["gpus"][index]
    if not gpu.get("phase_watts") or not spec.get("phase_log"):
        return _base_energy_j(gpu, seconds)
    log = _phase_log(spec)
    line = bisect.bisect_right(log.times, seconds) - 1
    if line < 0:
        return _base_energy_j(gpu, seconds)
    energies = log.energies.setdefault(index, [])
    while len(energies) <= line:  # the energy up to each line, each segment added once
        i = len(energies)
        if i == 0:
            energies.append(_base_energy_j(gpu, log.times[0]))
        else:
            segment = _segment_j(gpu, log.phases[i - 1], log.times[i - 1], log.times[i])
            energies.append(energies[-1] + segment)
    return energies[line] + _segment_j(gpu, log.phases[line], log.times[line], seconds)


def _tick(spec: dict[str, Any]) -> float:
    """Seconds from the epoch to the counter's last update."""
    update_s = float(spec["update_s"])
    return math.floor((time.time() - spec["epoch"]) / update_s) * update_s


def _mean_power_mw(spec: dict[str, Any], index: int, end: float, span: float) -> int:
    start = max(0.0, end - span)
    if end <= start:  # at the epoch: the GPU's idle power, and the others' running then
        others = sum(float(other["watts"]) for other in _running(spec, index, end))
        return int((float(spec["gpus"][index]["watts"]) + others) * 1000)
    energy = _energy_j(spec, index, end) - _energy_j(spec, index, start)
    return int(1000 * energy / (end - start))


def _count_poll() -> None:
    folder = _spec().get("polls_dir")
    if folder:
        with open(os.path.join(folder, str(os.getpid())), "a", encoding="utf-8") as file:
            file.write(f"{time.time():.6f}\n")


def nvmlInit() -> None:
    _spec()


def nvmlShutdown() -> None:
    return None


def nvmlSystemGetDriverVersion() -> str:
    return "000.00 (simulated)"


def nvmlDeviceGetCount() -> int:
    return len(_spec()["gpus"])


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetName(handle: _Handle) -> str:
    return _gpu(handle)["name"]


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    return _gpu(handle)["uuid"]


def nvmlDeviceGetC2cModeInfoV(handle: _Handle) -> Any:
    raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # not a Grace Hopper module


def nvmlDeviceGetArchitecture(handle: _Handle) -> int:
    return int(_gpu(handle).get("arch", NVML_DEVICE_ARCH_HOPPER))


def nvmlDeviceGetTotalEnergyConsumption(handle: _Handle) -> int:
    spec, gpu = _spec(), _gpu(handle)
    counter = gpu.get("counter", "moving")
    if counter == "unsupported":
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    if counter == "frozen":
        return COUNTER_BASE_MJ
    return COUNTER_BASE_MJ + int(1000 * _energy_j(spec, handle.index, _tick(spec)))


class _Value:
    def __init__(self, value: int) -> None:
        self.uiVal = value


class _FieldValue:
    def __init__(self, ret: int, value: int) -> None:
        self.nvmlReturn = ret
        self.value = _Value(value)


def nvmlDeviceGetFieldValues(handle: _Handle, fields: list[tuple[int, int]]) -> list[_FieldValue]:
    _count_poll()
    spec, gpu = _spec(), _gpu(handle)
    tick = _tick(spec)
    values = []
    for field_id, scope in fields:
        if scope == NVML_POWER_SCOPE_MEMORY:
            values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
        elif field_id == NVML_FI_DEV_POWER_INSTANT:
            if not gpu.get("instant", True):
                values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
            else:
                power = _mean_power_mw(spec, handle.index, tick, spec["update_s"])
                values.append(_FieldValue(NVML_SUCCESS, power))
        elif field_id == NVML_FI_DEV_POWER_AVERAGE:
            values.append(_FieldValue(NVML_SUCCESS, _mean_power_mw(spec, handle.index, tick, 1.0)))
        else:
            values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
    return values


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    """The plain power reading: a one-second average, as on Hopper."""
    spec = _spec()
    return _mean_power_mw(spec, handle.index, _tick(spec), 1.0)


def nvmlDeviceGetPowerManagementLimit(handle: _Handle) -> int:
    return int(1000 * float(_gpu(handle).get("limit_watts", DEFAULT_LIMIT_W)))


def nvmlDeviceGetPowerManagementLimitConstraints(handle: _Handle) -> tuple[int, int]:
    return 200_000, max(int(1000 * DEFAULT_LIMIT_W), nvmlDeviceGetPowerManagementLimit(handle))


class _Process:
    """A compute process on a GPU, as NVML's process info (memory in bytes)."""

    def __init__(self, pid: int, memory_bytes: int) -> None:
        self.pid = pid
        self.usedGpuMemory = memory_bytes
        self.gpuInstanceId = 0xFFFFFFFF  # no MIG instance
        self.computeInstanceId = 0xFFFFFFFF


def nvmlDeviceGetComputeRunningProcesses(handle: _Handle) -> list[_Process]:
    """The other processes of the spec running on the GPU now (the generating process is not
    on it: it runs on the CPU)."""
    spec = _spec()
    now = time.time() - spec["epoch"]
    return [
        _Process(int(other["pid"]), int(other.get("memory_mib", 1024)) * 1024 * 1024)
        for other in _running(spec, handle.index, now)
    ]


nvmlDeviceGetComputeRunningProcesses_v3 = nvmlDeviceGetComputeRunningProcesses
nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses


class _Utilization:
    def __init__(self, gpu: int, memory: int) -> None:
        self.gpu = gpu
        self.memory = memory


def _working(spec: dict[str, Any], index: int, seconds: float) -> bool:
    """Whether GPU `index` works at `seconds` from the epoch: in a phase-log phase it has
    power for, or with another process running on it."""
    if _running(spec, index, seconds):
        return True
    gpu = spec["gpus"][index]
    if not gpu.get("phase_watts") or not spec.get("phase_log"):
        return False
    log = _phase_log(spec)
    line = bisect.bisect_right(log.times, seconds) - 1
    return line >= 0 and _phase_power(gpu, log.phases[line]) is not None


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> _Utilization:
    spec = _spec()
    busy = 100 if _working(spec, handle.index, time.time() - spec["epoch"]) else 0
    return _Utilization(busy, busy // 2)


def nvmlDeviceGetClockInfo(handle: _Handle, clock: int) -> int:
    return 1980 if clock == NVML_CLOCK_SM else 2619


def nvmlDeviceGetTemperature(handle: _Handle, sensor: int) -> int:
    return 40


def nvmlDeviceGetTemperatureV(handle: _Handle, sensor: int) -> int:
    return 40

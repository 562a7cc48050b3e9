"""A stand-in for NVIDIA's `pynvml` (nvidia-ml-py), for tests only: this machine has no GPU,
and the real Zeus code must still run on NVML as it behaves on one.

Put this folder first on PYTHONPATH and point FAKE_NVML_SPEC at a JSON file:
    {"epoch": <time.time()>, "update_s": 0.1, "polls_dir": "<folder or null>",
     "gpus": [{"name": "...", "uuid": "...", "watts": 300.0,
               "high_watts": null, "period_s": null, "instant": true, "arch": 9,
               "counter": "moving"}, ...]}
Each GPU draws `watts` (or a square wave between `watts` and `high_watts` with `period_s`),
whatever the machine does. As NVML documents:
- the total-energy counter (mJ) advances with that power and changes only every `update_s`;
- the instantaneous power field is the mean power of the last update period, refreshed every
  update period; GPUs with `"instant": false` answer NOT_SUPPORTED for it (as GPUs that only
  offer the one-second average do);
- the average power field is the mean over the last second;
- `"counter": "frozen"` holds the energy counter still and `"unsupported"` answers
  NOT_SUPPORTED for it (as some virtualised GPUs may), for the GPU kit's gate.
Everything is computed from the clock and the spec, so the spawned processes of Zeus's power
monitor see the same GPUs. Each power-field read appends its time to `polls_dir/<pid>` when
`polls_dir` is set, so a test can tell how often the monitor polls.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
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


def _energy_j(gpu: dict[str, Any], seconds: float) -> float:
    """Energy drawn from the epoch to `seconds` after it."""
    low = float(gpu["watts"])
    high, period = gpu.get("high_watts"), gpu.get("period_s")
    if high is None or not period:
        return low * seconds
    half = period / 2
    full, rest = divmod(seconds, period)
    return full * half * (low + high) + min(rest, half) * low + max(0.0, rest - half) * high


def _tick(spec: dict[str, Any]) -> float:
    """Seconds from the epoch to the counter's last update."""
    update_s = float(spec["update_s"])
    return math.floor((time.time() - spec["epoch"]) / update_s) * update_s


def _mean_power_mw(gpu: dict[str, Any], end: float, span: float) -> int:
    start = max(0.0, end - span)
    if end <= start:
        return int(float(gpu["watts"]) * 1000)
    return int(1000 * (_energy_j(gpu, end) - _energy_j(gpu, start)) / (end - start))


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
    return COUNTER_BASE_MJ + int(1000 * _energy_j(gpu, _tick(spec)))


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
    for field, scope in fields:
        if scope == NVML_POWER_SCOPE_MEMORY:
            values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
        elif field == NVML_FI_DEV_POWER_INSTANT:
            if not gpu.get("instant", True):
                values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
            else:
                values.append(
                    _FieldValue(NVML_SUCCESS, _mean_power_mw(gpu, tick, spec["update_s"]))
                )
        elif field == NVML_FI_DEV_POWER_AVERAGE:
            values.append(_FieldValue(NVML_SUCCESS, _mean_power_mw(gpu, tick, 1.0)))
        else:
            values.append(_FieldValue(NVML_ERROR_NOT_SUPPORTED, 0))
    return values


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    """The plain power reading: a one-second average, as on Hopper."""
    return _mean_power_mw(_gpu(handle), _tick(_spec()), 1.0)


def nvmlDeviceGetPowerManagementLimit(handle: _Handle) -> int:
    return 700_000


def nvmlDeviceGetPowerManagementLimitConstraints(handle: _Handle) -> tuple[int, int]:
    return 200_000, 700_000


def nvmlDeviceGetClockInfo(handle: _Handle, clock: int) -> int:
    return 1980 if clock == NVML_CLOCK_SM else 2619


def nvmlDeviceGetTemperature(handle: _Handle, sensor: int) -> int:
    return 40


def nvmlDeviceGetTemperatureV(handle: _Handle, sensor: int) -> int:
    return 40

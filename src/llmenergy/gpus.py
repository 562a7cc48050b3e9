"""Which GPUs this process can see, as NVML names them, in the order torch counts them.

NVML counts every GPU of the box, in PCI bus order. CUDA, torch and Zeus count only those that
`CUDA_VISIBLE_DEVICES` names (by NVML index or UUID prefix), in its order: `cuda:N` is the N-th
of `visible()`. This module is the one place that reads NVML to find GPUs and parses
`CUDA_VISIBLE_DEVICES`; the meter (energy.GpuCounters) reads their counters through Zeus, the
GPU slots lock them by UUID, and records and provenance name them from here.

Without `CUDA_VISIBLE_DEVICES` the order is NVML's: the GPU slots pin each job with
`CUDA_DEVICE_ORDER=PCI_BUS_ID`, which makes CUDA count as NVML does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Gpu:
    """A GPU as NVML names it: its index (PCI bus order), its UUID and its model name."""

    index: int
    uuid: str
    name: str


def _nvml() -> Any | None:
    """NVML, initialised; None without the library or its driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no NVML library or no driver: no GPU
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def every_gpu() -> list[Gpu]:
    """Every GPU NVML reports, whatever this process may use; empty without NVML."""
    nvml = _nvml()
    if nvml is None:
        return []
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        found.append(
            Gpu(index, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)))
        )
    return found


def restrict(gpus: Sequence[Gpu], visible: str | None) -> list[Gpu]:
    """`gpus` limited to, and in the order of, a `CUDA_VISIBLE_DEVICES` value (None: all)."""
    if visible is None:
        return list(gpus)
    chosen = []
    for entry in filter(None, (part.strip() for part in visible.split(","))):
        if entry.isdigit():
            match = [gpu for gpu in gpus if gpu.index == int(entry)]
        else:
            match = [gpu for gpu in gpus if gpu.uuid.startswith(entry)]
        chosen += [gpu for gpu in match if gpu not in chosen]
    return chosen


def visible(environ: Mapping[str, str] | None = None) -> list[Gpu]:
    """The GPUs this process can use, in torch's order (`cuda:N` is the N-th); empty without
    NVML."""
    environ = os.environ if environ is None else environ
    return restrict(every_gpu(), environ.get("CUDA_VISIBLE_DEVICES"))


def driver_version() -> str | None:
    """The NVIDIA driver's version; None where NVML cannot tell."""
    nvml = _nvml()
    try:
        return None if nvml is None else _text(nvml.nvmlSystemGetDriverVersion())
    except Exception:  # NVML started but cannot say: the version is informative only
        return None


def torch_device_count() -> int:
    """How many CUDA devices torch sees (0 on a CPU-only build): the GPUs a model can run on,
    which NVML can outnumber (a CPU-only torch beside a driver) or miss (NVML unreadable, as
    under some sandboxed runtimes; MIG instances)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def torch_device_names() -> list[str]:
    """The names of the CUDA devices torch sees, as `cuda:N` counts them (empty on a CPU-only
    build). This starts CUDA in the calling process, which `torch_device_count` does not."""
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch_device_count())]


def states() -> list[dict[str, Any]]:
    """Name, driver, clocks, temperature and power limit of every GPU NVML reports (empty
    without NVML), by NVML index."""
    nvml = _nvml()
    if nvml is None:
        return []
    driver = nvml.nvmlSystemGetDriverVersion()
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        found.append(
            {
                "index": index,
                "name": nvml.nvmlDeviceGetName(handle),
                "driver": driver,
                "sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
                "memory_clock_mhz": nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
                "temperature_c": nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                "power_limit_w": nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000,
            }
        )
    return found


@dataclass(frozen=True)
class DeviceState:
    """What NVML says of one GPU at a moment; None where it cannot say."""

    other_processes: int | None
    utilization_pct: float | None
    temperature_c: float | None
    sm_mhz: float | None
    power_limit_w: float | None


def _read(call: Any) -> Any:
    try:
        return call()
    except Exception:  # a field this GPU or driver does not offer stays unread
        return None


def _other_processes(nvml: Any, handle: Any, own_on_device: bool) -> int | None:
    """Processes other than this one with a context on the GPU. NVML names them by the host's
    PIDs, which a container's differ from: where this process runs on the GPU but is not found
    by its PID, one of those listed is taken for it."""
    listed = _read(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    if listed is None:
        return None
    pids = {process.pid for process in listed}
    if os.getpid() in pids:
        return len(pids) - 1
    return max(0, len(pids) - 1) if own_on_device else len(pids)


def device_state(index: int, own_on_device: bool) -> DeviceState:
    """GPU `index` (NVML's) as NVML sees it now: the other processes on it (`own_on_device`:
    this process has a context there), utilisation, temperature, SM clock and power limit."""
    nvml = _nvml()
    if nvml is None:
        return DeviceState(None, None, None, None, None)
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    limit_mw = _read(lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle))
    return DeviceState(
        other_processes=_other_processes(nvml, handle, own_on_device),
        utilization_pct=_read(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
        temperature_c=_read(
            lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        ),
        sm_mhz=_read(lambda: float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))),
        power_limit_w=None if limit_mw is None else limit_mw / 1000,
    )

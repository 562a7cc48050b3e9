"""One generation job per GPU: how many GPUs a box offers its jobs, and each job's claim on one.

On a box with N GPUs the workflow runs N generation jobs at once. Each job holds one unit of
the `gpu_slot` resource (whose limit is N), claims a GPU of its own by an exclusive `flock` on
a file named after the GPU's UUID, and pins itself to that GPU (`CUDA_VISIBLE_DEVICES`, PCI bus
order, as NVML counts) before CUDA starts. The meter then sees that GPU alone, so each job's
energy is its own GPU's. The lock, not the scheduler, is what keeps two jobs off one GPU: it
holds across workflows on the same box, and it is released by the kernel when a job dies.

Jobs on the CPU or on the estimate meter share the host, so they keep one measured job at a
time (the `measure` resource), as does a config that names its GPUs (`generation.device:
cuda:N`, `energy.gpus`). On a cluster, the scheduler gives each job its GPU: no slots.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmenergy.gpus import Gpu, visible

# Where the per-GPU lock files live: one folder per box, shared by every workflow on it.
LOCK_DIR_ENV = "LLMENERGY_GPU_LOCKS"
WAIT_LOG_EVERY_S = 60.0


def pinned(config: dict[str, Any]) -> bool:
    """Whether the config lets generation jobs take one GPU each: `generation.pin_gpus` true
    or false, or `auto`: where the model runs on `cuda` (no index), no GPU is named in
    `energy.gpus`, and energy is measured rather than estimated."""
    choice = config["generation"].get("pin_gpus", "auto")
    if choice != "auto":
        return bool(choice)
    energy = config["energy"]
    return (
        config["generation"]["device"] == "cuda"
        and not energy.get("gpus")
        and energy.get("backend", "auto") != "estimate"
    )


def slots(config: dict[str, Any], gpus: Sequence[Gpu] | None = None) -> int:
    """How many generation jobs may run at once on this machine, one per GPU of `gpus` (by
    default the visible ones, gpus.visible); 0: one measured job at a time."""
    if not pinned(config):
        return 0
    return len(visible() if gpus is None else gpus)


def lock_dir(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "llmenergy-gpus")


@dataclass
class Claim:
    """A GPU held by this process for as long as `fd` is open."""

    gpu: Gpu
    fd: int

    def release(self) -> None:
        os.close(self.fd)


def try_claim(gpu: Gpu, folder: Path) -> Claim | None:
    """Take `gpu`'s lock without waiting; None when another process holds it."""
    with _umask(0):  # every user's workflows on the box share the folder and its locks
        folder.mkdir(mode=0o1777, parents=True, exist_ok=True)
        fd = os.open(folder / f"{gpu.uuid}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return Claim(gpu, fd)


def claim(
    gpus: Sequence[Gpu],
    folder: Path,
    log: Callable[[str], None],
    poll_s: float = 0.5,
) -> Claim:
    """The first free GPU of `gpus`, waiting (and saying so in the log) while all are held."""
    if not gpus:
        raise RuntimeError("no GPU to claim: NVML reports none (or CUDA_VISIBLE_DEVICES hides all)")
    next_note = time.monotonic()
    while True:
        for gpu in gpus:
            held = try_claim(gpu, folder)
            if held is not None:
                return held
        if time.monotonic() >= next_note:
            log(f"all {len(gpus)} GPU(s) are held by other jobs (locks in {folder}); waiting")
            next_note = time.monotonic() + WAIT_LOG_EVERY_S
        time.sleep(poll_s)


def pin(gpu: Gpu, environ: dict[str, str] | None = None) -> None:
    """Make `gpu` the only one CUDA, torch and Zeus see: index 0 of `CUDA_VISIBLE_DEVICES`,
    counted in PCI bus order as NVML counts (CUDA's own default order is fastest first)."""
    environ = os.environ if environ is None else environ
    environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    environ["CUDA_VISIBLE_DEVICES"] = str(gpu.index)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)

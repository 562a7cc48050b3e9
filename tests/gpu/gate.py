"""The GPU kit's gate: within 30 s, is there a GPU to measure, and can its energy be read?

Usage: python gate.py OUT.json

Each answer is printed as one line (`gate: <check>: ok|MISSING ...`) and written at once to
OUT.json (under a temporary name, then renamed), so a call cut short still says how far it got:
- cuda: torch sees a CUDA device;
- nvml: NVML answers (its driver version);
- gpu: NVML sees a GPU (its name, clocks, temperature and power limit);
- counter: that GPU's total-energy counter moves under about 1.5 s of matrix products (on the
  GPU where CUDA is, else on the CPU);
- zeus: a Zeus window over that GPU reads a positive energy;
- instant: NVML's instantaneous power field answers (per-token energy needs it; without it
  per-token energy is null, the rest still measured).

The mode the kit runs in follows: `energy` (CUDA and a counter that moves), `times-only` (CUDA
but no energy: prefill and decode seconds only, labelled so), `cpu` (no CUDA: only what needs
none). The last line says `gate: pass`, or `gate: FAIL: missing ...` naming what is missing.
The exit status is 0 on a pass only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

LOAD_S = 1.5  # the counter updates about every 100 ms: fifteen updates
WINDOW_S = 1.0
ENERGY_CHECKS = ("nvml", "gpu", "counter", "zeus")


class Answers:
    """The gate's answers, printed and saved one by one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {"checks": {}, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def say(self, check: str, ok: bool, detail: str, **fields: Any) -> bool:
        seconds = round(time.perf_counter() - self.started, 2)
        self.data["checks"][check] = {"ok": ok, "detail": detail, "at_s": seconds, **fields}
        print(f"gate: {check}: {'ok' if ok else 'MISSING'} {detail} ({seconds} s)", flush=True)
        self.save()
        return ok

    def save(self) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(partial, self.path)

    def ok(self, check: str) -> bool:
        return bool(self.data["checks"].get(check, {}).get("ok"))


def load(seconds: float, cuda: bool) -> int:
    """Matrix products for about `seconds` (on the GPU if `cuda`); returns how many ran."""
    import torch

    device, size = ("cuda", 8192) if cuda else ("cpu", 256)
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a = (a @ a).clamp_(-1, 1)
        if cuda:
            torch.cuda.synchronize()
        count += 10
    return count


def check_cuda(answers: Answers) -> bool:
    import torch

    versions = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    if not torch.cuda.is_available():
        return answers.say("cuda", False, f"no CUDA: torch sees no GPU ({versions})")
    name = torch.cuda.get_device_name(0)
    return answers.say("cuda", True, f"{name} ({versions})", name=name, torch=torch.__version__)


def check_nvml(answers: Answers) -> Any:
    """NVML's module if it answers, else None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
    except Exception as error:
        answers.say("nvml", False, f"no NVML: {type(error).__name__}: {error}")
        return None
    answers.say("nvml", True, f"driver {driver}", driver=driver)
    return pynvml


def check_gpu(answers: Answers, pynvml: Any) -> Any:
    """NVML's handle of GPU 0 with its state recorded, or None where NVML sees no GPU."""
    from llmenergy import gpus

    count = pynvml.nvmlDeviceGetCount()
    if count == 0:
        answers.say("gpu", False, "no GPU visible to NVML (0 devices)")
        return None
    state = gpus.states()[0]
    detail = (
        f"{state['name']}, {count} GPU(s), SM {state['sm_clock_mhz']} MHz, "
        f"{state['temperature_c']} C, power limit {state['power_limit_w']:.0f} W"
    )
    answers.say("gpu", True, detail, count=count, **state)
    return pynvml.nvmlDeviceGetHandleByIndex(0)


def check_counter(answers: Answers, pynvml: Any, handle: Any, cuda: bool) -> bool:
    try:
        before, start = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
        load(LOAD_S, cuda)
        after, seconds = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
    except Exception as error:
        return answers.say("counter", False, f"energy counter unreadable: {error}")
    seconds -= start
    if after <= before:
        return answers.say(
            "counter", False, f"energy counter did not move in {seconds:.1f} s of load ({after} mJ)"
        )
    watts = (after - before) / 1000 / seconds
    where = "GPU" if cuda else "CPU"
    return answers.say(
        "counter", True, f"moved {watts:.0f} W under {where} load", watts_under_load=watts
    )


def check_zeus(answers: Answers, cuda: bool) -> bool:
    try:
        from zeus.monitor import ZeusMonitor

        monitor = ZeusMonitor(gpu_indices=[0], cpu_indices=[])
        monitor.begin_window("gate", sync_execution=False)
        load(WINDOW_S, cuda)
        measurement = monitor.end_window("gate", sync_execution=False)
    except Exception as error:
        return answers.say("zeus", False, f"Zeus window failed: {type(error).__name__}: {error}")
    joules = float(sum(measurement.gpu_energy.values()))
    detail = f"{joules:.1f} J in {measurement.time:.2f} s"
    return answers.say("zeus", joules > 0, detail, energy_j=joules, seconds=measurement.time)


def check_instant(answers: Answers) -> bool:
    from llmenergy import energy

    try:
        readable = energy.instant_power_readable([0])
    except Exception as error:
        return answers.say("instant", False, f"instant power unreadable: {error}")
    detail = "instant power field answers" if readable else "only the 1 s average power"
    return answers.say("instant", readable, detail)


def main(path: Path) -> int:
    answers = Answers(path)
    cuda = check_cuda(answers)
    pynvml = check_nvml(answers)
    handle = check_gpu(answers, pynvml) if pynvml is not None else None
    measured = handle is not None and check_counter(answers, pynvml, handle, cuda)
    if measured and check_zeus(answers, cuda):
        check_instant(answers)
    energy_ok = all(answers.ok(check) for check in ENERGY_CHECKS)
    mode = "energy" if cuda and energy_ok else "times-only" if cuda else "cpu"
    # What failed, in order (a check after a failed one is not asked); instant power is not
    # required: without it the windows are still measured, per-token energy is null.
    failed = {
        check: answer["detail"]
        for check, answer in answers.data["checks"].items()
        if not answer["ok"] and check != "instant"
    }
    answers.data.update(mode=mode, missing=list(failed))
    answers.data["seconds"] = round(time.perf_counter() - answers.started, 2)
    answers.save()
    if failed:
        named = "; ".join(failed.values())
        print(f"gate: FAIL: missing {', '.join(failed)}: {named} (mode {mode})", flush=True)
        return 1
    print(f"gate: pass (mode {mode}, {answers.data['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

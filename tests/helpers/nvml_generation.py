"""Run generation.run on the tiny model with the `zeus` backend, in a fresh process whose
`pynvml` is the simulated NVML (tests/helpers/fake_nvml), and print its records as JSON.

Usage: python nvml_generation.py SETTINGS_JSON
SETTINGS: {"model_dir": ..., "energy": {...}, "tasks": [{"task_id", "prompt"}],
           "max_new_tokens": N, "ignore_eos": bool, "check_cpu_s": seconds or null,
           "runs": [{"workload", "tasks", "max_new_tokens"}] or null,
           "step_s": {"prefill": seconds, "decode": seconds} or null,
           "interleave": bool, "conditions": {...} or null, "idle_each_run": bool}
`conditions` are the config's `energy.conditions` (conditions.Bounds: when a task's windows
count as contended, how often it is measured again, which mean powers are implausible), with
one difference: other processes' CPU cores count only where `conditions` sets
`max_other_cores` (else it is infinite). The simulated GPU draws what it draws whatever else
the machine does, and a busy test machine (two cores, other tests beside) would otherwise have
every task measured again and flagged `contended` for load it took no energy from. Other
processes on the simulated GPU (the spec's `others`) are judged as the config's defaults say.
With `check_cpu_s`, the strategy is `oracle`, and its check at every line end is a child
process that burns that much CPU time and fails (the tiny model writes no code that parses,
so the stopper takes every line end for a candidate).
With `runs`, each is a workload generated in turn (by the same meter), in place of `tasks`
and `max_new_tokens` (workload `w`); with `interleave`, task by task, a task of each in turn,
and a task's own `step_s` (as the settings') holds while it is generated.
The device is measured idle (`energy.idle_seconds`) before the first run only, or before
each with `idle_each_run` (its records then carry that idle power, which a later run's lack).
Where the simulated NVML's spec names a `phase_log`, this process appends what its device
does there (`PhaseLog`): `prefill@<workload>` from a forward pass without a cache,
`decode@<workload>` from one with, `idle` from the end of each meter window on, so that a GPU
with `phase_watts` draws what this process does. With `step_s`, a pass of that phase draws
its power for exactly that long (the tiny model's passes are shorter) and is followed by idle:
a decoded token then costs the same energy whatever the prompt's length (the tiny model on a
CPU is quicker on short ones), a planted truth of no amplification. Each attempt at measuring
a task (the first, and each measured again for contention) is marked in the log as it starts,
the device idle, by a line `measure@<workload>/<task_id>#<attempt>` (attempts count from 1),
which the simulated NVML's other processes can start and end at.
The model runs on the CPU; the meter is bound to a simulated GPU by `energy.gpus`. The last
line of stdout is {"pid", "device", "records", "tokens", "monitor_s"}; each token row holds
its run's keys (model, workload, strategy, rep) beside the task's.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from llmenergy import energy, generation, models, stopping
from llmenergy.conditions import Bounds
from llmenergy.generation_settings import GenerationSettings
from llmenergy.stopping.oracle import OracleStopper

BURN = "import time\nend = time.process_time() + {}\nwhile time.process_time() < end: pass\n"


class EveryLineOracle(OracleStopper):
    """The oracle, taking every line end for code that parses."""

    def _code_parses(self, cut: int) -> bool:
        return True


def burning_check(cpu_s: float):
    import resource
    import subprocess

    def check(candidate: str) -> tuple[bool, float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", BURN.format(cpu_s)], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return False, time.perf_counter() - start, cpu

    return check


class PhaseLog:
    """What the simulated GPU does, as this process drives it: a forward pass without a cache
    is prefill, one with a cache decode, and the device keeps at it (kernels queued back to
    back) until the meter's window ends, where the decoding loop waits for the device, and it
    idles. A phase with a step (`step_s`) draws its power for exactly that long a pass, and the
    device idles from then to the next pass: each pass then costs the same energy, whatever
    the prompt and however late a busy machine wakes this process up."""

    def __init__(self, path: str | None, step_s: dict[str, float] | None) -> None:
        self.file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self.step_s = step_s or {}
        self.workload = "w"
        self.phase = "idle"
        self.kind = "prefill"
        self.started = 0.0

    def write(self, phase: str, at: float | None = None) -> None:
        if self.file is not None and phase != self.phase:
            self.file.write(f"{time.time() if at is None else at:.6f} {phase}\n")
            self.file.flush()  # the other processes read the log as it grows
        self.phase = phase

    def before(self, module, args, kwargs) -> None:
        self.kind = "prefill" if kwargs.get("past_key_values") is None else "decode"
        self.started = time.time()
        self.write(f"{self.kind}@{self.workload}", at=self.started)
        step_s = self.step_s.get(self.kind)
        if step_s:
            # The pass's end is written as it begins: the device draws for exactly its step
            # even when a loaded machine keeps this process's forward pass running longer.
            self.write("idle", at=self.started + step_s)

    def after(self, module, args, kwargs, output) -> None:
        step_s = self.step_s.get(self.kind)
        if step_s:  # the next pass begins no earlier than this one's end
            time.sleep(max(0.0, self.started + step_s - time.time()))

    def attach(self, model: torch.nn.Module) -> None:
        model.register_forward_pre_hook(self.before, with_kwargs=True)
        model.register_forward_hook(self.after, with_kwargs=True)

    def mark_attempts(self) -> None:
        """Mark each attempt at measuring a task (generation.measure_task) as it starts."""
        measure_task = generation.measure_task
        attempts: dict[tuple[str, str], int] = {}

        def marked(loaded, task, *args, **kwargs):
            key = (self.workload, str(task["task_id"]))
            attempts[key] = attempts.get(key, 0) + 1
            self.write(f"measure@{key[0]}/{key[1]}#{attempts[key]}")
            return measure_task(loaded, task, *args, **kwargs)

        generation.measure_task = marked


class IdleAtWindowEnds:
    """The meter, with the simulated GPU idle from each window's end on."""

    def __init__(self, meter: energy.Meter, phases: PhaseLog) -> None:
        self.meter = meter
        self.phases = phases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.meter, name)

    def end(self, name: str) -> energy.Reading:
        self.phases.write("idle")
        return self.meter.end(name)


def interleaved(runs: list[dict]) -> list[dict]:
    """Each run's tasks one at a time, the runs' first tasks first, then their second, ...: so
    that a machine busier at some moments than others burdens every run alike."""
    longest = max(len(run["tasks"]) for run in runs)
    return [
        {**run, "tasks": [run["tasks"][i]]}
        for i in range(longest)
        for run in runs
        if i < len(run["tasks"])
    ]


def main() -> None:
    settings = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    loaded = models.load(settings["model_dir"], "tiny", {"dtype": "float32"})
    meter = energy.open_meter(settings["energy"], str(loaded.device), print)
    started = time.time()
    strategy = stopping.for_run(stopping.BASELINE, "completion")
    check_watts_per_core = None
    if settings.get("check_cpu_s"):
        check = burning_check(settings["check_cpu_s"])
        every_line = stopping.Strategy(
            "oracle", lambda task: EveryLineOracle(task.check), runs_code=True
        )
        strategy = stopping.RunStrategy(every_line, "completion", lambda task: check)
        check_watts_per_core = 12.0
    phases = PhaseLog(
        json.loads(Path(os.environ["FAKE_NVML_SPEC"]).read_text()).get("phase_log"),
        settings.get("step_s"),
    )
    phases.attach(loaded.model)
    phases.mark_attempts()
    meter = IdleAtWindowEnds(meter, phases)
    runs = settings.get("runs") or [
        {"workload": "w", "tasks": settings["tasks"], "max_new_tokens": settings["max_new_tokens"]}
    ]
    if settings.get("interleave"):
        runs = interleaved(runs)
    records, tokens = [], []
    for index, run in enumerate(runs):
        phases.workload = run["workload"]
        if settings.get("interleave"):  # one task a run
            phases.step_s = {**(settings.get("step_s") or {}), **run["tasks"][0].get("step_s", {})}
        keys = {"model": "tiny", "workload": run["workload"], "strategy": "none", "rep": 1}
        first = index == 0 or settings.get("idle_each_run")
        idle_s = settings["energy"].get("idle_seconds", 0.0) if first else 0.0
        run_settings = GenerationSettings(
            prompt_style="completion",
            max_new_tokens=run["max_new_tokens"],
            ignore_eos=settings.get("ignore_eos", False),
            max_prefill_repeats=settings["energy"].get("max_prefill_repeats", 256),
            max_task_repeats=settings["energy"].get("max_task_repeats", 64),
            idle_seconds=idle_s,
            check_watts_per_core=check_watts_per_core,
            bounds=Bounds.of({"max_other_cores": math.inf, **(settings.get("conditions") or {})}),
        )
        result = generation.run(
            loaded,
            run["tasks"],
            meter,
            strategy,
            run_settings,
            keys,
            log=lambda line: print(line, file=sys.stderr),
        )
        records.extend(result.records)
        tokens.extend({**keys, **row} for row in result.tokens)
        # The model and the meter are warm after the first run: the others skip the short
        # unrecorded generation that generation.run starts with (a second or so each).
        generation.warm_up = lambda *args, **kwargs: None
    summary = {
        "pid": os.getpid(),
        "device": meter.device,
        "records": records,
        "tokens": tokens,
        "monitor_s": time.time() - started,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":  # Zeus's power monitor spawns processes: the guard is required
    main()

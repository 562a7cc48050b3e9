"""Run generation.run on the tiny model with the `zeus` backend, in a fresh process whose
`pynvml` is the simulated NVML (tests/helpers/fake_nvml), and print its records as JSON.

Usage: python nvml_generation.py SETTINGS_JSON
SETTINGS: {"model_dir": ..., "energy": {...}, "tasks": [{"task_id", "prompt"}],
           "max_new_tokens": N, "ignore_eos": bool, "check_cpu_s": seconds or null}
With `check_cpu_s`, the strategy is `oracle`, and its check at every line end is a child
process that burns that much CPU time and fails (the tiny model writes no code that parses,
so the stopper takes every line end for a candidate).
The model runs on the CPU; the meter is bound to a simulated GPU by `energy.gpus`. The last
line of stdout is {"pid", "device", "records", "tokens", "monitor_s"}.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from llmenergy import energy, generation, models
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


def main() -> None:
    settings = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    loaded = models.load(settings["model_dir"], "tiny", {"dtype": "float32"})
    meter = energy.open_meter(settings["energy"], str(loaded.device), print)
    started = time.time()
    oracle = {}
    if settings.get("check_cpu_s"):
        check = burning_check(settings["check_cpu_s"])
        oracle = {
            "strategy": "oracle",
            "stopper_for": lambda task, prompt: EveryLineOracle(check),
            "check_watts_per_core": 12.0,
        }
    result = generation.run(
        loaded,
        settings["tasks"],
        meter,
        keys={"model": "tiny", "workload": "w", "strategy": "none", "rep": 1},
        prompt_style="completion",
        max_new_tokens=settings["max_new_tokens"],
        max_prefill_repeats=settings["energy"].get("max_prefill_repeats", 256),
        max_task_repeats=settings["energy"].get("max_task_repeats", 64),
        idle_seconds=settings["energy"].get("idle_seconds", 0.0),
        ignore_eos=settings.get("ignore_eos", False),
        log=lambda line: print(line, file=sys.stderr),
        **oracle,
    )
    summary = {
        "pid": __import__("os").getpid(),
        "device": meter.device,
        "records": result.records,
        "tokens": result.tokens,
        "monitor_s": time.time() - started,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":  # Zeus's power monitor spawns processes: the guard is required
    main()

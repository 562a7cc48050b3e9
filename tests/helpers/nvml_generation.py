"""Run generation.run on the tiny model with the `zeus` backend, in a fresh process whose
`pynvml` is the simulated NVML (tests/helpers/fake_nvml), and print its records as JSON.

Usage: python nvml_generation.py SETTINGS_JSON
SETTINGS: {"model_dir": ..., "energy": {...}, "tasks": [{"task_id", "prompt"}],
           "max_new_tokens": N, "ignore_eos": bool}
The model runs on the CPU; the meter is bound to a simulated GPU by `energy.gpus`. The last
line of stdout is {"pid", "device", "records", "tokens", "monitor_s"}.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from llmenergy import energy, generation, models


def main() -> None:
    settings = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    loaded = models.load(settings["model_dir"], "tiny", {"dtype": "float32"})
    meter = energy.open_meter(settings["energy"], str(loaded.device), print)
    started = time.time()
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

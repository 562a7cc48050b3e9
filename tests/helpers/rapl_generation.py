"""Run generation.run on the tiny model with the `zeus` backend on a fabricated RAPL tree
(tests/helpers/fake_rapl.py), and print its records as JSON.

Usage: python rapl_generation.py MODEL_DIR
Run in a fresh process, after the tree exists, so that Zeus finds it. One task, decoded to 60
tokens past the end of sequence, the package measured idle first. Other processes' CPU time
is recorded but not judged (`max_other_cores` infinite): a busy test machine would have the
task measured again for load the fabricated counters take no energy from. The last line of
stdout is the list of records.
"""

from __future__ import annotations

import json
import math
import sys

import torch

from llmenergy import energy, generation, models, stopping
from llmenergy.conditions import Bounds
from llmenergy.generation_settings import GenerationSettings

TASK = {"task_id": "T/0", "prompt": 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'}


def main() -> None:
    torch.set_num_threads(1)  # leave a core to the thread that advances the counters
    loaded = models.load(sys.argv[1], "tiny", {"dtype": "float32"})
    meter = energy.open_meter({"backend": "zeus", "min_window_s": 0.2})
    settings = GenerationSettings(
        prompt_style="completion",
        max_new_tokens=60,
        ignore_eos=True,
        max_prefill_repeats=256,
        max_task_repeats=64,
        idle_seconds=0.5,
        check_watts_per_core=None,
        bounds=Bounds(max_other_cores=math.inf),
    )
    keys = {"model": "tiny", "workload": "w", "strategy": "none", "rep": 1}
    strategy = stopping.for_run(stopping.BASELINE, "completion")
    result = generation.run(
        loaded,
        [TASK],
        meter,
        strategy,
        settings,
        keys,
        log=lambda line: print(line, file=sys.stderr),
    )
    print(json.dumps(result.records), flush=True)


if __name__ == "__main__":  # Zeus spawns helper processes: the guard is required
    main()

"""Run one metered generation with the `zeus` backend and print its record as JSON.

Usage: python zeus_generation.py MODEL_DIR MAX_NEW_TOKENS MIN_WINDOW_S
Run in a fresh process so that Zeus probes RAPL after the fabricated tree exists. It prints
READY once Zeus's wrap-around trackers are up, and waits for a line on stdin before measuring.
Between the prefill and the decode window it prints DECODE and waits for another line, so the
caller can let the decode window begin just before a counter wrap-around. The record also
holds `windows`: each window's perf_counter() times taken just before `begin` and just after
`end`, which enclose the moments Zeus read the counters.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any

import torch

from llmenergy import energy, generation, models

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'


class Bracketed:
    """A meter whose windows are timed from outside, and whose decode window waits for the
    caller's go-ahead first (outside any window, so the wait is measured by neither)."""

    def __init__(self, meter: energy.Meter) -> None:
        self.meter = meter
        self.windows: dict[str, list[float]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.meter, name)

    def begin(self, name: str) -> None:
        if name == "decode":
            print("DECODE", flush=True)
            sys.stdin.readline()
        self.windows[name] = [time.perf_counter()]  # a repeated prefill keeps its last window
        self.meter.begin(name)

    def end(self, name: str) -> energy.Reading:
        reading = self.meter.end(name)
        self.windows[name].append(time.perf_counter())
        return reading


def main() -> None:
    model_dir, max_new_tokens, min_window_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)  # leave a core to the thread that advances the counters
    meter = energy.open_meter(
        {"backend": "zeus", "watts_per_core": 1.0, "min_window_s": min_window_s}
    )
    loaded = models.load(model_dir, "tiny", {"dtype": "float32"})
    loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())  # decode the full length
    input_ids = generation.encode(loaded, PROMPT, "completion")
    generation.decode_greedy(loaded, input_ids, 8, meter, 256)  # warm-up; starts the trackers
    time.sleep(3.0)  # Zeus's wrap-around trackers are spawned processes: let them start
    print("READY", flush=True)
    sys.stdin.readline()
    bracketed = Bracketed(meter)
    decoded = generation.decode_greedy(loaded, input_ids, max_new_tokens, bracketed, 256)
    record = dataclasses.asdict(decoded)
    record.pop("token_ids")
    # The record's flat columns, as generation.record writes them, and the meter's source.
    for phase in ("prefill", "decode"):
        joules = record.pop(f"{phase}_energy")
        record[f"{phase}_energy_j"] = joules["accelerator"]
        record[f"{phase}_host_energy_j"] = joules["host"]
    record["energy_source"] = meter.source
    record["windows"] = bracketed.windows
    print(json.dumps(record), flush=True)


if __name__ == "__main__":  # Zeus spawns helper processes: the guard is required
    main()

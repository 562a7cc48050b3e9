"""Print config/paper-random.yaml cut to fit the GPU kit's sweep stage (tests/gpu/kit.sh).

Usage: python sweep_config.py [--tasks N] [--times-only] [--cpu] [MODEL ...]

Kept from the sweep: the models' full published shapes in bfloat16 on cuda, EOS ignored (every
task decodes exactly max_new_tokens), the amplification's workload pair (the short and the long
prompt of `analysis.amplification`) at their full lengths. Cut: the models named (default: one
of multi-head and one of grouped-query attention, both 7B), N tasks per workload, a short idle
measurement. The energy is Zeus's (`energy.backend: zeus`): a run without a counter stops
before its first job instead of falling back to an estimate.

--times-only: the machine has CUDA but no readable energy counter (the gate said so): the same
sweep with the CPU-time estimate, whose seconds are measured and whose joules are labelled
estimates; only the times are worth reading.
--cpu: the kit's CPU rehearsal: every model cut to 2 layers of 8-wide heads (the head counts,
KV heads and vocabulary kept) in float32 on the CPU, short prompts, 4 new tokens, metered on
GPU 0 of the simulated NVML (`energy.gpus`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT = [
    "codellama-7b-random",  # multi-head attention: the largest KV cache per token of the 7Bs
    "qwen2.5-coder-7b-random",  # grouped-query (4 KV heads of 28): about 1/8 of its KV cache
]
# The rehearsal's prompt lengths, cut in their middle (the sweep's are ~140 and ~5,500 tokens).
CPU_BUDGETS = {"short": 16, "long": 64}
CPU_HEAD_DIM = 8


def cut(config: dict, models: list[str], tasks: int, times_only: bool, cpu: bool) -> dict:
    unknown = sorted(set(models) - set(config["models"]))
    if unknown:
        raise SystemExit(f"not in config/paper-random.yaml: {unknown}")
    config["models"] = {name: config["models"][name] for name in models}
    pair = config["analysis"]["amplification"]
    config["workloads"] = {
        name: {**config["workloads"][name], "limit": tasks}
        for name in (pair["short"], pair["long"])
    }
    config["energy"] = {
        "backend": "estimate" if times_only else "zeus",
        "idle_seconds": 3,
    }
    if cpu:
        for spec in config["models"].values():
            shape = spec["source"]["architecture"]
            # Random numbers for a full-width embedding are most of a CPU build: narrow it.
            shape["hidden_size"] = CPU_HEAD_DIM * shape["num_attention_heads"]
            shape["intermediate_size"] = 2 * shape["hidden_size"]
            shape["head_dim"] = CPU_HEAD_DIM
            shape["num_hidden_layers"] = 2
            spec["dtype"] = "float32"  # bfloat16 matrix products are slow on most CPUs
        for role, name in pair.items():
            config["workloads"][name] |= {"prompt_budget": CPU_BUDGETS[role], "max_new_tokens": 4}
        config["datasets"]["longbench-standin"]["source"]["samples"] = tasks
        config["generation"]["device"] = "cpu"
        config["energy"]["idle_seconds"] = 0.5
        if not times_only:
            config["energy"]["gpus"] = [0]
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=DEFAULT)
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--times-only", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config" / "paper-random.yaml").read_text())
    config = cut(config, args.models, args.tasks, args.times_only, args.cpu)
    print(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()

"""Print config/paper-random.yaml cut to fit tests/gpu/run.sh's budget: the models named on the
command line (default: one of each attention kind and size), two tasks per workload, a short
idle measurement. Everything else (bfloat16 on cuda, EOS ignored, the workloads' lengths) is
the sweep's own."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT = [
    "codellama-7b-random",  # multi-head attention, 7B
    "qwen2.5-coder-7b-random",  # grouped-query, 7B
    "codegemma-7b-random",  # multi-head, head_dim 256: the largest KV cache
    "qwen2.5-coder-3b-random",  # grouped-query, 3B
]


def main() -> None:
    config = yaml.safe_load((REPO / "config" / "paper-random.yaml").read_text())
    wanted = sys.argv[1:] or DEFAULT
    unknown = sorted(set(wanted) - set(config["models"]))
    if unknown:
        raise SystemExit(f"not in config/paper-random.yaml: {unknown}")
    config["models"] = {name: config["models"][name] for name in wanted}
    for workload in config["workloads"].values():
        workload["limit"] = 2
    config["energy"]["idle_seconds"] = 3
    print(yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()

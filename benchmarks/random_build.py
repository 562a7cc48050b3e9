"""Building a random-weight model: transformers' from_config on the device against
models.build_random (meta device, storage on the device, one initialisation), side by side.

    python benchmarks/random_build.py                      # this CPU: each shape cut to 2 layers
    python benchmarks/random_build.py --device cuda --layers 0 --dtype bfloat16  # full size

Prints, per architecture of config/paper-random.yaml, the seconds of each build and their
ratio. from_config on a device runs PyTorch's default initialisation of every layer and then
transformers' own over it (and draws a tied embedding twice); build_random draws each value
once. On a CPU, drawing random numbers is most of a build.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from llmenergy import architectures, models

REPO = Path(__file__).resolve().parents[1]


def seconds(build, device: torch.device) -> float:
    """Wall time of one build, the device drained before the clock stops."""
    start = time.perf_counter()
    model = build()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    took = time.perf_counter() - start
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return took


def plain(config, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    with device:
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "paper-random.yaml"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(models.DTYPES))
    parser.add_argument("--layers", type=int, default=2, help="cut each shape to this (0: keep)")
    parser.add_argument("--only", nargs="*", help="architectures to build (default: all)")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), models.DTYPES[args.dtype]
    shapes = architectures.load(args.config)
    names = args.only or list(shapes)
    print(f"device {device}, {args.dtype}, layers {args.layers or 'as published'}")
    print(f"{'architecture':28} {'parameters':>11} {'from_config':>12} {'build_random':>13} ratio")
    totals = [0.0, 0.0]
    for name in names:
        shape = dict(shapes[name])
        if args.layers:
            shape["num_hidden_layers"] = args.layers
        config = architectures.config_for(shape)
        parameters = architectures.parameter_count(shape)
        before = seconds(lambda config=config: plain(config, device, dtype), device)
        after = seconds(lambda config=config: models.build_random(config, 0, device, dtype), device)
        totals[0] += before
        totals[1] += after
        print(
            f"{name:28} {parameters / 1e9:10.2f}B {before:11.2f}s {after:12.2f}s "
            f"{before / after:5.2f}"
        )
    print(f"{'all':28} {'':11} {totals[0]:11.2f}s {totals[1]:12.2f}s {totals[0] / totals[1]:5.2f}")


if __name__ == "__main__":
    main()

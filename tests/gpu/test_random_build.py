"""A full-size architecture of the study built on the GPU in bfloat16: seconds, no CPU copy."""

from __future__ import annotations

import time

import pytest
import torch

from llmenergy import architectures, models

from conftest import REPO

ARCHITECTURES = architectures.load(REPO / "config" / "paper-random.yaml")


@pytest.mark.parametrize("name", ["qwen2.5-coder-7b-random", "codegemma-7b-random"])
def test_a_7b_architecture_builds_on_the_gpu_in_seconds(name: str) -> None:
    device = torch.device("cuda")
    config = architectures.config_for(ARCHITECTURES[name])
    allocated_before = torch.cuda.memory_allocated(device)
    start = time.perf_counter()
    model = models.build_random(config, 0, device, torch.bfloat16)
    torch.cuda.synchronize(device)
    took = time.perf_counter() - start
    print(f"{name}: built in {took:.2f} s")
    try:
        parameters = list(model.parameters())
        assert all(p.device.type == "cuda" and p.dtype == torch.bfloat16 for p in parameters)
        assert sum(p.numel() for p in parameters) == architectures.parameter_count(
            ARCHITECTURES[name]
        )
        assert all(bool(torch.isfinite(p).all()) for p in parameters)
        assert took < 30, f"{name} took {took:.1f} s to build"
        assert torch.cuda.memory_allocated(device) > allocated_before
    finally:
        del model
        torch.cuda.empty_cache()

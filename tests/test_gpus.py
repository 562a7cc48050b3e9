"""Which GPUs a process sees, on the simulated NVML of tests/helpers/fake_nvml: NVML's GPUs,
limited to and ordered by CUDA_VISIBLE_DEVICES (indices or UUID prefixes), named as the
meter's records name them."""

from __future__ import annotations

import json

from test_energy_nvml import gpu, run_script, write_spec

from llmenergy import gpus

SHOW = """
import json
from llmenergy import energy, gpus
found = gpus.visible()
print(json.dumps({
    "visible": [[g.index, g.uuid, g.name] for g in found],
    "counters": list(energy.available_counters().gpu_indices),
    "labels": energy.gpu_labels(range(len(found))),
    "driver": gpus.driver_version(),
    "states": [s["index"] for s in gpus.states()],
}))
"""


def show(tmp_path, monkeypatch, visible: str | None) -> dict:
    spec = write_spec(tmp_path, [gpu(70.0, name=f"Sim {i}") for i in range(3)])
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    return json.loads(run_script(spec, SHOW))


def test_every_gpu_in_nvml_order_without_cuda_visible_devices(tmp_path, monkeypatch):
    seen = show(tmp_path, monkeypatch, None)
    assert seen["visible"] == [[i, f"GPU-simulated-{i}", f"Sim {i}"] for i in range(3)]
    assert seen["counters"] == [0, 1, 2]
    assert seen["labels"] == "gpu:0 Sim 0,gpu:1 Sim 1,gpu:2 Sim 2"
    assert seen["driver"] == "000.00 (simulated)" and seen["states"] == [0, 1, 2]


def test_cuda_visible_devices_by_index_or_uuid_counts_as_torch_does(tmp_path, monkeypatch):
    """`cuda:0` is the first entry, named by its NVML index whichever way it was given."""
    seen = show(tmp_path, monkeypatch, "GPU-simulated-2,0")
    assert seen["visible"] == [[2, "GPU-simulated-2", "Sim 2"], [0, "GPU-simulated-0", "Sim 0"]]
    assert seen["counters"] == [0, 1]
    assert seen["labels"] == "gpu:2 Sim 2,gpu:0 Sim 0"
    assert seen["states"] == [0, 1, 2]  # the box's every GPU, described for the log


def test_no_nvml_no_gpus(monkeypatch):
    monkeypatch.delenv("FAKE_NVML_SPEC", raising=False)
    assert gpus.restrict([], "0") == []
    if gpus.driver_version() is None:  # this machine has no NVML driver
        assert gpus.visible() == [] and gpus.states() == []

"""One generation job per GPU: which configs share GPUs out, the per-GPU lock between real
processes, and the real workflow on four simulated GPUs.

This machine has no GPU: the GPUs are the simulated NVML of tests/helpers/fake_nvml (each
draws a fixed power), and the model runs on the CPU while each job's meter reads the GPU the
job claimed (`energy.gpus: [0]`, the only one a pinned job sees). What is real: Snakemake's
scheduling, the jobs' processes, their locks, CUDA_VISIBLE_DEVICES and Zeus reading NVML.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from test_energy_nvml import H100, environment, gpu, write_spec

from llmenergy import gpu_slots, gpus

from conftest import load_tiny_config, snakemake_command

GPUS = [gpus.Gpu(i, f"GPU-{i}aa-{i}", H100) for i in range(4)]


def config_with(device: str = "cuda", **energy) -> dict:
    return {
        "generation": {"device": device, "pin_gpus": "auto"},
        "energy": {"backend": "auto", **energy},
    }


def test_cuda_models_get_a_gpu_each_and_everything_else_runs_alone():
    assert gpu_slots.slots(config_with("cuda"), GPUS) == 4
    assert gpu_slots.slots(config_with("cuda"), []) == 0  # no NVML: one job at a time
    assert gpu_slots.slots(config_with("cpu"), GPUS) == 0
    assert gpu_slots.slots(config_with("cuda:1"), GPUS) == 0  # the config chose the GPU
    assert gpu_slots.slots(config_with("cuda", gpus=[1]), GPUS) == 0  # every job meters GPU 1
    assert gpu_slots.slots(config_with("cuda", backend="estimate"), GPUS) == 0
    forced = config_with("cpu")
    forced["generation"]["pin_gpus"] = True
    assert gpu_slots.slots(forced, GPUS) == 4
    never = config_with("cuda")
    never["generation"]["pin_gpus"] = False
    assert gpu_slots.slots(never, GPUS) == 0


def test_cuda_visible_devices_limits_the_gpus_by_index_or_uuid():
    assert gpus.restrict(GPUS, None) == GPUS
    assert gpus.restrict(GPUS, "3,1") == [GPUS[3], GPUS[1]]
    assert gpus.restrict(GPUS, "GPU-2aa") == [GPUS[2]]
    assert gpus.restrict(GPUS, "") == []
    environ: dict[str, str] = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    gpu_slots.pin(GPUS[2], environ)
    assert environ == {"CUDA_VISIBLE_DEVICES": "2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


HOLD = """
import sys, time
from pathlib import Path
from llmenergy import gpu_slots, gpus
held = gpu_slots.try_claim(gpus.Gpu(0, "GPU-held", "held"), Path(sys.argv[1]))
print("held" if held else "busy", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_gpu_held_by_another_process_is_not_claimed_until_it_exits(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), "2"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        gpu = gpus.Gpu(0, "GPU-held", "held")
        assert gpu_slots.try_claim(gpu, tmp_path) is None
        other = gpus.Gpu(1, "GPU-free", "free")
        notes: list[str] = []
        got = gpu_slots.claim([gpu, other], tmp_path, notes.append)
        assert got.gpu == other and notes == []
        got.release()
        # With both held, claim waits for the first to come free and says it is waiting.
        both = gpu_slots.claim([other], tmp_path, notes.append)
        start = time.monotonic()
        got = gpu_slots.claim([gpu, other], tmp_path, notes.append, poll_s=0.05)
        assert got.gpu == gpu and holder.poll() is not None
        assert time.monotonic() - start > 0.2 and "held by other jobs" in notes[0]
        got.release()
        both.release()
    finally:
        holder.kill()
        holder.wait()


def log_span(path: Path) -> tuple[datetime, datetime]:
    stamps = [
        datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
        for line in path.read_text().splitlines()
        if line[:4].isdigit()
    ]
    return stamps[0], stamps[-1]


@pytest.mark.slow
def test_four_jobs_run_at_once_each_on_its_own_gpu(tmp_path: Path, workdir: Path):
    """Four repetitions on four simulated GPUs of 50, 100, 200 and 400 W: the four jobs run at
    the same time, each row names a different GPU (its NVML index), and each job's energy and
    idle power are its own GPU's; no job reads the shared host's energy."""
    watts = [50.0, 100.0, 200.0, 400.0]
    # A window of w seconds reads a counter that moves every u seconds: its energy is off by at
    # most u / w. With u = 50 ms and w >= 0.3 s that is 17%, inside the 30% asserted below even
    # on a loaded machine (at u = 100 ms the bound was 33%, and a slow window crossed 30%).
    update_s, min_window_s = 0.05, 0.3
    assert update_s / min_window_s < 0.3 - 0.1
    spec = write_spec(
        tmp_path, [gpu(w, uuid=f"GPU-slots-{i}") for i, w in enumerate(watts)], update_s=update_s
    )
    config = load_tiny_config()
    config["repetitions"] = 4
    config["generation"] = {"device": "cpu", "pin_gpus": True, "ignore_eos": True}
    config["energy"] = {
        **config["energy"],
        "backend": "zeus",
        "gpus": [0],  # the one GPU a pinned job sees
        "min_window_s": min_window_s,
        "max_prefill_repeats": 5000,
        "idle_seconds": 0.5,
        # Per-token power timelines are another process per job, and not what this tests.
        "power_timeline": False,
    }
    config["workloads"]["humaneval-0shot"].update(limit=2, max_new_tokens=200)
    targets = [
        f"results/generations/tiny-random/humaneval-0shot/none/rep{r}.parquet" for r in (1, 2, 3, 4)
    ]
    command = snakemake_command(workdir, config, *targets)
    command[command.index("--cores") + 1] = "4"
    env = {**environment(spec), gpu_slots.LOCK_DIR_ENV: str(tmp_path / "locks")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    run = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    logs = sorted((workdir / "logs/generate/tiny-random/humaneval-0shot/none").glob("rep*.log"))
    spans = [log_span(path) for path in logs]
    assert len(spans) == 4
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans

    rows = pl.read_parquet(workdir / "results/generations/*/*/*/rep[0-9].parquet")
    devices = {}
    for row in rows.iter_rows(named=True):
        devices.setdefault(row["rep"], set()).add(row["metered_device"])
        index = int(row["metered_device"].split()[0].removeprefix("gpu:"))
        assert row["metered_device"] == f"gpu:{index} {H100}"
        assert row["energy_measured"] and row["host_energy_source"] is None
        assert row["idle_power_w"] == pytest.approx(watts[index], rel=0.25)
        for phase in ("prefill", "decode"):
            energy_j, seconds = row[f"{phase}_energy_j"], row[f"{phase}_s"]
            assert energy_j is not None, row["energy_flags"]
            assert energy_j == pytest.approx(watts[index] * seconds, rel=0.3), (phase, row)
    assert all(len(names) == 1 for names in devices.values())
    assert sorted(next(iter(names)) for names in devices.values()) == [
        f"gpu:{i} {H100}" for i in range(4)
    ]

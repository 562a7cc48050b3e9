"""Profiles and the paper's config, planned by the real Snakemake: the local default, Apptainer
on a GPU box, Slurm with one GPU per generation job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from llmenergy import configuration

from conftest import REPO, SNAKEMAKE, load_tiny_config, snakemake, snakemake_command

PROFILES = REPO / "profiles"
PAPER = REPO / "config" / "paper.yaml"


def planned_jobs(output: str) -> list[dict]:
    """The jobs of a Snakemake dry run: rule, wildcards and resources of each."""
    jobs: list[dict] = []
    for line in output.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            jobs.append({"rule": started.group(1), "wildcards": {}, "resources": {}})
            continue
        field = re.match(r"^    (wildcards|resources): (.*)$", line)
        if field and jobs:
            pairs = (item.split("=", 1) for item in field.group(2).split(", "))
            jobs[-1][field.group(1)] = {key: value for key, value in pairs}
    return jobs


def offline_prefix() -> list[str]:
    """`unshare -rn` where this machine allows it: the command then has no network at all."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def test_default_profile_limits_measurement_and_reruns_on_changes():
    profile = yaml.safe_load((PROFILES / "default" / "config.yaml").read_text())
    assert "measure=1" in profile["resources"]
    assert {"mtime", "params", "input", "code"} <= set(profile["rerun-triggers"])
    assert profile["show-failed-logs"] is True
    assert profile["apptainer-args"] == "--nv"


def test_paper_config_names_the_ten_models_at_pinned_or_recorded_revisions():
    paper = yaml.safe_load(PAPER.read_text())
    models = paper["models"]
    assert len(models) == 10
    for name, spec in models.items():
        source = spec["source"]
        assert source["kind"] == "hub", name
        assert re.fullmatch(r"[0-9a-f]{40}|main", source["revision"]), name
        assert spec["prompt_style"] == "completion", name  # raw completion prompts
    assert paper["generation"]["device"] == "cuda"
    assert paper["energy"]["backend"] == "zeus"
    assert paper["workloads"]["humaneval-0shot"]["max_new_tokens"] == 300


def test_slurm_profile_plans_one_gpu_per_generation_job(workdir: Path):
    paper = yaml.safe_load(PAPER.read_text())
    command = [
        *offline_prefix(),
        *snakemake_command(workdir, PAPER, "-n", "--profile", str(PROFILES / "slurm")),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=workdir)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert f"Using profiles {PROFILES / 'slurm'}" in output

    jobs = planned_jobs(output)
    generating = {"generate", "generate_amplification_pair"}
    generate = [job for job in jobs if job["rule"] in generating]
    runs = (
        len(paper["models"])
        * sum(len(configuration.strategies_of(paper, w)) for w in paper["workloads"])
        * paper["repetitions"]
    )
    # One job per model and repetition decodes the amplification pair's two baselines.
    pairs = [job for job in generate if job["rule"] == "generate_amplification_pair"]
    assert len(pairs) == len(paper["models"]) * paper["repetitions"]
    assert len(generate) + len(pairs) == runs
    assert {job["wildcards"]["model"] for job in generate} == set(paper["models"])
    for job in generate:
        assert job["resources"]["gpu"] == "1", job
        assert "gres" not in job["resources"], job
    with_gpu = {job["rule"] for job in jobs if "gpu" in job["resources"]}
    assert with_gpu == generating  # each measures its own GPU idle, too
    prepared = {job["wildcards"]["model"] for job in jobs if job["rule"] == "prepare_model"}
    assert prepared == set(paper["models"])


@pytest.mark.parametrize(
    "how",
    [["--profile", str(PROFILES / "apptainer")], ["--use-apptainer"]],
    ids=["apptainer-profile", "use-apptainer"],
)
def test_apptainer_runs_jobs_in_the_image_with_the_gpu_driver(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: list[str]
):
    """Apptainer is not packaged here: a stand-in records how Snakemake calls it, then runs the
    job's command on this machine, so the first job really completes."""
    calls = tmp_path / "apptainer-calls.txt"
    stand_in = tmp_path / "bin" / "apptainer"
    stand_in.parent.mkdir()
    stand_in.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "apptainer version 1.3.4"; exit 0; fi\n'
        f'printf "%s\\n" "$*" >> "{calls}"\n'
        'while [ $# -gt 0 ]; do case "$1" in *.sif) shift; break ;; *) shift ;; esac; done\n'
        'exec "$@"\n'
    )
    stand_in.chmod(0o755)
    # The job's `python` must be this environment's, as it would be the image's.
    path = [str(stand_in.parent), str(Path(SNAKEMAKE).parent), os.environ["PATH"]]
    monkeypatch.setenv("PATH", os.pathsep.join(path))

    run = snakemake(workdir, load_tiny_config(), *how, "--until", "fetch_dataset")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (workdir / "resources/datasets/humaneval/manifest.json").is_file()
    [call] = calls.read_text().splitlines()
    words = call.split()
    assert words[0] == "exec"
    assert "--nv" in words
    assert f"{REPO}/containers/llmenergy.sif" in words

"""Snakemake's Slurm executor, for real: a single-node cluster on this machine
(tests/helpers/slurm_cluster.sh) runs the tiny config with profiles/slurm, every rule a batch
job and the generation job on a GPU the node declares."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from helpers.report_tables import EXPECTED, assert_frame_shown

from conftest import REPO, load_tiny_config, snakemake_command

CLUSTER_SCRIPT = REPO / "tests" / "helpers" / "slurm_cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
GENERATIONS = "results/generations"

# Without accounting, job states come from squeue (sacct has none to give).
NO_ACCOUNTING = ["--slurm-status-command", "squeue"]
# The plugin checks job states 4 s after a submission, then at intervals 10 s longer each time
# until a job ends (at 4, 18, 42 s): most jobs of the tiny config take 8 to 16 s.
STATUS_CHECKS = ["--slurm-init-seconds-before-status-checks", "4"]

pytestmark = pytest.mark.slow


@dataclass
class Cluster:
    env: dict[str, str]  # this process's environment, for the cluster's clients
    partition: str

    def query(self, *command: str) -> str:
        run = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def snakemake(self, workdir: Path, config: dict, *args: str) -> list[str]:
        """The command line that runs the workflow in `workdir` on this cluster: profiles/slurm
        with the partition added to its default resources, and job states from squeue."""
        profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
        # A --default-resources on the command line replaces the profile's.
        resources = [f"{name}={value}" for name, value in profile["default-resources"].items()]
        return snakemake_command(
            workdir,
            config,
            "--profile",
            str(PROFILE),
            "--default-resources",
            *resources,
            f"slurm_partition={self.partition}",
            *NO_ACCOUNTING,
            *STATUS_CHECKS,
            *args,
        )

    def run(self, command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )


def slurm_installed() -> bool:
    search = os.pathsep.join([os.environ["PATH"], "/usr/sbin", "/sbin"])
    return all(shutil.which(tool, path=search) for tool in ("slurmctld", "slurmd", "munged"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, scontrol_stand_in: Path):
    # CI sets LLMENERGY_REQUIRE_SLURM: there a missing cluster fails the tests, never skips them.
    give_up = pytest.fail if os.environ.get("LLMENERGY_REQUIRE_SLURM") == "1" else pytest.skip
    if not slurm_installed():
        give_up("needs Slurm and MUNGE (slurmctld, slurmd, munged)")
    if os.geteuid() != 0:
        give_up("the test cluster's daemons run as root")
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "up", str(state)], capture_output=True, text=True, timeout=90
    )
    if up.returncode != 0:
        pytest.fail(f"the test cluster did not come up:\n{up.stdout}{up.stderr}")
    settings = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if line)
    # The real scontrol, so the executor plugin reads this cluster's MinJobAge.
    path = [
        entry for entry in os.environ["PATH"].split(os.pathsep) if entry != str(scontrol_stand_in)
    ]
    env = {**os.environ, "PATH": os.pathsep.join(path), "SLURM_CONF": settings["SLURM_CONF"]}
    try:
        yield Cluster(env=env, partition=settings["SLURM_PARTITION"])
    finally:
        down = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), "down", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert down.returncode == 0, down.stderr


def submitted_jobs(output: str) -> dict[str, list[str]]:
    """Rule -> the Slurm job ids Snakemake submitted for it, from its log."""
    rule_of: dict[str, str] = {}
    rule = None
    for line in output.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            rule = started.group(1)
        jobid = re.match(r"^    jobid: (\d+)$", line)
        if jobid and rule:
            rule_of[jobid.group(1)] = rule
    jobs: dict[str, list[str]] = {}
    for snakemake_job, slurm_job in SUBMITTED.findall(output):
        jobs.setdefault(rule_of[snakemake_job], []).append(slurm_job)
    return jobs


def planned_rules(output: str) -> set[str]:
    """Rules Snakemake ran as jobs of their own (a `localrule` runs in Snakemake itself)."""
    return set(re.findall(r"^rule (\w+):$", output, flags=re.MULTILINE))


def job_fields(cluster: Cluster, slurm_job: str) -> dict[str, str]:
    """What slurmctld knows of a job (it keeps ended jobs for MinJobAge), with the generic
    resources it was given (JOB_GRES)."""
    shown = cluster.query("scontrol", "--details", "show", "job", "--oneliner", slurm_job)
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def row_keys(frame: pl.DataFrame) -> list[tuple]:
    """The rows of an aggregated table by what they are about, not what they measured."""
    keys = [c for c in ("id", "model", "workload", "strategy", "short_workload") if c in frame]
    return sorted(frame.select(keys).rows()) if keys else [()] * frame.height


def test_tiny_config_runs_as_slurm_jobs_with_a_gpu_for_generation(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture
):
    config = load_tiny_config()
    here, there = tmp_path / "local", tmp_path / "slurm"
    # The local run of the same config, for its tables' rows, meanwhile: the cluster's run
    # mostly waits for its status checks. At the lowest priority, it takes only the cores the
    # cluster's jobs leave.
    local = subprocess.Popen(
        ["nice", "-n", "19", *snakemake_command(here, config)],
        cwd=here,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        started = time.monotonic()
        run = cluster.run(cluster.snakemake(there, config), cwd=there, timeout=240)
        took = time.monotonic() - started
        # Niced beside the first CI lane, it may get little of the two cores: a wide bound.
        local_output, _ = local.communicate(timeout=360)
    finally:
        local.kill()
        local.wait()
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    assert local.returncode == 0, local_output[-3000:]

    jobs = submitted_jobs(output)
    with capsys.disabled():
        print(f"\nSlurm job ids of the tiny config's rules ({took:.0f} s on the cluster):")
        for rule, ids in jobs.items():
            print(f"  {rule}: {', '.join(ids)}")
    rules = planned_rules(output)
    assert "generate" in rules and "report_html" in rules
    assert set(jobs) == rules, output[-3000:]  # every rule a batch job
    for rule, ids in jobs.items():
        for slurm_job in ids:
            fields = job_fields(cluster, slurm_job)
            assert fields["JobState"] == "COMPLETED", (rule, fields)
            assert fields["Partition"] == cluster.partition
            expected = "gpu:1" if rule == "generate" else "(null)"
            assert fields["JOB_GRES"] == expected, (rule, fields)

    html = (there / "results/report/report.html").read_text(encoding="utf-8")
    for name in EXPECTED:
        ours = pl.read_parquet(there / f"results/aggregate/{name}.parquet")
        assert_frame_shown(html, name, ours)
        theirs = pl.read_parquet(here / f"results/aggregate/{name}.parquet")
        assert row_keys(ours) == row_keys(theirs), name
    with capsys.disabled():
        summary = pl.read_parquet(there / "results/aggregate/summary.parquet")
        print(f"Report made under Slurm: {there / 'results/report/report.html'}")
        print(summary.select("model", "workload", "strategy", "tasks", "energy_source"))


def test_a_cancelled_generation_job_leaves_no_output_and_its_rerun_completes(
    cluster: Cluster, workdir: Path
):
    config = load_tiny_config()
    # A few seconds of decoding per task: the job is cancelled after its first task.
    config["workloads"]["humaneval-0shot"]["max_new_tokens"] = 300
    config["generation"]["ignore_eos"] = True
    # What generation needs is made here; only the generation job goes to the cluster.
    prepare = cluster.run(
        snakemake_command(workdir, config, "--omit-from", "generate"), workdir, 120
    )
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    records = "results/generations/tiny-random/humaneval-0shot/none/rep1.parquet"
    command = cluster.snakemake(workdir, config, records, "--retries", "0")

    output_file = workdir.parent / "snakemake-output.txt"
    with output_file.open("w") as output:
        process = subprocess.Popen(
            command, cwd=workdir, env=cluster.env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        log = workdir / "logs/generate/tiny-random/humaneval-0shot/none/rep1.log"
        deadline = time.monotonic() + 90
        while not (log.exists() and "[1/3]" in log.read_text()):
            assert process.poll() is None, output_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "the generation job did not start decoding"
            time.sleep(0.5)
        [(_, slurm_job)] = SUBMITTED.findall(output_file.read_text())
        cluster.query("scancel", slurm_job)
        process.wait(timeout=90)
    finally:
        process.kill()
        process.wait()
    output = output_file.read_text()
    assert process.returncode != 0, output[-3000:]
    assert f"SLURM-job '{slurm_job}' failed, SLURM status is: 'CANCELLED'" in output, output
    assert job_fields(cluster, slurm_job)["JobState"] == "CANCELLED"
    assert "[3/3]" not in log.read_text()  # cancelled mid-way
    assert not [p for p in (workdir / GENERATIONS).rglob("*") if p.is_file()]

    rerun = cluster.run(command, workdir, timeout=240)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    finished = pl.read_parquet(workdir / records)
    assert finished["task_id"].to_list() == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert (finished["output_tokens"] == 300).all()

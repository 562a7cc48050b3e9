"""The real Snakemake DAG, run in temporary folders."""

from __future__ import annotations

import copy
import re
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from helpers.report_tables import assert_frame_shown

from llmenergy import claims as claims_module
from llmenergy import sandbox

from conftest import REPO, load_tiny_config, snakemake

DAG_RULES = {
    "fetch_dataset",
    "build_workload",
    "prepare_model",
    "generate",
    "evaluate",
    "aggregate",
    "figures",
    "report_html",
    "babble_metrics",
}


def jobs_in(output: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", output, flags=re.MULTILINE))


@pytest.mark.slow
def test_tiny_dag_end_to_end(workdir: Path):
    config = load_tiny_config()
    config["strategies"] = ["none", "syntax"]
    run = main_command(workdir, config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert jobs_in(run.stderr + run.stdout) >= DAG_RULES

    html = (workdir / "results/report/report.html").read_text()
    aggregated = workdir / "results/aggregate"
    summary = pl.read_parquet(aggregated / "summary.parquet")
    assert summary.height == 2 and set(summary["strategy"]) == {"none", "syntax"}
    assert summary["tasks"].to_list() == [3, 3]
    for name in ["summary", "claims", "savings", "babble", "amplification"]:
        assert_frame_shown(html, name, pl.read_parquet(aggregated / f"{name}.parquet"))
    claims = pl.read_parquet(aggregated / "claims.parquet")
    assert claims.height >= 7 and claims["verdict"].is_not_null().all()
    # The energy here is an estimate: no energy claim may reproduce or merely point the same way.
    estimated = {level + claims_module.ESTIMATED for level in claims_module.LEVELS[:3]}
    outputs = {"babbling-models", "accuracy-kept"}
    for row in claims.iter_rows(named=True):
        allowed = set(claims_module.LEVELS) if row["id"] in outputs else estimated
        assert row["verdict"] in allowed | {claims_module.UNMEASURABLE}, row
    assert "estimate-banner" in html  # no counters here: energy is estimated, and says so
    assert "data:image/png;base64," in html
    assert "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef" in html

    records = pl.read_parquet(
        workdir / "results/generations/tiny-random/humaneval-0shot/none/rep1.parquet"
    )
    assert records.height == 3
    assert set(records["energy_source"]) == {"estimate:cpu-time"}
    scores = pl.read_parquet(
        workdir / "results/scores/tiny-random/humaneval-0shot/none/rep1.parquet"
    )
    assert scores["sandbox"].to_list() == [sandbox.detect().label] * 3

    # What the main command prints at the end.
    said = run.stdout.splitlines()
    said = said[said.index(f"Report: {workdir.resolve() / 'results/report/report.html'}") :]
    assert said[1] == "Tasks: 6 generated in 2 runs, 6 scored"
    assert said[2].startswith("Energy: on estimated energy (estimate:cpu-time)")
    assert said[3].startswith("Measurement: ") and " of 6 tasks flagged" in said[3]
    assert said[4] == "Claims:"
    # One line a claim, then its where and why lines, indented under the claim.
    verdicts = [line.split("  ", 2)[1] for line in said[5:] if not line.startswith("   ")]
    assert verdicts == claims["verdict"].to_list()
    assert any(line.lstrip().startswith("where: ") for line in said[5:])
    # The default's sd over runs was measured on another model: these intervals are the
    # run's own, and say so.
    own = claims.filter(pl.col("between_runs").is_not_null())
    assert own.height > 0 and own["between_run_sd"].is_null().all()
    assert all(text.startswith("over this run's tasks only") for text in own["between_runs"])
    shown = own.filter(pl.col("value_lo").is_not_null()).height
    assert shown > 0
    assert sum("(over this run's tasks only)" in line for line in said) == shown

    started = time.perf_counter()
    again = main_command(workdir, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stderr + again.stdout
    print(f"./run.sh with nothing to do: {time.perf_counter() - started:.1f} s")


def main_command(workdir: Path, config: dict) -> subprocess.CompletedProcess[str]:
    """The README's `./run.sh`, on `config` in `workdir`."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    config_path = str(workdir / "config.yaml")
    command = [str(REPO / "run.sh"), "--directory", str(workdir), "--configfile", config_path]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)


def test_default_config_dry_run_lists_every_stage(workdir: Path):
    run = snakemake(workdir, REPO / "config" / "config.yaml", "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert jobs_in(run.stdout + run.stderr) >= DAG_RULES


def _broken(edit) -> dict:
    config = copy.deepcopy(load_tiny_config())
    edit(config)
    return config


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda c: c["models"]["tiny-random"]["source"].update(kind="torrent"),
            ["'models']['tiny-random']['source']['kind']", "torrent"],
        ),
        (
            lambda c: c["workloads"]["humaneval-0shot"].update(max_new_tokens=-5),
            ["'workloads']['humaneval-0shot']['max_new_tokens']", "-5"],
        ),
        (lambda c: c.pop("workloads"), ["'workloads' is a required property"]),
        (
            lambda c: c["models"]["tiny-random"].pop("prompt_style"),
            ["'prompt_style' is a required property", "['models']['tiny-random']"],
        ),
        (
            lambda c: c["workloads"]["humaneval-0shot"].update(dataset="mbpp"),
            ["workloads.humaneval-0shot.dataset", "mbpp"],
        ),
    ],
    ids=["unknown-source-kind", "negative-token-cap", "missing-key", "missing-model-key", "ref"],
)
def test_bad_config_fails_before_any_job(workdir: Path, edit, named):
    run = snakemake(workdir, _broken(edit), "-n")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    for fragment in named:
        assert fragment in output
    assert not jobs_in(output)
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def test_dataset_checksum_mismatch_stops_the_run(workdir: Path):
    config = load_tiny_config()
    config["datasets"]["humaneval"]["sha256"] = "0" * 64
    run = snakemake(workdir, config, "--until", "fetch_dataset")
    assert run.returncode != 0
    log = (workdir / "logs/fetch_dataset/humaneval.log").read_text()
    assert "datasets.humaneval.sha256" in log and "refusing" in log
    assert not (workdir / "resources/datasets/humaneval/raw").exists()

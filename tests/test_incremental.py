"""Incremental re-runs: adding a model to a finished run runs only that model's jobs plus
aggregate, figures and report; the other models' results stay as they are."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import polars as pl
import pytest

from conftest import load_tiny_config, snakemake

# Jobs that feed every model and depend on none: adding a model must not re-run them.
UPSTREAM = {"fetch_dataset", "build_workload"}


def planned(output: str) -> set[tuple[str, str | None]]:
    """(rule, model wildcard or None) of each job a dry run lists."""
    jobs: list[list] = []
    for line in output.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            jobs.append([started.group(1), None])
        model = re.match(r"^    wildcards: .*\bmodel=([^,]+)", line)
        if model and jobs:
            jobs[-1][1] = model.group(1)
    return {(rule, model) for rule, model in jobs}


def with_second_model(config: dict, seed: int = 1) -> dict:
    config = copy.deepcopy(config)
    second = copy.deepcopy(config["models"]["tiny-random"])
    second["source"]["seed"] = seed
    second["source"]["architecture"]["num_hidden_layers"] = 3
    config["models"]["tiny-random-b"] = second
    return config


def outputs_of(workdir: Path, model: str) -> dict[Path, int]:
    """Modification times of every file a model's jobs wrote."""
    roots = [workdir / "results/generations" / model, workdir / "results/scores" / model]
    roots.append(workdir / "resources/models" / model)
    return {path: path.stat().st_mtime_ns for root in roots for path in root.rglob("*")}


@pytest.mark.slow
def test_adding_a_model_runs_only_its_jobs(workdir: Path):
    first = load_tiny_config()
    finished = snakemake(workdir, first)
    assert finished.returncode == 0, finished.stderr[-3000:]
    before = outputs_of(workdir, "tiny-random")
    assert before
    ran = planned(finished.stdout + finished.stderr)
    per_model = {rule for rule, model in ran if model == "tiny-random"}
    shared = {rule for rule, model in ran if model is None} - UPSTREAM
    assert {"prepare_model", "generate", "evaluate"} <= per_model
    assert {"aggregate", "figures", "report_html"} <= shared

    # Exactly the new model's jobs (the ones the first model needed) and the summaries.
    second = with_second_model(first)
    dry = snakemake(workdir, second, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    expected = {(rule, "tiny-random-b") for rule in per_model} | {(r, None) for r in shared}
    assert planned(dry.stdout + dry.stderr) == expected

    run = snakemake(workdir, second)
    assert run.returncode == 0, run.stderr[-3000:]
    assert outputs_of(workdir, "tiny-random") == before
    summary = pl.read_parquet(workdir / "results/aggregate/summary.parquet")
    assert sorted(summary["model"]) == ["tiny-random", "tiny-random-b"]
    html = (workdir / "results/report/report.html").read_text()
    assert "tiny-random-b" in html

    again = snakemake(workdir, second, "-n")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # Editing one model's entry later touches that model alone, too.
    edited = with_second_model(first, seed=2)
    dry_edit = snakemake(workdir, edited, "-n")
    assert dry_edit.returncode == 0, dry_edit.stderr[-3000:]
    assert planned(dry_edit.stdout + dry_edit.stderr) == expected

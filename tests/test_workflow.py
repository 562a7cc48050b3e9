"""The real Snakemake DAG, run in temporary folders."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from llmenergy import report

from conftest import REPO, load_tiny_config, snakemake

DAG_RULES = {
    "fetch_dataset",
    "build_workload",
    "prepare_model",
    "measure_idle",
    "generate",
    "evaluate",
    "aggregate",
    "figures",
    "report_html",
}


class SummaryCells(HTMLParser):
    """Collect the cells of the report's summary table as (column, data-value, text) rows."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str, str]]] = []
        self._in_table = False
        self._cell: dict[str, str] | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == "summary-table":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "td":
            self._cell, self._text = attributes, ""

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            cell = (self._cell["data-column"], self._cell["data-value"], self._text.strip())
            self.rows[-1].append(cell)
            self._cell = None


def jobs_in(output: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", output, flags=re.MULTILINE))


@pytest.mark.slow
def test_tiny_dag_end_to_end(workdir: Path):
    run = snakemake(workdir, load_tiny_config())
    assert run.returncode == 0, run.stderr[-3000:]
    assert jobs_in(run.stderr + run.stdout) >= DAG_RULES

    html = (workdir / "results/report/report.html").read_text()
    summary = pl.read_parquet(workdir / "results/aggregate/summary.parquet")
    assert summary.height == 1
    assert summary["tasks"][0] == 3
    parser = SummaryCells()
    parser.feed(html)
    table_rows = [row for row in parser.rows if row]
    assert len(table_rows) == summary.height
    for cells, expected in zip(table_rows, summary.iter_rows(named=True), strict=True):
        columns = [column for column, _, _ in cells]
        assert {name for name, _, _ in report.SUMMARY_COLUMNS} == set(columns)
        for column, value, text in cells:
            truth = expected[column]
            assert text == report.format_value(column, truth), column
            if isinstance(truth, float):
                assert float(value) == truth, column  # exact: the attribute holds repr()
            else:
                assert value == ("" if truth is None else str(truth)), column
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
    assert scores["sandbox"].to_list() == ["process-rlimits"] * 3

    again = snakemake(workdir, load_tiny_config())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stderr + again.stdout


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

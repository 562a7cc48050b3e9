"""Babble metrics of whole outputs (`babble.metrics`): where the answer ends, by the syntax
rule and by the task's tests run in the sandbox, and the tokens written after it, counted
with the tiny model's tokenizer (SmolLM2's). The token splits in the comments are that
tokenizer's; the first test checks the ones the arithmetic rests on."""

from __future__ import annotations

from typing import Any

import pytest

from llmenergy import babble, sandbox, scoring

LIMITS = sandbox.Limits(timeout_s=10.0, memory_mb=1024)
PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
ADD = {
    "task_id": "add",
    "prompt": PROMPT,
    "entry_point": "add",
    "test": "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
}
LCC = {"task_id": "lcc/0", "prompt": "x = 0\n", "entry_point": "", "test": ""}
TASKS = {task["task_id"]: task for task in (ADD, LCC)}


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return tiny_model.tokenizer


def metrics_of(
    tokenizer: Any,
    output: str,
    prompt_style: str,
    output_tokens: int,
    stop_reason: str = "eos",
    task_id: str = "add",
) -> dict[str, Any]:
    """The metrics row of one output (output_tokens counts the EOS token, as records do)."""
    record = {
        "model": "tiny",
        "workload": "w",
        "strategy": "none",
        "rep": 0,
        "task_id": task_id,
        "completion": output,
        "output_tokens": output_tokens,
        "stop_reason": stop_reason,
    }

    def check_for(task):
        return scoring.sandboxed_check(task, prompt_style, LIMITS, None)

    [row] = babble.metrics([record], TASKS, prompt_style, tokenizer, check_for, workers=1)
    return row


def measures(row: dict[str, Any], rule: str) -> tuple[Any, Any, Any]:
    return tuple(row[f"{m}_{rule}"] for m in ("answer_tokens", "babble_tokens", "babble_ratio"))


def test_token_splits_the_arithmetic_uses(tokenizer):
    counts = {
        "    return a + b\n": 6,  # '   ' ' return' ' a' ' +' ' b' '\n'
        "    return a + b": 5,
        "    return a + b\n\n\n": 6,  # ... ' b' '\n\n\n'
        "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\nprint(add(1, 2))\n": 31,
        "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds them.": 27,
        "Here it is:\n```python\ndef add(a, b):\n    return a + b\n": 21,
        "Here it is:\n```python\ndef add(a, b):\n    return a + b": 20,
        "```python\ndef add(a, b):\n    return a + b\n```": 17,
        "```python\ndef add(a, b):\n    return a + b\n": 16,
        "x = foo(1)\nbar = 2\n": 12,  # 'x' ' =' ' foo' '(' '1' ')' '\n' 'bar' ' =' ' ' '2' '\n'
        "x = foo(1)": 6,
    }
    assert {text: babble.token_count(tokenizer, text) for text in counts} == counts


def test_completion_clean_at_eos_is_complete(tokenizer):
    # 6 tokens and EOS: written 7 - 1 = 6. The whole output is the function, by the syntax
    # rule (it parses and EOS ends it) and by the tests (it passes): answer 6, babble 0.
    row = metrics_of(tokenizer, "    return a + b\n", "completion", 7)
    assert measures(row, "syntax") == (6, 0, 0.0)
    assert measures(row, "tests") == (6, 0, 0.0)


def test_completion_cut_at_max_tokens_is_not_complete_by_syntax(tokenizer):
    # The same text stopped by max_tokens: written 6, and the function may have gone on, so
    # the syntax rule cannot tell it complete; the tests pass it as it is: 6, 0, 0.
    row = metrics_of(tokenizer, "    return a + b\n", "completion", 6, "max_tokens")
    assert measures(row, "syntax") == (None, None, None)
    assert measures(row, "tests") == (6, 0, 0.0)


def test_completion_that_babbles(tokenizer):
    output = "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\nprint(add(1, 2))\n"
    # 31 tokens and EOS: written 31. Syntax: the answer ends where `def sub` starts, after
    # "    return a + b\n\n\n" (6 tokens): babble 31 - 6 = 25, ratio 25/31. Tests: the first
    # line end that passes is after "    return a + b" (5 tokens): babble 26, ratio 26/31.
    row = metrics_of(tokenizer, output, "completion", 32)
    assert measures(row, "syntax") == (6, 25, pytest.approx(25 / 31))
    assert measures(row, "tests") == (5, 26, pytest.approx(26 / 31))


def test_chat_answer_with_prose_after_its_block(tokenizer):
    output = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds them."
    # 27 tokens and EOS: written 27. Syntax: the answer ends where the closing fence's line
    # starts (21 tokens): babble 6 ('```' '\n' 'It' ' adds' ' them' '.'), ratio 6/27. Tests:
    # it passes at the end of "    return a + b" (20 tokens): babble 7, ratio 7/27.
    row = metrics_of(tokenizer, output, "chat", 28)
    assert measures(row, "syntax") == (21, 6, pytest.approx(6 / 27))
    assert measures(row, "tests") == (20, 7, pytest.approx(7 / 27))


def test_chat_answer_whose_block_closes_at_the_end(tokenizer):
    # 17 tokens and EOS: written 17. Only the closing fence follows either rule's cut, and
    # the fence belongs to the answer: answer 17, babble 0.
    row = metrics_of(tokenizer, "```python\ndef add(a, b):\n    return a + b\n```", "chat", 18)
    assert measures(row, "syntax") == (17, 0, 0.0)
    assert measures(row, "tests") == (17, 0, 0.0)
    # A block left open at EOS: the end of the output ends it (16 tokens, written 16).
    row = metrics_of(tokenizer, "```python\ndef add(a, b):\n    return a + b\n", "chat", 17)
    assert measures(row, "syntax") == (16, 0, 0.0)
    assert measures(row, "tests") == (16, 0, 0.0)


def test_longbench_first_line_then_more(tokenizer):
    # 12 tokens and EOS: written 12. The answer is "x = foo(1)" (6 tokens): babble 6, ratio
    # 6/12 = 0.5. LongBench tasks have no tests: that rule says nothing.
    row = metrics_of(tokenizer, "x = foo(1)\nbar = 2\n", "completion", 13, task_id="lcc/0")
    assert measures(row, "syntax") == (6, 6, 0.5)
    assert measures(row, "tests") == (None, None, None)


def test_longbench_single_line_at_eos_is_complete(tokenizer):
    # 6 tokens and EOS: EOS ends the line, so the whole output is the answer: 6, 0, 0.
    row = metrics_of(tokenizer, "x = foo(1)", "completion", 7, task_id="lcc/0")
    assert measures(row, "syntax") == (6, 0, 0.0)
    # Stopped by max_tokens, the line may have gone on: never complete.
    row = metrics_of(tokenizer, "x = foo(1", "completion", 5, "max_tokens", "lcc/0")
    assert measures(row, "syntax") == (None, None, None)

"""Scores: HumanEval functional correctness (pass@k)."""

from __future__ import annotations

import math
import re
from typing import Any

from llmenergy import sandbox

# An opening fence with any language tag (python, py, python3, ...), up to a closing fence.
FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n```|\Z)", re.DOTALL)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def code_of_chat_answer(answer: str) -> str:
    """The code of a chat answer: its first fenced block (open to the end if never closed)."""
    match = FENCE.search(answer)
    return match.group(1) if match else answer


def humaneval_program(task: dict[str, Any], completion: str, prompt_style: str) -> str:
    """The program whose exit status says whether a completion passes the task's tests."""
    if prompt_style == "completion":
        solution = task["prompt"] + completion
    else:
        # The answer repeats the function; the prompt before it keeps the task's imports.
        solution = task["prompt"] + "\n    pass\n\n" + code_of_chat_answer(completion)
    return f"{solution}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"


def check_humaneval(
    task: dict[str, Any], completion: str, prompt_style: str, limits: sandbox.Limits
) -> sandbox.Outcome:
    return sandbox.run_python(humaneval_program(task, completion, prompt_style), limits)

"""Scores: HumanEval functional correctness (pass@k) and LongBench's code similarity.

- pass@k: the unbiased estimator of Chen et al. (2021) over n samples of which c pass.
- code_sim_score: LongBench's metric for its code tasks (lcc, repobench-p). The prediction's
  first line that is not a comment or a fence is compared with each answer by fuzzywuzzy's
  `fuzz.ratio` (0-100, on difflib's SequenceMatcher, the backend fuzzywuzzy uses when
  python-Levenshtein is absent); the score is the best ratio / 100. This module computes the
  same numbers without fuzzywuzzy; a test holds the two equal.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Any

from llmenergy import sandbox

# An opening fence with any language tag (python, py, python3, ...), up to a closing fence.
FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n```|\Z)", re.DOTALL)

# A line holding any of these is not taken as the predicted line of code (LongBench's rule).
NOT_CODE_MARKS = ("`", "#", "//")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def fuzz_ratio(a: str, b: str) -> int:
    """fuzzywuzzy's `fuzz.ratio` on its difflib backend: 0-100, rounded half to even.

    Equal strings score 100 (even two empty ones); otherwise an empty side scores 0. The
    matcher keeps difflib's defaults, including its "popular element" heuristic (autojunk),
    which changes ratios of strings of 200 characters or more.
    """
    if a == b:
        return 100
    if not a or not b:
        return 0
    return round(100 * difflib.SequenceMatcher(None, a, b).ratio())


def first_code_line(prediction: str) -> str:
    """The predicted line LongBench scores: leading newlines dropped, then the first line
    without a backtick, '#' or '//' ('' when every line has one)."""
    for line in prediction.lstrip("\n").split("\n"):
        if not any(mark in line for mark in NOT_CODE_MARKS):
            return line
    return ""


def code_sim_score(prediction: str, answers: Iterable[str]) -> float:
    """LongBench's code_sim_score of one prediction: the best ratio over its answers, in [0, 1]."""
    line = first_code_line(prediction)
    scores = [fuzz_ratio(line, answer) / 100 for answer in answers]
    if not scores:
        raise ValueError("code_sim_score needs at least one answer")
    return max(scores)


def code_of_chat_answer(answer: str) -> str:
    """The code of a chat answer: its first fenced block (open to the end if never closed)."""
    match = FENCE.search(answer)
    return match.group(1) if match else answer


def humaneval_solution(task: dict[str, Any], completion: str, prompt_style: str) -> str:
    """The code a completion stands for: the prompt it continues, or the chat answer's code."""
    if prompt_style == "completion":
        # The text the model continued: the task's prompt with the workload's instruction.
        return (task.get("prompt_completion") or task["prompt"]) + completion
    # The answer repeats the function; the prompt before it keeps the task's imports.
    return task["prompt"] + "\n    pass\n\n" + code_of_chat_answer(completion)


def humaneval_program(task: dict[str, Any], completion: str, prompt_style: str) -> str:
    """The program whose normal end says a completion passes the task's tests."""
    solution = humaneval_solution(task, completion, prompt_style)
    return f"{solution}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"


def check_humaneval(
    task: dict[str, Any],
    completion: str,
    prompt_style: str,
    limits: sandbox.Limits,
    isolation: sandbox.Isolation | None = None,
) -> sandbox.Outcome:
    return sandbox.run_python(humaneval_program(task, completion, prompt_style), limits, isolation)

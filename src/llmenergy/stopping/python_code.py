"""Python's lexical state over streamed text, and the parse check a candidate cut must pass.

`CodeScanner.step` advances one character (or a quote run) at a time, so a stopper scans only
the text it has not seen; Python's parser runs only at the rare candidate cut (`parses`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from llmenergy.stopping.base import FENCE


@dataclass
class CodeScanner:
    """Python's lexical state, advanced over streamed text: brackets, strings, comments and
    backslash continuations, and where each physical line that starts a statement begins."""

    depth: int = 0
    quote: str | None = None  # the delimiter of the open string: one or three quotes
    quote_run: int = 0  # closing quote characters seen in a row (for triple quotes)
    escaped: bool = False
    comment: bool = False
    line_start: int = 0
    indent: int = 0
    seen_code: bool = False  # a non-blank character on this physical line yet
    statement_line: bool = True  # this physical line starts a new statement

    def step(self, text: str, i: int, on_line: Callable[[int, int], None]) -> int:
        """Advance over text[i:]; return how many characters were consumed (0: a quote needs
        more text to tell a one-quote string from a triple-quoted one). Calls
        on_line(start, indent) at the first code character of a physical line that starts a
        statement."""
        char = text[i]
        if self.quote is not None:
            if char == "\n" and len(self.quote) == 1 and not self.escaped:
                self.quote = None  # an unterminated one-line string: the line ends anyway
            else:
                return self._in_string(char)
        if char == "\n":
            continued = i > 0 and text[i - 1] == "\\" and not self.comment
            self.comment = False
            self.line_start, self.indent, self.seen_code = i + 1, 0, False
            self.statement_line = self.depth == 0 and not continued
            return 1
        if self.comment:
            return 1
        if not self.seen_code:
            if char in " \t":
                self.indent += 8 - self.indent % 8 if char == "\t" else 1
                return 1
            self.seen_code = True
            if self.statement_line and char != "#":
                on_line(self.line_start, self.indent)
        if char == "#":
            self.comment = True
        elif char in "([{":
            self.depth += 1
        elif char in ")]}":
            self.depth = max(0, self.depth - 1)
        elif char in "'\"":
            if len(text) - i < 3:
                return 0
            self.quote = char * 3 if text[i : i + 3] == char * 3 else char
            self.quote_run = 0
            return len(self.quote)
        return 1

    def _in_string(self, char: str) -> int:
        assert self.quote is not None
        if self.escaped:
            self.escaped = False
        elif char == "\\":
            self.escaped = True
        elif char == self.quote[0]:
            self.quote_run += 1
            if self.quote_run == len(self.quote):
                self.quote = None
            return 1
        self.quote_run = 0
        return 1


def header_def_indent(header: str, entry_point: str) -> int:
    """Indentation of the last `def entry_point` in the prompt (0 if it has none)."""
    matches = re.findall(rf"(?m)^([ \t]*)(?:async\s+)?def\s+{re.escape(entry_point)}\b", header)
    return len(matches[-1].expandtabs(8)) if matches else 0


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def prefix_parses(output: str, cut: int, header: str, chat: bool) -> bool:
    """Whether the code in output[:cut] parses: the header and the output for completion
    prompts; for chat, the code (not empty) after the line of the answer's opening fence."""
    if chat:
        fence = output.find(FENCE)
        if fence == -1:
            return False
        code = output[output.find("\n", fence) + 1 : cut]
        return bool(code.strip()) and parses(code)
    return parses(header + output[:cut])

"""Babbling: where an answer is complete, and stopping strategies that cut generation there.

A stopper is fed the output text piece by piece as it is decoded (`feed(delta)`) and answers
with the length of the output to keep once the answer is complete, or None to go on. Each
stopper looks only at the new text (plus a bounded tail), so a step costs microseconds however
long the output grows; Python's parser runs only at the rare candidate cut.

Strategies:
- `stopwords`: bigcode-evaluation-harness's stop sequences for completion prompts, the
  closing code fence for chat prompts, the end of the first non-empty line for LongBench.
- `syntax`: the target function is complete: a later line at or below the def's indentation
  that is not inside brackets, a string or a backslash continuation (or the chat code block
  closed), and what was written parses.
- `oracle`: at line ends where the code parses, the task's tests run in the sandbox on a
  worker thread; generation stops when they pass, cut there (see `OracleStopper`).
"""

from __future__ import annotations

import ast
import re
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmenergy import scoring

STRATEGIES = ("none", "stopwords", "syntax", "oracle")
FENCE = "```"


class Stopper(Protocol):
    def feed(self, delta: str) -> int | None:
        """Take the next piece of output; return how much output to keep once complete."""
        ...


class IncrementalDetokenizer:
    """Text of each new token, decoding a short window instead of the whole output.

    Multi-byte characters can span tokens: text that ends in an incomplete character (the
    replacement character) is held back until the next token completes it.
    """

    def __init__(self, tokenizer: Any, context: int = 6) -> None:
        self.tokenizer = tokenizer
        self.context = context
        self.ids: list[int] = []
        self.prefix = 0  # start of the window decoded for context
        self.emitted = 0  # ids[:emitted] are already in the text

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tokenizer.decode(
            self.ids[self.prefix : self.emitted], skip_special_tokens=True
        )
        after = self.tokenizer.decode(self.ids[self.prefix :], skip_special_tokens=True)
        if after.endswith("\ufffd") or len(after) <= len(before):
            return ""
        self.emitted = len(self.ids)
        self.prefix = max(0, self.emitted - self.context)
        return after[len(before) :]


class StopwordStopper:
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


class ClosingFenceStopper:
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


class FirstLineStopper:
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


@dataclass
class SyntaxStopper:
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


@dataclass
class CheckStats:
    """The oracle's own cost: checks run, their wall time and their processes' CPU time."""

    checks: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class OracleStopper:
    """The study's oracle: at line ends where the code parses, run the task's tests on a worker
    thread, in the sandbox, while decoding goes on; stop at the first prefix that passes.

    `check(candidate_output) -> (passed, wall_s, cpu_s)` runs the tests of one prefix.
    """

    def __init__(
        self,
        check: Callable[[str], tuple[bool, float, float]],
        header: str = "",
        chat: bool = False,
    ) -> None:
        self.check = check
        self.header = header
        self.chat = chat
        self.text = ""
        self.stats = CheckStats()
        self.passed_at: int | None = None
        self._pending: int | None = None
        self._last_candidate: int | None = None
        self._busy = False
        self._lock = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        self._worker.start()

    def feed(self, delta: str) -> int | None:
        start = len(self.text)
        self.text += delta
        newline = self.text.rfind("\n", start)
        if newline == -1:
            return self.passed_at
        cut = len(self.text[:newline].rstrip())  # blank lines add nothing to check
        if cut != self._last_candidate and self._code_parses(cut):
            self._last_candidate = cut
            with self._lock:
                self._pending = cut  # newer candidates replace ones not yet checked
                self._lock.notify()
        return self.passed_at

    def _code_parses(self, cut: int) -> bool:
        if self.chat:
            fence = self.text.find(FENCE)
            if fence == -1:
                return False
            code = self.text[self.text.find("\n", fence) + 1 : cut]
            return bool(code.strip()) and parses(code)
        return parses(self.header + self.text[:cut])

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._pending is None:
                    return
                cut, self._pending = self._pending, None
                self._busy = True
            passed, wall_s, cpu_s = self.check(self.text[:cut])
            verdict = cut if passed else None
            with self._lock:
                # The verdict and idleness in one critical section: a reader that sees the
                # worker idle (`idle`) must see where it passed, or it cuts a token late.
                self.stats.checks += 1
                self.stats.seconds += wall_s
                self.stats.cpu_seconds += cpu_s
                self.passed_at = verdict
                self._busy = False
            if verdict is not None:
                return

    def idle(self) -> bool:
        """No candidate waits and no check runs; once idle, `passed_at` holds the verdict."""
        with self._lock:
            return self._pending is None and not self._busy

    def finish(self, wait: bool = True) -> CheckStats:
        """Stop the worker (after the check in flight when `wait`) and return the costs."""
        with self._lock:
            self._closed = True
            self._pending = None
            self._lock.notify()
        if wait:
            self._worker.join()
        return self.stats


def replay_through(
    tokenizer: Any, token_ids: list[int], stopper: Stopper
) -> tuple[str | None, int, dict[str, Any]]:
    """Feed given output tokens to a stopper as decoding would: (the kept text, or None if it
    never stopped; the tokens consumed; the oracle's check time as a record column). The
    oracle's checks are waited for after each token, so the cut is the earliest passing line."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces: list[str] = []
    kept, used = None, len(token_ids)
    for position, token in enumerate(token_ids, start=1):
        pieces.append(detokenizer.push(token))
        cut = stopper.feed(pieces[-1])
        if isinstance(stopper, OracleStopper):
            wait_for(stopper.idle, 60)
            cut = stopper.passed_at
        if cut is not None:
            kept, used = "".join(pieces)[:cut], position
            break
    costs: dict[str, Any] = {}
    if isinstance(stopper, OracleStopper):
        costs = {"check_s": stopper.finish().seconds}
    return kept, used, costs


def completion_header(task_prompt: str, prompt: str | None) -> str:
    """The code a completion continues: the task's prompt and whatever follows it in the text
    the model reads (shots and other text before it are not part of the program)."""
    if prompt is None or task_prompt not in prompt:
        return task_prompt
    return prompt[prompt.rfind(task_prompt) :]


def make_stopper(
    strategy: str,
    task: dict[str, Any],
    prompt_style: str,
    check: Callable[[str], tuple[bool, float, float]] | None = None,
    prompt: str | None = None,
) -> Stopper | None:
    """The stopper of `strategy` for one task; `prompt` is the text the model continues (for
    completion prompts, the code the output must parse after; the task's own prompt if not
    given). Tasks without an entry point (LongBench) are complete at the end of their first
    non-empty line, by either rule."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
    if strategy == "none":
        return None
    chat = prompt_style == "chat"
    entry_point = task.get("entry_point") or ""
    if not entry_point:
        if strategy == "oracle":
            raise ValueError(f"task {task['task_id']}: the oracle needs tests (HumanEval tasks)")
        return FirstLineStopper()
    header = "" if chat else completion_header(task["prompt"], prompt)
    if strategy == "stopwords":
        return ClosingFenceStopper() if chat else StopwordStopper(scoring.HARNESS_STOP_SEQUENCES)
    if strategy == "syntax":
        return SyntaxStopper(entry_point=entry_point, header=header, chat=chat)
    if check is None:
        raise ValueError("the oracle strategy needs a check function")
    return OracleStopper(check, header=header, chat=chat)


def sandboxed_check(
    task: dict[str, Any], prompt_style: str, limits: Any, isolation: Any
) -> Callable[[str], tuple[bool, float, float]]:
    """The oracle's check of one task: run its tests on an output prefix in the sandbox;
    return (passed, wall seconds, CPU seconds of the check's processes)."""

    def check(output: str) -> tuple[bool, float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        outcome = scoring.check_humaneval(task, output, prompt_style, limits, isolation)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return outcome.ok, outcome.seconds, cpu

    return check


def candidate_cuts(output: str, task: dict[str, Any], prompt_style: str) -> list[int]:
    """Line ends of `output` where the code so far parses, in order (the oracle's points)."""
    chat = prompt_style == "chat"
    header = "" if chat else task["prompt"]
    cuts, seen = [], set()
    for index, char in enumerate(output):
        if char != "\n":
            continue
        cut = len(output[:index].rstrip())
        if cut in seen:
            continue
        seen.add(cut)
        if chat:
            fence = output.find(FENCE)
            if fence == -1 or fence >= cut:
                continue
            code = output[output.find("\n", fence) + 1 : cut]
            if code.strip() and parses(code):
                cuts.append(cut)
        elif parses(header + output[:cut]):
            cuts.append(cut)
    if output.rstrip() and len(output.rstrip()) not in seen:
        cuts.append(len(output.rstrip()))  # the whole output is a candidate too
    return cuts


def answer_end_by_syntax(
    output: str, entry_point: str, header: str, chat: bool, ended: bool = False
) -> int | None:
    """Where the answer is complete by the syntax rule (None if it never is): the output is
    fed whole, then once more empty, as candidates that fail to parse are passed over. An
    output the model `ended` (EOS) that is a whole answer as it stands ends at its end."""
    stopper = SyntaxStopper(entry_point=entry_point, header=header, chat=chat)
    cut = stopper.feed(output)
    while cut is None and stopper.scanned < len(stopper.text):
        before = stopper.scanned
        cut = stopper.feed("")
        if stopper.scanned == before:
            break
    if cut is None and ended and stopper.complete_at_end():
        return len(output)
    return cut


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def token_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def answer_end(
    output: str, task: dict[str, Any], prompt_style: str, ended: bool = False
) -> int | None:
    """Where the answer is complete by the syntax rule (the first line, for LongBench); an
    output the model `ended` (EOS) may be complete only at its very end."""
    entry_point = task.get("entry_point") or ""
    if not entry_point:
        first_line = FirstLineStopper()
        cut = first_line.feed(output)
        # The model's EOS ends the last line as a newline would.
        return first_line.feed("\n") if cut is None and ended else cut
    chat = prompt_style == "chat"
    header = "" if chat else task["prompt"]
    return answer_end_by_syntax(output, entry_point, header, chat, ended)


def whole_answer(output: str, cut: int, chat: bool) -> bool:
    """Nothing the answer did not need follows `cut`: only whitespace, or the closing fence
    of a chat answer's code block. The whole output is then the answer, babble 0."""
    rest = output[cut:].strip()
    return not rest or (chat and rest == FENCE)


def first_passing_cut(
    output: str,
    task: dict[str, Any],
    prompt_style: str,
    check: Callable[[str], tuple[bool, float, float]],
) -> int | None:
    """The earliest line end at which the output passes the task's tests (None: never)."""
    for cut in candidate_cuts(output, task, prompt_style):
        if check(output[:cut])[0]:
            return cut
    return None


def metrics(
    records: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    prompt_style: str,
    tokenizer: Any,
    check_for: Callable[[dict[str, Any]], Callable[[str], tuple[bool, float, float]]] | None,
    workers: int = 2,
) -> list[dict[str, Any]]:
    """Babble metrics of each output: where its answer is complete, by the syntax rule and by
    the tests, in tokens; the tokens written after that; and their share of the output."""
    from concurrent.futures import ThreadPoolExecutor

    def one(record: dict[str, Any]) -> dict[str, Any]:
        task = tasks[record["task_id"]]
        output = record["completion"]
        # The EOS token is the model saying it is done, not babble.
        ended = record["stop_reason"] == "eos"
        written = record["output_tokens"] - (1 if ended else 0)
        row: dict[str, Any] = {
            k: record[k] for k in ("model", "workload", "strategy", "rep", "task_id")
        }
        for rule, cut in (
            ("syntax", answer_end(output, task, prompt_style, ended)),
            (
                "tests",
                first_passing_cut(output, task, prompt_style, check_for(task))
                if check_for is not None and task.get("test")
                else None,
            ),
        ):
            if cut is None:
                answer = None
            elif whole_answer(output, cut, prompt_style == "chat"):
                answer = written  # not a re-tokenization, which may differ by a token
            else:
                answer = min(written, token_count(tokenizer, output[:cut]))
            row[f"answer_tokens_{rule}"] = answer
            row[f"babble_tokens_{rule}"] = None if answer is None else written - answer
            row[f"babble_ratio_{rule}"] = (
                None if answer is None or written == 0 else (written - answer) / written
            )
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, records))

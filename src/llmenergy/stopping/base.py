"""What a stopping strategy is: a stopper protocol, what a stopper is made from, and the
registry from a strategy's name to its factory and to what it needs.

A stopper is fed the output text piece by piece as it is decoded (`feed(delta)`) and answers
with the length of the output to keep once the answer is complete, or None to go on. Once the
task's decoding ends, `finish()` stops any work of its own and returns what its checks cost
(None for a stopper that runs none). The design of babbling suppression is in docs/design.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from llmenergy.records import BASELINE as BASELINE  # re-exported: the strategies' own name

FENCE = "```"

# Runs a task's tests on an output prefix in the sandbox: (passed, wall s, CPU s of its
# processes; None where the sandbox could not measure it)
Check = Callable[[str], tuple[bool, float, float | None]]


@dataclass
class CheckStats:
    """A stopper's own cost: checks run, their wall time and their processes' CPU time.

    A check whose CPU time the sandbox could not measure (its runner was killed) counts its
    wall time instead, one busy core's worth, and is counted in `cpu_unmeasured`.
    """

    checks: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    cpu_unmeasured: int = 0


class Stopper(Protocol):
    def feed(self, delta: str) -> int | None:
        """Take the next piece of output; return how much output to keep once complete."""
        ...

    def finish(self, wait: bool = True) -> CheckStats | None:
        """Stop (after a check in flight when `wait`); return the checks' costs, if any."""
        ...


class Stateless:
    """A stopper that runs no checks of its own: nothing to finish."""

    def finish(self, wait: bool = True) -> CheckStats | None:
        return None


@dataclass(frozen=True)
class StopTask:
    """What a stopper for one task is made from.

    `prompt` is the text the model continues (None: the task's own prompt). `check` runs the
    task's tests in the sandbox, given to strategies that run code. With `synchronous`, a
    stopper that checks in the background checks inside `feed` instead (replayed outputs,
    where the earliest passing line must be found whatever the timing).
    """

    task: dict[str, Any]
    prompt_style: str
    prompt: str | None = None
    check: Check | None = None
    synchronous: bool = False

    @property
    def chat(self) -> bool:
        return self.prompt_style == "chat"

    @property
    def entry_point(self) -> str:
        """The function the answer must write; empty for tasks without one (LongBench)."""
        return self.task.get("entry_point") or ""

    @property
    def header(self) -> str:
        """The code the output continues (code_header)."""
        return code_header(self.task, self.prompt_style, self.prompt)


def code_header(task: dict[str, Any], prompt_style: str, prompt: str | None = None) -> str:
    """The code an output continues: for completion prompts the task's prompt and whatever
    follows it in the text the model reads (shots and text before it are not part of the
    program); for chat prompts nothing (the code starts in the answer's code block)."""
    if prompt_style == "chat":
        return ""
    task_prompt = task["prompt"]
    if prompt is None or task_prompt not in prompt:
        return task_prompt
    return prompt[prompt.rfind(task_prompt) :]


@dataclass(frozen=True)
class Strategy:
    """A stopping strategy: its name (the `strategy` wildcard), the factory of a task's
    stopper (None: decode to EOS or the token cap), and what it needs."""

    name: str
    make: Callable[[StopTask], Stopper | None]
    needs_tests: bool = False  # only for tasks with tests (HumanEval), e.g. the oracle
    runs_code: bool = False  # runs model output while decoding: needs the sandbox
    summary: str = ""


class StrategyError(ValueError):
    """An unknown strategy, or two registered under one name."""


_REGISTRY: dict[str, Strategy] = {}
_SOURCES: dict[str, str] = {}  # strategy -> the strategy_modules entry that registered it


def register(strategy: Strategy) -> Strategy:
    """Make `strategy` known by its name; a name may be registered once."""
    if strategy.name in _REGISTRY:
        raise StrategyError(f"strategy {strategy.name!r} is registered twice")
    _REGISTRY[strategy.name] = strategy
    return strategy


def unregister(name: str) -> None:
    """Forget a strategy (for tests that register their own)."""
    _REGISTRY.pop(name, None)
    _SOURCES.pop(name, None)


def get(name: str) -> Strategy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StrategyError(
            f"unknown strategy {name!r}; known: {', '.join(names())} (a config adds its own "
            "with strategy_modules)"
        ) from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def registered() -> Iterator[Strategy]:
    return iter(_REGISTRY[name] for name in names())


def source_of(name: str) -> str | None:
    """The `strategy_modules` entry (a file or a module) that registered a config's own
    strategy; None for built-in ones."""
    return _SOURCES.get(name)


def note_source(name: str, entry: str) -> None:
    _SOURCES[name] = entry

"""Stopping strategies: each decides, as output is decoded, where the answer is complete.

A strategy is one module that registers a `Strategy` (base.py): its name, the factory of a
task's stopper, and what it needs (the task's tests, the sandbox). The built-in ones are
imported here; a config adds its own with `strategy_modules` (load_modules), and the workflow
then runs them like the built-in ones. See docs/design.md, "Babbling and its suppression".
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmenergy.stopping import none, oracle, stopwords, syntax
from llmenergy.stopping.base import (
    BASELINE,
    FENCE,
    Check,
    CheckStats,
    Stateless,
    Stopper,
    StopTask,
    Strategy,
    StrategyError,
    code_header,
    get,
    names,
    note_source,
    register,
    registered,
    source_of,
    unregister,
)

BUILT_IN = tuple(sorted(m.STRATEGY.name for m in (none, stopwords, syntax, oracle)))

__all__ = [
    "BASELINE",
    "BUILT_IN",
    "FENCE",
    "Check",
    "CheckStats",
    "RunStrategy",
    "Stateless",
    "StopTask",
    "Stopper",
    "Strategy",
    "StrategyError",
    "code_header",
    "for_run",
    "get",
    "load_modules",
    "names",
    "register",
    "registered",
    "runs_code",
    "source_of",
    "unregister",
]

_LOADED: set[str] = set()


def load_modules(entries: Iterable[str], base: Path = Path()) -> None:
    """Import each entry of a config's `strategy_modules` once per process: a Python file
    (relative to `base`, the working directory) or an importable module name. Each registers
    its strategies, which remember the entry (source_of): a job loads only its own."""
    for entry in entries:
        is_file = entry.endswith(".py")
        key = str((base / entry).resolve()) if is_file else entry
        if key in _LOADED:
            continue
        before = set(names())
        if is_file:
            path = Path(key)
            if not path.is_file():
                raise StrategyError(f"strategy_modules: {entry}: no such file")
            digest = hashlib.sha1(key.encode()).hexdigest()[:8]
            name = f"llmenergy_strategy_{path.stem}_{digest}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
        try:
            if is_file:
                spec.loader.exec_module(module)
            else:
                importlib.import_module(entry)
        except (ModuleNotFoundError, StrategyError) as error:
            raise StrategyError(f"strategy_modules: {entry}: {error}") from None
        _LOADED.add(key)
        added = set(names()) - before
        if not added:
            raise StrategyError(f"strategy_modules: {entry} registers no strategy")
        for strategy in added:
            note_source(strategy, entry)


def runs_code(name: str) -> bool:
    """Whether strategy `name` runs model output while decoding (the oracle), so that its jobs
    need the sandbox and its evaluation settings. Everything that asks, asks here."""
    return get(name).runs_code


# Each task's check of an output prefix in the sandbox (evaluation.checker builds it).
CheckFor = Callable[[dict[str, Any]], Check]


@dataclass(frozen=True)
class RunStrategy:
    """One run's stopping strategy, built once (for_run) and handed to generation or replay:
    its name, whether it runs model output while decoding, and each task's stopper.

    `check_for` gives a task's sandboxed check, for a strategy that runs code. With
    `synchronous`, a stopper that checks in the background checks inside `feed` instead
    (replayed outputs: StopTask.synchronous).
    """

    strategy: Strategy
    prompt_style: str
    check_for: CheckFor | None = None
    synchronous: bool = False

    @property
    def name(self) -> str:
        return self.strategy.name

    @property
    def runs_code(self) -> bool:
        return self.check_for is not None

    def for_task(self, task: dict[str, Any], prompt: str | None = None) -> Stopper | None:
        """The stopper for one task whose model reads `prompt` (None: no stopper)."""
        if self.strategy.needs_tests and not task.get("entry_point"):
            raise StrategyError(
                f"task {task['task_id']}: strategy {self.name!r} needs the task's tests (HumanEval)"
            )
        check = self.check_for(task) if self.check_for is not None else None
        stop_task = StopTask(task, self.prompt_style, prompt, check, self.synchronous)
        return self.strategy.make(stop_task)


def for_run(
    name: str, prompt_style: str, check_for: CheckFor | None = None, synchronous: bool = False
) -> RunStrategy:
    """Strategy `name` for a run whose prompts are rendered in `prompt_style`. A strategy that
    runs code needs `check_for` (None: model output may not run here, an error); the others
    get none."""
    strategy = get(name)
    if not runs_code(name):
        return RunStrategy(strategy, prompt_style, None, synchronous)
    if check_for is None:
        raise StrategyError(
            f"strategy {name!r} runs the tasks' tests while decoding, but the evaluation config"
            " does not allow running model output here (evaluation.run_untrusted_code /"
            " evaluation.isolation)"
        )
    return RunStrategy(strategy, prompt_style, check_for, synchronous)

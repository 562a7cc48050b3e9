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
from collections.abc import Iterable
from pathlib import Path

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
    "Stateless",
    "StopTask",
    "Stopper",
    "Strategy",
    "StrategyError",
    "code_header",
    "get",
    "load_modules",
    "make",
    "names",
    "register",
    "registered",
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


def make(name: str, task: StopTask) -> Stopper | None:
    """The stopper of strategy `name` for one task (None: no stopper)."""
    strategy = get(name)
    if strategy.needs_tests and not task.entry_point:
        raise StrategyError(
            f"task {task.task['task_id']}: strategy {name!r} needs the task's tests (HumanEval)"
        )
    return strategy.make(task)

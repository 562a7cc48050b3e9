"""The `oracle` strategy, the study's: at line ends where the code parses, run the task's
tests in the sandbox on a worker thread while decoding goes on; stop at the first prefix that
passes, cut there.
"""

from __future__ import annotations

import threading

from llmenergy.stopping.base import Check, CheckStats, StopTask, Strategy, StrategyError, register
from llmenergy.stopping.python_code import prefix_parses


class OracleStopper:
    """`check(candidate_output) -> (passed, wall_s, cpu_s)` runs the tests of one prefix; on
    a worker thread (newer candidates replace ones not yet checked), or inside `feed` when
    `synchronous` (every candidate checked in order: the earliest passing line)."""

    def __init__(
        self, check: Check, header: str = "", chat: bool = False, synchronous: bool = False
    ) -> None:
        self.check = check
        self.header = header
        self.chat = chat
        self.synchronous = synchronous
        self.text = ""
        self.stats = CheckStats()
        self.passed_at: int | None = None
        self._pending: int | None = None
        self._last_candidate: int | None = None
        self._busy = False
        self._lock = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True)
        if not synchronous:
            self._worker.start()

    def feed(self, delta: str) -> int | None:
        start = len(self.text)
        self.text += delta
        newline = self.text.rfind("\n", start)
        if newline == -1 or self.passed_at is not None:
            return self.passed_at
        cut = len(self.text[:newline].rstrip())  # blank lines add nothing to check
        if cut != self._last_candidate and self._code_parses(cut):
            self._last_candidate = cut
            if self.synchronous:
                self._run_check(cut)
            else:
                with self._lock:
                    self._pending = cut  # newer candidates replace ones not yet checked
                    self._lock.notify()
        return self.passed_at

    def _code_parses(self, cut: int) -> bool:
        return prefix_parses(self.text, cut, self.header, self.chat)

    def _run_check(self, cut: int) -> bool:
        passed, wall_s, cpu_s = self.check(self.text[:cut])
        with self._lock:
            # The verdict and idleness in one critical section: a reader that sees the
            # worker idle (`idle`) must see where it passed, or it cuts a token late.
            self.stats.checks += 1
            self.stats.seconds += wall_s
            self.stats.cpu_seconds += wall_s if cpu_s is None else cpu_s
            self.stats.cpu_unmeasured += cpu_s is None
            self.passed_at = cut if passed else None
            self._busy = False
        return passed

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._lock.wait()
                if self._pending is None:
                    return
                cut, self._pending = self._pending, None
                self._busy = True
            if self._run_check(cut):
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
        if wait and self._worker.is_alive():
            self._worker.join()
        return self.stats


def make(task: StopTask) -> OracleStopper:
    # RunStrategy.for_task has checked that the task has tests (needs_tests).
    if task.check is None:
        raise StrategyError("the oracle strategy needs a check function (the sandbox)")
    return OracleStopper(task.check, task.header, task.chat, task.synchronous)


STRATEGY = register(
    Strategy(
        "oracle",
        make,
        needs_tests=True,
        runs_code=True,
        summary="the task's tests pass on the output so far (run in the sandbox)",
    )
)

"""The process sandbox: outcomes, error kinds, limits, and cleanup of leftover children."""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

from llmenergy import sandbox

FAST = sandbox.Limits(timeout_s=10.0, memory_mb=512)


def run(program: str, limits: sandbox.Limits = FAST) -> sandbox.Outcome:
    return sandbox.run_python(textwrap.dedent(program), limits)


def test_passing_program() -> None:
    outcome = run("x = sum(range(10))\nassert x == 45\n")
    assert outcome.ok is True
    assert outcome.error_kind is None
    assert outcome.sandbox == "process-rlimits"
    assert outcome.detail == ""
    assert 0 < outcome.seconds < 10


def test_assertion_failure() -> None:
    outcome = run("assert 1 + 1 == 3\n")
    assert outcome.ok is False
    assert outcome.error_kind == "assertion"
    assert outcome.sandbox == sandbox.ISOLATION
    assert "AssertionError" in outcome.detail


def test_syntax_error() -> None:
    outcome = run("def f(:\n    return 1\n")
    assert outcome.ok is False
    assert outcome.error_kind == "syntax"
    assert "SyntaxError" in outcome.detail


def test_indentation_error_is_syntax() -> None:
    outcome = run("def f():\nreturn 1\n")
    assert outcome.error_kind == "syntax"


def test_exception_names_its_class() -> None:
    outcome = run("raise ValueError('boom')\n")
    assert outcome.ok is False
    assert outcome.error_kind == "exception:ValueError"
    assert "ValueError: boom" in outcome.detail


def test_nonzero_exit_without_traceback() -> None:
    outcome = run("import sys\nsys.exit(3)\n")
    assert outcome.ok is False
    assert outcome.error_kind == "exit:3"


def test_program_killed_by_a_signal() -> None:
    outcome = run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert outcome.ok is False
    assert outcome.error_kind == "signal:SIGKILL"


def test_infinite_loop_times_out_quickly() -> None:
    start = time.perf_counter()
    outcome = run("while True:\n    pass\n", sandbox.Limits(timeout_s=1))
    elapsed = time.perf_counter() - start
    assert outcome.ok is False
    assert outcome.error_kind == "timeout"
    assert outcome.sandbox == "process-rlimits"
    assert 0.9 <= outcome.seconds < 5
    assert elapsed < 5


def test_memory_hog_hits_the_address_space_limit() -> None:
    outcome = run("b = bytearray(4 * 1024 ** 3)\n", sandbox.Limits(timeout_s=10, memory_mb=256))
    assert outcome.ok is False
    assert outcome.error_kind == "memory"


def test_file_size_limit() -> None:
    program = """
        with open("big.bin", "wb") as handle:
            handle.write(b"x" * (3 * 1024 * 1024))
    """
    outcome = run(program, sandbox.Limits(timeout_s=10, file_size_mb=1))
    assert outcome.ok is False
    assert outcome.error_kind in {"exception:OSError", "signal:SIGXFSZ"}


def test_private_working_folder_is_removed_and_env_is_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMENERGY_TEST_SECRET", "leak")
    report = tmp_path / "cwd.txt"
    program = f"""
        import os
        assert "LLMENERGY_TEST_SECRET" not in os.environ
        assert os.listdir(".") == ["program.py"]
        with open("scratch.txt", "w") as handle:
            handle.write("data")
        with open({str(report)!r}, "w") as handle:
            handle.write(os.getcwd())
    """
    outcome = run(program)
    assert outcome.ok is True, outcome.detail
    workdir = Path(report.read_text())
    assert workdir != Path.cwd()
    assert workdir.name.startswith("llmenergy-check-")
    assert not workdir.exists()


def _is_gone(pid: int) -> bool:
    """True when `pid` no longer runs: absent, or a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] in {"Z", "X"}


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _is_gone(pid):
            return True
        time.sleep(0.05)
    return _is_gone(pid)


def _spawning_program(pid_file: Path, tail: str, child_stderr: str) -> str:
    # The child's pid is written only once it is seen running, so a dead child at the end
    # means the sandbox killed it (not that it never started).
    return textwrap.dedent(
        f"""
        import subprocess, time
        child = subprocess.Popen(
            ["sleep", "30"], stdout=subprocess.DEVNULL, stderr={child_stderr}
        )
        time.sleep(0.1)
        assert child.poll() is None, "the child did not start"
        with open({str(pid_file)!r}, "w") as handle:
            handle.write(str(child.pid))
        """
    ) + textwrap.dedent(tail)


@pytest.mark.parametrize(
    ("tail", "child_stderr", "timeout_s", "expected_kind"),
    [
        # The program exits at once, leaving its child behind.
        ("", "subprocess.DEVNULL", 10, None),
        # The program exits, but its child still holds the stderr pipe open.
        ("", "None", 1, "timeout"),
        # The program hangs past its timeout with its child.
        ("time.sleep(60)\n", "subprocess.DEVNULL", 1, "timeout"),
    ],
    ids=["program-exits", "child-holds-stderr", "program-hangs"],
)
def test_leftover_children_are_killed(
    tmp_path: Path, tail: str, child_stderr: str, timeout_s: float, expected_kind: str | None
) -> None:
    pid_file = tmp_path / "child.pid"
    program = _spawning_program(pid_file, tail, child_stderr)
    start = time.perf_counter()
    outcome = sandbox.run_python(program, sandbox.Limits(timeout_s=timeout_s))
    elapsed = time.perf_counter() - start
    assert pid_file.exists(), outcome.detail
    pid = int(pid_file.read_text())
    try:
        assert outcome.error_kind == expected_kind, outcome.detail
        assert outcome.ok is (expected_kind is None)
        assert elapsed < 8  # never waits for the 30 s child
        assert _wait_gone(pid), f"child {pid} outlived the sandboxed program"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("returncode", "stderr", "kind"),
    [
        (-9, "", "signal:SIGKILL"),
        (-15, "whatever", "signal:SIGTERM"),
        (-11, "", "signal:SIGSEGV"),
        (-24, "", "signal:SIGXCPU"),
        (1, "Traceback (most recent call last):\n  ...\nAssertionError\n", "assertion"),
        (1, "Traceback:\nAssertionError: expected 3\n", "assertion"),
        (1, '  File "p.py", line 1\n    def f(:\nSyntaxError: invalid syntax\n', "syntax"),
        (1, "IndentationError: expected an indented block\n", "syntax"),
        (1, "TabError: inconsistent use of tabs\n", "syntax"),
        (1, "Traceback:\nMemoryError\n", "memory"),
        (1, "Traceback:\nValueError: bad value\n", "exception:ValueError"),
        (1, "Traceback:\nKeyError: 'x'\n\n\n", "exception:KeyError"),
        (1, "json.decoder.JSONDecodeError: Expecting value\n", "exception:JSONDecodeError"),
        (1, "", "exit:1"),
        (2, "   \n", "exit:2"),
        (3, "some free text: not an exception\n", "exit:3"),
    ],
)
def test_classify(returncode: int, stderr: str, kind: str) -> None:
    assert sandbox.classify(returncode, stderr) == kind

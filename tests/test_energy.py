"""Energy meters: the CPU-time estimate, backend selection and Zeus source labels."""

from __future__ import annotations

import time

import pytest

from llmenergy import energy
from llmenergy.conditions import UNREAD, Conditions
from llmenergy.joules import Joules

WATTS = 10.0


def _busy(cpu_seconds: float) -> None:
    """Burn at least `cpu_seconds` of this process's CPU time."""
    start = time.process_time()
    x = 0
    while time.process_time() - start < cpu_seconds:
        for i in range(1000):
            x += i * i


@pytest.fixture
def no_counters() -> energy.Counters:
    counters = energy.available_counters()
    if counters.gpu_indices or counters.cpu_indices:
        pytest.skip(f"this machine has energy counters ({counters}); the estimate is not chosen")
    return counters


def test_estimate_busy_window_is_cpu_time_times_watts() -> None:
    meter = energy.EstimateMeter(WATTS)
    cpu_before = time.process_time()
    meter.begin("busy")
    cpu_inner_start = time.process_time()
    _busy(0.3)
    cpu_inner_end = time.process_time()
    reading = meter.end("busy")
    cpu_after = time.process_time()

    assert reading.name == "busy"
    assert meter.source == "estimate:cpu-time"
    energy_j = reading.joules.accelerator
    assert energy_j is not None and reading.joules.host is None
    # The meter's window lies between the inner and the outer brackets of CPU time.
    assert energy_j >= (cpu_inner_end - cpu_inner_start) * WATTS
    assert energy_j <= (cpu_after - cpu_before) * WATTS
    assert energy_j == pytest.approx((cpu_after - cpu_before) * WATTS, rel=0.1)
    assert energy_j >= 0.3 * WATTS
    # A single-threaded busy loop cannot use more CPU time than wall time (plus slack).
    assert reading.seconds > 0
    assert energy_j / WATTS <= reading.seconds * 1.5 + 0.05


def test_estimate_scales_with_watts_per_core() -> None:
    low, high = energy.EstimateMeter(5.0), energy.EstimateMeter(20.0)
    low.begin("w")
    high.begin("w")
    _busy(0.1)
    r_high = high.end("w")
    r_low = low.end("w")
    low_j, high_j = r_low.joules.accelerator, r_high.joules.accelerator
    assert low_j is not None and high_j is not None
    # The same CPU time (up to the few instructions between the two ends) at 4x the power.
    assert high_j == pytest.approx(4 * low_j, rel=0.05)


def test_estimate_sleep_window_is_near_zero() -> None:
    meter = energy.EstimateMeter(WATTS)
    reading = energy.measure_idle(meter, 0.3)
    assert reading.name == "idle"
    assert meter.source == energy.ESTIMATE_SOURCE
    assert reading.seconds >= 0.29
    assert reading.joules.accelerator is not None
    assert 0 <= reading.joules.accelerator < 0.05 * WATTS  # far below 0.3 s x WATTS


def test_estimate_windows_are_independent_and_single_use() -> None:
    meter = energy.EstimateMeter(WATTS)
    meter.begin("outer")
    meter.begin("inner")
    time.sleep(0.05)
    inner = meter.end("inner")
    _busy(0.1)
    outer = meter.end("outer")
    assert inner.name == "inner" and outer.name == "outer"
    assert outer.seconds > inner.seconds
    assert outer.joules.accelerator is not None and inner.joules.accelerator is not None
    assert outer.joules.accelerator > inner.joules.accelerator
    with pytest.raises(KeyError):
        meter.end("outer")


@pytest.mark.parametrize("watts", [0, 0.0, -1, -0.5])
def test_estimate_rejects_non_positive_watts(watts: float) -> None:
    with pytest.raises(ValueError, match="watts_per_core"):
        energy.EstimateMeter(watts)


def test_open_meter_auto_falls_back_to_estimate(no_counters: energy.Counters) -> None:
    meter = energy.open_meter({"backend": "auto", "watts_per_core": 10})
    assert isinstance(meter, energy.EstimateMeter)
    assert meter.watts_per_core == 10.0
    assert meter.source == "estimate:cpu-time"


def test_open_meter_default_backend_is_auto(no_counters: energy.Counters) -> None:
    meter = energy.open_meter({"watts_per_core": 3})
    assert isinstance(meter, energy.EstimateMeter)
    assert meter.watts_per_core == 3.0


def test_open_meter_estimate_always_estimates() -> None:
    meter = energy.open_meter({"backend": "estimate", "watts_per_core": 7.5})
    assert isinstance(meter, energy.EstimateMeter)
    assert meter.watts_per_core == 7.5


def test_open_meter_estimate_validates_watts() -> None:
    with pytest.raises(ValueError, match="watts_per_core"):
        energy.open_meter({"backend": "estimate", "watts_per_core": 0})


def test_open_meter_zeus_without_counters_fails_clearly(no_counters: energy.Counters) -> None:
    with pytest.raises(energy.EnergyUnavailableError, match="'zeus'"):
        energy.open_meter({"backend": "zeus", "watts_per_core": 10})


@pytest.mark.parametrize("backend", ["nvml", "Estimate", "", None])
def test_open_meter_unknown_backend(backend: object) -> None:
    with pytest.raises(ValueError, match=r"energy\.backend"):
        energy.open_meter({"backend": backend, "watts_per_core": 10})


@pytest.mark.parametrize(
    ("device", "gpus", "cpus", "override", "expected"),
    [
        ("cuda:1", (0, 1, 2, 3), (0,), None, energy.Accelerator("gpu", (1,))),  # its own GPU
        ("cuda", (0, 1), (), None, energy.Accelerator("gpu", (0,))),
        ("cuda:2", (0, 1), (0,), None, None),  # not visible: no counter for it
        ("cpu", (0, 1), (0, 1), None, energy.Accelerator("cpu-package", (0, 1))),
        ("cpu", (0, 1), (), None, None),  # GPUs beside a CPU model are not its device
        ("cpu", (0, 1, 2), (), [2], energy.Accelerator("gpu", (2,))),  # energy.gpus names it
        ("cuda:0", (0, 1, 2), (0,), [1, 2], energy.Accelerator("gpu", (1, 2))),
    ],
)
def test_accelerator_is_the_models_device(device, gpus, cpus, override, expected) -> None:
    counters = energy.Counters(gpu_indices=gpus, cpu_indices=cpus)
    assert energy.accelerator_for(device, counters, override) == expected


def test_energy_gpus_naming_a_missing_gpu_fails_clearly() -> None:
    with pytest.raises(energy.EnergyUnavailableError, match=r"energy\.gpus.*\[5\].*\[0, 1\]"):
        energy.accelerator_for("cpu", energy.Counters((0, 1), ()), [5])


def test_estimate_meter_says_it_is_an_estimate() -> None:
    meter = energy.EstimateMeter(WATTS)
    assert (meter.measured, meter.device, meter.covers_cpu, meter.host_source) == (
        False,
        "estimate",
        False,
        None,
    )
    meter.begin("w")
    reading = meter.end("w")
    assert reading.joules.host is None


def test_a_window_open_by_that_name_cannot_begin_again() -> None:
    """Begun twice, a window would silently lose its first start: refused, and the open
    window is still the first one."""
    meter = energy.EstimateMeter(WATTS)
    meter.begin("decode")
    with pytest.raises(ValueError, match="'decode' is already open"):
        meter.begin("decode")
    first = meter.end("decode")
    assert first.name == "decode"
    meter.begin("decode")  # ended: it may begin again
    meter.end("decode")


class SlowProbe:
    """A probe whose reads take a known time, as NVML's calls do on a busy machine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def begin(self) -> None:
        time.sleep(self.seconds)

    def end(self, started: None) -> Conditions:
        time.sleep(self.seconds)
        return UNREAD


class SteadyDevice:
    """A stand-in for a metered GPU (none exists here) that draws a known power: its counter
    gives that power x the time between its window's begin and end calls."""

    source, device, covers_cpu, host_source, per_token_flag = "test", "gpu:0", False, None, None
    default_min_window_s = 0.1

    def __init__(self, watts: float, probe: SlowProbe) -> None:
        self.watts, self.probe = watts, probe

    def synchronize(self) -> None:
        return None

    def begin(self, name: str) -> dict[int, float]:
        return {0: time.perf_counter()}

    def end(self, name, opened, work, idle) -> Joules:
        return Joules(self.watts * (time.perf_counter() - opened[0]))

    def interval_energies(self, phases):
        return []


def test_the_conditions_probe_reads_outside_the_energy_window() -> None:
    """Reading what else the machine did (NVML calls, /proc) takes time at the device's
    power; done inside the counters' window, it adds energy the window's seconds leave out, a
    fixed amount a window that inflates short windows' J/token. The energy stays the power
    x the window's time, with reads as long as the work."""
    meter = energy.ZeusMeter(SteadyDevice(100.0, SlowProbe(0.2)))
    meter.begin("decode")
    time.sleep(0.2)
    reading = meter.end("decode")
    assert reading.joules.accelerator == pytest.approx(100.0 * reading.seconds, rel=0.05)

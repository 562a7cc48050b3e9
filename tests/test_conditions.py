"""What else the machine did beside a window: the bounds at their edges, other processes' CPU
read from /proc/stat with real busy processes beside, a contended task measured again and
flagged, the job table the report shows, the claims and the summary line that count flags.
(GPU conditions on the simulated NVML: tests/test_conditions_nvml.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import pytest

from llmenergy import (
    aggregate,
    claims,
    conditions,
    energy,
    generation,
    records,
    run_summary,
    stopping,
)
from llmenergy.conditions import Bounds, Conditions
from llmenergy.generation_settings import GenerationSettings

SPIN = "while True: pass"


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` processes spinning beside the test, as a laptop's other work would."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(processes)]
    try:
        time.sleep(0.3)  # started and spinning
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


# ---------------------------------------------------------------------------------------------
# bounds at their edges


def test_contention_is_judged_against_the_cores_left_free_at_its_boundary():
    bounds = Bounds(max_other_cores=0.5)
    at = Conditions(other_cores=1.5, window_s=1.0)
    above = Conditions(other_cores=1.5001, window_s=1.0)
    assert not bounds.contended(at, free_cores=1)
    assert bounds.contended(above, free_cores=1)
    # The same load on a machine whose model leaves two cores free is no contention.
    assert not bounds.contended(above, free_cores=2)


def test_windows_too_short_for_proc_stat_are_not_judged_on_cpu():
    bounds = Bounds(max_other_cores=0.0)
    heavy = Conditions(other_cores=8.0, window_s=conditions.JUDGED_S - 0.01)
    assert not bounds.contended(heavy, free_cores=0)
    assert bounds.contended(Conditions(other_cores=8.0, window_s=conditions.JUDGED_S), 0)


def test_another_process_on_the_gpu_is_contention_whatever_the_cpu():
    bounds = Bounds(max_gpu_processes=0)
    assert bounds.contended(Conditions(gpu_other_processes=1), free_cores=8)
    assert not bounds.contended(Conditions(gpu_other_processes=0), free_cores=8)
    assert not Bounds(max_gpu_processes=1).contended(Conditions(gpu_other_processes=1), 8)


@pytest.mark.parametrize(
    ("mean_w", "flags"),
    [
        (89.9, [conditions.POWER_BELOW_IDLE]),  # idle 100 W less 10%: 90 W
        (90.0, []),
        (735.0, []),  # limit 700 W plus 5%: 735 W
        (735.1, [conditions.POWER_ABOVE_LIMIT]),
        (None, []),
    ],
)
def test_power_bounds_at_their_edges(mean_w, flags):
    bounds = Bounds(below_idle_margin=0.1, above_limit_margin=0.05)
    assert bounds.power_flags(mean_w, idle_w=100.0, limit_w=700.0) == flags
    assert bounds.power_flags(mean_w, idle_w=None, limit_w=None) == []


def write_zone(zone, limits_uw: dict[str, str]) -> None:
    """A powercap package zone: each constraint's name and its power limit as the kernel
    writes them (microwatts, a line each)."""
    zone.mkdir(parents=True)
    for index, (name, microwatts) in enumerate(limits_uw.items()):
        (zone / f"constraint_{index}_name").write_text(f"{name}\n")
        (zone / f"constraint_{index}_power_limit_uw").write_text(f"{microwatts}\n")


@pytest.mark.parametrize(
    ("limits_uw", "limit_w"),
    [
        ({"long_term": "65000000", "short_term": "90000000"}, 90.0),  # the highest
        ({"long_term": "65000000", "short_term": "0"}, 65.0),  # 0: no limit set
        ({"long_term": "0"}, None),
        ({"long_term": "unreadable"}, None),
        ({}, None),
    ],
)
def test_a_rapl_package_limit_is_its_highest_constraint(tmp_path, limits_uw, limit_w):
    write_zone(tmp_path / "intel-rapl:0", limits_uw)
    assert conditions.package_power_limit_w(tmp_path / "intel-rapl:0") == limit_w


def test_the_package_probe_sums_its_packages_limits_and_reads_the_cpu(tmp_path):
    write_zone(tmp_path / "intel-rapl:0", {"long_term": "65000000", "short_term": "90000000"})
    write_zone(tmp_path / "intel-rapl:1", {"long_term": "100000000"})
    probe = conditions.PackageProbe([tmp_path / "intel-rapl:0", tmp_path / "intel-rapl:1"])
    read = probe.end(probe.begin())
    assert read.power_limit_w == 190.0
    assert read.other_cores is not None and read.window_s > 0
    # A package whose limit cannot be read leaves the sum unread, never a part of it.
    unread = conditions.PackageProbe([tmp_path / "intel-rapl:0", None])
    assert unread.end(unread.begin()).power_limit_w is None


def test_a_tasks_windows_merge_by_time_and_keep_the_latest_state():
    prefill = Conditions(other_cores=2.0, window_s=1.0, gpu_other_processes=1, gpu_sm_mhz=1980)
    decode = Conditions(other_cores=0.5, window_s=3.0, gpu_other_processes=0, gpu_sm_mhz=1410)
    task = prefill.then(decode)
    assert task.other_cores == pytest.approx((2.0 * 1 + 0.5 * 3) / 4)
    assert task.window_s == 4.0
    assert task.gpu_other_processes == 1  # the most seen at any edge
    assert task.gpu_sm_mhz == 1410  # the state at the end
    assert "window_s" not in task.columns()
    assert set(task.columns()) <= set(records.GENERATION_SCHEMA)


def test_the_bounds_come_from_the_config_with_defaults():
    assert Bounds.of({}) == Bounds()
    assert Bounds.of({"max_remeasures": 3}).max_remeasures == 3
    settings = GenerationSettings.of(
        {"prompt_style": "chat"},
        16,
        None,
        False,
        {
            "max_prefill_repeats": 8,
            "max_task_repeats": 8,
            "idle_seconds": 0,
            "watts_per_core": 12.0,
            "conditions": {"max_other_cores": 0.125},
        },
    )
    assert settings.bounds == Bounds(max_other_cores=0.125)


# ---------------------------------------------------------------------------------------------
# /proc/stat with real processes beside


def test_the_cpu_probe_sees_busy_processes_beside_a_window():
    """Two processes spinning while this one sleeps keep about two cores busy (on a machine
    of two or more): the probe reads at least one (other work only adds to it)."""
    probe = conditions.CpuProbe()
    with busy(2):
        started = probe.begin()
        time.sleep(1.0)
        seen = probe.end(started)
    assert seen.other_cores is not None and seen.other_cores >= 1.0, seen
    assert seen.window_s >= 1.0


def test_the_cpu_probe_does_not_count_this_processs_own_work():
    """A window in which this process spins: its own CPU is not others'. Read beside a probe
    that subtracts nothing, the probe reads less by this process's cores; and with them, at
    most the job's cores are busy, however loaded the machine (tick rounding aside)."""
    probe, gross = conditions.CpuProbe(), conditions.CpuProbe(own_cpu_s=lambda: 0.0)
    started, gross_started, own0 = probe.begin(), gross.begin(), time.process_time()
    end = time.process_time() + 1.0
    while time.process_time() < end:
        pass
    own_cpu_s = time.process_time() - own0
    seen, seen_gross = probe.end(started), gross.end(gross_started)
    assert seen.other_cores is not None and seen_gross.other_cores is not None
    own_cores = own_cpu_s / seen.window_s
    # Each edge rounds each CPU to a 10 ms tick: up to 0.04 cores over 1 s on 2 CPUs, twice.
    assert seen_gross.other_cores - seen.other_cores == pytest.approx(own_cores, abs=0.08), seen
    assert seen.other_cores + own_cores <= conditions.job_cores() + 0.2, seen


def test_busy_seconds_count_only_the_named_cpus():
    """A planted /proc/stat: CPU 0 busy 300 ticks (user, nice, system, irq, softirq; steal is
    the hypervisor's, idle and iowait are not busy), CPU 1 busy 500; the summary line's
    figures are not read."""
    tick = os.sysconf("SC_CLK_TCK")
    stat = (
        "cpu  400 0 300 9000 50 50 50 0 0 0\n"
        "cpu0 100 0 100 4000 20 50 50 25 0 0\n"
        "cpu1 300 0 200 5000 30 0 0 0 0 0\n"
        "intr 12345 0 0\n"
    )
    assert conditions.busy_seconds(stat, {0}) == pytest.approx(300 / tick)
    assert conditions.busy_seconds(stat, {1}) == pytest.approx(500 / tick)
    assert conditions.busy_seconds(stat, {0, 1}) == pytest.approx(800 / tick)
    assert conditions.busy_seconds(stat, {7}) == 0.0


PINNED = """
import os, sys, time
os.sched_setaffinity(0, {0})
from llmenergy import conditions
probe = conditions.CpuProbe()
started = probe.begin()
time.sleep(1.0)
print(conditions.job_cores(), probe.end(started).other_cores)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin apart")
def test_a_job_pinned_to_one_cpu_judges_that_cpu_alone():
    """A job's CPUs are its affinity (a Slurm job's cpuset), not the node's: a process pinned
    to one CPU counts one core, and however busy the machine (two spinners, other tests),
    other processes can keep at most that one core busy in its windows."""
    with busy(2):
        out = subprocess.run(
            [sys.executable, "-c", PINNED], capture_output=True, text=True, check=True
        ).stdout.split()
    assert int(out[0]) == 1
    assert float(out[1]) <= 1.0 + 0.1, out  # a CPU's ticks, rounded at each edge


def _run(tiny_model, bounds: Bounds, tokens: int = 400) -> list[dict]:
    """Two tasks decoded to `tokens` tokens each on the tiny model, with one model thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tasks = [{"task_id": f"T/{i}", "prompt": "def f(x):\n" + "    " * i} for i in range(2)]
        result = generation.run(
            tiny_model,
            tasks,
            energy.EstimateMeter(10.0),
            stopping.for_run(stopping.BASELINE, "completion"),
            GenerationSettings("completion", tokens, ignore_eos=True, bounds=bounds),
            keys={"model": "tiny", "workload": "w", "strategy": "none", "rep": 1},
            log=lambda line: None,
        )
    finally:
        torch.set_num_threads(threads)
    return result.records


def test_a_task_contended_beside_busy_processes_is_measured_again_and_flagged(tiny_model):
    """With every core but the model's taken by spinners and no slack allowed, each task is
    contended, measured again once, and kept flagged; its record says what else ran."""
    cores = conditions.job_cores()
    with busy(cores + 1):
        rows = _run(tiny_model, Bounds(max_other_cores=0.0, max_remeasures=1))
    for row in rows:
        assert row["remeasured"] == 1, row
        assert conditions.CONTENDED in row["energy_flags"].split(","), row
        assert row["other_cores"] > cores - 1, row


def test_no_task_is_contended_when_the_bound_allows_every_core(tiny_model):
    cores = conditions.job_cores()
    with busy(1):
        rows = _run(tiny_model, Bounds(max_other_cores=float(cores + 4), max_remeasures=3))
    for row in rows:
        assert row["remeasured"] == 0 and row["energy_flags"] == "", row
        assert row["other_cores"] is not None
        assert row["cpu_mhz"] is None or row["cpu_mhz"] > 0


# ---------------------------------------------------------------------------------------------
# tables, claims and the summary line


def _record(strategy: str, task: str, flags: str, remeasured: int, **beside) -> dict:
    return dict.fromkeys(records.GENERATION_SCHEMA) | {
        "model": "m",
        "workload": "w",
        "strategy": strategy,
        "rep": 1,
        "task_id": task,
        "energy_flags": flags,
        "remeasured": remeasured,
        "metered_device": "gpu:0 H200",
        **beside,
    }


def test_the_job_table_counts_each_flag_and_the_drift_over_the_job():
    rows = [
        _record("none", "T/0", "", 0, gpu_temperature_c=41.0, gpu_sm_mhz=1980.0),
        _record("none", "T/1", "contended", 1, other_cores=2.5, gpu_temperature_c=55.0),
        _record("none", "T/2", "decode-by-subtraction,power-below-idle", 0, gpu_sm_mhz=1755.0),
        _record("none", "T/3", "", 1, gpu_other_processes=0, gpu_temperature_c=48.0),
        _record("oracle", "T/0", "power-above-limit,contended", 1, gpu_other_processes=2),
    ]
    table = aggregate.measurement_conditions(records.frame(rows, records.GENERATION_SCHEMA).lazy())
    none, oracle = table.row(0, named=True), table.row(1, named=True)
    assert (none["strategy"], oracle["strategy"]) == ("none", "oracle")
    assert none["tasks"] == 4 and none["flagged_tasks"] == 2
    assert (none["contended_tasks"], none["remeasured_tasks"]) == (1, 2)
    assert (none["below_idle_tasks"], none["above_limit_tasks"]) == (1, 0)
    assert none["other_cores_max"] == 2.5
    assert (none["gpu_temperature_c_min"], none["gpu_temperature_c_max"]) == (41.0, 55.0)
    assert (none["gpu_sm_mhz_min"], none["gpu_sm_mhz_max"]) == (1755.0, 1980.0)
    assert oracle["flagged_tasks"] == 1 and oracle["gpu_other_processes_max"] == 2


def test_a_claim_says_how_many_flagged_tasks_it_rests_on():
    summary = pl.DataFrame(
        {"workload": ["short", "long", "other"], "flagged_tasks": [2, 1, 7]},
    )
    on_two = [claims.Value(1.0, workloads=("short",)), claims.Value(2.0, workloads=("long",))]
    assert claims.flagged_tasks(summary, on_two) == 3
    assert claims.flagged_tasks(summary, [claims.Value(1.0)]) == 10  # no workload: all runs
    clean = pl.DataFrame({"workload": ["short"], "flagged_tasks": [0]})
    assert claims.flagged_tasks(clean, on_two) == 0


def test_the_summary_line_counts_flagged_and_remeasured_tasks():
    summary = pl.DataFrame(
        {"records": [10, 5], "flagged_tasks": [2, 0], "remeasured_tasks": [3, 1]}
    )
    line = run_summary.measurement_line(summary)
    assert line.startswith("Measurement: 2 of 15 tasks flagged")
    assert "4 measured again" in line

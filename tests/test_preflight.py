"""What a config asks of the machine, checked before any job starts: each case through the real
Snakemake (a run and `snakemake -n` stop alike, naming the key), the case a run goes on
without, and the checks themselves on what is still to run."""

from __future__ import annotations

import copy
from pathlib import Path

import polars as pl
import pytest

from llmenergy import energy, preflight, sandbox

from conftest import load_tiny_config, snakemake

# A bwrap that behaves as bubblewrap does where the kernel forbids unprivileged user
# namespaces (Ubuntu's AppArmor restriction, Docker's default seccomp profile).
FORBIDDEN_BWRAP = """#!/bin/sh
if [ "$1" = --version ]; then echo "bubblewrap 0.11.0"; exit 0; fi
echo "bwrap: No permissions to create a new namespace, likely because the kernel does not \
allow non-privileged user namespaces." >&2
exit 1
"""
HUB_MODEL = {
    "source": {"kind": "hub", "repo": "org/model", "revision": "0" * 40},
    "prompt_style": "completion",
}


@pytest.fixture
def no_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every bwrap of this process and its children is one that cannot create namespaces."""
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(FORBIDDEN_BWRAP)
    fake.chmod(0o755)
    monkeypatch.setenv(sandbox.BWRAP_ENV, str(fake))
    sandbox.detect.cache_clear()
    yield fake
    sandbox.detect.cache_clear()


def tiny(**changes) -> dict:
    config = copy.deepcopy(load_tiny_config())
    for key, value in changes.items():
        config[key] = value
    return config


def started_nothing(workdir: Path) -> bool:
    return not any((workdir / name).exists() for name in ("results", "resources", "logs"))


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_oracle_without_a_sandbox_stops_before_any_job(workdir: Path, no_sandbox: Path, dry):
    config = tiny(strategies=["none", "oracle"])
    config["evaluation"]["isolation"] = "bwrap"
    run = snakemake(workdir, config, *(["-n"] if dry else []))
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-2000:]
    assert "PreflightError" in output and "no job was started" in output
    assert "strategies: 'oracle'" in output and "evaluation.isolation" in output
    assert "non-privileged user namespaces" in output  # why bubblewrap failed
    assert started_nothing(workdir)


def test_no_counter_for_zeus_stops_before_any_job(workdir: Path):
    counters = energy.available_counters()
    if counters.gpu_indices or counters.cpu_indices:
        pytest.skip(f"this machine has energy counters ({counters})")
    config = tiny()
    config["energy"]["backend"] = "zeus"
    run = snakemake(workdir, config, "-n")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "energy.backend: zeus" in output and "energy.backend: auto" in output
    assert started_nothing(workdir)


def test_cuda_without_a_gpu_stops_before_any_job(workdir: Path):
    if preflight.cuda_devices():
        pytest.skip("this machine has a CUDA device")
    config = tiny()
    config["generation"]["device"] = "cuda"
    run = snakemake(workdir, config, "-n")
    assert run.returncode != 0
    assert "generation.device: cuda, but torch sees 0 CUDA device(s)" in run.stdout + run.stderr
    assert started_nothing(workdir)


def test_hub_model_without_network_stops_before_any_job(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    # The hub's address is a local port nothing listens on: the connection is refused, as it
    # is on a machine without network, at once.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = tiny()
    config["models"] = {"hub-model": HUB_MODEL}
    run = snakemake(workdir, config, "-n")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "models.hub-model.source: downloaded from the Hugging Face hub" in output
    assert "127.0.0.1:9" in output
    assert started_nothing(workdir)
    # Jobs that run elsewhere check for themselves: the same config plans.
    elsewhere = snakemake(workdir, config, "-n", "--config", "preflight=in-jobs")
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]


@pytest.mark.slow
def test_scoring_without_a_sandbox_goes_on_and_the_report_says_so(workdir: Path, no_sandbox: Path):
    config = tiny()
    config["evaluation"]["isolation"] = "bwrap"
    run = snakemake(workdir, config)
    assert run.returncode == 0, run.stderr[-3000:]
    warning = "warning: evaluation.isolation: HumanEval completions of humaneval-0shot"
    assert warning in run.stdout + run.stderr
    scores = pl.read_parquet(
        workdir / "results/scores/tiny-random/humaneval-0shot/none/rep1.parquet"
    )
    assert scores["error_kind"].to_list() == ["not-run:no-isolation"] * 3
    assert scores["passed"].is_null().all()
    html = (workdir / "results/report/report.html").read_text()
    banner = html.index('id="not-run-banner"')
    assert banner < html.index('id="claims"')  # at the top, before the claims
    assert "not-run:no-isolation" in html[banner : html.index("</div>", banner)]


# The checks on what is still to run, with this machine's facts given.
RUN = ("tiny-random", "humaneval-0shot", "none")


def test_only_what_is_still_to_run_is_checked(no_sandbox: Path):
    config = tiny(strategies=["none", "oracle"])
    config["evaluation"]["isolation"] = "bwrap"
    config["energy"]["backend"] = "zeus"
    config["generation"]["device"] = "cuda"
    oracle = (*RUN[:2], "oracle")
    assert preflight.run(config, preflight.Pending()) == []  # a finished run: nothing to ask
    findings = preflight.check_sandbox(config, preflight.Pending(generations=frozenset({oracle})))
    assert [(f.key, f.fatal) for f in findings] == [("strategies", True)]
    only_scores = preflight.Pending(scores=frozenset({RUN}))
    findings = preflight.check_sandbox(config, only_scores)
    assert [(f.key, f.fatal) for f in findings] == [("evaluation.isolation", False)]
    generating = preflight.Pending(generations=frozenset({RUN}))
    none_found = energy.Counters(gpu_indices=(), cpu_indices=())
    assert preflight.check_counters(config, generating, lambda: none_found)[0].fatal
    one_gpu = energy.Counters(gpu_indices=(0,), cpu_indices=())
    assert preflight.check_counters(config, generating, lambda: one_gpu) == []
    config["energy"] |= {"backend": "auto", "gpus": [3]}  # named GPUs must exist, any backend
    [finding] = preflight.check_counters(config, generating, lambda: one_gpu)
    assert finding.key == "energy.gpus" and finding.fatal and "[3]" in finding.message
    del config["energy"]["gpus"]
    assert preflight.check_device(config, generating, devices=lambda: 1) == []
    config["generation"]["device"] = "cuda:1"
    [finding] = preflight.check_device(config, generating, devices=lambda: 1)
    assert finding.key == "generation.device" and "cuda:1" in finding.message


def test_a_run_that_may_not_run_code_at_all_names_that_key():
    config = tiny(strategies=["none", "oracle"])
    config["evaluation"]["run_untrusted_code"] = False
    pending = preflight.Pending(generations=frozenset({(*RUN[:2], "oracle")}))
    [finding] = preflight.check_sandbox(config, pending)
    assert "evaluation.run_untrusted_code is false" in finding.message


def test_hub_downloads_are_checked_only_while_missing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = tiny()
    config["models"]["hub-model"] = HUB_MODEL
    asked: list[str] = []

    def refused(url: str) -> str:
        asked.append(url)
        return "refused"

    prepared = preflight.Pending(models=frozenset({"tiny-random"}))
    assert preflight.check_network(config, prepared, probe=refused) == []
    assert asked == []  # nothing to download: the network is not even asked
    missing = preflight.Pending(models=frozenset({"hub-model"}))
    [finding] = preflight.check_network(config, missing, probe=refused)
    assert finding.key == "models.hub-model.source" and finding.fatal
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the user says the hub cache holds it
    assert preflight.check_network(config, missing, probe=refused) == []


def test_reachable_says_why_not():
    assert "127.0.0.1:9" in (preflight.reachable("http://127.0.0.1:9", timeout_s=2) or "")

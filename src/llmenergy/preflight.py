"""What a config asks of the machine, checked before any job starts.

A config can ask for what this machine cannot give: a sandbox for the `oracle` strategy, an
energy counter (`energy.backend: zeus`), a GPU (`generation.device: cuda`), the network for a
hub download. Found out inside a job, that ends a run late, after hours; found out here, it
ends it before the first job, with the config key and the fix (`snakemake -n` shows the same).

Only what is still to run is checked (`Pending`: runs without records, models not prepared,
datasets not fetched), so a finished run re-renders its report on any machine. Where a stage
can honestly go on without what it lacks (HumanEval scoring without a sandbox: null scores,
`not-run:no-isolation`), the finding is a warning, and the report says so at the top.

Where jobs run on other machines (a cluster: config `preflight: in-jobs`, set by
profiles/slurm), this machine cannot speak for them: each job checks what it needs itself.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llmenergy import datasets, evaluation, models, sandbox, stopping

HUB_ENDPOINT = "https://huggingface.co"
NETWORK_TIMEOUT_S = 5.0


class PreflightError(RuntimeError):
    """The config asks for what this machine cannot do; the message names the keys."""


@dataclass(frozen=True)
class Finding:
    """One thing the config asks that this machine lacks: `key` names the config key,
    `fatal` whether no job may start."""

    key: str
    message: str
    fatal: bool


@dataclass(frozen=True)
class Pending:
    """What is still to run: (model, workload, strategy) of runs without generation records
    and of runs without scores, models not prepared and datasets not fetched."""

    generations: frozenset[tuple[str, str, str]] = frozenset()
    scores: frozenset[tuple[str, str, str]] = frozenset()
    models: frozenset[str] = frozenset()
    datasets: frozenset[str] = frozenset()


def _measured_models(config: dict[str, Any], runs: Iterable[tuple[str, str, str]]) -> set[str]:
    """The models of `runs` that really generate (not `replay` ones)."""
    specs = config["models"]
    return {model for model, _, _ in runs if models.source_kind(specs[model]).generates}


def check_sandbox(config: dict[str, Any], pending: Pending) -> list[Finding]:
    """A strategy that runs code (the oracle) needs a sandbox to decode at all; HumanEval
    scoring goes on without one."""
    running = sorted({s for _, _, s in pending.generations if stopping.runs_code(s)})
    decoding = sorted({w for _, w, s in pending.generations if s in running})
    # Scoring runs the completions of workloads with tests; it compares text elsewhere.
    scored = sorted({w for _, w, _ in pending.scores if datasets.format_of(config, w).has_tests})
    if not decoding and not scored:
        return []
    settings = config["evaluation"]
    if evaluation.isolation_for(settings, log=lambda _: None) is not None:
        return []
    if not settings["run_untrusted_code"]:
        why = "evaluation.run_untrusted_code is false"
    else:
        note = sandbox.detect(int(settings.get("sandbox_uid", sandbox.NOBODY))).note
        why = f"evaluation.isolation is 'bwrap' and no bubblewrap works here: {note}"
    if decoding:
        return [
            Finding(
                "strategies",
                f"strategies: {', '.join(map(repr, running))} (workload "
                f"{', '.join(decoding)}) runs each task's tests while decoding, and "
                f"model output may not run here ({why}). Fix one of: make bubblewrap work (it "
                "needs unprivileged user namespaces; see docs/design.md, the sandbox), set "
                "evaluation.isolation: any (model output then runs as a limited process that "
                f"can read your files), or remove {', '.join(map(repr, running))} from "
                "strategies (and from workloads.<name>.strategies).",
                fatal=True,
            )
        ]
    return [
        Finding(
            "evaluation.isolation",
            f"evaluation.isolation: HumanEval completions of {', '.join(scored)} will not be "
            f"run, so their scores are null (error_kind not-run:no-isolation) and the report "
            f"says so ({why}).",
            fatal=False,
        )
    ]


def check_counters(
    config: dict[str, Any],
    pending: Pending,
    counters: Callable[[], Any] | None = None,
) -> list[Finding]:
    """`energy.backend: zeus` needs a counter on the device the model runs on (its GPU, the
    GPUs energy.gpus names, or RAPL for a model on the CPU) wherever something is measured;
    GPUs named in energy.gpus must exist whatever the backend."""
    backend, named = config["energy"]["backend"], config["energy"].get("gpus")
    if backend == "estimate" or (backend == "auto" and named is None):
        return []
    if not _measured_models(config, pending.generations):
        return []
    from llmenergy import energy

    found = (counters or energy.available_counters)()
    device = config["generation"]["device"]
    try:
        if energy.accelerator_for(device, found, config["energy"].get("gpus")) is not None:
            return []
        problem = f"the model's device ({device}) has no energy counter here"
    except energy.EnergyUnavailableError as error:
        problem = str(error)
    key = "energy.gpus" if named is not None else "energy.backend"
    said = f"energy.gpus: {named}" if named is not None else "energy.backend: zeus"
    return [
        Finding(
            key,
            f"{said}: the meter reads the device the model runs on, and {problem}: NVML "
            f"GPUs {list(found.gpu_indices) or 'none'}, RAPL packages "
            f"{list(found.cpu_indices) or 'none'}. Fix: run where that device has a counter "
            "(NVML for generation.device cuda[:N] or the GPUs in energy.gpus, readable "
            "/sys/class/powercap for cpu), or set energy.backend: auto (or estimate) to accept "
            "the CPU-time estimate, which every record and the report label as an estimate.",
            fatal=True,
        )
    ]


def cuda_devices() -> int:
    """How many CUDA devices torch sees (0 on a CPU-only build)."""
    from llmenergy import gpus

    return gpus.torch_device_count()


def check_device(
    config: dict[str, Any], pending: Pending, devices: Callable[[], int] = cuda_devices
) -> list[Finding]:
    """`generation.device: cuda[:N]` needs that GPU wherever a model still generates."""
    device = str(config["generation"]["device"])
    if not device.startswith("cuda") or not _measured_models(config, pending.generations):
        return []
    index = int(device.partition(":")[2] or 0)
    found = devices()
    if index < found:
        return []
    return [
        Finding(
            "generation.device",
            f"generation.device: {device}, but torch sees {found} CUDA device(s) here. Fix: "
            "run on a machine with an NVIDIA GPU and its driver (in the image: "
            "--use-apptainer with --nv), or set generation.device: cpu.",
            fatal=True,
        )
    ]


def reachable(url: str, timeout_s: float = NETWORK_TIMEOUT_S) -> str | None:
    """None when a TCP connection to `url`'s host opens, else why not."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as error:
        return f"{parts.hostname}:{port}: {error}"


def hub_downloads(config: dict[str, Any], pending: Pending) -> list[str]:
    """The config keys of what must still come from the Hugging Face hub."""
    keys = []
    for name in sorted(pending.models):
        source = config["models"][name]["source"]
        tokenizer = source.get("tokenizer", {}).get("kind")
        if models.SOURCE_KINDS[source["kind"]].downloads:
            keys.append(f"models.{name}.source")
        elif tokenizer is not None and models.SOURCE_KINDS[tokenizer].downloads:
            keys.append(f"models.{name}.source.tokenizer")
    for name in sorted(pending.datasets):
        if config["datasets"][name]["source"]["kind"] == "hub":
            keys.append(f"datasets.{name}.source")
    return keys


def check_network(
    config: dict[str, Any],
    pending: Pending,
    probe: Callable[[str], str | None] = reachable,
) -> list[Finding]:
    """Hub models, tokenizers and datasets not yet downloaded need the hub to be reachable
    (unless HF_HUB_OFFLINE says the local hub cache holds them)."""
    keys = hub_downloads(config, pending)
    if not keys or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return []
    endpoint = os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT
    failure = probe(endpoint)
    if failure is None:
        return []
    return [
        Finding(
            keys[0],
            f"{', '.join(keys)}: downloaded from the Hugging Face hub, which cannot be reached "
            f"from here ({failure}). Fix: run where {endpoint} is reachable; or prepare on a "
            "connected machine (snakemake --until prepare_model fetch_dataset --config "
            "preflight=in-jobs) and carry resources/ here; or set HF_HUB_OFFLINE=1 if the "
            "hub cache here already holds them.",
            fatal=True,
        )
    ]


CHECKS = (check_sandbox, check_counters, check_device, check_network)


def run(config: dict[str, Any], pending: Pending) -> list[Finding]:
    """Every finding of every check, fatal or not."""
    return [finding for check in CHECKS for finding in check(config, pending)]


def enforce(config: dict[str, Any], pending: Pending, warn: Callable[[str], None] = print) -> None:
    """Warn of what a run will go on without; raise PreflightError naming every fatal one."""
    findings = run(config, pending)
    for finding in findings:
        if not finding.fatal:
            warn(f"warning: {finding.message}")
    fatal = [finding.message for finding in findings if finding.fatal]
    if fatal:
        raise PreflightError(
            "this machine cannot run what the config asks, so no job was started:\n- "
            + "\n- ".join(fatal)
            + "\n(Where jobs run on other machines, as on a cluster, set preflight: in-jobs.)"
        )

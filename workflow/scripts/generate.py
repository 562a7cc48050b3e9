"""Generate completions under energy measurement.

Inputs:  workload parquet (one prompt per task), prepared model folder; for the
amplification pair's job, two workloads, decoded interleaved.
Outputs: per workload, one record per task (records.GENERATION_SCHEMA, docs/design.md
"Records") and per-token timings.
The metered device's idle power is measured here, after the model is loaded and warmed up.
A job holding a `gpu_slot` first claims a GPU of its own and pins itself to it (gpu_slots).
"""

import polars as pl

from llmenergy import (
    energy,
    evaluation,
    generation,
    gpu_slots,
    gpus,
    logs,
    models,
    records,
    stopping,
)
from llmenergy import replay as llm_replay
from llmenergy.generation_settings import GenerationSettings


def listed(value) -> list:
    """A rule's input, output or param: one workload's (a value) or a pair's (a list)."""
    return [value] if isinstance(value, (str, int)) or value is None else list(value)


def sides(smk, keys: dict) -> list[generation.Side]:
    """Each workload of the job: its tasks, settings and record keys."""
    return [
        generation.Side(
            pl.read_parquet(path).to_dicts(),
            GenerationSettings.of(
                smk.params.model, max_new, budget, smk.params.ignore_eos, smk.params.energy
            ),
            keys | {"workload": name},
        )
        for name, path, max_new, budget in zip(
            listed(smk.params.workload),
            listed(smk.input.workload),
            listed(smk.params.max_new_tokens),
            listed(smk.params.prompt_budget),
            strict=True,
        )
    ]


def write(results: list, smk) -> None:
    outputs = zip(listed(smk.output.records), listed(smk.output.tokens), strict=True)
    for result, (records_path, tokens_path) in zip(results, outputs, strict=True):
        records.write_parquet_atomic(
            records.frame(result.tokens, records.TOKEN_SCHEMA), tokens_path
        )
        records.write_parquet_atomic(
            records.frame(result.records, records.GENERATION_SCHEMA), records_path
        )


def claim_gpu(log):
    """Claim and pin a free GPU of this box (before CUDA starts); the claim lasts as long as
    the process. Returns whether other jobs may run on the box's other GPUs meanwhile."""
    visible = gpus.visible()
    held = gpu_slots.claim(visible, gpu_slots.lock_dir(), log)
    gpu_slots.pin(held.gpu)
    log(f"claimed GPU {held.gpu.index} ({held.gpu.uuid}) of {len(visible)}; pinned to it")
    return len(visible) > 1


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        shares_host = claim_gpu(log) if getattr(smk.resources, "gpu_slot", 0) else False
        import torch  # after the pin: CUDA reads CUDA_VISIBLE_DEVICES once, when it starts

        torch.set_num_threads(smk.threads)
        wildcards = smk.wildcards
        style = smk.params.model["prompt_style"]
        if smk.params.strategy_module:  # a config's own strategy registers itself
            stopping.load_modules([smk.params.strategy_module])
        replayed = not models.source_kind(smk.params.model).generates
        # Replayed outputs are checked in step with their tokens: the earliest passing line.
        strategy = stopping.for_run(
            smk.params.strategy,
            style,
            evaluation.checker(smk.params.sandbox, style, log),
            synchronous=replayed,
        )
        keys = {
            "model": wildcards.model,
            "model_revision": models.recorded_revision(smk.input.model),
            "strategy": smk.params.strategy,
            "rep": int(wildcards.rep),
        }
        jobs = sides(smk, keys)
        if replayed:  # a `replay` model: the given completions (nothing is measured)
            completions = smk.params.model["source"]["completions"]
            tokenizer = llm_replay.load_tokenizer(smk.input.model)
            write(
                [
                    llm_replay.run(tokenizer, s.tasks, completions, strategy, s.settings, s.keys)
                    for s in jobs
                ],
                smk,
            )
            log(f"replayed {sum(len(s.tasks) for s in jobs)} completions")
            return
        for gpu in gpus.states():
            log(f"GPU {gpu}")
        loaded = models.load(smk.input.model, wildcards.model, smk.params.model, smk.params.device)
        # The meter reads the device the model's tensors are on (or energy.gpus).
        # Jobs on the box's other GPUs share its CPUs and DRAM: no job may take the host's
        # energy for its own.
        meter = energy.open_meter(
            smk.params.energy, str(loaded.device), log, read_host=not shares_host
        )
        threads = min(smk.threads, meter.model_threads or smk.threads)
        torch.set_num_threads(threads)
        log(
            f"model {wildcards.model} on {loaded.device} ({threads} of {smk.threads} threads); "
            f"metered: {meter.device} ({meter.source}), host: {meter.host_source or 'not read'}"
        )
        write(generation.run_interleaved(loaded, jobs, meter, strategy, log), smk)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

"""Generate completions under energy measurement.

Inputs:  workload parquet (one prompt per task), prepared model folder.
Outputs: one record per task (records.GENERATION_SCHEMA, docs/design.md "Records"), per-token
timings.
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
    scoring,
    stopping,
)
from llmenergy import replay as llm_replay


def stopper_factory(strategy: str, prompt_style: str, sandbox_config, log, synchronous=False):
    """The function that makes each task's stopper for `strategy` (stopping's registry); a
    strategy that runs code gets the sandboxed check of each task's tests."""
    runs_code = stopping.get(strategy).runs_code
    isolation = limits = None
    if runs_code:
        isolation = evaluation.isolation_for(sandbox_config, log)
        if isolation is None:
            raise RuntimeError(
                f"strategy {strategy!r} runs the tasks' tests while decoding, but the evaluation"
                " config does not allow running model output here (evaluation.run_untrusted_code"
                " / evaluation.isolation)"
            )
        limits = evaluation.limits_from(sandbox_config)

    def stopper_for(task, prompt):
        check = (
            scoring.sandboxed_check(task, prompt_style, limits, isolation) if runs_code else None
        )
        return stopping.make(
            strategy, stopping.StopTask(task, prompt_style, prompt, check, synchronous)
        )

    return stopper_for


def replay(smk, keys: dict, stopper_for, log) -> None:
    """A `replay` model: the given completions instead of generation (nothing is measured)."""
    result = llm_replay.run(
        llm_replay.load_tokenizer(smk.input.model),
        pl.read_parquet(smk.input.workload).to_dicts(),
        smk.params.model["source"]["completions"],
        keys=keys,
        prompt_style=smk.params.model["prompt_style"],
        max_new_tokens=smk.params.max_new_tokens,
        prompt_budget=smk.params.prompt_budget,
        strategy=smk.wildcards.strategy,
        stopper_for=stopper_for,
    )
    write(result, smk)
    log(f"replayed {len(result.records)} completions")


def write(result, smk) -> None:
    records.write_parquet_atomic(
        records.frame(result.tokens, records.TOKEN_SCHEMA), smk.output.tokens
    )
    records.write_parquet_atomic(
        records.frame(result.records, records.GENERATION_SCHEMA), smk.output.records
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
        replayed = smk.params.model["source"]["kind"] == "replay"
        stopper_for = stopper_factory(
            wildcards.strategy, style, smk.params.sandbox, log, synchronous=replayed
        )
        keys = {
            "model": wildcards.model,
            "model_revision": models.recorded_revision(smk.input.model),
            "workload": wildcards.workload,
            "strategy": wildcards.strategy,
            "rep": int(wildcards.rep),
        }
        if replayed:
            replay(smk, keys, stopper_for, log)
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
        log(
            f"model {wildcards.model} on {loaded.device}; metered: {meter.device} "
            f"({meter.source}), host: {meter.host_source or 'not read'}"
        )
        result = generation.run(
            loaded,
            pl.read_parquet(smk.input.workload).to_dicts(),
            meter,
            keys=keys,
            prompt_style=style,
            max_new_tokens=smk.params.max_new_tokens,
            strategy=wildcards.strategy,
            stopper_for=stopper_for,
            check_watts_per_core=smk.params.energy["watts_per_core"],
            max_prefill_repeats=smk.params.energy["max_prefill_repeats"],
            max_task_repeats=smk.params.energy["max_task_repeats"],
            idle_seconds=float(smk.params.energy["idle_seconds"]),
            prompt_budget=smk.params.prompt_budget,
            ignore_eos=smk.params.ignore_eos,
            log=log,
        )
        write(result, smk)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

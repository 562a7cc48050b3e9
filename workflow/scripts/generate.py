"""Generate completions under energy measurement.

Inputs:  workload parquet (one prompt per task), prepared model folder, idle power.
Outputs: one record per task (see DESIGN.md), per-token timings.
"""

import polars as pl
import torch

from llmenergy import energy, generation, logs, models, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        torch.set_num_threads(smk.threads)
        wildcards = smk.wildcards
        # The meter first: a forced backend without counters fails before any generation.
        meter = energy.open_meter(smk.params.energy)
        for gpu in energy.gpu_state():
            log(f"GPU {gpu}")
        loaded = models.load(smk.input.model, wildcards.model, smk.params.model, smk.params.device)
        log(f"model {wildcards.model} on {smk.params.device}, energy source {meter.source}")
        tasks = pl.read_parquet(smk.input.workload).to_dicts()
        result = generation.run(
            loaded,
            tasks,
            meter,
            keys={
                "model": wildcards.model,
                "workload": wildcards.workload,
                "strategy": wildcards.strategy,
                "rep": int(wildcards.rep),
            },
            prompt_style=smk.params.model["prompt_style"],
            max_new_tokens=smk.params.max_new_tokens,
            strategy=wildcards.strategy,
            max_prefill_repeats=smk.params.energy["max_prefill_repeats"],
            log=log,
        )
        records.write_parquet_atomic(
            records.frame(result.tokens, records.TOKEN_SCHEMA), smk.output.tokens
        )
        records.write_parquet_atomic(
            records.frame(result.records, records.GENERATION_SCHEMA), smk.output.records
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

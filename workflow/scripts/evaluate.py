"""Score each completion: run HumanEval tests in the sandbox, or LongBench's code similarity.

Inputs:  generation records, the workload's tasks (tests or answers).
Outputs: one score row per task: passed or code_sim, error_kind, sandbox, check_s (all null
         for a random-weight model, whose output is noise).
"""

import polars as pl

from llmenergy import evaluation, logs, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        generations = pl.read_parquet(smk.input.records).to_dicts()
        tasks = {t["task_id"]: t for t in pl.read_parquet(smk.input.workload).to_dicts()}
        if not smk.params.scored:
            log(f"{smk.wildcards.model} has random weights: its output is noise, not scored")
            rows = evaluation.unscored(generations, evaluation.RANDOM_WEIGHTS)
        else:
            rows = evaluation.score(
                generations,
                tasks,
                smk.params.prompt_style,
                smk.params.evaluation,
                workers=smk.threads,
                log=log,
            )
        records.write_parquet_atomic(
            records.frame(rows, records.SCORE_SCHEMA_WITH_CODE_SIM), smk.output[0]
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

"""Score each completion by running the task's tests.

Inputs:  generation records, the workload's tasks (prompts and tests).
Outputs: one score row per task: passed, error_kind, sandbox, check_s.
"""

import polars as pl

from llmenergy import evaluation, logs, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        generations = pl.read_parquet(smk.input.records).to_dicts()
        tasks = {t["task_id"]: t for t in pl.read_parquet(smk.input.workload).to_dicts()}
        rows = evaluation.score_humaneval(
            generations, tasks, smk.params.prompt_style, smk.params.evaluation, log
        )
        records.write_parquet_atomic(records.frame(rows, records.SCORE_SCHEMA), smk.output[0])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

"""Measure babbling in the unsuppressed outputs of one model on one workload.

Inputs:  generation records of strategy `none`, the workload's tasks, the model's tokenizer.
Outputs: one row per output: answer end by syntax and by tests (tokens), babble tokens, ratio.
"""

import polars as pl

from llmenergy import babble, evaluation, logs, records, replay


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        generations = pl.read_parquet(smk.input.records).to_dicts()
        tasks = {t["task_id"]: t for t in pl.read_parquet(smk.input.workload).to_dicts()}
        tokenizer = replay.load_tokenizer(smk.input.model)
        style = smk.params.prompt_style
        settings = smk.params.evaluation if smk.params.by_tests else None
        check_for = evaluation.checker(settings, style, log)
        rows = babble.metrics(generations, tasks, style, tokenizer, check_for, smk.threads)
        records.write_parquet_atomic(records.frame(rows, records.BABBLE_SCHEMA), smk.output[0])
        complete = sum(row["answer_tokens_syntax"] is not None for row in rows)
        log(f"{len(rows)} outputs, {complete} complete by the syntax rule")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

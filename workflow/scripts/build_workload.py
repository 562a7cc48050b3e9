"""Build one workload's task table.

Inputs:  the verified dataset file.
Outputs: one row per task (workloads.WORKLOAD_SCHEMA): the task's text in each prompt style,
         the shots, and what scoring needs (tests for HumanEval, answers for LongBench).
"""

from llmenergy import datasets, logs, records, workloads


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        dataset = smk.params.dataset
        rows = datasets.load(smk.input.dataset, dataset)
        table = workloads.build(
            rows, smk.wildcards.workload, smk.params.workload, dataset["format"]
        )
        records.write_parquet_atomic(table, smk.output[0])
        log(
            f"workload {smk.wildcards.workload}: {table.height} tasks of "
            f"{sorted(set(table['benchmark']))}, prompts version {workloads.PROMPTS_VERSION}"
        )


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

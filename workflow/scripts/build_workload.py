"""Build one workload's task table.

Inputs:  the verified dataset file.
Outputs: one row per task: task_id, prompt, entry_point, test, reference.
"""

from llmenergy import datasets, logs, records, workloads


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        rows = datasets.load_humaneval(smk.input.dataset)
        table = workloads.build(rows, smk.wildcards.workload, smk.params.workload)
        records.write_parquet_atomic(table, smk.output[0])
        log(f"workload {smk.wildcards.workload}: {table.height} tasks")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

"""Aggregate every run into one summary table.

Inputs:  all generation records, their scores, idle power.
Outputs: summary.parquet (the report's source of truth) and the same as CSV.
"""

from llmenergy import aggregate, logs, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        summary = aggregate.aggregate(smk.input.generations, smk.input.scores, smk.input.idle)
        records.write_parquet_atomic(summary, smk.output.summary)
        with records.atomic_path(smk.output.csv) as tmp:
            summary.write_csv(tmp)
        log(f"summary: {summary.height} rows from {len(smk.input.generations)} runs")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

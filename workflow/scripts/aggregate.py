"""Aggregate every run: the summary, savings of each strategy, babbling.

Inputs:  all generation records, their scores, babble metrics, idle power, the claims.
Outputs: summary (+ CSV), savings, babble, amplification and claims tables: the report's
         sources.
"""

import polars as pl
import yaml

from llmenergy import aggregate, claims, logs, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        tasks = aggregate.per_task(
            aggregate.scan(smk.input.generations),
            aggregate.scan(smk.input.scores),
            pl.scan_parquet(smk.input.idle),
        )
        summary = aggregate.summary_with_intervals(tasks)
        records.write_parquet_atomic(summary, smk.output.summary)
        with records.atomic_path(smk.output.csv) as tmp:
            summary.write_csv(tmp)
        savings = aggregate.savings(tasks)
        records.write_parquet_atomic(savings, smk.output.savings)
        babbling = aggregate.babbling(aggregate.scan(smk.input.babble), smk.params.babble_threshold)
        records.write_parquet_atomic(babbling, smk.output.babble)
        amplification = aggregate.amplification(tasks)
        records.write_parquet_atomic(amplification, smk.output.amplification)
        tables = claims.Tables(
            summary,
            savings,
            babbling,
            amplification,
            smk.params.workload_kinds,
            smk.params.model_kinds,
        )
        with open(smk.input.claims, encoding="utf-8") as handle:
            spec = yaml.safe_load(handle)["claims"]
        verdicts = claims.evaluate(spec, tables, claims.energy_basis(summary))
        records.write_parquet_atomic(verdicts, smk.output.claims)
        log(f"summary: {summary.height} rows from {len(smk.input.generations)} runs")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

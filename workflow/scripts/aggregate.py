"""Aggregate every run: the summary, savings of each strategy, babbling, energy by shape.

Inputs:  all generation records and per-token rows, their scores, babble metrics, the claims, the
         prepared model folders (their config.json: each model's shape).
Outputs: summary (+ CSV), savings, babble, amplification, shapes, claims and measurement
         conditions tables: the
         report's sources.
"""

from llmenergy import aggregate, amplification, architectures, claims, logs, records


def model_shapes(smk, log) -> dict:
    """Each model's transformers config and bytes per cached value, from its folder; a model
    whose config transformers cannot read is left out of the shapes table, and logged."""
    shapes = {}
    for name, folder in zip(smk.params.shaped_models, smk.input.models, strict=True):
        try:
            shapes[name] = architectures.folder_shape(folder, smk.params.dtypes[name])
        except architectures.ArchitectureError as error:
            log(f"no shape for {name}: {error}")
    return shapes


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        # Tables kept from earlier runs are held to this version's columns, file by file.
        generations = aggregate.scan(smk.input.generations, records.GENERATION_SCHEMA)
        scores = aggregate.scan(smk.input.scores, records.SCORE_SCHEMA_WITH_CODE_SIM)
        tasks = aggregate.per_task(generations, scores)
        summary = aggregate.summary_with_intervals(tasks)
        records.write_parquet_atomic(summary, smk.output.summary)
        with records.atomic_path(smk.output.csv) as tmp:
            summary.write_csv(tmp)
        records.write_parquet_atomic(
            aggregate.measurement_conditions(generations),
            smk.output.conditions,
        )
        savings = aggregate.savings(tasks)
        records.write_parquet_atomic(savings, smk.output.savings)
        # Random-weight models have no babble metrics: with only those, the table is empty.
        metrics = (
            aggregate.scan(smk.input.babble, records.BABBLE_SCHEMA)
            if smk.input.babble
            else records.frame([], records.BABBLE_SCHEMA).lazy()
        )
        babbling = aggregate.babbling(
            metrics,
            generations,
            smk.params.babble["cap_share"],
            smk.params.babble["threshold"],
            smk.params.eos_ignored,
        )
        records.write_parquet_atomic(babbling, smk.output.babble)
        amplification_table = amplification.table(
            tasks.collect(),
            amplification.token_rows(smk.input.tokens, smk.params.runs),
            smk.params.analysis.get("amplification"),
            smk.params.analysis.get("same_positions", 16),
        )
        records.write_parquet_atomic(amplification_table, smk.output.amplification)
        shapes = model_shapes(smk, log)
        by_shape = architectures.energy_by_shape(generations.collect(), shapes, amplification_table)
        records.write_parquet_atomic(by_shape, smk.output.shapes)
        tables = claims.Tables(
            summary,
            savings,
            babbling,
            amplification_table,
            smk.params.workload_kinds,
            smk.params.model_kinds,
            smk.params.task_choice,
        )
        spec = claims.load(smk.input.claims)
        verdicts = claims.evaluate(
            spec,
            tables,
            claims.energy_basis(summary),
            claims.is_estimated(summary),
            smk.params.between_runs,
        )
        records.write_parquet_atomic(verdicts, smk.output.claims)
        log(f"summary: {summary.height} rows from {len(smk.input.generations)} runs")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

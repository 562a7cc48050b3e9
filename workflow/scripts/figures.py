"""Draw the figures from the aggregated tables and the records.

Inputs:  summary, savings, amplification and shapes tables; generation records; per-token
         timings of the unsuppressed runs.
Outputs: one PNG (for the report) and one SVG per figure.
"""

import polars as pl

from llmenergy import figures, logs


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        summary = pl.read_parquet(smk.input.summary)
        tasks = pl.concat([pl.read_parquet(path) for path in smk.input.generations])
        tokens = pl.concat(
            [
                pl.read_parquet(path).with_columns(
                    model=pl.lit(run["model"]),
                    workload=pl.lit(run["workload"]),
                    rep=pl.lit(run["rep"]),
                )
                for path, run in zip(smk.input.tokens, smk.params.token_runs, strict=True)
            ]
        )
        figures.energy_per_phase(summary, smk.output.energy_per_phase)
        figures.decode_cost_vs_prompt(
            tasks, pl.read_parquet(smk.input.amplification), smk.output.decode_cost_vs_prompt
        )
        figures.token_cost_by_position(tokens, smk.output.token_cost_by_position)
        figures.savings_by_strategy(
            pl.read_parquet(smk.input.savings), smk.output.savings_by_strategy
        )
        figures.energy_vs_accuracy(summary, smk.output.energy_vs_accuracy)
        figures.amplification_vs_kv_cache(
            pl.read_parquet(smk.input.shapes), smk.output.amplification_vs_kv_cache
        )
        log(f"drew {len(figures_drawn(smk))} figures")


def figures_drawn(smk) -> list[str]:
    return [path for path in smk.output if str(path).endswith(".png")]


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

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
        tables = {
            "summary": summary,
            "savings": pl.read_parquet(smk.input.savings),
            "amplification": pl.read_parquet(smk.input.amplification),
            "shapes": pl.read_parquet(smk.input.shapes),
            "tasks": tasks,
            "tokens": tokens,
        }
        figures.draw(tables, {name: getattr(smk.output, name) for name in figures.FIGURES})
        log(f"drew {len(figures_drawn(smk))} figures")


def figures_drawn(smk) -> list[str]:
    return [path for path in smk.output if str(path).endswith(".png")]


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

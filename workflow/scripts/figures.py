"""Draw the figures from the summary.

Inputs:  summary.parquet.
Outputs: energy_per_phase.png.
"""

import polars as pl

from llmenergy import figures, logs


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        summary = pl.read_parquet(smk.input.summary)
        figures.energy_per_phase(summary, smk.output.energy_per_phase)
        log(f"drew {smk.output.energy_per_phase}")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

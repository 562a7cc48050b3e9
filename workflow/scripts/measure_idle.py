"""Measure idle power with the configured meter.

Inputs:  none.
Outputs: one row: seconds, energy_j, power_w, energy_source.
"""

import polars as pl

from llmenergy import energy, logs, records


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        meter = energy.open_meter(smk.params.energy)
        reading = energy.measure_idle(meter, float(smk.params.energy["idle_seconds"]))
        power = None if reading.energy_j is None else reading.energy_j / reading.seconds
        table = pl.DataFrame(
            {
                "seconds": [reading.seconds],
                "energy_j": [reading.energy_j],
                "power_w": [power],
                "energy_source": [reading.source],
            },
            schema={
                "seconds": pl.Float64,
                "energy_j": pl.Float64,
                "power_w": pl.Float64,
                "energy_source": pl.String,
            },
        )
        records.write_parquet_atomic(table, smk.output[0])
        log(f"idle: {reading.seconds:.1f} s, {power} W ({reading.source})")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

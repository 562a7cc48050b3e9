"""Fetch one dataset (or generate the LongBench stand-in) and verify its sha256.

Inputs:  none (the source is named by config `datasets.<name>.source`).
Outputs: the dataset's bytes (`raw`) and a manifest with its sha256 and origin.
"""

from llmenergy import datasets, logs


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        name = smk.wildcards.dataset
        datasets.fetch(name, smk.params.dataset, smk.output.raw, smk.output.manifest)
        log(f"dataset {name}: sha256 verified, written to {smk.output.raw}")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

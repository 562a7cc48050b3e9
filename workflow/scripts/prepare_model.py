"""Prepare one model as a local folder that loads offline.

Inputs:  none (the source is named by config `models.<name>.source`).
Outputs: a folder with config, safetensors weights, tokenizer and llmenergy-model.json.
"""

from llmenergy import logs, models


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        models.prepare(smk.wildcards.model, {"source": smk.params.source}, smk.output[0], log)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

"""Render the HTML report.

Inputs:  summary, savings, babble, claims, amplification, shapes and conditions tables, figures,
         prepared models, dataset manifests, template, what a GPU measured (data/reference/).
Outputs: report.html, one self-contained file.
"""

import json
from pathlib import Path

import polars as pl

from llmenergy import logs, models, provenance, records, reference, report


def main(smk) -> None:
    with logs.to_file(smk.log[0]) as log:
        summary = pl.read_parquet(smk.input.summary)
        facts = {
            "commit": provenance.git_commit(Path(smk.input.template).parent),
            "config_hash": provenance.config_hash(smk.params.config),
            "packages": provenance.package_versions(),
            "hardware": provenance.hardware(),
            "energy_sources": sorted(set(summary["energy_source"].to_list())),
            "watts_per_core": smk.params.config["energy"]["watts_per_core"],
            "idle": report.describe_idle(summary),
            "models": [
                json.loads((Path(folder) / models.PROVENANCE_FILE).read_text())
                for folder in smk.input.models
            ],
            "datasets": [json.loads(Path(m).read_text()) for m in smk.input.datasets],
        }
        facts["babble_threshold"] = smk.params.config["babble"]["threshold"]
        facts["babble_cap_share"] = smk.params.config["babble"]["cap_share"]
        facts["ignore_eos"] = smk.params.config["generation"]["ignore_eos"]
        facts["tasks"] = report.task_selection(smk.params.config["workloads"])
        html = report.render(
            smk.input.template,
            summary,
            {Path(png).stem: png for png in smk.input.figures},
            facts,
            savings=pl.read_parquet(smk.input.savings),
            babbling=pl.read_parquet(smk.input.babble),
            claims=pl.read_parquet(smk.input.claims),
            amplification=pl.read_parquet(smk.input.amplification),
            shapes=pl.read_parquet(smk.input.shapes),
            references=reference.load(Path(smk.params.reference)),
            conditions=pl.read_parquet(smk.input.conditions),
        )
        records.write_text_atomic(html, smk.output[0])
        log(f"report written to {smk.output[0]}")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821  (injected by Snakemake)

#!/usr/bin/env bash
# The main job: set up the environment if needed, run the whole workflow, say where the report is.
# Extra arguments go to Snakemake, e.g. ./run.sh --configfile config/paper.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/ensure-env.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores all "$@"
echo "Report: $PWD/results/report/report.html"

#!/usr/bin/env bash
# The main job: set up the environment if needed, run the whole workflow, then say in a few
# lines where the report is, each claim's verdict and how many tasks were generated and scored.
# Extra arguments go to Snakemake, e.g. ./run.sh --configfile config/paper.yaml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/ensure-env.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores all "$@"
workdir="."
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run | --dryrun | -n* | -[!-]*n*) exit 0 ;;  # nothing ran: no summary
        --directory | -d) workdir="$2"; shift ;;
        --directory=*) workdir="${1#*=}" ;;
    esac
    shift
done
echo
python -m llmenergy.run_summary "$workdir/results"

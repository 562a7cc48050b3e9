#!/usr/bin/env bash
# The tests: set up the environment (with test tools) if needed, lint, then run the suite.
# Extra arguments go to pytest, e.g. ./test.sh -k config
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/ensure-env.sh --dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check . && ruff format --check .
echo "== snakefmt"; snakefmt --check .
echo "== snakemake --lint"; snakemake --lint
echo "== pytest"; pytest "$@"

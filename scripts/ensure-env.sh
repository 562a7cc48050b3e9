#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in .venv.
#   scripts/ensure-env.sh          what the workflow needs
#   scripts/ensure-env.sh --dev    plus the test and lint tools
# It re-installs only when requirements*.txt or pyproject.toml changed since the last install.
# Set TORCH_INDEX_URL to install torch from a CPU-only index instead of the default one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${LLMENERGY_VENV:-.venv}"
files=(requirements.txt requirements-nodeps.txt pyproject.toml)
run_wanted="$(cat "${files[@]}" | sha256sum | cut -c1-16)"
if [[ "${1:-}" == "--dev" ]]; then
    files+=(requirements-dev.txt)
fi
wanted="$(cat "${files[@]}" | sha256sum | cut -c1-16)"
stamp="$venv/.llmenergy-env-${1:-run}"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    exit 0
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: $python is older than Python 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)
torch_pin="$(grep '^torch==' requirements.txt)"
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then
    "${pip[@]}" --index-url "$TORCH_INDEX_URL" "$torch_pin"
else
    "${pip[@]}" "$torch_pin"
fi
"${pip[@]}" -r requirements.txt
"${pip[@]}" --no-deps -r requirements-nodeps.txt
"${pip[@]}" --no-deps -e .
if [[ "${1:-}" == "--dev" ]]; then
    "${pip[@]}" -r requirements-dev.txt
fi
echo "$wanted" > "$stamp"
echo "$run_wanted" > "$venv/.llmenergy-env-run"  # what the workflow needs is installed too
echo "environment ready in $venv"

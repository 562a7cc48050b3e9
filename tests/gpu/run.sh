#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU tests, then the loop-vs-generate benchmark on it.
# Writes everything under ${OUT:-gpu-results}/. Budget: under 8 minutes on one H100.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${OUT:-gpu-results}"
mkdir -p "$out"
python=".venv/bin/python"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.limit \
    --format=csv | tee "$out/gpu.csv"
timeout 300 "$python" -m pytest tests/gpu -m gpu -q -rA 2>&1 | tee "$out/gpu-tests.txt"
timeout 240 "$python" benchmarks/loop_vs_generate.py --device cuda --tokens 128 \
    2>&1 | tee "$out/loop_vs_generate.txt"

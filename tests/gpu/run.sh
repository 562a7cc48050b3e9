#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU tests, then the loop-vs-generate and random-build
# benchmarks on it.
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
timeout 120 "$python" benchmarks/random_build.py --device cuda --dtype bfloat16 --layers 0 \
    --only qwen2.5-coder-7b-random codegemma-7b-random qwen2.5-coder-3b-random \
    2>&1 | tee "$out/random_build.txt"

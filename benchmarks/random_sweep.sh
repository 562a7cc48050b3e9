#!/usr/bin/env bash
# The study's ten architectures with random weights (config/paper-random.yaml) on one GPU:
# prefill energy, decode J/token and its amplification by long prompts, next to each shape's
# KV-cache bytes and FLOPs per token. benchmarks/random_sweep.py says what and why.
#
#   benchmarks/random_sweep.sh prepare   # here: a CPU, the package index reachable (~1 min);
#                                        # writes results/random-sweep-prep/ (about 52 MiB)
#   benchmarks/random_sweep.sh           # on the GPU machine, with that folder beside it
#                                        # (the device tool: carry results/random-sweep-prep)
#
# The second writes records.jsonl, sweep.json, summary.csv, amplification.png (+ .svg),
# sweep.log and gpu.csv under ${OUT:-results/random-sweep}/. Budget: under 8 minutes on one
# H100: a model that would end after DEADLINE_S (default 380 s) of the sweep is not started,
# and sweep.json names it. Environment: PYTHON (default python3: the GPU machine's, with a CUDA
# torch; this checkout's .venv holds a CPU torch), PREP, OUT, CONFIG, DEADLINE_S.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
prep="${PREP:-results/random-sweep-prep}"

if [[ "${1:-run}" == prepare ]]; then
    exec .venv/bin/python benchmarks/random_sweep.py prepare \
        --config "${CONFIG:-config/paper-random.yaml}" --prep "$prep"
fi

out="${OUT:-results/random-sweep}"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# What the machine's image lacks (polars, zeus, amdsmi) comes as wheels made by `prepare`.
if ! "$python" -c "import polars, zeus" 2> /dev/null; then
    site=/tmp/random-sweep-site
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$prep"/wheels/*.whl
    export PYTHONPATH="$site:$PYTHONPATH"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.limit \
    --format=csv | tee "$out/gpu.csv" || true

status=0
timeout 450 "$python" benchmarks/random_sweep.py run --prep "$prep" --out "$out" \
    --deadline-s "${DEADLINE_S:-380}" 2>&1 | tee "$out/sweep.log" || status=$?
# Records are written model by model: whatever was measured is analysed, even after a failure.
"$python" benchmarks/random_sweep.py analyze --prep "$prep" --out "$out" 2>&1 \
    | tee -a "$out/sweep.log" || status=$?
exit "$status"

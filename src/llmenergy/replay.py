"""Replay: given completions (JSON lines of `task_id`, `completion`) instead of a model.

A `replay` model source names a completions file and a tokenizer. Its records go through the
same pipeline as generated ones (scoring, aggregation, report), so a reviewer can re-score
shipped raw outputs without a model, and tests can drive the workflow with known answers.

Nothing is measured: times and energy are null and `energy_source` is "replay". Token counts
come from the tokenizer: the prompt as the model's prompt style renders it, and the completion
plus the EOS token that would have ended it; a completion longer than the workload's cap is
cut to the cap and ends with `max_tokens`, as generation would have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmenergy import records, stopping, workloads
from llmenergy.detokenizer import IncrementalDetokenizer
from llmenergy.generation_settings import GenerationSettings

ENERGY_SOURCE = "replay"


class ReplayError(ValueError):
    """The completions file does not fit the workload."""


@dataclass
class ReplayResult:
    """Records in `records.GENERATION_SCHEMA`, token rows in `records.TOKEN_SCHEMA`."""

    records: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)


def read_completions(path: str | Path) -> dict[str, str]:
    """`task_id` -> completion from a JSON-lines file; a task given twice is an error."""
    completions: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                task_id, completion = row["task_id"], row["completion"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ReplayError(
                    f"{path}:{number}: expected a JSON object with task_id and completion"
                ) from error
            if not isinstance(completion, str):
                raise ReplayError(f"{path}:{number}: completion of {task_id!r} is not text")
            if task_id in completions:
                raise ReplayError(f"{path}:{number}: task {task_id!r} appears twice")
            completions[task_id] = completion
    return completions


def load_tokenizer(folder: str | Path) -> Any:
    """The tokenizer a `replay` model folder holds (prepare_model saved only that)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def run(
    tokenizer: Any,
    tasks: Iterable[dict[str, Any]],
    completions_path: str | Path,
    strategy: stopping.RunStrategy,
    settings: GenerationSettings,
    keys: dict[str, Any],
) -> ReplayResult:
    """One record per task (with `keys`), from the given completion of each task of the
    workload. Under a stopping strategy, each completion is fed to its stopper token by
    token, as generation would, and cut where the stopper finds the answer complete; build the
    strategy `synchronous` (stopping.for_run) so that the cut is the earliest passing line."""
    max_new_tokens = settings.max_new_tokens
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    tasks = list(tasks)
    completions = read_completions(completions_path)
    missing = [task["task_id"] for task in tasks if task["task_id"] not in completions]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ReplayError(
            f"{completions_path} has no completion for {len(missing)} task(s): {shown}"
        )
    result = ReplayResult()
    blank = dict.fromkeys(records.GENERATION_SCHEMA)  # every column, null unless set below
    for task in tasks:
        completion = completions[task["task_id"]]
        ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
        if len(ids) + 1 <= max_new_tokens:  # the text, then the EOS token that ended it
            output_tokens, stop_reason = len(ids) + 1, "eos"
        else:
            output_tokens, stop_reason = max_new_tokens, "max_tokens"
            completion = tokenizer.decode(ids[:max_new_tokens], skip_special_tokens=True)
        prompt, prompt_ids = workloads.prompt_and_ids(
            tokenizer, task, settings.prompt_style, settings.prompt_budget
        )
        stopper = strategy.for_task(task, prompt)
        if stopper is not None:
            kept, used, checks = replay_through(tokenizer, ids[:output_tokens], stopper)
            if kept is not None:
                completion, output_tokens, stop_reason = kept, used, strategy.name
        result.records.append(
            {
                **blank,
                **keys,
                "task_id": task["task_id"],
                "prompt_tokens": len(prompt_ids),
                "output_tokens": output_tokens,
                "stop_reason": stop_reason,
                "completion": completion,
                "energy_source": ENERGY_SOURCE,
                "metered_device": ENERGY_SOURCE,
                "energy_measured": False,
                "energy_covers_cpu": False,
                **(checks if stopper is not None else {}),
            }
        )
        result.tokens.extend(
            {"task_id": task["task_id"], "position": position, "t_s": None, "energy_j": None}
            for position in range(output_tokens)
        )
    return result


def replay_through(
    tokenizer: Any, token_ids: list[int], stopper: stopping.Stopper
) -> tuple[str | None, int, dict[str, Any]]:
    """Feed given output tokens to a stopper as decoding would: (the kept text, or None if it
    never stopped; the tokens consumed; its checks' time as a record column). A stopper that
    checks in the background is made synchronous for replay (StopTask.synchronous), so the
    cut is the earliest passing line."""
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces: list[str] = []
    kept, used = None, len(token_ids)
    for position, token in enumerate(token_ids, start=1):
        pieces.append(detokenizer.push(token))
        cut = stopper.feed(pieces[-1])
        if cut is not None:
            kept, used = "".join(pieces)[:cut], position
            break
    stats = stopper.finish()
    return kept, used, {} if stats is None else {"check_s": stats.seconds}

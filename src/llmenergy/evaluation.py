"""Scoring a run's completions: one score row per generation record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmenergy import sandbox, scoring

NOT_RUN = "not-run"


def limits_from(config: dict[str, Any]) -> sandbox.Limits:
    return sandbox.Limits(timeout_s=float(config["timeout_s"]), memory_mb=int(config["memory_mb"]))


def score_humaneval(
    generations: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    prompt_style: str,
    config: dict[str, Any],
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run each completion's tests; with `run_untrusted_code` off, record null scores."""
    limits = limits_from(config)
    rows = []
    for record in generations:
        keys = {k: record[k] for k in ("model", "workload", "strategy", "rep", "task_id")}
        task = tasks.get(record["task_id"])
        if task is None:
            raise KeyError(f"task {record['task_id']!r} of the records is not in the workload")
        if not config["run_untrusted_code"]:
            rows.append({**keys, "passed": None, "error_kind": NOT_RUN, "sandbox": "none"})
            rows[-1]["check_s"] = None
            continue
        outcome = scoring.check_humaneval(task, record["completion"], prompt_style, limits)
        rows.append(
            {
                **keys,
                "passed": outcome.ok,
                "error_kind": outcome.error_kind,
                "sandbox": outcome.sandbox,
                "check_s": outcome.seconds,
            }
        )
        log(f"{record['task_id']}: {'pass' if outcome.ok else outcome.error_kind}")
    return rows

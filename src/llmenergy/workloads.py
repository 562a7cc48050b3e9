"""Workloads: a dataset, a task selection and a prompt form, as one table of tasks.

The table holds the task's own prompt text; the per-model prompt style (raw completion or chat
template) is applied at generation time, because it depends on the model's tokenizer.
"""

from __future__ import annotations

from typing import Any

import polars as pl

WORKLOAD_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "prompt": pl.String(),
    "entry_point": pl.String(),
    "test": pl.String(),
    "reference": pl.String(),
}


class WorkloadError(ValueError):
    """A workload's config does not fit its dataset."""


def select_tasks(rows: list[dict[str, Any]], name: str, spec: dict[str, Any]) -> list[dict]:
    """The tasks a workload runs: listed ids in the given order, else the first `limit` rows."""
    if spec.get("task_ids"):
        by_id = {row["task_id"]: row for row in rows}
        unknown = [task for task in spec["task_ids"] if task not in by_id]
        if unknown:
            raise WorkloadError(f"workloads.{name}.task_ids: unknown task(s) {unknown}")
        return [by_id[task] for task in spec["task_ids"]]
    limit = spec.get("limit")
    if limit is not None and limit > len(rows):
        raise WorkloadError(f"workloads.{name}.limit is {limit}, but the dataset has {len(rows)}")
    return rows[:limit] if limit is not None else rows


def humaneval_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per HumanEval task: the 0-shot prompt is the task's own prompt."""
    return pl.DataFrame(
        [
            {
                "task_id": row["task_id"],
                "prompt": row["prompt"],
                "entry_point": row["entry_point"],
                "test": row["test"],
                "reference": row["canonical_solution"],
            }
            for row in rows
        ],
        schema=WORKLOAD_SCHEMA,
        orient="row",
    )


def build(rows: list[dict[str, Any]], name: str, spec: dict[str, Any]) -> pl.DataFrame:
    """The task table of workload `name`."""
    chosen = select_tasks(rows, name, spec)
    if not chosen:
        raise WorkloadError(f"workloads.{name} selects no task")
    return humaneval_table(chosen)

"""Reading and writing the workflow's tables, atomically.

Every output is written to a temporary name in its destination folder and renamed into place,
so a killed job never leaves a half-written file that Snakemake would take as complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

# The strategy that stops nothing; every other one is paired with it.
BASELINE = "none"

# Column order and types of one generation record (docs/design.md, "Records").
GENERATION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "model_revision": pl.String(),  # what prepare_model resolved: commit, wheel or seed
    "workload": pl.String(),
    "strategy": pl.String(),
    "rep": pl.Int64(),
    "task_id": pl.String(),
    "prompt_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "stop_reason": pl.String(),
    "completion": pl.String(),
    "prefill_s": pl.Float64(),
    "decode_s": pl.Float64(),
    # End to end, as a user waits: one prefill, decode, and the stopper's last check.
    "task_s": pl.Float64(),
    # When its kept measurement began (Unix seconds): the order and spacing of a job's tasks.
    "started_s": pl.Float64(),
    # The accelerator's energy (the device that runs the model, `metered_device`) only.
    "prefill_energy_j": pl.Float64(),
    "decode_energy_j": pl.Float64(),
    "energy_source": pl.String(),  # zeus:nvml, zeus:rapl, estimate:cpu-time, replay
    "metered_device": pl.String(),  # e.g. "gpu:1 NVIDIA H100 80GB HBM3", cpu-package, estimate
    "energy_measured": pl.Boolean(),  # read from a counter, not estimated
    "energy_covers_cpu": pl.Boolean(),  # the figure includes the CPU packages (and checks)
    "host_energy_source": pl.String(),  # how the host columns were read; null: not read
    "idle_power_w": pl.Float64(),  # the metered device idle, in this job after warm-up
    "idle_host_power_w": pl.Float64(),
    # The host beside the accelerator (RAPL package and DRAM; DRAM for a CPU-package meter).
    "prefill_host_energy_j": pl.Float64(),
    "decode_host_energy_j": pl.Float64(),
    "prefill_repeats": pl.Int64(),
    "task_repeats": pl.Int64(),  # whole-task passes when decode was found by subtraction
    "energy_flags": pl.String(),
    "check_s": pl.Float64(),
    "check_energy_j": pl.Float64(),
    "check_energy_source": pl.String(),
    # What else the machine did while the task's windows were open (conditions.Conditions).
    "other_cores": pl.Float64(),
    "cpu_mhz": pl.Float64(),
    "gpu_other_processes": pl.Int64(),
    "gpu_utilization_pct": pl.Float64(),
    "gpu_temperature_c": pl.Float64(),
    "gpu_sm_mhz": pl.Float64(),
    "power_limit_w": pl.Float64(),
    "remeasured": pl.Int64(),  # times the task was measured again for contention
    # The kept tokens decoded again without the strategy, right after it (same_tokens_control).
    "control_decode_s": pl.Float64(),
    "control_decode_energy_j": pl.Float64(),  # null where the tokens came out different
    "control_same_tokens": pl.Boolean(),
}


# Columns renamed since records were first written, old name to new: a record measured before
# a rename keeps its measurements, read under the new name (GPU records' limit was the only
# power limit then read).
RENAMED_COLUMNS = {"gpu_power_limit_w": "power_limit_w"}

# Columns added since records were first written: a record measured before reads them as null
# (its tasks' start times were not kept, so nothing is paired in time on it).
ADDED_COLUMNS = frozenset({"started_s"})


class RecordFormatError(ValueError):
    """A kept record whose columns are not the schema's, even after renames."""


def conform(
    table: pl.LazyFrame, path: str | os.PathLike[str], schema: Mapping[str, pl.DataType]
) -> pl.LazyFrame:
    """`table` (read from `path`) with `schema`'s columns in its order, older names renamed
    (RENAMED_COLUMNS) and columns added since null (ADDED_COLUMNS); a table that still lacks
    some, or holds others, is refused: its numbers were written by a workflow whose records
    meant something else."""
    found = table.collect_schema()
    renames = {old: new for old, new in RENAMED_COLUMNS.items() if old in found and new in schema}
    types = {renames.get(name, name): dtype for name, dtype in found.items()}
    added = [name for name in schema if name in ADDED_COLUMNS and name not in types]
    table = table.with_columns(pl.lit(None, schema[name]).alias(name) for name in added)
    types |= {name: schema[name] for name in added}
    missing = [name for name in schema if name not in types]
    unknown = [name for name in types if name not in schema]
    retyped = [name for name in schema if name in types and types[name] != schema[name]]
    if missing or unknown or retyped:
        raise RecordFormatError(
            f"{path}: its columns are not those this version writes (missing: "
            f"{missing or 'none'}; unknown: {unknown or 'none'}; of another type: "
            f"{retyped or 'none'}). It was kept from a run of another version: run its job "
            f"again (snakemake --cores all --forcerun {path}), or delete it"
        )
    return table.rename(renames).select(list(schema))


def decode_tokens() -> pl.Expr:
    """The tokens decode produced, from a record's `output_tokens`: every output token but the
    first, which prefill yields."""
    return pl.col("output_tokens") - 1


TOKEN_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "position": pl.Int64(),
    "t_s": pl.Float64(),
    "energy_j": pl.Float64(),
}

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "workload": pl.String(),
    "strategy": pl.String(),
    "rep": pl.Int64(),
    "task_id": pl.String(),
    "passed": pl.Boolean(),
    "passed_raw": pl.Boolean(),
    "error_kind": pl.String(),
    "sandbox": pl.String(),
    "check_s": pl.Float64(),
}


# Score rows as evaluate writes them: SCORE_SCHEMA and LongBench's code similarity (null for
# HumanEval tasks; `passed` is null for LongBench tasks).
SCORE_SCHEMA_WITH_CODE_SIM: dict[str, pl.DataType] = {**SCORE_SCHEMA, "code_sim": pl.Float64()}


# Babble metrics of one unsuppressed output (babble.metrics).
BABBLE_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "workload": pl.String(),
    "strategy": pl.String(),
    "rep": pl.Int64(),
    "task_id": pl.String(),
    **{
        f"{measure}_{rule}": dtype
        for rule in ("syntax", "tests")
        for measure, dtype in (
            ("answer_tokens", pl.Int64()),
            ("babble_tokens", pl.Int64()),
            ("babble_ratio", pl.Float64()),
        )
    },
}


@contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; rename it into place on success only."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, destination)
    finally:
        if tmp.exists():
            tmp.unlink()


def frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Build a frame with exactly `schema`'s columns, in order, from row dicts."""
    missing = [name for row in rows for name in schema if name not in row]
    if missing:
        raise ValueError(f"record is missing column(s): {sorted(set(missing))}")
    return pl.DataFrame(
        [{name: row[name] for name in schema} for row in rows], schema=schema, orient="row"
    )


def write_parquet_atomic(table: pl.DataFrame, destination: str | os.PathLike[str]) -> None:
    """Write a Parquet file so that it appears complete or not at all."""
    with atomic_path(destination) as tmp:
        table.write_parquet(tmp)


def write_text_atomic(text: str, destination: str | os.PathLike[str]) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(payload: Any, destination: str | os.PathLike[str]) -> None:
    write_text_atomic(json.dumps(payload, indent=2, sort_keys=True) + "\n", destination)

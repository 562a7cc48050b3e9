"""Print the sweep's generation records as one table (the GPU kit's sweep stage).

Usage: python records_table.py WORKDIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

COLUMNS = [
    "model",
    "workload",
    "task_id",
    "prompt_tokens",
    "output_tokens",
    "prefill_s",
    "prefill_energy_j",
    "decode_s",
    "decode_energy_j",
    "idle_power_w",
    "metered_device",
    "energy_flags",
]


def main(workdir: Path) -> None:
    # rep<N>.parquet only: rep<N>.tokens.parquet beside each holds per-token rows.
    files = sorted(
        path
        for path in workdir.glob("results/generations/*/*/*/rep*.parquet")
        if not path.name.endswith(".tokens.parquet")
    )
    rows = pl.concat([pl.read_parquet(path) for path in files], how="diagonal_relaxed")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=40):
        print(rows.select(c for c in COLUMNS if c in rows.columns))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

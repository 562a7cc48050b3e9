"""How long a Snakemake start (a dry run of this workflow) takes, side by side, on a machine
that has Slurm's client tools and on one that has none.

Snakemake's Slurm executor plugin asks `scontrol show config` for MinJobAge each time it is
imported, that is at every start. Where Slurm is installed and configured but no controller
answers, scontrol retries for about ten seconds. The tests put an `scontrol` that fails at once
first on PATH (tests/conftest.py); this compares, in one run, with the times printed per round:

    no-slurm    PATH without any Slurm tool (a laptop)
    stand-in    Slurm installed and configured, the tests' failing `scontrol` first on PATH
    unanswered  Slurm installed and configured, no controller, no stand-in (what the tests avoid)

"Configured" is a slurm.conf written here naming a controller on this host that does not run.
Needs Slurm's client tools (Debian's slurm-client) for the last two; prints the median of each
and its ratio to no-slurm. Nothing runs: every start is `snakemake -n`.

Usage: python benchmarks/snakemake_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLURM_TOOLS = ("scontrol", "sbatch", "squeue", "sacct", "scancel", "sinfo", "srun")


def path_without_slurm(folder: Path) -> str:
    """A PATH whose folders hold links to every program of PATH except Slurm's tools."""
    entries = []
    for index, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        mirror = folder / str(index)
        mirror.mkdir()
        source = Path(entry)
        programs = sorted(source.iterdir()) if source.is_dir() else []
        for program in programs:
            if program.name not in SLURM_TOOLS and not (mirror / program.name).exists():
                (mirror / program.name).symlink_to(program)
        entries.append(str(mirror))
    return os.pathsep.join(entries)


def unanswered_slurm_conf(path: Path) -> Path:
    """A slurm.conf naming a controller on this host at a port where nothing listens."""
    host = socket.gethostname().split(".")[0]
    path.write_text(
        f"ClusterName=none\nSlurmctldHost={host}\nSlurmctldPort=6899\n"
        f"NodeName={host} CPUs=1 State=UNKNOWN\nPartitionName=none Nodes={host} Default=YES\n"
    )
    return path


def failing_scontrol(folder: Path) -> Path:
    folder.mkdir()
    stand_in = folder / "scontrol"
    stand_in.write_text("#!/bin/sh\necho 'scontrol: no cluster here' >&2\nexit 1\n")
    stand_in.chmod(0o755)
    return folder


def start_seconds(env: dict[str, str]) -> float:
    snakemake = Path(sys.executable).with_name("snakemake")
    began = time.perf_counter()
    done = subprocess.run(
        [str(snakemake), "-n", "--quiet"], cwd=REPO, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        (folder / "path").mkdir()
        base = dict(os.environ)
        conditions = {"no-slurm": {**base, "PATH": path_without_slurm(folder / "path")}}
        if shutil.which("scontrol"):
            conf = str(unanswered_slurm_conf(folder / "slurm.conf"))
            stand_in = failing_scontrol(folder / "stand-in")
            conditions["stand-in"] = {
                **base,
                "SLURM_CONF": conf,
                "PATH": os.pathsep.join([str(stand_in), base["PATH"]]),
            }
            conditions["unanswered"] = {**base, "SLURM_CONF": conf}
        else:
            print("no scontrol on PATH: only the no-slurm start is timed")
        times: dict[str, list[float]] = {name: [] for name in conditions}
        start_seconds(conditions["no-slurm"])  # warm the file cache, not counted
        for round_ in range(1, args.rounds + 1):
            for name, env in conditions.items():
                times[name].append(start_seconds(env))
            shown = "  ".join(f"{name} {times[name][-1]:.2f} s" for name in conditions)
            print(f"round {round_}: {shown}", flush=True)
    reference = statistics.median(times["no-slurm"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:>10}: median {median:.2f} s, {median / reference:.2f}x no-slurm")


if __name__ == "__main__":
    main()

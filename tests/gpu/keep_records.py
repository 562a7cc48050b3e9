"""Keep what a GPU kit run measured as reference records: data/reference/<slug>/.

Usage: python tests/gpu/keep_records.py OUT_FOLDER SLUG [CAVEAT]

OUT_FOLDER is what `tests/gpu/kit.sh run` wrote ($OUT): its gate.json names the GPU, driver
and clocks, kit.log the versions and the command, sweep-records.tar.gz the sweep's records.
Writes, under a temporary name then renamed: gpu.json (the label), summary.csv and
amplification.csv (the sweep's aggregate tables), sweep.yaml (the config it ran), and the
kit's own logs (kit.log, and
gpu-tests.txt, stability.txt, loop-vs-generate.txt where they exist). Refuses a run whose gate
did not read energy (mode other than `energy`): only measured records are kept. CAVEAT, where
given, is what a reader must know before quoting the records; the report shows it first.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[2]
LOGS = ("kit.log", "gpu-tests.txt", "stability.txt", "loop-vs-generate.txt")
STAGE_FILES = {
    "stability": "stability.txt",
    "sweep": "sweep.log",
    "gpu-tests": "gpu-tests.txt",
    "loop-vs-generate": "loop-vs-generate.txt",
}


def label(gate: dict, kit_log: str, config: dict, stages: list[str]) -> dict:
    """gpu.json: where, when and how the records were measured."""
    gpu = gate["checks"]["gpu"]
    versions = re.search(r"kit: torch (\S+) transformers (\S+)", kit_log)
    max_clock = re.search(r"^NVIDIA[^,]*, [^,]+, \d+ MHz, (\d+) MHz", kit_log, re.MULTILINE)
    pair = config["analysis"]["amplification"]
    tasks = {spec["limit"] for spec in config["workloads"].values()}
    return {
        "gpu": gpu["name"],
        "driver": gpu["driver"],
        "date": gate["date"][:10],
        "measured_at": gate["date"],
        "sm_clock_mhz": gpu["sm_clock_mhz"],
        "max_sm_clock_mhz": int(max_clock.group(1)) if max_clock else None,
        "memory_clock_mhz": gpu["memory_clock_mhz"],
        "power_limit_w": gpu["power_limit_w"],
        "temperature_c": gpu["temperature_c"],
        "torch": versions.group(1) if versions else None,
        "transformers": versions.group(2) if versions else None,
        "command": " ".join(["tests/gpu/kit.sh run", *stages]),
        "config": (
            "tests/gpu/sweep_config.py (config/paper-random.yaml: "
            f"{', '.join(config['models'])}; {pair['short']} and {pair['long']}, "
            f"{'/'.join(str(t) for t in sorted(tasks))} tasks each)"
        ),
        "energy": "zeus:nvml" if config["energy"]["backend"] == "zeus" else "estimate",
    }


def keep(out: Path, dest: Path, caveat: str | None = None) -> None:
    gate = json.loads((out / "gate.json").read_text())
    if gate["mode"] != "energy":
        raise SystemExit(f"{out}/gate.json: mode {gate['mode']!r}: no measured energy to keep")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        with tarfile.open(out / "sweep-records.tar.gz") as records:
            records.extractall(work, filter="data")
        summary = work / "results" / "aggregate" / "summary.csv"
        if not summary.is_file():
            raise SystemExit(f"{out}/sweep-records.tar.gz: the sweep did not finish (no summary)")
        config = yaml.safe_load((work / "sweep.yaml").read_text())
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        kit_log = (out / "kit.log").read_text()
        # The stages that ran, in the kit's order, from the files they left.
        stages = [stage for stage, name in STAGE_FILES.items() if (out / name).is_file()]
        gpu = label(gate, kit_log, config, stages)
        if caveat:
            gpu["caveat"] = caveat
        (partial / "gpu.json").write_text(json.dumps(gpu, indent=1) + "\n")
        shutil.copy(summary, partial / "summary.csv")
        amplification = work / "results" / "aggregate" / "amplification.parquet"
        pl.read_parquet(amplification).write_csv(partial / "amplification.csv")
        shutil.copy(work / "sweep.yaml", partial / "sweep.yaml")
        for name in LOGS:
            if (out / name).is_file():
                shutil.copy(out / name, partial / name)
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)


if __name__ == "__main__":
    keep(Path(sys.argv[1]), REPO / "data" / "reference" / sys.argv[2], *sys.argv[3:4])

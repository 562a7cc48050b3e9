"""The default run twice in one command, once quiet and once with busy processes beside it:
does each claim keep its level, and do the runs agree within their intervals?

Runs the workflow (the default configuration, or --configfile) in two fresh working
directories, the second with --busy processes spinning beside it the whole time, then prints
for each claim both values with their intervals and levels, whether the levels agree,
whether the runs agree within their intervals (E_n <= 1, stats.normalized_error), and
whether each value lies inside the other's interval; then each run's wall time, its flagged
and re-measured tasks, and a no-op rerun's time in the first quiet directory. `--quiet-runs N`
runs N quiet runs before the busy one, to see whether quiet runs agree within their intervals
too (`--busy 0`: no busy run). Every pair of runs is compared, and each energy claim's sd
over them is printed as the config's `between_runs.sd` takes it; with three runs or more, that
calibration is tried on each run in turn, calibrated on the others only (held out).
`--again DIR` runs nothing new: it aggregates the runs kept in DIR again with the code of
today (the generations stay as measured) and compares them, to see what a change of the
statistics reads on the same records.
A benchmark, not a test: each quiet run takes a default run's time (about 14 min on 2 cores),
the busy one about 50 min.

Usage: python benchmarks/verdicts_twice.py [--busy 2] [--quiet-runs 1] [--keep DIR]
       [--configfile FILE]
       python benchmarks/verdicts_twice.py --again DIR [--configfile FILE]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from llmenergy import between_runs, stats

REPO = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


@contextmanager
def spinning(processes: int):
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def workflow(directory: Path, extra: list[str]) -> float:
    """Run the workflow in `directory`; its wall time in seconds."""
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--cores", "all", "--directory", str(directory), *extra]
    start = time.perf_counter()
    with (directory / "snakemake.out").open("w") as out:
        subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def claims_of(directory: Path) -> pl.DataFrame:
    return pl.read_parquet(directory / "results" / "aggregate" / "claims.parquet")


def savings_of(directory: Path) -> pl.DataFrame:
    return pl.read_parquet(directory / "results" / "aggregate" / "savings.parquet")


def flagged(directory: Path) -> tuple[int, int, int]:
    summary = pl.read_parquet(directory / "results" / "aggregate" / "summary.parquet")
    return (
        int(summary["flagged_tasks"].sum()),
        int(summary["remeasured_tasks"].sum()),
        int(summary["records"].sum()),
    )


# The savings table's figures compared beside the claims: each strategy's job against the
# baseline's job (energy saved, and per token where no same-tokens control ran), the oracle
# against its same-tokens control (per token), and the same prefills in the two jobs.
SAVINGS_FIGURES = (
    "energy_saved",
    "decode_j_per_token_change",
    "extra_j_per_token",
    "prefill_j_change",
)


@dataclass(frozen=True)
class Line:
    """One figure across runs: its label, each run's value and interval, each run's level
    (none for a figure that is not a claim)."""

    label: str
    intervals: list[stats.Interval]
    levels: list[str]


def shown(interval: stats.Interval) -> str:
    if interval.mean is None:
        return "-"
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.3g}"
    return f"{interval.mean:.3g} [{interval.low:.3g}, {interval.high:.3g}]"


def inside(value: float | None, other: stats.Interval) -> bool | None:
    if value is None or other.low is None or other.high is None:
        return None
    return other.low <= value <= other.high


def claim_lines(runs: list[pl.DataFrame]) -> list[Line]:
    """Each claim of the report across runs."""
    lines = []
    for index, first in enumerate(runs[0].iter_rows(named=True)):
        rows = [run.row(index, named=True) for run in runs]
        intervals = [stats.Interval(r["value"], r["value_lo"], r["value_hi"]) for r in rows]
        lines.append(Line(first["id"], intervals, [r["verdict"] for r in rows]))
    return lines


def percent(row: dict, figure: str) -> stats.Interval:
    """A savings figure (a fraction) and its interval, as percentages."""
    ends = (row[figure], row[f"{figure}_lo"], row[f"{figure}_hi"])
    return stats.Interval(*(None if end is None else 100 * end for end in ends))


def savings_lines(runs: list[pl.DataFrame]) -> list[Line]:
    """Each strategy's figures of the savings table across runs, as percentages."""
    keys = ("model", "workload", "strategy")
    tables = [{tuple(r[k] for k in keys): r for r in run.iter_rows(named=True)} for run in runs]
    lines = []
    for key in sorted(tables[0]):
        if any(key not in table for table in tables):
            continue
        for figure in SAVINGS_FIGURES:
            intervals = [percent(table[key], figure) for table in tables]
            if all(i.mean is None for i in intervals):
                continue
            lines.append(Line(f"{key[1]} {key[2]} {figure}", intervals, []))
    return lines


def judged_pairs(names: list[str], pairs: list[tuple[int, int]], held: list[bool | None]) -> str:
    """How many of the pairs that could be judged held ("k of n"), naming those that did not."""
    judged = [h for h in held if h is not None]
    failing = [
        f"{names[a]}~{names[b]}" for (a, b), h in zip(pairs, held, strict=True) if h is False
    ]
    return f"{sum(judged)} of {len(judged)}" + (f" (not: {', '.join(failing)})" if failing else "")


def compare(names: list[str], lines: list[Line]) -> None:
    """Each figure across runs: the values and levels, whether all levels agree, and for
    every pair of runs whether they agree within their intervals (normalized error E_n <= 1:
    stats.normalized_error) and whether each value lies inside the other's interval (which
    honest 95% intervals of two runs meet only about 83% of the time); the largest E_n."""
    pairs = list(itertools.combinations(range(len(names)), 2))
    print(
        "figure | " + " | ".join(names) + " | same level | pairs agreeing (E_n <= 1)"
        " | largest E_n | pairs inside each other"
    )
    for line in lines:
        levels = line.levels or [""] * len(names)
        cells = [f"{shown(i)} {lv}".rstrip() for i, lv in zip(line.intervals, levels, strict=True)]
        same = len(set(line.levels)) == 1 if line.levels else "-"
        at = line.intervals
        errors = [stats.normalized_error(at[a], at[b]) for a, b in pairs]
        agree = [None if e is None else e <= 1 for e in errors]
        mutual = [(inside(at[a].mean, at[b]), inside(at[b].mean, at[a])) for a, b in pairs]
        within = [None if None in m else all(m) for m in mutual]
        known = [e for e in errors if e is not None]
        largest = f"{max(known):.2f}" if known else "-"
        agreeing = judged_pairs(names, pairs, agree)
        inside_each = judged_pairs(names, pairs, within)
        print(
            f"{line.label} | " + " | ".join(cells) + f" | {same} | {agreeing} | {largest}"
            f" | {inside_each}"
        )


def energy_claims(runs: list[pl.DataFrame]) -> dict[str, list[stats.Interval]]:
    """Each energy claim's value and interval over tasks alone in each run."""
    ends = ("value", "over_tasks_lo", "over_tasks_hi")
    claims = {}
    for index, first in enumerate(runs[0].iter_rows(named=True)):
        if first["between_runs"] is None:
            continue  # not an energy claim, or not measurable here
        rows = [run.row(index, named=True) for run in runs]
        claims[first["id"]] = [stats.Interval(*(row[end] for end in ends)) for row in rows]
    return claims


def calibration_line(runs: list[pl.DataFrame]) -> str:
    """Each energy claim's sd over these runs (between_runs.calibrate): the figures of the
    config's between_runs.sd."""
    values = {claim: [i.mean for i in over] for claim, over in energy_claims(runs).items()}
    sd = between_runs.calibrate(values)
    figures = ", ".join(f"{claim}: {'-' if v is None else f'{v:.2g}'}" for claim, v in sd.items())
    return f"sd over {len(runs)} runs (config between_runs.sd): {{{figures}}}"


def held_out_lines(names: list[str], runs: list[pl.DataFrame]) -> list[str]:
    """The calibration tried on a run it did not see, each run in turn: its interval over
    tasks and every other run's, widened to the sd over the other runs; how many of those
    pairs agree by E_n, and the largest E_n with the run it was."""
    lines = []
    for claim, over in energy_claims(runs).items():
        errors = []
        for held, interval in enumerate(over):
            others = [o for index, o in enumerate(over) if index != held]
            sd = stats.between_run_sd([o.mean for o in others])
            if sd is None:
                continue
            own = stats.widened(interval, sd, len(others))
            errors += [
                (e, names[held])
                for o in others
                if (e := stats.normalized_error(own, stats.widened(o, sd, len(others)))) is not None
            ]
        if errors:
            worst, held_name = max(errors)
            agree = sum(e <= 1 for e, _ in errors)
            lines.append(
                f"{claim} held out: {agree} of {len(errors)} pairs agree (E_n <= 1);"
                f" largest E_n {worst:.2f}, {held_name} held out"
            )
    return lines


def compare_runs(root: Path, names: list[str]) -> None:
    """The claims, then the savings table's figures, of the runs kept under `root`; then
    each energy claim's sd over them."""
    claim_tables = [claims_of(root / name) for name in names]
    compare(names, claim_lines(claim_tables))
    print()
    compare(names, savings_lines([savings_of(root / name) for name in names]))
    print()
    print(calibration_line(claim_tables))
    if len(names) >= 3:
        print("\n".join(held_out_lines(names, claim_tables)))


def aggregate_again(directory: Path, extra: list[str]) -> None:
    """Aggregate a kept run again, leaving its generations as they were measured."""
    # mtime triggers only: a change of code would otherwise re-run every generation job.
    workflow(directory, [*extra, "--forcerun", "aggregate", "--rerun-triggers", "mtime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--quiet-runs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--configfile", help="a config in place of the default")
    parser.add_argument("--again", type=Path, help="aggregate the runs kept here again")
    args = parser.parse_args()
    # The Snakefile's config path is relative to the working directory: name it from here.
    extra = [
        "--configfile",
        str(Path(args.configfile or REPO / "config" / "config.yaml").resolve()),
    ]
    if args.again:
        names = sorted(d.name for d in args.again.iterdir() if (d / "results").is_dir())
        for name in names:
            aggregate_again(args.again / name, extra)
        compare_runs(args.again, names)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="verdicts-twice-"))
    plan = [(f"quiet-{i + 1}", 0) for i in range(args.quiet_runs)]
    if args.busy > 0:
        plan.append((f"busy-{args.busy}", args.busy))
    walls = {}
    for name, busy in plan:
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        with spinning(busy):
            walls[name] = workflow(directory, extra)
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    names = [name for name, _ in plan]
    print()
    compare_runs(root, names)
    print()
    for name in names:
        flags, again, tasks = flagged(root / name)
        print(f"{name}: {walls[name]:.0f} s; {flags} of {tasks} tasks flagged, {again} re-measured")
    rerun = workflow(root / names[0], extra)
    print(f"no-op rerun in {names[0]}: {rerun:.1f} s")
    print(f"ratio of wall times {names[-1]} / {names[0]}: {walls[names[-1]] / walls[names[0]]:.2f}")
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()

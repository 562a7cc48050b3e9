"""Choose the HumanEval tasks of the embedded default run: some the model solves, some it fails.

The default run (config/config.yaml) is cut to 12 HumanEval tasks to stay short. The first 12
are all failed by its small model, so the `oracle` strategy (which stops as soon as the output
passes its tests) never stops anything early. This script runs the real workflow over all 164
HumanEval tasks with the default's model and settings, unsuppressed (strategy `none`, one
repetition), and picks the 12 by a fixed rule (`choose_tasks`): first tasks the model passes
whose output goes on past where it passed its tests, then other passing tasks, up to half; then
failing tasks; each group in HumanEval order.

Inputs:  config/config.yaml (its models, datasets, generation, energy and evaluation sections,
         and the max_new_tokens of workload humaneval-0shot).
Outputs: results/task-selection/ (that run: its config.yaml, and its generations, scores and
         babble metrics under results/); the chosen task ids and counts, printed; with --write,
         config/config.yaml with `task_ids`, `selected_by` (this command) and a comment on the rule
         in place of the humaneval-0shot workload's `limit`, the rest of the file unchanged.

Run:     .venv/bin/python scripts/select_humaneval_tasks.py [--write]
         (the first time about 25 minutes on 2 idle CPU cores, 53 on 2 shared ones; Snakemake
         reuses finished outputs, so a rerun only reads them. Arguments after `--` go to
         Snakemake.)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKLOAD = "humaneval-0shot"
SCRIPT = "scripts/select_humaneval_tasks.py"
# The keys of a workload entry that choose its tasks or strategies: the selection run sets them.
SELECTION_KEYS = ("limit", "task_ids", "selected_by", "strategies")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def task_number(task_id: str) -> int:
    """HumanEval/17 -> 17: HumanEval's own order."""
    return int(task_id.rsplit("/", 1)[1])


def selection_config(base: dict[str, Any], workload: str = WORKLOAD) -> dict[str, Any]:
    """The config of the selection run: `base`'s first model, its dataset of `workload`, its
    generation, energy, evaluation (and babble, preflight) sections, and `workload` as in
    `base` but over all of its dataset's tasks, unsuppressed only, one repetition."""
    spec = base["workloads"][workload]
    model = next(iter(base["models"]))
    config: dict[str, Any] = {
        "models": {model: base["models"][model]},
        "datasets": {spec["dataset"]: base["datasets"][spec["dataset"]]},
        "workloads": {
            workload: {
                **{k: v for k, v in spec.items() if k not in SELECTION_KEYS},
                "strategies": ["none"],
            }
        },
        "strategies": ["none"],
        "repetitions": 1,
    }
    for section in ("generation", "energy", "evaluation", "babble", "preflight"):
        if section in base:
            config[section] = base[section]
    return config


def run_files(config: dict[str, Any], workload: str = WORKLOAD) -> dict[str, str]:
    """The selection run's files that this script reads (relative to its work directory)."""
    model = next(iter(config["models"]))
    run = f"{model}/{workload}/none/rep1"
    return {
        "generations": f"results/generations/{run}.parquet",
        "scores": f"results/scores/{run}.parquet",
        "babble": f"results/babble/{model}/{workload}/rep1.parquet",
    }


def snakemake_command(
    workdir: Path, config_path: Path, targets: list[str], cores: str, extra: list[str]
) -> list[str]:
    """The command line that makes `targets` with the real workflow in `workdir`."""
    snakemake = Path(sys.executable).with_name("snakemake")
    return [
        str(snakemake) if snakemake.exists() else "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path),
        "--cores",
        cores,
        *extra,
        *targets,
    ]


def follow(process: subprocess.Popen, folder: Path, every_s: float = 15.0) -> int:
    """Wait for `process`, echoing new lines of the job logs under `folder` meanwhile."""
    offsets: dict[Path, int] = {}
    while True:
        finished = process.poll() is not None
        for path in sorted(folder.glob("**/*.log")):
            with open(path, encoding="utf-8", errors="replace") as handle:
                handle.seek(offsets.get(path, 0))
                text = handle.read()
                offsets[path] = handle.tell()
            for line in text.splitlines():
                log(f"{path.relative_to(folder)}: {line}")
        if finished:
            return process.returncode
        time.sleep(every_s)


def task_table(
    generations: pl.DataFrame, scores: pl.DataFrame, babble: pl.DataFrame
) -> list[dict[str, Any]]:
    """One row per task, in HumanEval order: whether its output passed, its output tokens,
    generation time, and the tokens written after it passed its tests (babble_tokens_tests,
    null when no prefix passes)."""
    table = (
        generations.select(
            "task_id",
            "output_tokens",
            "stop_reason",
            (pl.col("prefill_s") + pl.col("decode_s")).alias("seconds"),
        )
        .join(scores.select("task_id", "passed", "error_kind"), on="task_id", how="left")
        .join(
            babble.select("task_id", "answer_tokens_tests", "babble_tokens_tests"),
            on="task_id",
            how="left",
        )
    )
    return sorted(table.to_dicts(), key=lambda row: task_number(row["task_id"]))


def oracle_can_stop(row: dict[str, Any], min_babble_tokens: int = 1) -> bool:
    """The output passes and goes on for at least `min_babble_tokens` tokens past the earliest
    line end where it passes its tests: the oracle could have stopped it there."""
    return bool(row["passed"]) and (row["babble_tokens_tests"] or 0) >= min_babble_tokens


def choose_tasks(
    rows: list[dict[str, Any]], total: int = 12, passing: int = 6, min_babble_tokens: int = 1
) -> list[str]:
    """The tasks of the default run, in HumanEval order.

    The rule: tasks whose output passes and that the oracle could stop early
    (`oracle_can_stop`), then other passing tasks, up to `passing` in all; then failing tasks
    up to `total` (passing ones again if too few fail). Each group is taken in HumanEval
    order; tasks not scored (`passed` null) are never chosen.
    """
    ordered = sorted(rows, key=lambda row: task_number(row["task_id"]))
    stoppable = [r["task_id"] for r in ordered if oracle_can_stop(r, min_babble_tokens)]
    passed = [r["task_id"] for r in ordered if r["passed"] and r["task_id"] not in stoppable]
    failed = [r["task_id"] for r in ordered if r["passed"] is False]
    chosen = (stoppable + passed)[:passing]
    chosen += failed[: total - len(chosen)]
    chosen += [t for t in stoppable + passed if t not in chosen][: total - len(chosen)]
    return sorted(chosen, key=task_number)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summary(rows: list[dict[str, Any]], chosen: list[str], min_babble_tokens: int = 1) -> str:
    """The chosen ids and the counts that describe them, beside all tasks and the first few."""
    by_id = {row["task_id"]: row for row in rows}
    first = [row["task_id"] for row in rows[: len(chosen)]]

    def describe(name: str, ids: list[str]) -> str:
        group = [by_id[t] for t in ids]
        return (
            f"{name}: {len(group)} tasks, {sum(bool(r['passed']) for r in group)} passing, "
            f"{sum(r['passed'] is False for r in group)} failing, "
            f"{sum(oracle_can_stop(r, min_babble_tokens) for r in group)} the oracle could stop"
            f" early; mean output tokens {mean([r['output_tokens'] for r in group]):.1f}, "
            f"mean generation s/task {mean([r['seconds'] for r in group]):.2f}"
        )

    lines = [f"chosen: {', '.join(chosen)}"]
    for task in chosen:
        row = by_id[task]
        lines.append(
            f"  {task}: passed={row['passed']}, output_tokens={row['output_tokens']} "
            f"({row['stop_reason']}), babble_tokens_tests={row['babble_tokens_tests']}, "
            f"{row['seconds']:.2f} s"
        )
    lines += [
        describe("chosen", chosen),
        describe(f"first {len(first)}", first),
        describe("all", list(by_id)),
    ]
    return "\n".join(lines)


def rule_comment(rows: list[dict[str, Any]], chosen: list[str]) -> list[str]:
    """The comment above the written `selected_by` and task_ids: the rule in two lines."""
    by_id = {row["task_id"]: row for row in rows}
    passing = sum(bool(by_id[t]["passed"]) for t in chosen)
    return [
        f"{passing} tasks it passes (first those the oracle can stop early), then "
        f"{len(chosen) - passing} it fails, in task order,",
        f"from a run of the default model over all {len(rows)} tasks.",
    ]


SELECTED_BY = f"python {SCRIPT} --write"


def flow_list(key: str, items: list[str], indent: str, width: int = 100) -> list[str]:
    """`key: [a, b, ...]` as YAML lines no wider than `width`, continued two spaces deeper."""
    lines, line = [], f"{indent}{key}: ["
    for i, item in enumerate(items):
        piece = item + ("]" if i == len(items) - 1 else ",")
        if len(line) + 1 + len(piece) > width and not line.endswith("["):
            lines.append(line + "\n")
            line = f"{indent}  {piece}"
        else:
            line += ("" if line.endswith("[") else " ") + piece
    return [*lines, line + "\n"]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def with_task_ids(text: str, workload: str, comment: list[str], ids: list[str]) -> str:
    """`text` (a config file) with one workload's `limit` (or the `task_ids` and comment an
    earlier --write put there) replaced by `comment` and `task_ids: ids`; every other line
    unchanged."""
    lines = text.splitlines(keepends=True)
    section = next(i for i, line in enumerate(lines) if re.match(r"workloads:\s*(#.*)?$", line))
    entry = next(
        i
        for i in range(section + 1, len(lines))
        if re.match(rf"\s+{re.escape(workload)}:\s*(#.*)?$", lines[i])
    )
    end = next(
        (
            i
            for i in range(entry + 1, len(lines))
            if lines[i].strip() and len(_indent(lines[i])) <= len(_indent(lines[entry]))
        ),
        len(lines),
    )
    body = [i for i in range(entry + 1, end) if lines[i].strip()]
    indent = _indent(lines[body[0]])
    drop: set[int] = set()
    for i in body:
        if not re.match(rf"{indent}(limit|task_ids|selected_by):", lines[i]):
            continue
        last = i  # a task_ids list may go on over more lines, to its closing bracket
        while "[" in lines[i] and "]" not in lines[last].split("#")[0] and last + 1 < end:
            last += 1
        drop.update(range(i, last + 1))
        if SCRIPT in lines[i]:  # `selected_by` of an earlier --write: its comment goes too
            above = i
            while above - 1 > entry and lines[above - 1].lstrip().startswith("#"):
                above -= 1
            drop.update(range(above, i))
    at = min(drop) if drop else body[0] + 1
    new = [
        *(f"{indent}# {line}\n" for line in comment),
        f'{indent}selected_by: "{SELECTED_BY}"\n',
        *flow_list("task_ids", ids, indent),
    ]
    return "".join(lines[:at] + new + [s for i, s in enumerate(lines) if i >= at and i not in drop])


def checked_rewrite(text: str, workload: str, comment: list[str], ids: list[str]) -> str:
    """with_task_ids, checked: the new file loads as the old one with only that workload's
    `limit`/`task_ids` changed."""
    new = with_task_ids(text, workload, comment, ids)
    old_config, new_config = yaml.safe_load(text), yaml.safe_load(new)
    expected = old_config["workloads"][workload]
    expected.pop("limit", None)
    expected["task_ids"] = ids
    expected["selected_by"] = SELECTED_BY
    if new_config != old_config:
        raise RuntimeError(f"rewriting {workload} changed more than its task_ids; not written")
    return new


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--workdir", type=Path, default=REPO / "results" / "task-selection")
    parser.add_argument("--cores", default="all")
    parser.add_argument("--total", type=int, default=12, help="tasks to choose")
    parser.add_argument("--passing", type=int, default=6, help="most passing tasks among them")
    parser.add_argument(
        "--min-babble-tokens",
        type=int,
        default=1,
        help="tokens past the passing point for the oracle to count as stopping it early",
    )
    parser.add_argument("--write", action="store_true", help="write the ids into --config")
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    return parser.parse_args(argv), extra


def main(argv: list[str]) -> None:
    args, extra = parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = selection_config(yaml.safe_load(args.config.read_text()))
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    files = run_files(config)
    command = snakemake_command(workdir, config_path, list(files.values()), args.cores, extra)
    log(f"running the workflow over every task of {WORKLOAD} in {workdir}")
    log(" ".join(command))
    started = time.monotonic()
    returncode = follow(subprocess.Popen(command, cwd=workdir), workdir / "logs")
    log(f"snakemake finished in {time.monotonic() - started:.0f} s (exit status {returncode})")
    if returncode != 0:
        sys.exit(returncode)

    tables = {name: pl.read_parquet(workdir / path) for name, path in files.items()}
    rows = task_table(tables["generations"], tables["scores"], tables["babble"])
    if all(row["passed"] is None for row in rows):
        kinds = sorted({str(row["error_kind"]) for row in rows})
        sys.exit(f"no task was scored (error kinds: {kinds}); nothing to choose from")
    chosen = choose_tasks(rows, args.total, args.passing, args.min_babble_tokens)
    print(summary(rows, chosen, args.min_babble_tokens))
    if args.write:
        text = args.config.read_text()
        new = checked_rewrite(text, WORKLOAD, rule_comment(rows, chosen), chosen)
        partial = args.config.with_name(args.config.name + ".partial")
        partial.write_text(new)
        partial.replace(args.config)  # never a half-written config
        log(f"wrote the task_ids of {WORKLOAD} into {args.config}")


if __name__ == "__main__":
    main(sys.argv[1:])

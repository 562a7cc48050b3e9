"""The few lines the main command ends with: where the report is, each claim's verdict, how
many tasks were generated and scored, and what energy the numbers rest on.

Reads `results/aggregate/summary.parquet` and `claims.parquet`; run as
`python -m llmenergy.run_summary [RESULTS]` from the folder the workflow ran in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from llmenergy import claims as claims_module
from llmenergy import report


def _over_runs(row: dict) -> str:
    """What an energy claim's interval covers: the sd over runs it was widened to, or this
    run's tasks alone (between_runs)."""
    if row.get("between_run_sd") is not None:
        return f" (over runs: sd {row['between_run_sd']:.2g})"
    return " (over this run's tasks only)" if row.get("between_runs") else ""


def _value(row: dict) -> str:
    if row["value"] is None:
        return "-"
    text = report.format_value("value", row["value"])
    if row["value_lo"] is not None and row["value_hi"] is not None:
        text += f" [{report.format_value('value', row['value_lo'])}, "
        text += f"{report.format_value('value', row['value_hi'])}]"
        text += _over_runs(row)
    text = f"{text} {row['unit']}".rstrip()
    if (row.get("values") or 0) > 1:
        text += (
            f"; {row['values']} values: {row['reproduce']} reproduce, {row['agree']} same "
            f"direction, {row['undecided']} undecided, {row['contradict']} contradict"
        )
    if row.get("energy"):
        text += f"; {row['energy']} energy, above idle: {row.get('above_idle') or 'not known'}"
    return text


def measurement_line(summary: pl.DataFrame) -> str:
    """How many tasks' measurements were flagged and how many measured again (README,
    "What the flags mean")."""
    flagged = int(summary["flagged_tasks"].sum())
    remeasured = int(summary["remeasured_tasks"].sum())
    return (
        f"Measurement: {flagged} of {int(summary['records'].sum())} tasks flagged "
        f"(contended or power out of bounds), {remeasured} measured again for contention"
    )


def lines(results: Path) -> list[str]:
    """The summary's lines for a finished run in `results`."""
    summary = pl.read_parquet(results / "aggregate" / "summary.parquet")
    claims = pl.read_parquet(results / "aggregate" / "claims.parquet")
    generated = int(summary["records"].sum())
    scored = int(summary["scored"].sum())
    not_run = int(summary["not_run"].sum()) if "not_run" in summary.columns else 0
    runs = summary.select("model", "workload", "strategy").unique().height
    out = [
        f"Report: {(results / 'report' / 'report.html').resolve()}",
        f"Tasks: {generated} generated in {runs} runs, {scored} scored"
        + (f", {not_run} not run (no sandbox here; see the report)" if not_run else ""),
        f"Energy: {claims_module.energy_basis(summary)}; metered: "
        + ("; ".join(report.metered_devices(summary)) or "nothing"),
        measurement_line(summary),
        "Claims:",
    ]
    width = max((len(v) for v in claims["verdict"].to_list()), default=0)
    for row in claims.iter_rows(named=True):
        out.append(f"  {row['verdict']:<{width}}  {row['claim']}: ours {_value(row)}")
        pad = " " * (width + 4)
        if row["detail"]:
            out.append(f"{pad}where: {row['detail']}")
        if row["why"]:
            out.append(f"{pad}why: {row['why']}")
    return out


def main(argv: list[str]) -> int:
    results = Path(argv[0] if argv else "results")
    if not (results / "aggregate" / "claims.parquet").is_file():
        print(f"no finished run in {results}/ (no aggregate/claims.parquet)", file=sys.stderr)
        return 1
    print("\n".join(lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

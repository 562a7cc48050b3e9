"""Reading the tables of the HTML report back, cell by cell, to check them against their Parquet.

The tables and columns the report must show are written out here, in the test, not read from
llmenergy.report's own lists: a column the report leaves out, or looks for under a name its
table does not have, fails the check instead of vanishing from both. A column written
`"name [lo, hi]"` is shown with its 95% interval, from the frame's `name_lo` and `name_hi`.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from pathlib import Path

import polars as pl

from llmenergy import report

TEMPLATE = Path(__file__).resolve().parents[2] / "reports" / "report.html.j2"

# A stand-in for provenance.collect, for tests that render the report.
PROVENANCE = {
    "commit": "0" * 40,
    "config_hash": "1" * 64,
    "packages": {"polars": pl.__version__},
    "hardware": {"cpu": "test"},
    "energy_sources": ["nvml:total_energy_consumption"],
    "watts_per_core": 10.0,
    "idle": "not measured",
    "models": [],
    "datasets": [],
    "babble_threshold": 0.2,
    "babble_cap_share": 0.5,
    "ignore_eos": False,
    "tasks": [{"workload": "he", "dataset": "humaneval", "how": "the first 3 tasks"}],
}

RUN = ["model", "workload", "strategy"]

# Aggregated table (its Parquet's name) -> the report's tables of it: id -> columns, in order.
EXPECTED: dict[str, dict[str, list[str]]] = {
    "summary": {
        "summary-energy-table": [
            *RUN,
            "prefill_energy_j_mean [lo, hi]",
            "decode_energy_j_mean [lo, hi]",
            "total_energy_j_mean [lo, hi]",
            "total_above_idle_j_mean",
            "prefill_share [lo, hi]",
            "j_per_output_token [lo, hi]",
            "decode_j_per_token [lo, hi]",
        ],
        "summary-time-table": [
            *RUN,
            "tasks",
            "reps",
            "prompt_tokens_mean",
            "output_tokens_mean",
            "seconds_mean [lo, hi]",
            "prefill_s_mean",
            "prefill_repeats_mean",
            "decode_s_mean",
            "task_s_mean",
        ],
        "summary-metering-table": [
            *RUN,
            "short_window_tasks",
            "subtracted_tasks",
            "decode_null_tasks",
            "idle_power_w",
            "decode_host_energy_j_mean",
        ],
        "summary-accuracy-table": [
            *RUN,
            "pass_at_1 [lo, hi]",
            "pass_at_1_raw [lo, hi]",
            "code_sim_mean [lo, hi]",
        ],
        "summary-provenance-table": [
            *RUN,
            "model_revision",
            "energy_source",
            "metered_device",
            "sandbox",
        ],
    },
    "savings": {
        "savings-table": [
            *RUN,
            "tasks",
            "energy_saved [lo, hi]",
            "tokens_saved [lo, hi]",
            "time_saved [lo, hi]",
            "prefill_j_change [lo, hi]",
            "base_energy_j_mean",
            "energy_j_mean",
        ],
        "savings-checks-table": [
            *RUN,
            "per_token_basis",
            "decode_j_per_token_change [lo, hi]",
            "extra_j_per_token [lo, hi]",
            "check_s_mean",
            "check_energy_j_mean",
            "check_share_of_decode",
        ],
        "savings-accuracy-table": [
            *RUN,
            "base_pass_at_1",
            "pass_at_1",
            "base_code_sim",
            "code_sim",
            "flip_pairs",
            "flips",
            "flipped_tasks",
            "unscored",
        ],
    },
    "claims": {
        "claims-table": [
            "claim",
            "study",
            "value [lo, hi]",
            "between_runs",
            "unit",
            "detail",
            "verdict",
            "why",
        ],
        "claims-models-table": [
            "id",
            "values",
            "reproduce",
            "agree",
            "undecided",
            "contradict",
            "range_low",
            "range_high",
            "per_model",
            "energy",
            "above_idle",
        ],
    },
    "babble": {
        "babble-table": [
            "model",
            "workload",
            "outputs",
            "at_cap",
            "at_cap_share",
            "babbles",
            "complete_syntax",
            "complete_tests",
            "babble_tokens_syntax_mean",
            "babble_ratio_syntax",
            "babble_ratio_tests",
            "babbles_syntax",
        ],
    },
    "amplification": {
        "amplification-table": [
            "model",
            "short_workload",
            "prompt_tokens_short",
            "decode_j_per_token_short",
            "long_workload",
            "prompt_tokens_long",
            "decode_j_per_token_long",
            "amplification_pct [lo, hi]",
        ],
        "amplification-detail-table": [
            "model",
            "paired_pct [lo, hi]",
            "paired_tasks",
            "same_positions",
            "same_positions_basis",
            "same_positions_pct [lo, hi]",
            "slope_j_per_prompt_token [lo, hi]",
            "points",
            "energy_source",
            "note",
        ],
    },
    "shapes": {
        "shapes-table": [
            "model",
            "attention",
            "parameters",
            "layers",
            "heads",
            "kv_heads",
            "head_dim",
            "kv_cache_bytes_per_token",
            "flops_per_token_weights",
            "flops_per_context_token",
        ],
        "shapes-energy-table": [
            "model",
            "workload_short",
            "prompt_tokens_short",
            "prefill_energy_j_short",
            "decode_j_per_token_short",
            "workload_long",
            "prompt_tokens_long",
            "prefill_energy_j_long",
            "decode_flops_per_token_long",
            "decode_j_per_token_long",
            "amplification_pct",
        ],
    },
    "conditions": {
        "conditions-table": [
            "model",
            "workload",
            "strategy",
            "rep",
            "tasks",
            "flagged_tasks",
            "contended_tasks",
            "remeasured_tasks",
            "below_idle_tasks",
            "above_limit_tasks",
            "other_cores_max",
            "gpu_other_processes_max",
        ],
        "conditions-device-table": [
            "model",
            "workload",
            "strategy",
            "rep",
            "metered_device",
            "cpu_mhz_min",
            "cpu_mhz_max",
            "gpu_temperature_c_min",
            "gpu_temperature_c_max",
            "gpu_sm_mhz_min",
            "gpu_sm_mhz_max",
            "power_limit_w",
        ],
    },
}
INTERVAL = " [lo, hi]"


def parse_column(spec: str) -> tuple[str, bool]:
    """`"name [lo, hi]"` -> ("name", True); `"name"` -> ("name", False)."""
    if spec.endswith(INTERVAL):
        return spec[: -len(INTERVAL)], True
    return spec, False


class TableCells(HTMLParser):
    """Collect one table of the report: its headings' text and its cells as dicts of their
    attributes and text."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.found = False
        self.headings: list[str] = []
        self.rows: list[list[dict[str, str]]] = []
        self._in_table = False
        self._heading: str | None = None
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table" and attributes.get("id") == self.table_id:
            self._in_table = self.found = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag == "th":
            self._heading = ""
        elif self._in_table and tag == "td":
            self._cell = {**attributes, "text": ""}
        elif self._in_table and tag == "span" and self._heading is not None:
            self._heading += " | "  # the unit, under the heading

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        elif self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "th" and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag == "td" and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self.rows[-1].append(self._cell)
            self._cell = None


def read_table(html: str, table_id: str) -> TableCells:
    parser = TableCells(table_id)
    parser.feed(html)
    return parser


def exact(value) -> str:
    """How the report writes an exact value in a data-* attribute."""
    return "" if value is None else str(value)


def assert_table_matches(html: str, table_id: str, frame: pl.DataFrame, columns: list[str]) -> None:
    """The report's table `table_id` shows exactly `columns` (as this test lists them, see
    EXPECTED), in order, one row per row of `frame`, and every cell shows, and holds, the
    Parquet value it comes from (with its interval where the column is listed with one)."""
    specs = [parse_column(column) for column in columns]
    needed = [name for name, _ in specs]
    needed += [f"{name}_{end}" for name, interval in specs if interval for end in ("lo", "hi")]
    missing = [name for name in needed if name not in frame.columns]
    assert not missing, f"{table_id}: the table has no column {missing}"
    parser = read_table(html, table_id)
    if frame.height == 0:
        assert not [row for row in parser.rows if row], f"{table_id}: rows of an empty table"
        return
    assert parser.found, f"the report has no table {table_id}"
    names = [name for name, _ in specs]
    assert len(parser.headings) == len(names), (table_id, parser.headings, names)
    rows = [row for row in parser.rows if row]
    assert len(rows) == frame.height, table_id
    for cells, expected in zip(rows, frame.iter_rows(named=True), strict=True):
        shown = [cell["data-column"] for cell in cells]
        absent = [name for name in names if name not in shown]
        assert not absent, f"{table_id}: the report does not show {absent}"
        assert shown == names, (table_id, shown)
        for cell, (column, interval) in zip(cells, specs, strict=True):
            truth = expected[column]
            low = expected[f"{column}_lo"] if interval else None
            high = expected[f"{column}_hi"] if interval else None
            assert cell["text"] == report.format_cell(column, truth, low, high), column
            assert cell["data-value"] == exact(truth), column
            if low is not None and high is not None:
                assert (cell["data-low"], cell["data-high"]) == (exact(low), exact(high)), column
            else:
                assert "data-low" not in cell and "data-high" not in cell, column


def assert_frame_shown(html: str, name: str, frame: pl.DataFrame) -> None:
    """Every table the report makes of the aggregated table `name` (summary, savings, claims,
    babble, amplification, shapes, conditions) matches `frame`, with every column EXPECTED lists."""
    for table_id, columns in EXPECTED[name].items():
        assert_table_matches(html, table_id, frame, columns)


COUNTS = {"tasks", "reps", "rep", "flips", "points", "same_positions", "outputs", "layers", "heads"}
COUNTS |= {"kv_heads", "head_dim", "paired_tasks"}


def _value(column: str, row: int):
    """A made-up value of `column` in row `row`: long strings and wide numbers, as a real run
    on large models could write them."""
    strings = {
        "model": ["qwen2.5-coder-7b-instruct-random", "codellama-7b-instruct", "deepseek-coder"][
            row % 3
        ],
        "workload": "longbench-code-completion-long",
        "short_workload": "humaneval-0shot",
        "long_workload": "longbench-code-completion-long",
        "workload_short": "humaneval-0shot",
        "workload_long": "longbench-code-completion-long",
        "strategy": ["none", "oracle-tests", "syntax"][row % 3],
        "model_revision": "0123456789abcdef0123456789abcdef01234567",
        "energy_source": "nvml:total_energy_consumption",
        "metered_device": "gpu:0 NVIDIA H200 141GB HBM3e,gpu:1 NVIDIA H200 141GB HBM3e",
        "sandbox": "bwrap-wheel+uid+rlimits",
        "flipped_tasks": " ".join(f"HumanEval/{i}" for i in range(row * 7, row * 7 + 14)),
        "same_positions_basis": "energy",
        "attention": "grouped-query",
        "note": "the long workload decodes fewer tokens than the short one on some tasks",
        "claim": "Suppressing babbling saves energy (44-89% for the babbling models), "
        "and more on the longer completions.",
        "study": "44-89% of energy saved [abstract], 52% at the median [transcribed]",
        "unit": "% change of decode J/token, analysis.amplification's short to long workload "
        "(smallest over models)",
        "detail": "qwen2.5-coder-7b-instruct-random on longbench-code-completion-long",
        "verdict": ["reproduces", "same direction (estimated)", "not measurable here"][row % 3],
        "why": "on estimated energy (estimate:cpu-time): not a measurement",
    }
    if column in strings:
        return strings[column]
    if column == "babbles":
        return row % 2 == 0
    if column in report.PERCENT_COLUMNS:
        return 0.123456 + row / 100
    if column in COUNTS:
        return 164 + row
    if column.endswith(("_tasks", "_syntax", "_tests")) and "ratio" not in column:
        return 12 + row
    if column in {"parameters", "flops_per_token_weights", "kv_cache_bytes_per_token"}:
        return 7_615_616_512 + row
    return -12345.6789 * (1 + row) if row % 2 else 0.000123456789 * math.pi


def example_frames(rows: int = 3) -> dict[str, pl.DataFrame]:
    """Frames with every column EXPECTED lists (and the bounds of those shown with intervals),
    filled with long, wide values, by aggregated table's name."""
    frames = {}
    for name, tables in EXPECTED.items():
        data: dict[str, list] = {}
        for columns in tables.values():
            for column, interval in map(parse_column, columns):
                data[column] = [_value(column, row) for row in range(rows)]
                if interval:
                    data[f"{column}_lo"] = [
                        None if v is None else v - abs(v) / 3 for v in data[column]
                    ]
                    data[f"{column}_hi"] = [
                        None if v is None else v + abs(v) / 3 for v in data[column]
                    ]
        frames[name] = pl.DataFrame(data)
    summary = frames["summary"]
    frames["summary"] = summary.with_columns(
        energy_measured=pl.lit(True),
        not_run=pl.lit(0),
        not_run_kinds=pl.lit(""),
    )
    return frames

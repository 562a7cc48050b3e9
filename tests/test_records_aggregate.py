"""Atomic record writing, record frames, and the aggregation into the summary table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from llmenergy import aggregate, records

# ---------------------------------------------------------------------------------------------
# records


def _table() -> pl.DataFrame:
    return pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})


def test_write_parquet_atomic_round_trip(tmp_path: Path) -> None:
    destination = tmp_path / "deep" / "er" / "t.parquet"
    records.write_parquet_atomic(_table(), destination)
    assert pl.read_parquet(destination).equals(_table())
    assert [p.name for p in destination.parent.iterdir()] == ["t.parquet"]


def _failing_write(self: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> None:
    Path(file).write_bytes(b"PAR1 half a file")
    raise OSError("disk full")


def test_write_parquet_atomic_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _failing_write)
    destination = tmp_path / "out" / "t.parquet"
    with pytest.raises(OSError, match="disk full"):
        records.write_parquet_atomic(_table(), destination)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []


def test_write_parquet_atomic_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "t.parquet"
    records.write_parquet_atomic(_table(), destination)
    before = destination.read_bytes()
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _failing_write)
    with pytest.raises(OSError):
        records.write_parquet_atomic(pl.DataFrame({"a": [9]}), destination)
    assert destination.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_write_json_and_text_atomic(tmp_path: Path) -> None:
    records.write_json_atomic({"b": 1, "a": [1, 2]}, tmp_path / "x" / "p.json")
    assert json.loads((tmp_path / "x" / "p.json").read_text()) == {"a": [1, 2], "b": 1}
    records.write_text_atomic("héllo\n", tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt", "x"]


def test_frame_orders_columns_and_drops_extras() -> None:
    schema = {"x": pl.Int64(), "y": pl.String()}
    table = records.frame([{"y": "a", "x": 1, "extra": True}, {"x": None, "y": "b"}], schema)
    assert table.columns == ["x", "y"]
    assert table.schema == pl.Schema(schema)
    assert table.to_dicts() == [{"x": 1, "y": "a"}, {"x": None, "y": "b"}]


def test_frame_names_a_missing_column() -> None:
    row = _generation("m", "w", "none", 0, "T/0", 10, 5, 0.1, 0.2, 1.0, 2.0, "estimate:cpu-time")
    del row["decode_energy_j"]
    with pytest.raises(ValueError, match="decode_energy_j"):
        records.frame([row], records.GENERATION_SCHEMA)


def test_frame_of_no_rows_has_the_schema() -> None:
    table = records.frame([], records.SCORE_SCHEMA)
    assert table.height == 0
    assert table.schema == pl.Schema(records.SCORE_SCHEMA)


# ---------------------------------------------------------------------------------------------
# aggregate


def _generation(
    model: str,
    workload: str,
    strategy: str,
    rep: int,
    task_id: str,
    prompt_tokens: int,
    output_tokens: int,
    prefill_s: float,
    decode_s: float,
    prefill_j: float | None,
    decode_j: float | None,
    source: str,
) -> dict[str, Any]:
    measured = not source.startswith("estimate")
    return dict.fromkeys(records.GENERATION_SCHEMA) | {
        "model": model,
        "model_revision": "r1",
        "workload": workload,
        "strategy": strategy,
        "rep": rep,
        "task_id": task_id,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "stop_reason": "eos",
        "completion": "    return 1\n",
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "prefill_energy_j": prefill_j,
        "decode_energy_j": decode_j,
        "energy_source": source,
        "metered_device": "gpu:0 test" if measured else "estimate",
        "energy_measured": measured,
        "energy_covers_cpu": False,
        "prefill_repeats": 1,
        "energy_flags": "",
        "check_s": None,
        "check_energy_j": None,
    }


def _score(gen: dict[str, Any], passed: bool | None, sandbox: str) -> dict[str, Any]:
    return {
        **{k: gen[k] for k in ("model", "workload", "strategy", "rep", "task_id")},
        "passed": passed,
        "passed_raw": passed,
        "error_kind": None if passed else "assertion",
        "sandbox": sandbox,
        "check_s": 0.05,
        "code_sim": None,
    }


EST = "estimate:cpu-time"

GENERATIONS = [
    # m1 / he / none / estimate: 3 tasks x 2 reps; two rows lack a total energy.
    _generation("m1", "he", "none", 0, "T/0", 100, 11, 0.5, 2.0, 3.0, 12.0, EST),
    _generation("m1", "he", "none", 0, "T/1", 80, 21, 0.4, 3.0, 2.0, 30.0, EST),
    _generation("m1", "he", "none", 0, "T/2", 120, 6, 0.6, 1.0, 4.5, 7.5, EST),
    _generation("m1", "he", "none", 1, "T/0", 100, 9, 0.55, 1.8, 3.5, 10.0, EST),
    _generation("m1", "he", "none", 1, "T/1", 80, 31, 0.45, 4.0, 2.5, None, EST),
    _generation("m1", "he", "none", 1, "T/2", 120, 4, 0.65, 0.7, None, None, EST),
    # m1 / he / brief / estimate: other strategy, all measured.
    _generation("m1", "he", "brief", 0, "T/0", 110, 5, 0.5, 0.5, 1.0, 4.0, EST),
    _generation("m1", "he", "brief", 0, "T/1", 90, 3, 0.4, 0.3, 1.5, 2.5, EST),
    # m2 / he / none / none: nothing measured at all.
    _generation("m2", "he", "none", 0, "T/0", 100, 7, 0.2, 0.9, None, None, "none"),
    _generation("m2", "he", "none", 0, "T/1", 80, 8, 0.3, 1.1, None, None, "none"),
]

PASSED = {
    ("m1", "none", 0, "T/0"): True,
    ("m1", "none", 0, "T/1"): False,
    ("m1", "none", 0, "T/2"): True,
    ("m1", "none", 1, "T/0"): True,
    ("m1", "none", 1, "T/1"): True,
    # ("m1", "none", 1, "T/2") has no score row: passed is null after the join.
    ("m1", "brief", 0, "T/0"): False,
    ("m1", "brief", 0, "T/1"): True,
    ("m2", "none", 0, "T/0"): None,  # scored as not run
    ("m2", "none", 0, "T/1"): False,
}


def _scores() -> list[dict[str, Any]]:
    rows = []
    for gen in GENERATIONS:
        key = (gen["model"], gen["strategy"], gen["rep"], gen["task_id"])
        if key in PASSED:
            sandbox = "none" if PASSED[key] is None else "process-rlimits"
            rows.append(_score(gen, PASSED[key], sandbox))
    return rows


def _expected(group: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary numbers of one group, computed by hand from its generation rows."""

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    measured = [
        g for g in group if g["prefill_energy_j"] is not None and g["decode_energy_j"] is not None
    ]
    passed = [
        PASSED[(g["model"], g["strategy"], g["rep"], g["task_id"])]
        for g in group
        if (g["model"], g["strategy"], g["rep"], g["task_id"]) in PASSED
    ]
    scored = [p for p in passed if p is not None]
    prefill_sum = sum(g["prefill_energy_j"] for g in measured)
    decode_sum = sum(g["decode_energy_j"] for g in measured)
    tokens_after_first = sum(g["output_tokens"] - 1 for g in measured)
    return {
        "tasks": len({g["task_id"] for g in group}),
        "reps": len({g["rep"] for g in group}),
        "records": len(group),
        "energy_tasks": len(measured),
        "prompt_tokens_mean": mean([g["prompt_tokens"] for g in group]),
        "output_tokens_mean": mean([g["output_tokens"] for g in group]),
        "output_tokens_total": sum(g["output_tokens"] for g in group),
        "prefill_s_mean": mean([g["prefill_s"] for g in group]),
        "decode_s_mean": mean([g["decode_s"] for g in group]),
        "prefill_energy_j_mean": mean([g["prefill_energy_j"] for g in measured]),
        "decode_energy_j_mean": mean([g["decode_energy_j"] for g in measured]),
        "total_energy_j_mean": mean(
            [g["prefill_energy_j"] + g["decode_energy_j"] for g in measured]
        ),
        "prefill_share": prefill_sum / (prefill_sum + decode_sum) if measured else None,
        "decode_j_per_token": decode_sum / tokens_after_first if measured else None,
        "pass_at_1": mean([float(p) for p in scored]),
        "scored": len(scored),
    }


@pytest.fixture
def summary() -> pl.DataFrame:
    generations = records.frame(GENERATIONS, records.GENERATION_SCHEMA)
    scores = records.frame(_scores(), records.SCORE_SCHEMA_WITH_CODE_SIM)
    return aggregate.summarize(aggregate.per_task(generations.lazy(), scores.lazy()))


def _row(summary: pl.DataFrame, model: str, strategy: str, source: str) -> dict[str, Any]:
    rows = summary.filter(
        (pl.col("model") == model)
        & (pl.col("workload") == "he")
        & (pl.col("strategy") == strategy)
        & (pl.col("energy_source") == source)
    ).to_dicts()
    assert len(rows) == 1
    return rows[0]


GROUPS = [("m1", "none", EST), ("m1", "brief", EST), ("m2", "none", "none")]


def test_summary_has_one_sorted_row_per_group(summary: pl.DataFrame) -> None:
    assert summary.height == len(GROUPS)
    keys = summary.select("model", "workload", "strategy", "energy_source").rows()
    assert keys == sorted(keys)
    assert sorted(keys) == sorted((m, "he", s, src) for m, s, src in GROUPS)


@pytest.mark.parametrize(("model", "strategy", "source"), GROUPS)
def test_summary_numbers_match_hand_computation(
    summary: pl.DataFrame, model: str, strategy: str, source: str
) -> None:
    group = [
        g
        for g in GENERATIONS
        if (g["model"], g["strategy"], g["energy_source"]) == (model, strategy, source)
    ]
    expected = _expected(group)
    row = _row(summary, model, strategy, source)
    for column, value in expected.items():
        if value is None:
            assert row[column] is None, column
        elif isinstance(value, float):
            assert row[column] is not None and not math.isnan(row[column]), column
            assert row[column] == pytest.approx(value, rel=1e-12), column
        else:
            assert row[column] == value, column


def test_null_energy_rows_are_left_out_of_energy_means(summary: pl.DataFrame) -> None:
    row = _row(summary, "m1", "none", EST)
    assert row["records"] == 6
    assert row["energy_tasks"] == 4  # the two rows without a total energy are not counted
    # Means over the four measured rows only (a row with prefill but no decode counts out).
    assert row["prefill_energy_j_mean"] == pytest.approx((3.0 + 2.0 + 4.5 + 3.5) / 4)
    assert row["decode_energy_j_mean"] == pytest.approx((12.0 + 30.0 + 7.5 + 10.0) / 4)
    assert row["total_energy_j_mean"] == pytest.approx((15.0 + 32.0 + 12.0 + 13.5) / 4)
    assert row["prefill_share"] == pytest.approx(13.0 / 72.5)
    assert row["decode_j_per_token"] == pytest.approx(59.5 / (10 + 20 + 5 + 8))
    # Time and token means still cover every record.
    assert row["prefill_s_mean"] == pytest.approx((0.5 + 0.4 + 0.6 + 0.55 + 0.45 + 0.65) / 6)
    assert row["output_tokens_total"] == 11 + 21 + 6 + 9 + 31 + 4
    # pass@1 over the five scored records; the unscored one is not a failure.
    assert row["scored"] == 5
    assert row["pass_at_1"] == pytest.approx(4 / 5)
    assert row["sandbox"] == "process-rlimits"


def test_group_without_any_energy_has_null_energy_columns(summary: pl.DataFrame) -> None:
    row = _row(summary, "m2", "none", "none")
    assert row["energy_tasks"] == 0
    for column in (
        "prefill_energy_j_mean",
        "decode_energy_j_mean",
        "total_energy_j_mean",
        "prefill_share",
        "decode_j_per_token",
    ):
        assert row[column] is None, f"{column} is {row[column]!r}, not null"
    assert row["records"] == 2
    assert row["scored"] == 1
    assert row["pass_at_1"] == pytest.approx(0.0)
    assert row["sandbox"] == "none,process-rlimits"


def test_aggregate_reads_parquet_files(tmp_path: Path, summary: pl.DataFrame) -> None:
    generations = records.frame(GENERATIONS, records.GENERATION_SCHEMA)
    scores = records.frame(_scores(), records.SCORE_SCHEMA_WITH_CODE_SIM)
    gen_paths, score_paths = [], []
    # One file per model, as the workflow writes one per run.
    for model in ("m1", "m2"):
        gen_path = tmp_path / f"gen-{model}.parquet"
        score_path = tmp_path / f"score-{model}.parquet"
        records.write_parquet_atomic(generations.filter(pl.col("model") == model), gen_path)
        records.write_parquet_atomic(scores.filter(pl.col("model") == model), score_path)
        gen_paths.append(gen_path)
        score_paths.append(score_path)
    assert aggregate.aggregate(gen_paths, score_paths).equals(summary)


def test_aggregate_without_inputs() -> None:
    with pytest.raises(ValueError, match="no input files"):
        aggregate.aggregate([], [])


def _kept_records(tmp_path: Path) -> tuple[pl.DataFrame, Path, Path]:
    """This version's records of m1 and m2 in two files, as two runs of the workflow kept
    them; the GPU's power limit planted at 700 W."""
    generations = records.frame(GENERATIONS, records.GENERATION_SCHEMA).with_columns(
        power_limit_w=pl.lit(700.0)
    )
    paths = tmp_path / "m1.parquet", tmp_path / "m2.parquet"
    for model, path in zip(("m1", "m2"), paths, strict=True):
        records.write_parquet_atomic(generations.filter(pl.col("model") == model), path)
    return generations, *paths


def test_records_kept_from_before_a_rename_read_under_the_new_name(tmp_path: Path) -> None:
    """A researcher adds a model after the record's `gpu_power_limit_w` became
    `power_limit_w`: the older file's limits read as they were measured."""
    generations, current, older = _kept_records(tmp_path)
    pl.read_parquet(older).rename({"power_limit_w": "gpu_power_limit_w"}).write_parquet(older)
    read = aggregate.scan([current, older], records.GENERATION_SCHEMA).collect()
    assert read.columns == list(records.GENERATION_SCHEMA)
    assert read.sort(["model", "task_id", "rep"]).equals(
        generations.sort(["model", "task_id", "rep"])
    )
    assert read["power_limit_w"].to_list() == [700.0] * len(generations)


def test_records_kept_from_before_start_times_read_them_as_null(tmp_path: Path) -> None:
    """A model's records written before `started_s` was kept read with no start times (their
    tasks cannot be paired in time); every measured column reads as it was written."""
    generations, current, older = _kept_records(tmp_path)
    generations = generations.with_columns(started_s=pl.lit(1.7e9))
    records.write_parquet_atomic(generations.filter(pl.col("model") == "m1"), current)
    generations.filter(pl.col("model") == "m2").drop("started_s").write_parquet(older)
    read = aggregate.scan([current, older], records.GENERATION_SCHEMA).collect()
    assert read.columns == list(records.GENERATION_SCHEMA)
    starts = dict(read.group_by("model").agg(pl.col("started_s").max()).iter_rows())
    assert starts == {"m1": 1.7e9, "m2": None}
    assert (
        read.drop("started_s")
        .sort(["model", "task_id", "rep"])
        .equals(generations.drop("started_s").sort(["model", "task_id", "rep"]))
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.drop("control_same_tokens"), "missing: ['control_same_tokens']"),
        (lambda t: t.with_columns(watts=pl.lit(1.0)), "unknown: ['watts']"),
        (lambda t: t.with_columns(pl.col("rep").cast(pl.Float64)), "of another type: ['rep']"),
    ],
)
def test_records_of_another_format_are_refused_naming_the_file(
    tmp_path: Path, change, named: str
) -> None:
    _, current, other = _kept_records(tmp_path)
    change(pl.read_parquet(other)).write_parquet(other)
    with pytest.raises(records.RecordFormatError) as refused:
        aggregate.scan([current, other], records.GENERATION_SCHEMA).collect()
    message = str(refused.value)
    assert message.startswith(f"{other}: ") and named in message
    assert f"--forcerun {other}" in message
    with pytest.raises(records.RecordFormatError, match=r"m2\.parquet"):
        aggregate.aggregate([current, other], [])


def test_decode_j_per_token_is_null_without_decoded_tokens() -> None:
    """Single-token outputs have no decode tokens: J/token is null, never inf or NaN."""
    rows = [
        _generation("m3", "he", "none", 0, f"T/{i}", 50, 1, 0.1, 0.0, 1.0, 0.5, EST)
        for i in range(2)
    ]
    generations = records.frame(rows, records.GENERATION_SCHEMA).lazy()
    scores = records.frame(
        [_score(g, True, "process-rlimits") for g in rows], records.SCORE_SCHEMA_WITH_CODE_SIM
    )
    row = aggregate.summarize(aggregate.per_task(generations, scores.lazy())).row(0, named=True)
    assert row["decode_j_per_token"] is None
    assert row["total_energy_j_mean"] == pytest.approx(1.5)


def test_token_rows_of_another_format_are_refused_naming_the_file(tmp_path: Path) -> None:
    from llmenergy import amplification

    path = tmp_path / "rep1.tokens.parquet"
    rows = [{"task_id": "T/0", "position": 1, "t_s": 0.02, "energy_j": 0.1}]
    records.frame(rows, records.TOKEN_SCHEMA).drop("energy_j").write_parquet(path)
    run = {"model": "m", "workload": "w", "strategy": "none", "rep": 1}
    with pytest.raises(records.RecordFormatError, match=r"missing: \['energy_j'\]"):
        amplification.token_rows([str(path)], [run])
    records.write_parquet_atomic(records.frame(rows, records.TOKEN_SCHEMA), path)
    assert amplification.token_rows([str(path)], [run])["energy_j"].to_list() == [0.1]

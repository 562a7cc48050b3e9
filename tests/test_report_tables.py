"""The report's tables against the frames they come from: every column the test lists is shown
(split tables repeat their keys), nothing listed is dropped quietly, intervals and units show."""

from __future__ import annotations

import polars as pl
import pytest
from helpers.report_tables import (
    EXPECTED,
    PROVENANCE,
    TEMPLATE,
    assert_frame_shown,
    assert_table_matches,
    example_frames,
    read_table,
)

from llmenergy import report


def render(frames: dict[str, pl.DataFrame]) -> str:
    return report.render(
        TEMPLATE,
        frames["summary"],
        {},
        PROVENANCE,
        savings=frames["savings"],
        babbling=frames["babble"],
        claims=frames["claims"],
        amplification=frames["amplification"],
        shapes=frames["shapes"],
        conditions=frames["conditions"],
    )


def test_every_listed_column_is_shown_with_its_value_and_interval():
    frames = example_frames()
    html = render(frames)
    for name, frame in frames.items():
        assert_frame_shown(html, name, frame)
    # The claims' interval is read from value_lo/value_hi, shown and kept exact.
    first = next(row for row in read_table(html, "claims-table").rows if row)[2]
    claims = frames["claims"].row(0, named=True)
    assert first["data-column"] == "value"
    assert first["data-low"] == str(claims["value_lo"])
    assert first["text"].startswith(report.format_value("value", claims["value"]) + " [")


def test_split_tables_repeat_the_keys_and_stay_narrow():
    for layout in report.LAYOUTS.values():
        for table in layout:
            assert len(table.columns) <= 12, table.id
    for table in report.SUMMARY_TABLES:
        assert [c.name for c in table.columns[:3]] == ["model", "workload", "strategy"]


def test_headings_carry_their_units():
    html = render(example_frames())
    for layout in report.LAYOUTS.values():
        for table in layout:
            expected = [f"{c.heading} | {c.unit}" if c.unit else c.heading for c in table.columns]
            assert read_table(html, table.id).headings == expected, table.id
    energy = read_table(html, "summary-energy-table").headings
    assert "Prefill energy | J/task" in energy and "Prefill share | %" in energy


def test_a_column_missing_from_its_table_is_an_error():
    frames = example_frames()
    frames["summary"] = frames["summary"].drop("idle_power_w")
    with pytest.raises(ValueError, match=r"summary-metering-table.*idle_power_w.*summary"):
        render(frames)


def test_claims_interval_under_other_names_is_an_error():
    frames = example_frames()
    frames["claims"] = frames["claims"].rename({"value_lo": "low", "value_hi": "high"})
    with pytest.raises(ValueError, match=r"claims-table.*value_lo"):
        render(frames)


def test_an_interval_the_table_has_but_the_report_would_not_show_is_an_error():
    frames = example_frames()
    frames["savings"] = frames["savings"].with_columns(
        pass_at_1_lo=pl.col("pass_at_1"), pass_at_1_hi=pl.col("pass_at_1")
    )
    with pytest.raises(ValueError, match=r"savings-accuracy-table.*pass_at_1"):
        render(frames)


def test_the_check_fails_on_a_column_the_report_does_not_show(monkeypatch):
    """The test's own list, not the report's, says what must be there."""
    frames = example_frames()
    energy = report.SUMMARY_TABLES[0]
    fewer = energy._replace(columns=[c for c in energy.columns if c.name != "prefill_share"])
    monkeypatch.setitem(report.LAYOUTS, "summary", [fewer, *report.SUMMARY_TABLES[1:]])
    html = render(frames)
    with pytest.raises(AssertionError, match="prefill_share"):
        assert_frame_shown(html, "summary", frames["summary"])


def test_the_check_fails_on_a_column_missing_from_the_frame():
    frames = example_frames()
    html = render(frames)
    columns = EXPECTED["claims"]["claims-table"]
    with pytest.raises(AssertionError, match="value_lo"):
        assert_table_matches(
            html, "claims-table", frames["claims"].drop("value_lo", "value_hi"), columns
        )
    with pytest.raises(AssertionError, match="no table"):
        assert_table_matches(html, "no-such-table", frames["claims"], columns)


def test_a_shown_interval_the_test_does_not_expect_fails():
    frames = example_frames()
    html = render(frames)
    columns = [c.removesuffix(" [lo, hi]") for c in EXPECTED["claims"]["claims-table"]]
    with pytest.raises(AssertionError):
        assert_table_matches(html, "claims-table", frames["claims"], columns)


def test_empty_optional_tables_are_left_out():
    frames = example_frames()
    frames["savings"] = frames["savings"].clear()
    html = render(frames)
    assert 'id="savings-table"' not in html
    assert_frame_shown(html, "savings", frames["savings"])


def test_percent_columns_are_those_the_layouts_mark():
    assert report.format_value("pass_at_1", 0.5) == "50.0"
    assert report.format_value("amplification_pct", 12.5) == "12.5"  # a percentage already
    assert {"prefill_share", "energy_saved", "babble_ratio_tests"} <= report.PERCENT_COLUMNS


def test_task_selection_says_how_tasks_were_chosen():
    rows = report.task_selection(
        {
            "b": {"dataset": "humaneval", "task_ids": ["HumanEval/2", "HumanEval/7"]},
            "a": {"dataset": "humaneval", "task_ids": ["HumanEval/2"], "selected_by": "x.py"},
            "c": {"dataset": "longbench", "limit": 5},
            "d": {"dataset": "longbench"},
        }
    )
    assert [row["how"] for row in rows] == [
        "1 listed tasks, chosen by x.py",
        "2 listed tasks",
        "the first 5 tasks",
        "every task",
    ]

"""What a GPU measured (data/reference/<slug>/) against planted records: read back in folder
order with its label, compared with this run's baseline value for value, refused with the
file's name when incomplete, and shown in the report's section "Measured on a GPU"."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from helpers.report_tables import (
    EXPECTED,
    PROVENANCE,
    assert_table_matches,
    example_frames,
    read_table,
)

from llmenergy import reference, report

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "reports" / "report.html.j2"
H200 = {
    "gpu": "NVIDIA H200",
    "driver": "580.159.04",
    "date": "2026-12-04",
    "sm_clock_mhz": 1980,
    "power_limit_w": 700,
    "torch": "2.11.0+cu130",
    "command": "tests/gpu/kit.sh run",
    "config": "tests/gpu/sweep_config.py (config/paper-random.yaml)",
    "energy": "zeus:nvml",
}
H100 = {"gpu": "NVIDIA H100 80GB HBM3", "driver": "570.86.15", "date": "2026-11-30"}
H200_LABEL = "NVIDIA H200, driver 580.159.04, 2026-12-04"
H100_LABEL = "NVIDIA H100 80GB HBM3, driver 570.86.15, 2026-11-30"


# The comparison table's columns, written out here (not read from llmenergy.report).
COMPARISON = [
    "where",
    "model",
    "workload",
    "prompt_tokens_mean",
    "output_tokens_mean",
    "prefill_energy_j_mean [lo, hi]",
    "decode_j_per_token [lo, hi]",
    "prefill_share [lo, hi]",
    "idle_power_w",
    "metered_device",
]


def summary_row(decode_j_per_token: float, **values) -> dict:
    """One summary row with every column the comparison reads; the rest of a real summary
    (tasks, pass@1, ...) is left out, as a reference reads none of it."""
    row = {
        "model": "codellama-7b-random",
        "workload": "humaneval-0shot",
        "strategy": "none",
        "energy_source": "zeus:nvml",
        "energy_measured": True,
        "metered_device": "gpu:0 NVIDIA H200",
        "tasks": 2,
        "prompt_tokens_mean": 151.5,
        "output_tokens_mean": 300.0,
        "prefill_energy_j_mean": 12.25,
        "decode_j_per_token": decode_j_per_token,
        "prefill_share": 0.0625,
        "idle_power_w": 75.5,
    }
    row.update(values)
    for name in ("prefill_energy_j_mean", "decode_j_per_token", "prefill_share"):
        row.setdefault(f"{name}_lo", row[name] * 0.75)
        row.setdefault(f"{name}_hi", row[name] * 1.25)
    return row


def amplification_frame() -> pl.DataFrame:
    """An amplification table of a reference, with every column the report shows."""
    frame = example_frames(rows=2)["amplification"]
    return frame.with_columns(
        model=pl.Series(["codellama-7b-random", "qwen2.5-coder-7b-random"]),
        amplification_pct=pl.Series([31.25, 4.5]),
        amplification_pct_lo=pl.Series([30.0, 4.0]),
        amplification_pct_hi=pl.Series([32.5, 5.0]),
    )


def plant(root: Path, name: str, gpu: dict, rows: list[dict] | None, amplification=None) -> Path:
    """One reference folder: gpu.json, summary.csv (None: none) and amplification.csv."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "gpu.json").write_text(json.dumps(gpu), encoding="utf-8")
    if rows is not None:
        pl.DataFrame(rows).write_csv(folder / "summary.csv")
    if amplification is not None:
        amplification.write_csv(folder / "amplification.csv")
    return folder


def plant_two(root: Path) -> Path:
    """Two GPUs, H200 (decode 2.5 and 3.75 J/token, and a suppressed run the comparison
    leaves out) and H100, in folders whose names sort the H100 last."""
    plant(
        root,
        "a-nvidia-h200",
        H200,
        [
            summary_row(2.5),
            summary_row(3.75, workload="longbench-standin-cu-long", prompt_tokens_mean=5120.0),
            summary_row(1.0, strategy="syntax"),
        ],
        amplification_frame(),
    )
    plant(root, "b-nvidia-h100", H100, [summary_row(1.875, metered_device="gpu:1 NVIDIA H100")])
    return root


def this_run() -> pl.DataFrame:
    """The current run's summary: an estimated baseline row, a measured one, a strategy's."""
    return pl.DataFrame(
        [
            summary_row(
                0.125,
                energy_source="estimate:cpu-time",
                energy_measured=False,
                metered_device="estimate",
            ),
            summary_row(0.5, model="qwen2.5-coder-7b-random"),
            summary_row(0.0625, strategy="oracle-tests"),
        ]
    )


def test_load_reads_every_folder_in_order_with_its_label(tmp_path):
    references = reference.load(plant_two(tmp_path))
    assert [r.name for r in references] == ["a-nvidia-h200", "b-nvidia-h100"]
    assert [r.label for r in references] == [H200_LABEL, H100_LABEL]
    h200, h100 = references
    assert h200.summary["decode_j_per_token"].to_list() == [2.5, 3.75, 1.0]
    assert dict(h200.details)["command"] == "tests/gpu/kit.sh run"
    assert "gpu" not in dict(h200.details)
    assert h200.amplification["amplification_pct"].to_list() == [31.25, 4.5]
    assert h100.details == () and h100.amplification is None


def test_no_folder_is_no_reference(tmp_path):
    assert reference.load(tmp_path / "absent") == []
    assert reference.load(tmp_path) == []


def test_comparison_puts_the_references_baseline_rows_first_then_this_runs(tmp_path):
    rows = reference.comparison(reference.load(plant_two(tmp_path)), this_run())
    assert rows["where"].to_list() == [
        f"measured: {H200_LABEL}",
        f"measured: {H200_LABEL}",
        f"measured: {H100_LABEL}",
        "this run: estimated (estimate:cpu-time)",
        "this run: measured (zeus:nvml)",
    ]
    assert rows["decode_j_per_token"].to_list() == [2.5, 3.75, 1.875, 0.125, 0.5]
    assert rows["prompt_tokens_mean"].to_list() == [151.5, 5120.0, 151.5, 151.5, 151.5]
    assert rows["metered_device"][2] == "gpu:1 NVIDIA H100"
    assert rows.columns[:10] == [c.removesuffix(" [lo, hi]") for c in COMPARISON]


def test_one_gpu_measured_twice_is_told_apart_by_its_folder(tmp_path):
    plant(tmp_path, "nvidia-h200-1", H200, [summary_row(2.5)])
    plant(tmp_path, "nvidia-h200-2", H200, [summary_row(3.75)])
    plant(tmp_path, "nvidia-h100", H100, [summary_row(1.875)])
    rows = reference.comparison(reference.load(tmp_path), this_run())
    assert rows["where"].to_list()[:3] == [
        f"measured: {H100_LABEL}",
        f"measured: {H200_LABEL} (nvidia-h200-1)",
        f"measured: {H200_LABEL} (nvidia-h200-2)",
    ]
    assert rows["decode_j_per_token"].to_list()[:3] == [1.875, 2.5, 3.75]


def test_gpu_json_without_driver_is_an_error_naming_it(tmp_path):
    folder = plant(tmp_path, "nvidia-h200", {**H200, "driver": ""}, [summary_row(2.5)])
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'gpu.json'))}.*driver"):
        reference.load(tmp_path)
    (folder / "gpu.json").write_text(json.dumps({"gpu": "NVIDIA H200", "date": "2026-12-04"}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'gpu.json'))}.*driver"):
        reference.load(tmp_path)


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    folder = plant(tmp_path, "nvidia-h200", H200, None)
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'summary.csv'))} is missing"):
        reference.load(tmp_path)
    (folder / "gpu.json").unlink()
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'gpu.json'))} is missing"):
        reference.load(tmp_path)


def test_a_summary_without_a_compared_column_or_with_estimated_rows_is_refused(tmp_path):
    row = summary_row(2.5)
    del row["idle_power_w"]
    folder = plant(tmp_path / "one", "nvidia-h200", H200, [row])
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(folder / 'summary.csv'))}.*idle_power_w"
    ):
        reference.load(tmp_path / "one")
    estimated = summary_row(2.5, energy_measured=False, energy_source="estimate:cpu-time")
    folder = plant(tmp_path / "two", "nvidia-h200", H200, [estimated])
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(folder / 'summary.csv'))}.*not measured"
    ):
        reference.load(tmp_path / "two")


def report_script():
    """workflow/scripts/report.py, imported from its file."""
    spec = importlib.util.spec_from_file_location(
        "report_script", REPO / "workflow" / "scripts" / "report.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def render_with_script(tmp_path: Path, root: Path, summary: pl.DataFrame) -> str:
    """The report as the rule renders it: the script reads its inputs and params.reference."""
    frames = example_frames()
    frames["summary"] = summary
    inputs = {}
    for name, frame in frames.items():
        inputs[name] = tmp_path / f"{name}.parquet"
        frame.write_parquet(inputs[name])
    output = tmp_path / "report.html"
    smk = SimpleNamespace(
        input=SimpleNamespace(
            **inputs,
            figures=[],
            models=[],
            datasets=[],
            template=str(TEMPLATE),
            references=sorted(str(p) for p in root.glob("*/*.*")),
        ),
        params=SimpleNamespace(
            config={
                "energy": {"watts_per_core": 10.0},
                "babble": {"threshold": 0.2, "cap_share": 0.5},
                "generation": {"ignore_eos": False},
                "workloads": {"he": {"dataset": "humaneval", "limit": 2}},
            },
            reference=root,
        ),
        output=[str(output)],
        log=[str(tmp_path / "report.log")],
    )
    report_script().main(smk)
    return output.read_text(encoding="utf-8")


def planted_summary() -> pl.DataFrame:
    """The current run's summary: every column the report's tables show, with this run's
    planted rows' values where the comparison reads them."""
    base = example_frames(rows=3)["summary"]
    planted = this_run().select(
        *(c for c in this_run().columns if c in base.columns and c != "tasks")
    )
    return base.with_columns(planted.to_dict().values())


def section(html: str) -> str:
    start = html.index('<h2 id="measured-on-a-gpu">')
    return html[start : html.index("<h2", start + 1)]


def test_the_report_shows_each_reference_beside_this_run(tmp_path):
    root = plant_two(tmp_path / "reference")
    summary = planted_summary()
    html = render_with_script(tmp_path, root, summary)
    # After the energy sections, before the figures.
    assert html.index('id="shapes"') < html.index('id="measured-on-a-gpu"')
    assert html.index('id="measured-on-a-gpu"') < html.index('id="figures"')
    text = section(html)
    assert "No GPU record ships yet." not in text
    for needed in (
        f"Measured on {H200_LABEL} (<code>a-nvidia-h200</code>)",
        f"Measured on {H100_LABEL} (<code>b-nvidia-h100</code>)",
        "<code>tests/gpu/kit.sh run</code>",
        "tests/gpu/sweep_config.py (config/paper-random.yaml)",
        "random-weight",
        "not the study's trained models",
        "NVML",
    ):
        assert needed in text, needed
    expected = reference.comparison(reference.load(root), summary)
    assert_table_matches(html, "reference-table", expected, COMPARISON)
    rows = [row for row in read_table(html, "reference-table").rows if row]
    shown = {cell["data-column"]: cell["text"] for cell in rows[1]}
    assert shown["where"] == f"measured: {H200_LABEL}"
    assert shown["decode_j_per_token"] == "3.75 [2.812, 4.688]"
    assert shown["prefill_share"] == "6.2 [4.7, 7.8]"
    assert [row[0]["text"] for row in rows[3:]] == [
        "this run: estimated (estimate:cpu-time)",
        "this run: measured (zeus:nvml)",
    ]
    assert rows[3][6]["text"] == report.format_cell("decode_j_per_token", 0.125, 0.09375, 0.15625)
    # The H200's amplification rows, under ids of its own; none for the H100.
    for table_id, columns in EXPECTED["amplification"].items():
        assert_table_matches(
            html, f"reference-a-nvidia-h200-{table_id}", amplification_frame(), columns
        )
    assert "reference-b-nvidia-h100-amplification" not in html


def test_without_a_reference_the_section_says_so(tmp_path):
    root = tmp_path / "reference"
    root.mkdir()
    html = render_with_script(tmp_path, root, planted_summary())
    assert '<h2 id="measured-on-a-gpu">Measured on a GPU</h2>' in html
    assert "No GPU record ships yet." in section(html)
    assert 'id="reference-table"' not in html
    # The report's other tables are there as before.
    assert read_table(html, "summary-energy-table").found
    assert "No GPU record ships yet." in report.render(TEMPLATE, planted_summary(), {}, PROVENANCE)

"""The report of a real run, opened in headless Chromium: no console error, no network
request, the claims table on screen, and everything readable at a laptop's width (1366 px)
without scrolling sideways."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO, load_tiny_config, snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAPTOP = {"width": 1366, "height": 900}

# What sticks out at the viewport's width: the page's own scroll width, every table's and
# figure's right edge, and any table, cell, figure or container of one whose content is wider
# than its box (overflowing it, or scrolling inside it: a scroll bar in an `overflow: auto`
# wrapper is sideways scrolling all the same).
OVERFLOW = """() => {
  const width = window.innerWidth;
  const problems = [];
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (e.dataset && e.dataset.column ? "[" + e.dataset.column + "]" : "");
  for (const e of [document.documentElement, document.body]) {
    if (e.scrollWidth > width) problems.push(`${name(e)} scrollWidth ${e.scrollWidth} > ${width}`);
  }
  const boxes = new Set();
  for (const e of document.querySelectorAll("table, figure, img, pre, dl")) {
    boxes.add(e);
    for (let p = e.parentElement; p && p !== document.documentElement; p = p.parentElement) {
      boxes.add(p);
    }
  }
  for (const e of document.querySelectorAll("th, td")) boxes.add(e);
  for (const e of boxes) {
    const right = e.getBoundingClientRect().right;
    if (right > width + 0.5) problems.push(`${name(e)} right edge ${right} > ${width}`);
    if (e.scrollWidth > e.clientWidth + 1) {
      problems.push(`${name(e)} scrollWidth ${e.scrollWidth} > clientWidth ${e.clientWidth}`);
    }
  }
  return problems;
}"""


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_report_opens_offline_without_errors(workdir: Path, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    run = snakemake(workdir, load_tiny_config())
    assert run.returncode == 0, run.stderr[-3000:]
    report = workdir / "results/report/report.html"

    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=LAPTOP)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        claims = page.locator("#claims-table")
        assert claims.is_visible()
        assert claims.locator("tbody tr").count() >= 7
        images = page.locator("figure img")
        assert images.count() >= 5
        widths = images.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert all(width > 0 for width in widths)  # every figure decoded
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert page.evaluate("window.innerWidth") == LAPTOP["width"]
        overflowing = page.evaluate(OVERFLOW)
        # Every column heading carries its unit where it has one, on the page as shown.
        headings = page.locator("th").evaluate_all("ths => ths.map(t => t.innerText)")
        browser.close()
    assert not errors, errors
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert shot.stat().st_size > 20_000
    assert not overflowing, "\n".join(overflowing)
    assert any("J/task" in heading for heading in headings), headings


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_report_of_long_values_and_wide_figures_fits_a_laptop(tmp_path: Path):
    """Every table filled with long names and wide numbers, several rows, and a figure wider
    than the screen: still nothing sticks out at 1366 px."""
    playwright = pytest.importorskip("playwright.sync_api")
    from helpers.report_tables import example_frames
    from PIL import Image

    from llmenergy import report

    figure = tmp_path / "wide.png"
    Image.new("RGB", (2600, 900), "steelblue").save(figure)
    frames = example_frames(rows=6)
    provenance = {
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "config_hash": "f" * 64,
        "packages": {"polars": "1.0"},
        "hardware": {"gpu": "NVIDIA H200 141GB HBM3e, driver 570.124.06, CUDA 12.8"},
        "energy_sources": ["nvml:total_energy_consumption"],
        "watts_per_core": 10.0,
        "idle": report.describe_idle(frames["summary"]),
        "models": [
            {
                "model": "qwen2.5-coder-7b-instruct-random",
                "kind": "huggingface",
                "revision": "0123456789abcdef0123456789abcdef01234567",
                "file_sha256": "e" * 64,
            }
        ],
        "datasets": [{"dataset": "longbench-code-completion-long", "sha256": "d" * 64}],
        "babble_threshold": 0.2,
        "babble_cap_share": 0.5,
        "ignore_eos": False,
        "tasks": report.task_selection(
            {
                "humaneval-0shot-with-a-long-name": {
                    "dataset": "humaneval",
                    "task_ids": [f"HumanEval/{i}" for i in range(40)],
                    "selected_by": "python scripts/select_humaneval_tasks.py --write " * 3,
                }
            }
        ),
    }
    html = report.render(
        REPO / "reports" / "report.html.j2",
        frames["summary"],
        {"wide": figure},
        provenance,
        savings=frames["savings"],
        babbling=frames["babble"],
        claims=frames["claims"],
        amplification=frames["amplification"],
        shapes=frames["shapes"],
        conditions=frames["conditions"],
    )
    page_path = tmp_path / "report.html"
    page_path.write_text(html)
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=LAPTOP)
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        overflowing = page.evaluate(OVERFLOW)
        image = page.locator("figure img").bounding_box()
        browser.close()
    assert not overflowing, "\n".join(overflowing)
    assert image is not None and 900 < image["width"] <= LAPTOP["width"]

"""The report of a real run, opened in headless Chromium: no console error, no network
request, and the claims table on screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import load_tiny_config, snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_report_opens_offline_without_errors(workdir: Path, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    run = snakemake(workdir, load_tiny_config())
    assert run.returncode == 0, run.stderr[-3000:]
    report = workdir / "results/report/report.html"

    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
        browser.close()
    assert not errors, errors
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert shot.stat().st_size > 20_000

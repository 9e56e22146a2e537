"""The demo's HTML report, rendered by a real headless browser."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from proving.simulate.demo import DemoReport, run_demo
from proving.ui.report import write_demo_report

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report() -> DemoReport:
    return run_demo(20_000, seed=4)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("PROVING_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is not installed (make system-deps installs it)")
        pytest.skip("chromium is not installed (make system-deps installs it)")
    return path


def test_report_holds_the_table_the_plots_and_the_json(report: DemoReport, tmp_path: Path) -> None:
    page = write_demo_report(report, tmp_path / "r" / "demo.html").read_text()
    for metric in ("revenue", "conversion", "clicks_per_session"):
        assert metric in page
    assert page.count('class="plotly-graph-div"') == 2
    assert "Sequential monitor on revenue" in page
    assert '"n_units": 20000' in html.unescape(page)  # the result JSON, escaped in <pre>


def test_a_real_browser_renders_both_plots(report: DemoReport, tmp_path: Path) -> None:
    chromium = _chromium()
    path = write_demo_report(report, tmp_path / "demo.html")
    profile = tmp_path / "profile"
    done = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = done.stdout
    # plotly draws each figure into an <svg class="main-svg">; the traces carry their names.
    assert dom.count('class="main-svg"') >= 4  # two figures, each with two svg layers
    assert "always-valid 95% interval" in dom
    assert "true lift" in dom

"""The app in a real browser: `greentrain app` on a free localhost port, driven by Debian's
/usr/bin/chromium through Playwright (never a downloaded browser). Saves a screenshot of the
Compare page to ./artifacts/compare.png (a CI artifact)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures.runs import study
from fixtures.store import write_store

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Generous element waits: on a loaded 2-core CI machine plotly's first draw can take ~40 s.
WAIT_MS = 120_000

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: install Debian's chromium (apt-get install chromium)"
        " to run the real-browser test; no browser is ever downloaded",
    ),
    pytest.mark.timeout(240),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, limit_s: float = 60.0) -> None:
    """Poll streamlit's health endpoint until it answers (or the server died)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"greentrain app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("streamlit did not become healthy within the limit")


@pytest.fixture
def app_server(tmp_path):
    """`greentrain app --store <fixture> --port <free>` as a subprocess; yields its URL."""
    store = write_store(tmp_path / "s.db", study())
    port = _free_port()
    log = open(tmp_path / "app.log", "w+")  # noqa: SIM115 -- closed below
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "greentrain", "app", "--store", str(store), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.seek(0)
        text = log.read()
        log.close()
        assert "opening" in text and "read-only" in text, text


def test_compare_page_renders_charts_in_chromium(app_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 3400})
            page.goto(app_server + "/compare", wait_until="domcontentloaded")
            page.wait_for_selector("h1:has-text('Compare')", timeout=WAIT_MS)
            # plotly has drawn: the SVG of the first chart and its heatmap cells exist
            chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
            chart.wait_for(state="visible", timeout=WAIT_MS)
            page.wait_for_selector(".js-plotly-plot .heatmaplayer", timeout=WAIT_MS)
            page.wait_for_selector("text=Pareto front", timeout=WAIT_MS)
            # all four charts drawn (heatmap, Pareto, energy-to-accuracy, savings)
            page.wait_for_function(
                "[...document.querySelectorAll('.js-plotly-plot')]"
                ".filter((e) => e.querySelector('.main-svg')).length >= 4",
                timeout=WAIT_MS,
            )
            titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
            assert "Accuracy per kWh (mean over seeds)" in titles
            assert "Accuracy vs kWh" in titles
            body = page.inner_text("body")
            assert "Pareto-optimal: resnet18 / cifar10 / bar / 0.8" in body
            assert "Energy saving vs FLOPs saving" in titles
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "compare.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()

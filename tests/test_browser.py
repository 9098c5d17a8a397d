"""The app in a real browser: `greentrain app` on a free localhost port, driven by Debian's
/usr/bin/chromium through Playwright (never a downloaded browser). Saves a screenshot of the
Compare page to ./artifacts/compare.png (a CI artifact)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.browser import CHROMIUM, capture_compare, running_app
from fixtures.runs import study
from fixtures.store import write_store

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: install Debian's chromium (apt-get install chromium)"
        " to run the real-browser test; no browser is ever downloaded",
    ),
    pytest.mark.timeout(300),
]


def test_compare_page_renders_charts_in_chromium(tmp_path):
    pytest.importorskip("playwright.sync_api")
    store = write_store(tmp_path / "s.db", study())
    shot = ARTIFACTS / "compare.png"
    log = tmp_path / "app.log"
    with running_app(store, log) as url:
        shown = capture_compare(url, shot)
    assert "Accuracy per kWh (mean over seeds)" in shown["titles"]
    assert "Accuracy vs kWh" in shown["titles"]
    assert "Test accuracy vs cumulative energy" in shown["titles"]
    assert "Energy saving vs FLOPs saving" in shown["titles"]
    assert (
        "Pareto-optimal: resnet18 / cifar10 / bar / 0.8, resnet18 / cifar10 / dense"
        in (shown["body"])
    )
    assert "8 runs; opened read-only" in shown["body"]
    assert shot.stat().st_size > 10_000
    text = log.read_text()
    assert f"opening {store}" in text and "read-only" in text and "given with --store" in text

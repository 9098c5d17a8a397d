"""The app in a real browser: `greentrain app` on a free localhost port, driven by Debian's
/usr/bin/chromium through Playwright (never a downloaded browser), at 1,400 px. One app serves
every check: the answer sentence on a store whose winner is known, an interval on every chart,
run text that tries to be Markdown/HTML staying text, and no page needing horizontal scroll.
Screenshots of each page go to ./artifacts/app/ (a CI artifact)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.browser import CHROMIUM, PAGES, capture_page, chromium, running_app
from fixtures.runs import make_run, study
from fixtures.store import write_store

from greentrain.report import formats
from greentrain.store import Store

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "app"
# A schedule name that is Markdown and HTML: a link, a remote image, a tag.
HOSTILE = (
    "[click](http://evil.example/) ![i](http://evil.example/i.png) "
    '<a href="http://evil.example/">x</a><img src="http://evil.example/j.png">'
)

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent: install Debian's chromium (apt-get install chromium)"
        " to run the real-browser test; no browser is ever downloaded",
    ),
    pytest.mark.timeout(600),
]


def _download(browser, url: str, label: str) -> str:
    """Click the Export page's download button ``label`` and return the file's text (the app
    renders a format only when its download is asked for)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/export", wait_until="domcontentloaded")
        button = page.get_by_role("button", name=label)
        button.wait_for(state="visible", timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            button.click()
        return Path(download.value.path()).read_text(encoding="utf-8")
    finally:
        page.close()


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """Every page of the app on the fixture study plus one hostile run, read in Chromium."""
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("browser")
    kwh = 3.6e6
    hostile = make_run(
        "h0", schedule=HOSTILE, drop_rate=0.5, name=HOSTILE, accs=[0.1, 0.2],
        epoch_energy_j=[0.045 * kwh] * 2,
    )  # fmt: skip
    store = write_store(tmp / "s.db", study() + [hostile])
    out = {}
    with running_app(store, tmp / "app.log") as url, chromium() as browser:
        for page in PAGES:
            query = "?run=h0" if page == "run" else ""
            out[page] = capture_page(browser, url, page, ARTIFACTS / f"{page}.png", query)
        out["csv_download"] = _download(browser, url, "Download greentrain-csv.csv")
    out["log"] = (tmp / "app.log").read_text()
    out["store"] = store
    return out


def test_compare_page_opens_on_the_answer_for_a_store_whose_winner_is_known(shown):
    body = shown["compare"]["body"]
    assert (
        "Best accuracy per kWh: resnet18 / cifar10 / bar / 0.8, at 1.94× dense "
        "(95% interval 1.80–2.09×, paired by seed, n=2 pairs)" in body
    )
    assert "100% measured: GPU measured by the GPU's NVML energy counter" in body
    assert "9 runs; opened read-only" in body
    log = shown["log"]
    assert f"opening {shown['store']}" in log and "given with --store" in log


def test_every_compare_chart_states_its_interval(shown):
    titles = shown["compare"]["titles"]
    assert len(titles) == 4
    assert all("95% interval" in t for t in titles), titles


def test_run_text_that_is_markdown_or_html_stays_text_on_every_page(shown):
    for page in PAGES:
        assert shown[page]["live"] == [], page  # no link, image or tag made from run text
        assert shown[page]["requests"] == [], page  # the viewer's browser fetched nothing
    # shown literally (a word joiner, invisible, splits "://" against autolinks)
    assert "[click](http://evil.example/)" in shown["compare"]["body"].replace("\u2060", "")
    assert '<a href="http://evil.example/">x</a>' in shown["run"]["body"]


def test_no_page_needs_horizontal_scroll_at_1400_px(shown):
    for page in PAGES:
        assert "Page not found" not in shown[page]["body"], page
        assert max(shown[page]["overflow"]) <= 0, (page, shown[page]["overflow"])


def test_export_download_renders_the_format_when_clicked(shown):
    with Store(shown["store"], read_only=True) as store:
        runs = store.list_runs()
    expected = formats.get("csv").render(runs, formats.RenderOptions(allow_fake=False))
    got = shown["csv_download"]
    assert got.splitlines()[0] == expected.splitlines()[0]  # the same columns
    assert sorted(got.splitlines()) == sorted(expected.splitlines())  # the same rows

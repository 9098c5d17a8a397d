"""The app's page loads on a large store, for ``benchmarks/store_read.py``: the Runs page (its
first page, 50 runs chosen in SQL) and the Run page (one run opened by ``?run=ID``), each run
through Streamlit's AppTest in this process -- the page script, its store reads and building the
page's elements; no browser, no server. Each load starts with Streamlit's data cache cleared, so
every one reads the store (a fresh session would hit the cache for 15 s).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def page_seconds(store: str, page: str, repeats: int, run: str | None = None) -> dict:
    """Median seconds of loading the app page ``page`` (``runs``, ``run``, ...) on ``store``
    (an SQLite file or a ``postgresql://`` URL), after one warm-up; ``run``: the run the Run
    page opens."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    old = os.environ.get("GREENTRAIN_APP_STORE")
    os.environ["GREENTRAIN_APP_STORE"] = store
    try:
        times = []
        for i in range(repeats + 1):
            st.cache_data.clear()
            at = AppTest.from_file(str(APP / "views" / f"{page}.py"), default_timeout=300)
            if run is not None:
                at.query_params["run"] = run
            t = time.perf_counter()
            at.run()
            elapsed = time.perf_counter() - t
            if at.exception:
                raise SystemExit(f"app page {page} failed: {at.exception[0].value}")
            if i:  # the first is a warm-up
                times.append(elapsed)
    finally:
        if old is None:
            os.environ.pop("GREENTRAIN_APP_STORE", None)
        else:
            os.environ["GREENTRAIN_APP_STORE"] = old
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats,
            "output_lines": len(at.dataframe[0].value) if at.dataframe else 0}  # fmt: skip

"""What every page shares: which store to open (read-only), loading runs, the empty state.

The store (a file, or a ``postgresql://`` URL) is chosen by ``greentrain app`` and passed in
``$GREENTRAIN_APP_STORE`` (with a human note in ``$GREENTRAIN_APP_STORE_NOTE``). Run directly
(``streamlit run app/streamlit_app.py``), the app falls back to ``$GREENTRAIN_STORE`` or
``./reports/greentrain.db``, then to the reference store shipped in ``reports/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from greentrain.report.formatting import fmt_energy_kwh
from greentrain.report.grouping import runs_frame
from greentrain.store import Store, StoreError, default_target, is_url, redact

ENV_PATH = "GREENTRAIN_APP_STORE"
ENV_NOTE = "GREENTRAIN_APP_STORE_NOTE"
APP_DIR = Path(__file__).resolve().parent
REFERENCE_CANDIDATES = (
    APP_DIR / "reference.db",  # shipped inside the wheel
    APP_DIR.parent / "reports" / "reference.db",  # a source checkout
)


def store_choice() -> tuple[Path | str | None, str]:
    """(path, URL or None, how it was chosen) -- never raises."""
    env = os.environ.get(ENV_PATH, "").strip()
    if env:
        note = os.environ.get(ENV_NOTE, "") or "given by greentrain app"
        return (env if is_url(env) else Path(env)), note
    target = default_target()
    if is_url(target):
        return target, "the default store"
    default = Path(target)
    if default.exists():
        return default, "the default store"
    for ref in REFERENCE_CANDIDATES:
        if ref.exists():
            return ref, f"the reference store shipped with greentrain ({default} does not exist)"
    return None, f"no store found: {default} does not exist and no reference store is shipped"


@st.cache_data(ttl=15, show_spinner=False)
def _load(path: str, mtime: float) -> list[dict]:
    with Store(path, read_only=True) as store:
        return store.list_runs()


def load_runs() -> tuple[list[dict], Path | str | None, str]:
    """All runs of the chosen store, (runs, path or redacted URL, note); errors become an
    st.error + stop. A database is re-read at most every 15 s (no file time to watch)."""
    path, note = store_choice()
    if isinstance(path, str):  # a PostgreSQL URL
        try:
            return _load(path, 0.0), redact(path), note
        except StoreError as err:
            st.error(f"Cannot read the run store: {err}")
            st.stop()
    if path is None or not path.exists():
        return [], path, note
    try:
        wal = Path(str(path) + "-wal")
        mtime = path.stat().st_mtime + (wal.stat().st_mtime if wal.exists() else 0.0)
        return _load(str(path), mtime), path, note
    except StoreError as err:
        st.error(f"Cannot read the run store: {err}")
        st.stop()
    return [], path, note  # unreachable (st.stop raises); keeps type checkers calm


def sidebar_store(path: Path | None, note: str, n_runs: int) -> None:
    """Say which store is open (read-only) in the sidebar."""
    st.sidebar.caption(f"Store: `{path}` ({note}); {n_runs} runs; opened read-only.")


def empty_state(path: Path | None, what: str = "runs") -> None:
    """A helpful message instead of charts when there is nothing to show."""
    where = f"`{path}`" if path is not None else "no store"
    st.info(
        f"No {what} to show ({where}).\n\n"
        "Record some with `greentrain demo` (a tiny CPU study), "
        "`greentrain run -- python train.py`, or `greentrain sweep ...`; "
        "or open another store with `greentrain app --store PATH`."
    )


def fmt_kwh(value: float | None, measured_share: float | None) -> str:
    """``"150 Wh"`` when all of it was measured; ``"≈56.2 Wh (estimated)"`` when all of it was
    modelled; ``"2.83 Wh (85% measured)"`` in between (an H100 run whose GPU was measured and
    whose CPU was modelled is not an estimate)."""
    if value is None or pd.isna(value):
        return "not measured"
    text = fmt_energy_kwh(value)
    if measured_share is None or measured_share <= 0.0005:
        return f"≈{text} (estimated)"
    if measured_share >= 0.9995:
        return text
    return f"{text} ({measured_share * 100:.0f}% measured)"


# d3-format for plotly axes and colour bars: 3 significant digits with thousands separators,
# never 1.57e+4 or SI suffixes (a "m" on an energy axis would read as milli-kWh or metres).
TICKS = ",.3~r"


def page_header(title: str) -> list[dict]:
    """Title + store caption; returns the runs (maybe empty)."""
    st.title(title)
    runs, path, note = load_runs()
    sidebar_store(path, note, len(runs))
    if not runs:
        empty_state(path)
    return runs


def frame(runs: list[dict]) -> pd.DataFrame:
    return runs_frame(runs)

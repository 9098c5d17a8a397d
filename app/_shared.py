"""What every page shares: which store to open (read-only), reading what a page shows, the
empty state.

The store (a file, or a ``postgresql://`` URL) is chosen by ``greentrain app`` and passed in
``$GREENTRAIN_APP_STORE`` (with a human note in ``$GREENTRAIN_APP_STORE_NOTE``). Run directly
(``streamlit run app/streamlit_app.py``), the app falls back to ``$GREENTRAIN_STORE`` or
``./reports/greentrain.db``, then to the reference store shipped in ``reports/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from greentrain.report.formatting import fmt_energy_kwh
from greentrain.report.grouping import runs_frame
from greentrain.store import Store, StoreError, default_target, is_url, redact
from greentrain.store.selection import RunQuery

PAST_THE_END = 2**31 - 1  # an offset no listing reaches (fits a 32-bit SQL integer)
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


def _store_key() -> tuple[str | None, float, Path | str | None, str]:
    """(what to open or None, its change stamp, what to show for it, note). A file's stamp is
    its and its WAL's modification time, so a cached read is redone when the store changes;
    a database has none (its reads are cached 15 s)."""
    path, note = store_choice()
    if isinstance(path, str):  # a PostgreSQL URL
        return path, 0.0, redact(path), note
    if path is None or not path.exists():
        return None, 0.0, path, note
    wal = Path(str(path) + "-wal")
    mtime = path.stat().st_mtime + (wal.stat().st_mtime if wal.exists() else 0.0)
    return str(path), mtime, path, note


@st.cache_data(ttl=15, show_spinner=False, max_entries=64)
def _page(
    target: str, stamp: float, status: str | None, name: str | None,
    tags: tuple[tuple[str, str], ...], limit: int | None, offset: int, summary: bool,
) -> tuple[list[dict], int | None]:  # fmt: skip
    query = RunQuery(status=status, name=name, tags=dict(tags), limit=limit, offset=offset)
    with Store(target, read_only=True) as store:
        page = store.page(query, summary=summary)
    return page.runs, page.total


@st.cache_data(ttl=15, show_spinner=False, max_entries=64)
def _by_ids(target: str, stamp: float, ids: tuple[str, ...], summary: bool) -> list[dict]:
    with Store(target, read_only=True) as store:
        return store.list_runs(ids=ids, summary=summary)


@st.cache_data(ttl=15, show_spinner=False, max_entries=64)
def _one(target: str, stamp: float, run_id_or_prefix: str) -> dict:
    with Store(target, read_only=True) as store:
        return store.get_run(run_id_or_prefix)


def _guarded(read: Callable[..., Any], *args: Any) -> Any:
    """``read(target, stamp, *args)`` on the chosen store; a StoreError becomes an st.error
    and stops the page."""
    target, stamp, _, _ = _store_key()
    if target is None:
        st.stop()
    try:
        return read(target, stamp, *args)
    except StoreError as err:
        st.error(f"Cannot read the run store: {err}")
        st.stop()


def read_page(
    *,
    status: str | None = None,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    summary: bool = False,
) -> tuple[list[dict], int | None]:
    """One page of the listing, chosen in SQL (:class:`RunQuery`): its run objects, oldest
    first, and how many entries matched (None when a name/tag filter stopped reading once the
    page was full). ``limit`` None: all of them. ``summary``: without windows and metrics."""
    pairs = tuple(sorted((tags or {}).items()))
    return _guarded(_page, status, name, pairs, limit, offset, summary)


def read_ids(ids: list[str], *, summary: bool = False) -> list[dict]:
    """The run objects of ``ids`` (runs or groups), oldest first, read in batches by the
    store (an ``IN (...)`` query per 500 ids)."""
    return _guarded(_by_ids, tuple(sorted(set(ids))), summary)


def read_run(run_id_or_prefix: str) -> dict | None:
    """One run or group, whole, by id or unique prefix; None when no run (or more than one)
    matches."""
    target, stamp, _, _ = _store_key()
    if target is None:
        return None
    try:
        return _one(target, stamp, run_id_or_prefix)
    except StoreError:
        return None


def count_runs() -> tuple[int, Path | str | None, str]:
    """How many entries (runs, a group counted once) the chosen store holds, (count, path or
    redacted URL, note); a store that cannot be read becomes an st.error + stop."""
    target, _, shown, note = _store_key()
    if target is None:
        return 0, shown, note
    # an offset past any store's end: the store counts the entries in SQL and reads no run
    _, total = read_page(limit=1, offset=PAST_THE_END, summary=True)
    return int(total or 0), shown, note


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


def page_header(title: str) -> int:
    """Title + store caption; returns how many runs the store holds (0: the empty state is
    shown). Each page then reads only what it shows (:func:`read_page`, :func:`read_ids`,
    :func:`read_run`)."""
    st.title(title)
    n_runs, path, note = count_runs()
    sidebar_store(path, note, n_runs)
    if not n_runs:
        empty_state(path)
    return n_runs


def frame(runs: list[dict]) -> pd.DataFrame:
    return runs_frame(runs)

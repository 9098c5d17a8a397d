"""Runs: the store's runs a page at a time, newest first, filtered by status, name and tags --
the page chosen in SQL, so only its runs are read -- with status, totals, and estimates marked;
the key columns (name, status, accuracy, energy, CO2e) first, so they read without scrolling at
1,400 px."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

from greentrain.record.group import STATUS_ORDER  # noqa: E402
from greentrain.report.formatting import (  # noqa: E402
    fmt_co2_g,
    fmt_duration_s,
    fmt_energy_kwh,
)
from greentrain.report.provenance import measured_share  # noqa: E402
from greentrain.report.study import study_totals  # noqa: E402


def _nodes(count: object, expected: object, incomplete: object) -> str:
    """The nodes column: "1 of 2 (incomplete)" for a group that knows its size, else the count."""
    if not isinstance(expected, (int, float)) or expected != expected:  # None or NaN: unknown
        return str(count)
    mark = " (incomplete)" if bool(incomplete) else ""
    return f"{int(count)} of {int(expected)}{mark}"  # type: ignore[call-overload]


PAGE_SIZES = (25, 50, 100, 200)
STATUSES = ("finished", *STATUS_ORDER)


def _tags(text: str) -> dict[str, str]:
    """``"k=v, k2=v2"`` as a dict (parts without ``=`` are ignored)."""
    pairs = (part.partition("=") for part in text.split(","))
    return {k.strip(): v.strip() for k, eq, v in pairs if eq and k.strip()}


n_runs = sh.page_header("Runs")
if n_runs:
    c1, c2, c3, c4 = st.columns([1, 2, 2, 1])
    pick_status = c1.selectbox("Status", ["all", *STATUSES], index=0)
    name = c2.text_input("Name is", "").strip()
    tag_text = c3.text_input("Tags (KEY=VALUE, comma separated)", "")
    size = c4.selectbox("Runs per page", PAGE_SIZES, index=1)
    page_no = int(st.session_state.get("runs_page_no", 1))
    status = None if pick_status == "all" else pick_status
    runs, matched = sh.read_page(
        status=status, name=name or None, tags=_tags(tag_text), limit=size,
        offset=(page_no - 1) * size,
    )  # fmt: skip
    known = matched if matched is not None else (page_no - 1) * size + len(runs) + 1
    pages = max(1, -(-known // size))
    st.number_input("Page (newest first)", min_value=1, max_value=max(pages, page_no), step=1,
                    key="runs_page_no")  # fmt: skip
    if not runs:
        st.info("No runs match these filters" + (" on this page." if page_no > 1 else "."))
        st.stop()
    sel = sh.frame(runs)

    by_id = {r["id"]: r for r in runs}
    table = sel.assign(
        energy=[
            sh.fmt_kwh(e, measured_share([by_id[i]]) if i in by_id else None)
            for e, i in zip(sel["energy_kwh"], sel["id"], strict=True)
        ],
        accuracy_pct=sel["accuracy"] * 100.0,
        co2=sel["co2_g"].map(fmt_co2_g),
        tags=sel["tags"].map(lambda t: ", ".join(f"{k}={v}" for k, v in t.items())),
        nodes=[_nodes(n, e, i) for n, e, i in
               zip(sel["nodes"], sel["nodes_expected"], sel["incomplete"], strict=True)],
    )[
        [
            "name", "status", "accuracy_pct", "energy", "co2", "configuration", "seed", "fid",
            "duration_s", "nodes", "estimated", "energy_sources", "tags", "started_at", "id",
        ]
    ]  # fmt: skip
    counted = f"of {matched}" if matched is not None else "of at least " + str(known)
    st.caption(
        f"Page {page_no}: {len(sel)} runs {counted} matching ({n_runs} in the store). "
        "Energies marked ≈ are estimates, not measurements, and a "
        "partly measured one says how much; "
        "'not measured' means no meter could measure (see the Run page for the reason)."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "name": st.column_config.TextColumn("name", width="medium"),
            "configuration": st.column_config.TextColumn("configuration", width="medium"),
            "energy_sources": st.column_config.TextColumn("energy sources", width="small"),
            "tags": st.column_config.TextColumn("tags", width="small"),
            "accuracy_pct": st.column_config.NumberColumn("accuracy (%)", format="%.2f"),
            "co2": st.column_config.TextColumn("CO2e"),
            "fid": st.column_config.NumberColumn("FID", format="%.2f"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
        },
    )
    st.subheader("Totals of this page (failed and interrupted runs included)")
    totals = study_totals(runs)
    st.dataframe(
        totals.assign(
            energy=totals["energy_kwh"].map(fmt_energy_kwh),
            co2=totals["co2_g"].map(fmt_co2_g),
            time=totals["duration_s"].map(fmt_duration_s),
        )[["runs", "energy", "co2", "time", "estimated_runs", "unmeasured_runs"]],
        width="stretch",
    )

"""Runs: every run in the store, filterable, with status, totals, and estimates marked; the key
columns (name, status, accuracy, energy, CO2e) first, so they read without scrolling at 1,400 px."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

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


runs = sh.page_header("Runs")
if runs:
    df = sh.frame(runs)
    c1, c2, c3 = st.columns(3)
    statuses = sorted(df["status"].dropna().unique())
    pick_status = c1.multiselect("Status", statuses, default=statuses)
    configs = sorted(df["configuration"].dropna().unique())
    pick_config = c2.multiselect("Configuration", configs, default=[])
    text = c3.text_input("Name, id or tag contains", "")
    sel = df[df["status"].isin(pick_status)]
    if pick_config:
        sel = sel[sel["configuration"].isin(pick_config)]
    if text:
        needle = text.lower()
        hay = (
            sel["name"].astype(str) + " " + sel["id"].astype(str) + " " + sel["tags"].astype(str)
        ).str.lower()
        sel = sel[hay.str.contains(needle, regex=False)]

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
    st.caption(
        f"{len(sel)} of {len(df)} runs. Energies marked ≈ are estimates, not measurements, and a "
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
    st.subheader("Totals (failed and interrupted runs included)")
    ids = set(sel["id"])
    totals = study_totals([r for r in runs if r["id"] in ids])
    st.dataframe(
        totals.assign(
            energy=totals["energy_kwh"].map(fmt_energy_kwh),
            co2=totals["co2_g"].map(fmt_co2_g),
            time=totals["duration_s"].map(fmt_duration_s),
        )[["runs", "energy", "co2", "time", "estimated_runs", "unmeasured_runs"]],
        width="stretch",
    )

"""Compare: accuracy per kWh across schedules x drop rates, accuracy vs kWh with the Pareto
front, energy-to-accuracy curves, and measured energy saving vs analytic FLOPs saving."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

from greentrain.report import grouping, study, where  # noqa: E402
from greentrain.report import runs as run_figures  # noqa: E402
from greentrain.report.formatting import energy_unit, fmt_energy_kwh, readable  # noqa: E402

runs = sh.page_header("Compare")
finished = [r for r in runs if r.get("status") == "finished"]
groups = grouping.group_runs(finished)
if runs and groups.empty:
    sh.empty_state(None, "finished runs")
elif not groups.empty:
    scopes = sorted(
        {(str(m), str(d)) for m, d in zip(groups["model"], groups["dataset"], strict=True)}
    )
    labels = [f"{m} / {d}" for m, d in scopes]
    sizes = [
        int(
            groups[(groups["model"].astype(str) == m) & (groups["dataset"].astype(str) == d)][
                "n_runs"
            ].sum()
        )
        for m, d in scopes
    ]
    busiest = sizes.index(max(sizes))  # open on the model/dataset with the most runs
    scope_label = st.selectbox("Model / dataset", labels, index=busiest)
    model, dataset = scopes[labels.index(scope_label)]
    g = groups[(groups["model"].astype(str) == model) & (groups["dataset"].astype(str) == dataset)]
    est_note = bool(g["estimated"].any())

    # -- accuracy per kWh: schedule x drop rate ---------------------------------------------
    st.subheader("Accuracy per kWh by schedule and drop rate")
    if est_note:
        st.caption("≈ At least one run of this model/dataset has estimated, not measured, energy.")
    heat = g.assign(
        schedule_label=[
            "dense" if r == 0 else str(s)
            for s, r in zip(g["schedule"], g["drop_rate"].fillna(-1), strict=True)
        ],
        drop=g["drop_rate"].map(lambda r: "n/a" if pd.isna(r) else f"{r:g}"),
    )
    if heat["acc_per_kwh_mean"].notna().any():
        # accuracy in percent per kWh: "16,600 %/kWh", never 1.66e+4
        heat = heat.assign(pct_per_kwh=heat["acc_per_kwh_mean"] * 100.0)
        pivot = heat.pivot_table(
            index="schedule_label", columns="drop", values="pct_per_kwh", aggfunc="mean"
        )
        labels = pivot.apply(
            lambda col: col.map(lambda v: "" if pd.isna(v) else f"{readable(v)} %/kWh")
        )
        fig = px.imshow(
            pivot,
            aspect="auto",
            color_continuous_scale="Greens",
            labels={"x": "drop rate", "y": "schedule", "color": "accuracy (%) per kWh"},
            title="Accuracy per kWh (mean over seeds)",
        )
        fig.update_traces(text=labels.to_numpy(), texttemplate="%{text}",
                          hovertemplate="%{y}, drop %{x}: %{text}<extra></extra>")  # fmt: skip
        fig.update_layout(coloraxis_colorbar=dict(tickformat=sh.TICKS))
        fig.update_xaxes(type="category")
        fig.update_yaxes(type="category")
        st.plotly_chart(fig, key="heatmap")
    else:
        st.info("No run of this model/dataset has both an accuracy and an energy figure.")

    # -- accuracy vs kWh with the Pareto front -------------------------------------------
    metric = "accuracy" if g["accuracy_mean"].notna().any() else "fid"
    scale = 100.0 if metric == "accuracy" else 1.0
    ylab = "final test accuracy (%)" if metric == "accuracy" else "FID (lower is better)"
    pts = g.dropna(subset=[f"{metric}_mean", "energy_kwh_mean"])
    unit, per_kwh = energy_unit(g["energy_kwh_mean"].max())  # Wh for small runs, not 5.6e-5
    st.subheader("Accuracy vs energy, with the Pareto front")
    if not pts.empty:
        front = study.pareto_front(pts, metric)
        fig = go.Figure()
        for _, row in pts.iterrows():
            fig.add_trace(
                go.Scatter(
                    x=[row["energy_kwh_mean"] * per_kwh],
                    y=[row[f"{metric}_mean"] * scale],
                    error_x=dict(
                        type="data", array=[row["energy_kwh_std"] * per_kwh], visible=True
                    ),
                    error_y=dict(type="data", array=[row[f"{metric}_std"] * scale], visible=True),
                    mode="markers",
                    marker=dict(size=12, symbol="circle-open" if row["estimated"] else "circle"),
                    name=row["configuration"] + (" ≈" if row["estimated"] else ""),
                )
            )
        fig.add_trace(
            go.Scatter(
                x=front["energy_kwh_mean"] * per_kwh,
                y=front[f"{metric}_mean"] * scale,
                mode="lines",
                line=dict(shape="hv", dash="dash", color="black"),
                name="Pareto front",
            )
        )
        fig.update_layout(
            xaxis_title=f"energy per run ({unit})", yaxis_title=ylab, title="Accuracy vs kWh"
        )
        fig.update_xaxes(tickformat=sh.TICKS)
        st.plotly_chart(fig, key="pareto")
        st.caption(
            "Pareto-optimal: " + ", ".join(front["configuration"]) + ". Hollow markers (≈): "
            "energy estimated. Error bars: std over seeds."
        )

    # -- energy to accuracy ---------------------------------------------------------------
    st.subheader("Energy to accuracy")
    scoped = [
        r
        for r in finished
        if grouping.config_key(r)[0] == model and str(grouping.config_key(r)[1]) == dataset
    ]
    curves = []
    for r in scoped:
        for rec in run_figures.accuracy_curve(r):
            if rec["cum_energy_kwh"] is not None:
                curves.append(
                    {
                        "run": f"{r['name']} ({r['id'][:8]})",
                        "configuration": grouping.config_label(grouping.config_key(r)),
                        unit: rec["cum_energy_kwh"] * per_kwh,
                        "test accuracy (%)": rec["test_acc"] * 100.0,
                    }
                )
    if curves:
        cdf = pd.DataFrame(curves)
        fig = px.line(
            cdf,
            x=unit,
            y="test accuracy (%)",
            color="configuration",
            line_group="run",
            markers=True,
            title="Test accuracy vs cumulative energy",
        )
        fig.update_xaxes(title=f"cumulative energy ({unit})", tickformat=sh.TICKS)
        st.plotly_chart(fig, key="e2a")
        best = float(cdf["test accuracy (%)"].max())
        target = st.slider("Target accuracy (%)", 0.0, 100.0, round(best * 0.9, 1), 0.5)
        rows = []
        for r in scoped:
            e = run_figures.energy_to_accuracy(r, target / 100.0)
            rows.append(
                {
                    "configuration": grouping.config_label(grouping.config_key(r)),
                    "run": r["name"],
                    "energy to target": "not reached" if e is None else fmt_energy_kwh(e),
                    "reached": e is not None,
                }
            )
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.info("No per-epoch accuracy with metered epoch windows for these runs.")

    # -- FLOPs saving vs energy saving ----------------------------------------------------
    st.subheader("Measured energy saving vs analytic backward-FLOPs saving")
    sav = study.savings_vs_dense(g).dropna(subset=["energy_saving", "flops_saving"])
    if not sav.empty:
        fig = px.scatter(
            sav.assign(
                energy_saving_pct=sav["energy_saving"] * 100,
                flops_saving_pct=sav["flops_saving"] * 100,
            ),
            x="flops_saving_pct",
            y="energy_saving_pct",
            text="configuration",
            labels={
                "flops_saving_pct": "backward FLOPs saving vs dense (%)",
                "energy_saving_pct": "measured energy saving vs dense (%)",
            },
            title="Energy saving vs FLOPs saving",
        )
        fig.add_trace(
            go.Scatter(
                x=[0, 100], y=[0, 100], mode="lines", line=dict(dash="dot"), name="equal saving"
            )
        )
        fig.update_traces(textposition="top center", selector=dict(mode="markers+text"))
        st.plotly_chart(fig, key="savings")
    else:
        st.info(
            "Needs a sparse configuration and its dense baseline (same model and dataset, drop "
            "rate 0) with energy and FLOPs figures."
        )

# -- where ssProp saves energy (recorded `greentrain bench ssprop` runs) ----------------------
if runs:
    st.subheader("Where ssProp saves energy, and where it does not")
    bench_rows = where.rows_from_runs(runs)
    if bench_rows:
        st.dataframe(
            pd.DataFrame([where.cells(r) for r in bench_rows], columns=where.HEADERS),
            hide_index=True,
        )
        st.caption(where.how_to_read())
    else:
        st.info(
            "No benchmark runs in this store: `greentrain bench ssprop` records one (dense vs "
            "ssProp step time, and joules per step on NVIDIA GPUs). The measured table is in "
            "the project's reports/where-ssprop-saves.md."
        )

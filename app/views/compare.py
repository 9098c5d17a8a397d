"""Compare: the answer first (best accuracy per energy against dense, with its 95% interval, n
and how much of the energy was measured), then the table and the charts it comes from, each with
n and an interval; the keys the configurations were formed from, and a warning before pooling."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _charts as charts  # noqa: E402
import _shared as sh  # noqa: E402

from greentrain.report import comparison, curves, grouping, study, where  # noqa: E402
from greentrain.report.escape import markdown_text  # noqa: E402
from greentrain.report.stats import mean_ci  # noqa: E402
from greentrain.report.versus_dense import dense_labels  # noqa: E402

n_runs = sh.page_header("Compare")
# the scopes from the finished runs' summaries (no windows or metrics); then the chosen scope's
# runs whole (their curves are drawn)
finished = sh.read_page(status="finished", summary=True)[0] if n_runs else []
frame = grouping.runs_frame(finished)
if n_runs and frame.empty:
    sh.empty_state(None, "finished runs")
elif not frame.empty:
    scopes = frame.groupby(["model", "dataset"], dropna=False).size().sort_values(ascending=False)
    labels = [f"{m} / {d}" for m, d in scopes.index]
    scope_label = st.selectbox("Model / dataset (most runs first)", labels, index=0)
    model, dataset = scopes.index[labels.index(scope_label)]
    ids = set(
        frame.loc[
            (frame["model"].astype(str) == str(model))
            & (frame["dataset"].astype(str) == str(dataset)),
            "id",
        ]
    )
    scoped = sh.read_ids(sorted(ids))
    varying = grouping.splitting_keys(scoped)
    group_by = None
    if varying:
        chosen = st.multiselect(
            "Group by (config keys that differ among these runs; seeds are always pooled)",
            varying,
            default=varying,
        )
        group_by = None if set(chosen) == set(varying) else chosen
    c = comparison.compare(scoped, group_by)
    if c.pooled_over:
        st.warning(
            "Pooling runs that differ in "
            + ", ".join(markdown_text(k) for k in c.pooled_over)
            + ": their means mix settings. Group by them to see each apart."
        )

    # -- the answer ------------------------------------------------------------------------
    st.info("**" + markdown_text(c.answer.sentence()) + "**")
    keys = ", ".join(markdown_text(k) for k in c.grouped_by) or "nothing (one configuration)"
    st.caption(
        f"Configurations differ in: {keys}. Dense baseline: "
        + (", ".join(markdown_text(d) for d in dense_labels(c.groups)) or "none")
        + ". Energy of all these runs: "
        + markdown_text(c.energy_note)
        + "."
    )

    disagree = [n for n in c.notes if n.startswith("Meters disagree")]
    if disagree:
        st.warning(markdown_text(disagree[0]))

    # -- the table -------------------------------------------------------------------------
    st.subheader("Every configuration, with n and 95% intervals")
    table = pd.DataFrame([c.cells(row) for row in c.rows], columns=c.headers())
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(markdown_text(" ".join(n for n in c.notes if not n.startswith("Meters"))))

    # -- charts ----------------------------------------------------------------------------
    st.subheader("Accuracy per energy against dense")
    fig = charts.ratio_heatmap(c)
    if fig is not None:
        st.plotly_chart(fig, key="heatmap")
        st.caption(
            "Colour: accuracy per energy over dense's on a log scale centred on 1.0× (white); "
            "blue is better than dense, orange worse. A cell whose interval spans 1.00 is not "
            "distinguishable from dense."
        )
    else:
        st.info("Needs dense and sparse runs with both an accuracy and an energy figure.")

    st.subheader("Accuracy vs energy, with the Pareto front")
    pts = c.groups.dropna(subset=["accuracy_mean", "energy_kwh_mean"])
    front = list(study.pareto_front(pts)["configuration"]) if not pts.empty else []
    fig = charts.pareto_scatter(c, front)
    if fig is not None:
        st.plotly_chart(fig, key="pareto")
        st.caption(
            "Pareto-optimal: "
            + ", ".join(markdown_text(f) for f in front)
            + ". Hollow markers (≈): energy partly or wholly modelled. Error bars: 95% interval "
            "over seeds (none for n=1)."
        )

    st.subheader("Energy to accuracy")
    fig = charts.energy_to_accuracy(c, scoped)
    if fig is not None:
        st.plotly_chart(fig, key="e2a")
        target = st.slider("Target accuracy (%)", 0.0, 100.0, 80.0, 0.5)
        by_id = {r["id"]: r for r in scoped}
        rows = []
        for _, g in c.groups.iterrows():
            spent = [curves.energy_to_accuracy(by_id[i], target / 100.0) for i in g["run_ids"]]
            got = [e * c.policy.energy_factor for e in spent if e is not None]
            s = mean_ci(got)
            rows.append(
                {
                    "configuration": g["configuration"],
                    "energy to target": comparison.pm(s.mean, s.ci95, s.n)
                    + (f" {c.policy.energy_unit}" if got else ""),
                    "reached": f"{len(got)} of {len(spent)} runs",
                }
            )
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.info("No per-epoch accuracy with metered epoch windows for these runs.")

    st.subheader("Energy saving vs analytic backward-FLOPs saving")
    fig = charts.savings_scatter(c, grouping.runs_frame(scoped, group_by))
    if fig is not None:
        st.plotly_chart(fig, key="savings")
        st.caption(
            "Energy saving = 1 − energy ratio to dense, with its 95% interval. Its measured "
            "share is in the legend: a saving of modelled energy follows the model's inputs "
            "(CPU time), not a meter."
        )
    else:
        st.info(
            "Needs a sparse configuration and its dense baseline (same model and dataset, drop "
            "rate 0) with energy and FLOPs figures."
        )

# -- where ssProp saves energy (recorded `greentrain bench ssprop` runs) ----------------------
if n_runs:
    st.subheader("Where ssProp saves energy, and where it does not")
    bench_runs, _ = sh.read_page(status="finished", tags={"bench": "ssprop"})
    bench_rows = where.rows_from_runs(bench_runs)
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

"""The Compare page's charts: every one shows n and a 95% interval, colours come from
:mod:`greentrain.report.palette`, units from :mod:`greentrain.report.unit_policy`, and every
text from a run is escaped for plotly (:func:`~greentrain.report.escape.html_text`)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from greentrain.report import palette
from greentrain.report.comparison import Comparison
from greentrain.report.curves import accuracy_curve
from greentrain.report.escape import html_text
from greentrain.report.stats import mean_ci, missing
from greentrain.report.versus_dense import Ratio, ratios_to_dense

TICKS = ",.3~r"  # d3-format: 3 significant digits with separators, never e-notation


LABEL_CHARS = 48  # an axis label longer than this is cut (the hover has it whole)


def _row_label(schedule: object, rate: object, settings: object) -> str:
    base = "dense" if not missing(rate) and float(rate) == 0.0 else str(schedule)
    label = base + (f", {settings}" if settings else "")
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def ratio_heatmap(c: Comparison) -> go.Figure | None:
    """Accuracy per energy over dense by schedule (and settings) x drop rate: each cell the ratio,
    its 95% interval and n; the colour scale is centred on 1.0x on a log scale."""
    g = c.groups
    if g.empty:
        return None
    ratios = {row.configuration: row.ratio for row in c.rows}
    cells = []
    for _, r in g.iterrows():
        ratio: Ratio | None = ratios.get(r["configuration"])
        if ratio is None or ratio.estimate is None or not math.isfinite(ratio.estimate):
            continue
        interval = (
            f"[{ratio.low:.2f}, {ratio.high:.2f}]" if ratio.low is not None else "no interval"
        )
        cells.append(
            {
                "row": html_text(_row_label(r["schedule"], r["drop_rate"], r["settings"])),
                "drop": "n/a" if missing(r["drop_rate"]) else f"{float(r['drop_rate']):g}",
                "log": math.log(ratio.estimate) if ratio.estimate > 0 else 0.0,
                "text": f"{ratio.estimate:.2f}×<br>{interval}<br>n={ratio.n}",
            }
        )
    if not cells:
        return None
    df = pd.DataFrame(cells)
    z = df.pivot_table(index="row", columns="drop", values="log", aggfunc="first")
    text = df.pivot_table(index="row", columns="drop", values="text", aggfunc="first")
    low, high = palette.ratio_range(math.exp(v) for v in df["log"])
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=list(z.columns),
            y=list(z.index),
            text=text.reindex_like(z).fillna("").to_numpy(),
            texttemplate="%{text}",
            hovertemplate="%{y}, drop %{x}: %{text}<extra></extra>",
            colorscale=[list(p) for p in palette.RATIO_SCALE],
            zmin=math.log(low),
            zmax=math.log(high),
            zmid=0.0,
            colorbar=dict(
                title="× dense",
                tickvals=[math.log(low), 0.0, math.log(high)],
                ticktext=[f"{low:.2f}×", "1.00×", f"{high:.2f}×"],
            ),
        )
    )
    fig.update_layout(
        title=f"Accuracy per {c.policy.energy_unit} vs dense (× dense, 95% interval, n)",
        xaxis_title="drop rate",
        yaxis_title="schedule",
        height=max(320, 110 * len(z.index)),
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category", automargin=True)
    return fig


def pareto_scatter(c: Comparison, front: list[str]) -> go.Figure | None:
    """Accuracy vs energy per configuration, with 95% interval error bars and n in the legend."""
    g = c.groups.dropna(subset=["accuracy_mean", "energy_kwh_mean"])
    if g.empty:
        return None
    colours = palette.colours(c.groups["configuration"])
    ef = c.policy.energy_factor
    fig = go.Figure()
    for _, r in g.iterrows():
        label = str(r["configuration"])
        modelled = next((row.modelled for row in c.rows if row.configuration == label), False)
        fig.add_trace(
            go.Scatter(
                x=[r["energy_kwh_mean"] * ef],
                y=[r["accuracy_mean"] * 100],
                error_x=dict(type="data", array=[_zero(r["energy_kwh_ci95"]) * ef]),
                error_y=dict(type="data", array=[_zero(r["accuracy_ci95"]) * 100]),
                mode="markers",
                marker=dict(
                    size=13,
                    color=colours.get(label),
                    symbol="circle-open" if modelled else "circle",
                    line=dict(width=2, color=colours.get(label)),
                ),
                name=html_text(f"{label} (n={int(r['n_runs'])})" + (" ≈" if modelled else "")),
            )
        )
    pts = g.set_index("configuration").loc[front] if front else g.iloc[0:0]
    fig.add_trace(
        go.Scatter(
            x=pts["energy_kwh_mean"] * ef,
            y=pts["accuracy_mean"] * 100,
            mode="lines",
            line=dict(shape="hv", dash="dash", color="black"),
            name="Pareto front",
        )
    )
    return _titled(
        fig,
        "Accuracy vs energy (mean, 95% interval over seeds)",
        f"energy per run ({c.policy.energy_unit})",
        "final accuracy (%)",
        x_ticks=TICKS,
    )


def _titled(
    fig: go.Figure, title: str, x_title: str, y_title: str, x_ticks: str | None = None
) -> go.Figure:
    """``fig`` with its title, axis titles and the legend below the plot (every chart of the
    page reads alike); ``x_ticks``: the x axis's tick format."""
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend=dict(orientation="h", yanchor="top", y=-0.2),
    )
    if x_ticks is not None:
        fig.update_xaxes(tickformat=x_ticks)
    return fig


def _zero(v: object) -> float:
    return 0.0 if missing(v) else float(v)  # type: ignore[arg-type]


def energy_to_accuracy(c: Comparison, runs: list[dict]) -> go.Figure | None:
    """Mean accuracy vs mean cumulative energy per epoch (epochs numbered from 1), per
    configuration, with 95% intervals over its runs on both axes."""
    by_id = {r.get("id"): r for r in runs}
    colours = palette.colours(c.groups["configuration"])
    ef = c.policy.energy_factor
    fig = go.Figure()
    drawn = False
    for _, g in c.groups.iterrows():
        per_epoch: dict[int, list[tuple[float, float]]] = {}
        for rid in g["run_ids"]:
            for k, rec in enumerate(accuracy_curve(by_id[rid]) if rid in by_id else []):
                if rec.get("cum_energy_kwh") is not None and rec.get("test_acc") is not None:
                    per_epoch.setdefault(k + 1, []).append((rec["cum_energy_kwh"], rec["test_acc"]))
        if not per_epoch:
            continue
        xs, ys, ex, ey, ns = [], [], [], [], []
        for epoch in sorted(per_epoch):
            e = mean_ci(v[0] * ef for v in per_epoch[epoch])
            a = mean_ci(v[1] * 100 for v in per_epoch[epoch])
            xs.append(e.mean)
            ys.append(a.mean)
            ex.append(_zero(e.ci95))
            ey.append(_zero(a.ci95))
            ns.append(f"epoch {epoch}, n={e.n}")
        label = str(g["configuration"])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                error_x=dict(type="data", array=ex),
                error_y=dict(type="data", array=ey),
                text=ns,
                mode="lines+markers",
                line=dict(color=colours.get(label)),
                name=html_text(f"{label} (n={int(g['n_runs'])})"),
                hovertemplate="%{text}: %{y:.1f}% at %{x:,.3~r}<extra></extra>",
            )
        )
        drawn = True
    if not drawn:
        return None
    return _titled(
        fig,
        "Test accuracy vs cumulative energy (mean per epoch, 95% interval)",
        f"cumulative energy ({c.policy.energy_unit})",
        "test accuracy (%)",
        x_ticks=TICKS,
    )


def savings_scatter(c: Comparison, frame: pd.DataFrame) -> go.Figure | None:
    """Energy saving vs analytic backward-FLOPs saving per sparse configuration, the energy
    saving with its 95% interval (from the energy ratio to dense) and n."""
    energy = ratios_to_dense(frame, "energy_kwh")
    flops = ratios_to_dense(frame, "backward_flops")
    colours = palette.colours(c.groups["configuration"])
    fig = go.Figure()
    drawn = False
    for row in c.rows:
        er, fr = energy.get(row.configuration), flops.get(row.configuration)
        if palette.is_dense_label(row.configuration) or er is None or fr is None:
            continue
        if er.estimate is None or fr.estimate is None:
            continue
        y = (1 - er.estimate) * 100
        up = 0.0 if er.low is None else (1 - er.low) * 100 - y
        down = 0.0 if er.high is None else y - (1 - er.high) * 100
        fig.add_trace(
            go.Scatter(
                x=[(1 - fr.estimate) * 100],
                y=[y],
                error_y=dict(type="data", symmetric=False, array=[up], arrayminus=[down]),
                mode="markers",
                marker=dict(size=13, color=colours.get(row.configuration)),
                name=html_text(f"{row.configuration} (n={er.n}; {row.measured} measured)"),
            )
        )
        drawn = True
    if not drawn:
        return None
    fig.add_trace(
        go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line=dict(dash="dot"), name="equal")
    )
    return _titled(
        fig,
        "Energy saving vs FLOPs saving (95% interval, measured share in the legend)",
        "backward FLOPs saving vs dense (%)",
        "energy saving vs dense (%)",
    )

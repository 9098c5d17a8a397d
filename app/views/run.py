"""Run: one run in detail -- energy and power per epoch, accuracy per epoch, every meter side
by side with its disagreement, the provenance of each number, the command and environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

from greentrain.report import curves  # noqa: E402
from greentrain.report import runs as run_figures  # noqa: E402
from greentrain.report.escape import markdown_text  # noqa: E402
from greentrain.report.formatting import (  # noqa: E402
    energy_unit,
    fmt_co2_g,
    fmt_energy_kwh,
)
from greentrain.report.provenance import energy_split, measured_share, split_sentence  # noqa: E402
from greentrain.report.reading import check_number  # noqa: E402
from greentrain.units import joules_to_kwh, kwh_to_joules  # noqa: E402

ACCURACY_METRICS = ("test_acc", "val_acc", "eval_accuracy", "accuracy")


def energy_text(joules: object) -> str | None:
    """Joules as readable energy (``56.2 Wh``); None for a value that is not a number."""
    value = check_number(joules, nonnegative=True)[0]
    return None if value is None else fmt_energy_kwh(joules_to_kwh(value))


def _epoch_number(index: object, position: int) -> int:
    """An epoch window's number from 1 (its 0-based index + 1; its position without one)."""
    if isinstance(index, int) and not isinstance(index, bool):
        return index + 1
    return position + 1


def _from_one(epochs: list) -> list:
    """Epoch numbers from 1: a script that logs from 0 (Lightning's ``current_epoch``) is
    shifted by one, so the accuracy and energy charts number the same epoch alike."""
    numbers = [e for e in epochs if isinstance(e, int) and not isinstance(e, bool)]
    shift = 1 if numbers and min(numbers) == 0 else 0
    return [e + shift if isinstance(e, int) and not isinstance(e, bool) else e for e in epochs]


LISTED = 100  # the newest runs the selector lists; any other opens by id (?run=ID)


def _label(run: dict) -> str:
    return f"{run['name']} · {run['status']} · {run['id'][:12]}"


if sh.page_header("Run"):
    listed, _ = sh.read_page(limit=LISTED, summary=True)
    labels = {r["id"]: _label(r) for r in listed}
    wanted = st.query_params.get("run")
    opened = sh.read_run(wanted) if wanted else None
    if wanted and opened is None:
        st.warning(f"No single run has the id or prefix {markdown_text(wanted)!s}.")
    if opened is None:  # open on the last finished run
        last, _ = sh.read_page(status="finished", limit=1, summary=True)
        default = last[-1]["id"] if last else listed[-1]["id"]
        if last:
            labels.setdefault(default, _label(last[-1]))
    else:
        default = opened["id"]
        labels.setdefault(default, _label(opened))
    ids = list(labels)
    run_id = st.selectbox(
        f"Run (the newest {LISTED}; open any other with ?run=ID)",
        ids,
        index=ids.index(default),
        format_func=labels.get,
    )
    run = opened if opened is not None and opened["id"] == run_id else sh.read_run(run_id)
    if run is None:
        st.error(f"Run {run_id} is no longer in the store.")
        st.stop()

    est = run_figures.run_is_estimated(run)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", run["status"])
    c2.metric("Energy", sh.fmt_kwh(run_figures.run_energy_kwh(run), measured_share([run])))
    co2 = run.get("co2_g")
    c3.metric("CO2e", fmt_co2_g(check_number(co2, nonnegative=True)[0]))
    acc = run_figures.final_accuracy(run)
    c4.metric("Final accuracy", "n/a" if acc is None else f"{acc * 100:.2f} %")
    note = run.get("totals_note")
    if run.get("incomplete") is True and isinstance(note, str):  # a group missing nodes
        st.warning("Incomplete run group: " + markdown_text(note) + ".")
    if est:
        st.warning(
            "At least one energy figure of this run is an estimate, not a measurement: "
            + markdown_text(split_sentence(energy_split([run])))
            + "."
        )

    st.subheader("Energy by domain (best figure and its provenance)")
    dom_rows, alt_rows = [], []
    for domain, d in (run.get("energy") or {}).items():
        if not isinstance(d, dict):
            continue
        if d.get("energy_j") is None:
            dom_rows.append(
                {
                    "domain": domain,
                    "energy": None,
                    "source": "not measured",
                    "estimated": None,
                    "note": d.get("reason", ""),
                }
            )
            continue
        dom_rows.append(
            {
                "domain": domain,
                "energy": energy_text(d["energy_j"]),
                "source": d["source"],
                "estimated": d.get("estimated"),
                "note": ", ".join(
                    f"{k}: {energy_text(v)}" for k, v in (d.get("devices") or {}).items()
                ),
            }
        )
        alt_rows.append(
            {
                "domain": domain,
                "meter": d["source"],
                "energy": energy_text(d["energy_j"]),
                "disagreement vs best (%)": 0.0,
                "role": "best",
            }
        )
        for a in d.get("alternatives") or []:
            alt_rows.append(
                {
                    "domain": domain,
                    "meter": f"{a['meter']}:{a['method']}",
                    "energy": energy_text(a["energy_j"]),
                    "disagreement vs best (%)": a.get("disagreement_pct"),
                    "role": "alternative",
                }
            )
    st.dataframe(pd.DataFrame(dom_rows), hide_index=True)
    st.subheader("Meters side by side")
    if alt_rows:
        st.dataframe(pd.DataFrame(alt_rows), hide_index=True)
    st.dataframe(pd.DataFrame(run.get("meters") or []), hide_index=True)

    st.subheader("Per epoch")
    wins = curves.epoch_windows(run)
    if wins:
        kwh = curves.epoch_energies_kwh(run)
        unit, per_kwh = energy_unit(max((e for e in kwh if e is not None), default=None))
        wdf = pd.DataFrame(
            {
                # windows are indexed from 0; epochs are numbered from 1 on every page
                "epoch": [_epoch_number(w.get("index"), k) for k, w in enumerate(wins)],
                f"energy ({unit})": [None if e is None else e * per_kwh for e in kwh],
                "duration (s)": [w.get("duration_s") for w in wins],
            }
        )
        wdf["mean power (W)"] = [
            None if e is None or not t else kwh_to_joules(e) / t
            for e, t in zip(kwh, wdf["duration (s)"], strict=True)
        ]
        fig = px.bar(wdf, x="epoch", y=f"energy ({unit})", title="Energy per epoch")
        fig.update_yaxes(tickformat=sh.TICKS)
        st.plotly_chart(fig, key="epoch_e")
        fig = px.line(wdf, x="epoch", y="mean power (W)", markers=True, title="Mean power")
        fig.update_yaxes(tickformat=sh.TICKS)
        st.plotly_chart(fig, key="epoch_p")
    else:
        st.info("This run recorded no epoch windows (the script did not call client.window).")
    # the accuracy the script logged: greentrain's jobs log test_acc, Lightning scripts val_acc,
    # the Hugging Face Trainer eval_accuracy
    logged = [m for m in run.get("metrics") or [] if isinstance(m, dict)]
    metric = next(
        (k for k in ACCURACY_METRICS if any(check_number(m.get(k))[0] is not None for m in logged)),
        None,
    )
    curve = [m for m in logged if metric and check_number(m.get(metric))[0] is not None]
    if curve:
        adf = pd.DataFrame(
            {
                "epoch": _from_one([m.get("epoch", m.get("step")) for m in curve]),
                f"{metric} (%)": [m[metric] * 100 for m in curve],
            }
        )
        st.plotly_chart(
            px.line(adf, x="epoch", y=f"{metric} (%)", markers=True, title="Accuracy"),
            key="epoch_acc",
        )

    forecasts = run_figures.recorded_forecasts(run)
    if forecasts:
        st.subheader("Energy forecast vs actual")
        actual = run_figures.run_energy_kwh(run)
        unit, per_kwh = energy_unit(max(f["total_kwh"] for f in forecasts))

        def scaled(key: str) -> list[float | None]:
            return [None if f[key] is None else f[key] * per_kwh for f in forecasts]

        fdf = pd.DataFrame(
            {
                "after epoch": [f["epochs_done"] for f in forecasts],
                f"forecast ({unit})": scaled("total_kwh"),
                "low": scaled("low_kwh"),
                "high": scaled("high_kwh"),
            }
        )
        fdf["above"] = fdf["high"] - fdf[f"forecast ({unit})"]
        fdf["below"] = fdf[f"forecast ({unit})"] - fdf["low"]
        fig = px.line(
            fdf,
            x="after epoch",
            y=f"forecast ({unit})",
            error_y="above",
            error_y_minus="below",
            markers=True,
            title="Forecast of the run's total energy, with its 95% interval",
        )
        if actual is not None and run.get("status") != "running":
            fig.add_hline(
                y=actual * per_kwh,
                line_dash="dash",
                annotation_text=f"actual: {fmt_energy_kwh(actual)} ({run['status']})",
            )
        fig.update_yaxes(tickformat=sh.TICKS)
        st.plotly_chart(fig, key="forecast")

    st.subheader("Carbon factors")
    st.json(run.get("carbon") or {"note": "no carbon intensity recorded"})
    st.subheader("Command and environment")
    st.code(" ".join(run.get("command") or []), language="bash")
    st.json(
        {
            "cwd": run.get("cwd"),
            "git": run.get("git"),
            "env": run.get("env"),
            "config": run.get("config"),
            "tags": run.get("tags"),
        }
    )

"""Render a ``bench ssprop`` result: rich tables for people, Markdown for the README.

Times are shown in milliseconds, energy in joules per step, ratios as ``median [low-high]`` of
per-round ratios to dense with the 95% confidence interval of that median (a schedule: the mean
and its interval; see :mod:`greentrain.bench.stats`). Each non-dense variant gets a verdict
against the fastest dense configuration from that interval
(:func:`greentrain.report.where.verdict`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from greentrain.bench.stats import headline, headline_interval
from greentrain.report.where import figure, verdict


def _ms(stats: dict | None) -> str:
    if not stats:
        return "-"
    return f"{stats['median'] * 1e3:.1f} [{stats['p10'] * 1e3:.1f}-{stats['p90'] * 1e3:.1f}]"


def _ratio(r: dict | None, spread: bool = True, schedule: bool = False) -> str:
    value = headline(r, schedule)
    if value is None:
        return "-"
    interval = headline_interval(r, schedule)
    if spread and interval:
        return f"{value:.3f} [{interval['low']:.2f}-{interval['high']:.2f}]"
    return f"{value:.3f}"


def _figure(r: dict | None, schedule: bool) -> dict:
    interval = headline_interval(r, schedule) or {}
    return figure(
        headline(r, schedule), interval.get("low"), interval.get("high"), interval.get("level")
    )


def variant_verdict(v: dict) -> str:
    """The verdict of one variant against the fastest dense (J/step where measured, else step
    time), from the confidence interval over paired rounds; ``-`` for dense variants."""
    if v["kind"] == "dense":
        return "-"
    schedule = v["kind"] == "schedule"
    f = v["ratios_vs_fastest_dense"]
    return verdict(_figure(f.get("energy"), schedule), _figure(f.get("step_time"), schedule))


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _energy(v: dict, result: dict) -> str:
    if not result["energy"]["available"]:
        return "n/a: no NVML"
    e = v["energy_j_per_step"]
    return "-" if not e else f"{e['median']:.2f} (mean {e['mean']:.2f})"


def title(result: dict) -> str:
    """One line naming what was measured and where."""
    c, env = result["config"], result["env"]
    shape = "x".join(str(s) for s in c["input_shape"])
    layout = "channels_last" if c["channels_last"] else "contiguous"
    comp = ", compiled" if c["compile"] else ""
    return (
        f"ssprop vs dense: {c['model']} ({c['stem']} stem), batch {c['batch_size']}, {shape}, "
        f"{c['dtype']}, {layout}{comp}, {c['device']} ({env['device_name']}, "
        f"{env['num_threads']} threads), {c['steps']} rounds{_sparse_settings(c)}"
    )


def _sparse_settings(c: dict) -> str:
    """The sparse variants' non-default ssprop settings (older results lack the keys)."""
    parts = []
    if c.get("backend", "auto") != "auto":
        parts.append(f"backend {c['backend']}")
    if c.get("reselect_every", 1) != 1:
        parts.append(f"reselect every {c['reselect_every']}")
    if c.get("min_channels", 0):
        parts.append(f"min channels {c['min_channels']}")
    return "; sparse: " + ", ".join(parts) if parts else ""


def _variant_rows(result: dict) -> list[list[str]]:
    rows = []
    for v in result["variants"]:
        dense_ref = v["kind"] == "dense" and v["name"] == "dense"
        r, f = v["ratios"], v["ratios_vs_fastest_dense"]
        sch = v["kind"] == "schedule"
        rows.append(
            [
                v["name"],
                v["layout"],
                _ms(v["step_time_s"]),
                "1 (ref)" if dense_ref else _ratio(r["step_time"], schedule=sch),
                _ratio(f["step_time"], schedule=sch),
                _ms(v["backward_time_s"]),
                "1 (ref)" if dense_ref else _ratio(r["backward_time"], schedule=sch),
                _ratio(f["backward_time"], schedule=sch),
                _energy(v, result),
                "n/a" if not result["energy"]["available"] else _ratio(r["energy"], schedule=sch),
                variant_verdict(v),
            ]
        )
    return rows


VARIANT_HEADERS = [
    "variant",
    "layout",
    "step ms [p10-p90]",
    "step x dense",
    "step x fastest dense",
    "backward ms [p10-p90]",
    "bwd x dense",
    "bwd x fastest dense",
    "J/step",
    "J x dense",
    "verdict vs fastest dense",
]


def _layer_headers(result: dict) -> list[str]:
    heads = ["layer", "shape", "dense ms", "other layout ms"]
    if result["layers"]:
        for s in result["layers"][0]["sparse"]:
            heads.append(f"{s['variant']} ms (x dense / x fastest)")
    return heads


def _layer_rows(result: dict) -> list[list[str]]:
    rows = []
    for row in result["layers"]:
        k = "x".join(str(v) for v in row["kernel_size"])
        st = row["stride"][0]
        hw = "x".join(str(v) for v in row["input_hw"])
        shape = f"{row['in_channels']}->{row['out_channels']} k{k} s{st} @{hw}"
        if not row["needs_input_grad"]:
            shape += " (no grad_input)"
        cells = [
            row["name"],
            shape,
            f"{row['dense_backward_s'] * 1e3:.2f}",
            f"{row['dense_alt_layout_backward_s'] * 1e3:.2f}",
        ]
        for s in row["sparse"]:
            mark = "" if s["converted"] else " (not converted)"
            cells.append(
                f"{s['backward_s'] * 1e3:.2f} ({_x(s['ratio'])} / "
                f"{_x(s['ratio_vs_fastest_dense'])}){mark}"
            )
        rows.append(cells)
    total = result.get("layers_total")
    if total:
        cells = [
            "all convs (sum of medians)",
            "",
            f"{total['dense_backward_s'] * 1e3:.2f}",
            f"fastest {total['fastest_dense_backward_s'] * 1e3:.2f}",
        ]
        for s in total["sparse"]:
            cells.append(
                f"{s['backward_s'] * 1e3:.2f} ({_x(s['ratio'])} / "
                f"{_x(s['ratio_vs_fastest_dense'])})"
            )
        rows.append(cells)
    return rows


PHASE_HEADERS = [
    "variant",
    "bwd FLOPs x",
    "fwd ms",
    "bwd ms",
    "opt ms",
    "fwd s x",
    "bwd s x",
    "opt s x",
    "fwd J",
    "bwd J",
    "opt J",
    "bwd J x",
]


def _phase_rows(result: dict) -> list[list[str]]:
    """One row per steady variant of the ``--phases`` section (ratios to same-settings dense)."""
    rows = []
    for v in (result.get("phases") or {}).get("variants", []):
        seconds = [v[p]["seconds"] for p in ("forward", "backward", "optimizer")]
        joules = [v[p]["joules"] for p in ("forward", "backward", "optimizer")]
        rows.append(
            [v["variant"], _x(v["backward_flops_ratio"])]
            + ["-" if s is None else f"{s * 1e3:.2f}" for s in seconds]
            + [_x(v[p]["seconds_ratio"]) for p in ("forward", "backward", "optimizer")]
            + ["n/a" if j is None else f"{j:.3f}" for j in joules]
            + [_x(v["backward"]["joules_ratio"])]
        )
    return rows


def schedule_line(result: dict) -> str | None:
    """The bar-schedule check in one sentence, or None if it was not run."""
    s = result.get("schedule")
    if not s:
        return None
    ph = s["phase_step_time_ratios"]
    return (
        f"bar schedule (period {s['period_epochs']} epochs, drop {s['drop_rate']:g}): mean step "
        f"time {_x(s['mean_step_time_ratio'])} x dense (mean of per-step ratios over "
        f"{len(s['rates'])} steps, {s['sparse_fraction']:.0%} sparse; ratio of total time "
        f"{_x(s.get('ratio_of_total_time'))}); "
        f"per phase (medians): dense {_x(ph['dense_phase'])}, "
        f"sparse {_x(ph['sparse_phase'])}, mean of phases {_x(s['mean_of_phase_ratios'])}"
    )


def footnotes(result: dict) -> list[str]:
    """Method notes printed under the tables."""
    notes = [
        "Ratios: median [95% confidence interval] of per-round ratios (a schedule's: their "
        "mean, its time in units of dense; variants interleaved, order rotated each round); "
        "a verdict says saves/costs only when the interval excludes 1; "
        "'fastest dense' = the dense layout with the lowest median ratio to dense "
        "for that metric "
        f"(step: {result['dense_baseline']['fastest']['step_time']}, backward: "
        f"{result['dense_baseline']['fastest']['backward_time']}).",
    ]
    if not result["energy"]["available"]:
        notes.append(f"Energy per step: {result['energy']['reason']}.")
    else:
        notes.append(
            f"Energy per step: {result['energy']['source']} ({result['env']['energy_device']})."
        )
    if result["layers"]:
        notes.append(
            "Per layer: backward (torch.autograd.grad) of each conv alone on a captured input and "
            "grad_output, eager, median of layer_reps interleaved repetitions."
        )
    if result.get("phases"):
        ph = result["phases"]
        why = f" Joules: n/a, {ph['joules_reason']}." if ph.get("joules_reason") else ""
        notes.append(
            "Per phase: forward, backward and optimizer step of each variant alone, median of "
            f"{ph['rounds']} rotated rounds of blocks; x = ratio to {ph['baseline']}; backward "
            f"FLOPs analytic (ssprop.flops).{why}"
        )
    if result.get("run_id"):
        notes.append(f"Recorded as run {result['run_id']}.")
    return notes


def print_rich(result: dict, console: Any = None) -> None:
    """Print the variant table, the per-layer table and the schedule check with rich."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
            console = Console(width=220)
    table = Table(title=escape(title(result)), title_justify="left")
    for h in VARIANT_HEADERS:
        table.add_column(escape(h), justify="left" if h in ("variant", "layout") else "right")
    for row in _variant_rows(result):
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    if result["layers"]:
        lt = Table(title="Per-layer conv backward (isolated)", title_justify="left")
        for h in _layer_headers(result):
            lt.add_column(escape(h), justify="left" if h in ("layer", "shape") else "right")
        for row in _layer_rows(result):
            lt.add_row(*(escape(c) for c in row))
        console.print(lt)
    if result.get("phases"):
        pt = Table(title="Per phase (each alone)", title_justify="left")
        for h in PHASE_HEADERS:
            pt.add_column(escape(h), justify="left" if h == "variant" else "right")
        for row in _phase_rows(result):
            pt.add_row(*(escape(c) for c in row))
        console.print(pt)
    line = schedule_line(result)
    if line:
        console.print(escape(line))
    for note in footnotes(result):
        console.print(escape(note), style="dim")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(out)


def to_markdown(result: dict, *, command: str | None = None, per_layer: bool = True) -> str:
    """The result as Markdown (the README's performance table)."""
    parts = [f"**{title(result)}**", "", _md_table(VARIANT_HEADERS, _variant_rows(result))]
    line = schedule_line(result)
    if line:
        parts += ["", line]
    if result.get("phases"):
        parts += ["", "Per phase (each alone):", "", _md_table(PHASE_HEADERS, _phase_rows(result))]
    if per_layer and result["layers"]:
        parts += ["", "Per-layer conv backward (isolated):", ""]
        parts.append(_md_table(_layer_headers(result), _layer_rows(result)))
    parts += [""] + [f"- {n}" for n in footnotes(result)]
    if command:
        parts += ["", f"Command: `{command}`"]
    return "\n".join(parts) + "\n"

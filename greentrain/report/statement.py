"""The carbon statement for a paper's compute section: hardware, total energy (failed runs
included), carbon intensity with its source and year, PUE, which meters measured what, which
figures are estimates, and each method's uncertainty -- stated assumptions where no vendor
figure exists.

The statement is plain text: the paragraph goes through
:func:`~greentrain.report.escape.plain_text` once, so no control character of a run's strings
reaches it. Values that could not be read (:mod:`greentrain.report.reading`) are left out and
listed at its end.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from greentrain.report.escape import as_str, plain_text
from greentrain.report.formatting import fmt_sig
from greentrain.report.grouping import runs_frame
from greentrain.report.reading import Issue, RunReader, issue_lines, summarize
from greentrain.report.runs import carbon_factors, domain_energy_j, run_is_estimated
from greentrain.report.study import study_totals

# Assumed relative uncertainty of each measurement method (stated assumptions, see statement()).
METHOD_UNCERTAINTY: dict[str, str] = {
    "counter": (
        "GPU energy counter read through NVML: NVIDIA documents power readings as accurate to "
        "within +/-5% only for Fermi and Kepler GPUs and documents no figure for newer ones; we "
        "assume +/-5% (stated assumption)"
    ),
    "sampled": (
        "power sampled through NVML and integrated over time: we assume +/-10%, the sensor's "
        "error plus the integration error of the sampling interval (stated assumption)"
    ),
    "zeus": "Zeus (NVML energy counter or sampled power): we assume +/-5% (stated assumption)",
    "rapl": (
        "Intel/AMD RAPL energy counters: the vendors document no accuracy figure; we assume "
        "+/-10% (stated assumption)"
    ),
    "codecarbon": (
        "CodeCarbon (offline mode; its own sensors or TDP-based model): we assume +/-20% "
        "(stated assumption)"
    ),
    "estimated": (
        "estimated from a power model (CPU time x per-core share of TDP, memory x W/GB, after "
        "Green Algorithms' conventions), not measured: correct to an order of magnitude only "
        "(stated assumption)"
    ),
    "fake": "a fake meter used in tests: not a measurement",
}


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _hardware(runs: list[dict], issues: list[Issue]) -> str:
    setups: Counter = Counter()
    for run in runs:
        r = RunReader(run, issues)
        env = r.mapping(r.run.get("env"), "env")
        models = env.get("gpu_models")
        if isinstance(models, str) or not isinstance(models, (list, tuple, type(None))):
            r.flag("env.gpu_models", models, "shown as one GPU model", "not a list")
            models = [models]
        gpus = Counter(
            as_str(r.text(m, f"env.gpu_models[{i}]")) for i, m in enumerate(models or [])
        )
        gdesc = " + ".join(f"{n}x {m}" for m, n in sorted(gpus.items())) or "no GPU"
        cpu = r.text(env.get("cpu_model"), "env.cpu_model") or "of unrecorded model"
        setups[f"{gdesc}, CPU {cpu}"] += 1
    return _join([f"{s} ({n} runs)" for s, n in sorted(setups.items())]) or "not recorded"


def _energy_issues(issues: list[Issue]) -> bool:
    return any(i.field.startswith(("energy.", "energy_kwh", "energy_j")) for i in issues)


def _carbon_order(item: tuple[tuple, int]) -> tuple:
    intensity, source, year, pue, place = item[0]
    return (intensity, source, year, math.inf if pue is None else pue, place)


def _method_of(source: str) -> str:
    return source.split(":", 1)[1] if ":" in source else source


def statement(runs: Iterable[dict]) -> str:
    """A paragraph for a paper: hardware, total energy (failed runs included), carbon intensity
    (source, year), PUE, which meters measured what, which numbers are estimates, and each
    method's uncertainty, labelled as stated assumptions where no vendor figure exists."""
    runs = list(runs)
    if not runs:
        return "No runs were selected, so there is no energy to report.\n"
    issues: list[Issue] = [i for found in runs_frame(runs)["issues"] for i in found]
    totals = study_totals(runs)
    allt = totals.loc["all"]
    by_status = ", ".join(
        f"{int(t['runs'])} {status} ({fmt_sig(t['energy_kwh'])} kWh)"
        for status, t in totals.iterrows()
        if status != "all"
    )
    wasted = sum(
        float(totals.loc[s, "energy_kwh"]) for s in ("failed", "interrupted") if s in totals.index
    )
    out = [
        f"Experiments ran on the following hardware: {_hardware(runs, issues)}.",
        f"The study comprised {int(allt['runs'])} runs ({by_status}) that used "
        f"{fmt_sig(allt['energy_kwh'])} kWh in total, failed and interrupted runs included "
        f"({fmt_sig(wasted)} kWh of it in runs that did not finish), and emitted "
        f"{fmt_sig(allt['co2_g'] / 1000.0)} kg CO2e over {fmt_sig(allt['duration_s'] / 3600.0)} "
        "hours of run time.",
    ]
    if allt["unmeasured_runs"]:
        out.append(
            f"{int(allt['unmeasured_runs'])} runs have no energy figure (no meter was available"
            + (", or its figure could not be read" if _energy_issues(issues) else "")
            + ") and are not included in these totals, which are therefore lower bounds."
        )
    carbon = Counter()
    for run in runs:
        r = RunReader(run, issues)
        c = r.mapping(r.run.get("carbon"), "carbon")
        intensity, pue, _ = carbon_factors(run, issues)
        if intensity is not None:
            year = c.get("year")
            if isinstance(year, int) and not isinstance(year, bool):
                year = str(year)
            place = " ".join(
                r.text(c.get(k), f"carbon.{k}") or "" for k in ("country", "region") if c.get(k)
            )
            carbon[
                (
                    intensity,
                    r.text(c.get("source"), "carbon.source") or "unknown source",
                    "year not recorded" if year is None else r.text(year, "carbon.year"),
                    pue,
                    place,
                )
            ] += 1
    if carbon:
        descs = [
            f"{i:g} gCO2e/kWh ({src}, {year}{', ' + place if place else ''}) with "
            + ("an unreadable PUE" if pue is None else f"a PUE of {pue:g}")
            + f" ({n} runs)"
            for (i, src, year, pue, place), n in sorted(carbon.items(), key=_carbon_order)
        ]
        out.append(
            "Emissions were computed from the metered energy with a carbon intensity of "
            + _join(descs)
            + "; these are average intensities, and the marginal intensity at the time of the "
            "runs may differ substantially."
        )
    else:
        out.append("No carbon intensity was recorded, so no emissions are stated.")
    measured: dict[tuple[str, str], int] = Counter()
    unavailable: dict[tuple[str, str], int] = Counter()
    methods: set[str] = set()
    n_est = 0
    for run in runs:
        if run_is_estimated(run, issues):
            n_est += 1
        r = RunReader(run, issues)
        for domain, dom in r.energy().items():
            if dom.get("energy_j") is None:
                why = r.text(dom.get("reason"), f"energy.{domain}.reason")
                unavailable[(domain, why or "no reason recorded")] += 1
            elif domain_energy_j(run, domain, dom, issues) is not None:
                src = r.text(dom.get("source"), f"energy.{domain}.source") or "unknown"
                measured[(domain, src)] += 1
                methods.add(_method_of(src))
    if measured:
        out.append(
            "Energy was metered per domain as follows: "
            + _join(
                [f"{d.upper()} by {src} in {n} runs" for (d, src), n in sorted(measured.items())]
            )
            + "."
        )
    if unavailable:
        out.append(
            "Not measured: "
            + _join(
                [f"{d.upper()} in {n} runs ({why})" for (d, why), n in sorted(unavailable.items())]
            )
            + "; those domains are missing from the totals, not counted as zero."
        )
    if n_est:
        out.append(
            f"The energy of {n_est} of {len(runs)} runs includes estimated (not measured) figures;"
            " they are marked in every table."
        )
    else:
        out.append("No figure in these totals is an estimate.")
    unc = [METHOD_UNCERTAINTY[m] for m in sorted(methods) if m in METHOD_UNCERTAINTY]
    unknown = sorted(m for m in methods if m not in METHOD_UNCERTAINTY)
    if unc:
        out.append("Measurement uncertainty by method: " + "; ".join(unc) + ".")
    if unknown:
        out.append(f"No uncertainty is known for the method(s) {_join(unknown)}.")
    listed = issue_lines(summarize(issues))
    if listed:
        out.append(
            "Values that could not be read were left out of these figures (never counted as "
            "0): " + "; ".join(line.rstrip(".") for line in listed) + "."
        )
    return plain_text(" ".join(out)) + "\n"

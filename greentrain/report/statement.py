"""The carbon statement for a paper's compute section: hardware, total energy (failed runs
included), carbon intensity with its source and year, PUE, which meters measured what, which
figures are estimates, and each method's uncertainty -- stated assumptions where no vendor
figure exists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from greentrain.report.formatting import fmt_sig
from greentrain.report.runs import run_is_estimated
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


def _hardware(runs: list[dict]) -> str:
    setups: Counter = Counter()
    for r in runs:
        env = r.get("env") or {}
        gpus = Counter(env.get("gpu_models") or [])
        gdesc = " + ".join(f"{n}x {m}" for m, n in sorted(gpus.items())) or "no GPU"
        cpu = env.get("cpu_model") or "of unrecorded model"
        setups[f"{gdesc}, CPU {cpu}"] += 1
    return _join([f"{s} ({n} runs)" for s, n in sorted(setups.items())]) or "not recorded"


def _method_of(source: str) -> str:
    return source.split(":", 1)[1] if ":" in source else source


def statement(runs: Iterable[dict]) -> str:
    """A paragraph for a paper: hardware, total energy (failed runs included), carbon intensity
    (source, year), PUE, which meters measured what, which numbers are estimates, and each
    method's uncertainty, labelled as stated assumptions where no vendor figure exists."""
    runs = list(runs)
    if not runs:
        return "No runs were selected, so there is no energy to report.\n"
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
        f"Experiments ran on the following hardware: {_hardware(runs)}.",
        f"The study comprised {int(allt['runs'])} runs ({by_status}) that used "
        f"{fmt_sig(allt['energy_kwh'])} kWh in total, failed and interrupted runs included "
        f"({fmt_sig(wasted)} kWh of it in runs that did not finish), and emitted "
        f"{fmt_sig(allt['co2_g'] / 1000.0)} kg CO2e over {fmt_sig(allt['duration_s'] / 3600.0)} "
        "hours of run time.",
    ]
    if allt["unmeasured_runs"]:
        out.append(
            f"{int(allt['unmeasured_runs'])} runs have no energy figure (no meter was available)"
            " and are not included in these totals, which are therefore lower bounds."
        )
    carbon = Counter()
    for r in runs:
        c = r.get("carbon") or {}
        if c.get("intensity_g_per_kwh") is not None:
            year = c.get("year")
            place = " ".join(str(x) for x in (c.get("country"), c.get("region")) if x)
            carbon[
                (
                    float(c["intensity_g_per_kwh"]),
                    str(c.get("source") or "unknown source"),
                    "year not recorded" if year is None else str(year),
                    float(c.get("pue") or 1.0),
                    place,
                )
            ] += 1
    if carbon:
        descs = [
            f"{i:g} gCO2e/kWh ({src}, {year}{', ' + place if place else ''}) with a PUE of {pue:g}"
            f" ({n} runs)"
            for (i, src, year, pue, place), n in sorted(carbon.items())
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
    for r in runs:
        if run_is_estimated(r):
            n_est += 1
        for domain, dom in (r.get("energy") or {}).items():
            if not isinstance(dom, dict):
                continue
            if dom.get("energy_j") is None:
                unavailable[(domain, str(dom.get("reason") or "no reason recorded"))] += 1
            else:
                src = str(dom.get("source") or "unknown")
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
    return " ".join(out) + "\n"

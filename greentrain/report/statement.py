"""The carbon statement for a paper's compute section, and the study it is written from.

* :func:`statement` -- one paragraph to paste into a paper's compute section, in the order of the
  template of Lacoste et al., "Quantifying the Carbon Emissions of Machine Learning" (2019):
  where and on which hardware, how many hours of computation, the energy in kWh (failed and
  interrupted runs included), the carbon intensity with its source and year, the PUE and the
  emissions; then one sentence on which figures were measured and which estimated, and by which
  meter. Numbers are in readable units (Wh or kWh, g or kg). Meters' error strings never
  appear in it: they are in the appendix.
* :class:`Study` -- what the selected runs add up to, read once; the appendix
  (:mod:`greentrain.report.statement_appendix`) and the model card
  (:mod:`greentrain.report.model_card`) are written from it too.

Every text from a run goes through :mod:`greentrain.report.escape` for its target (plain text
for the paragraph, Markdown, LaTeX; plain text then a JSON-quoted YAML string for the model
card). Values that could not be read (:mod:`greentrain.report.reading`) are left out of every
figure and listed at the end of the paragraph and under the appendix's tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from greentrain.errors import ConfigError
from greentrain.report.citation import carbon_citation
from greentrain.report.comparison import compare
from greentrain.report.escape import as_str, plain_text
from greentrain.report.formatting import fmt_co2_g, fmt_duration_s, fmt_energy_kwh, readable
from greentrain.report.grouping import runs_frame
from greentrain.report.provenance import is_fake, source_words
from greentrain.report.reading import Issue, RunReader, issue_lines, summarize
from greentrain.report.runs import carbon_factors, domain_energy_j
from greentrain.report.study import study_totals

# Assumed relative uncertainty of each measurement method (stated assumptions).
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
UNKNOWN_UNCERTAINTY = "no uncertainty is known for this method"
# The same assumptions in a few words, for the paragraph itself.
SHORT_UNCERTAINTY: dict[str, str] = {
    "counter": "±5%",
    "sampled": "±10%",
    "zeus": "±5%",
    "rapl": "±10%",
    "codecarbon": "±20%",
    "estimated": "correct to an order of magnitude only",
    "fake": "not a measurement",
}
APPENDIX_NAME = "the appendix (greentrain export --format statement-appendix)"
TRAINING_TYPES = ("pre-training", "fine-tuning")
UNFINISHED = ("failed", "interrupted", "budget")  # statuses of runs that did not finish


def join_words(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def runs_phrase(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def method_of(source: str) -> str:
    return source.split(":", 1)[1] if ":" in source else source


def meter_of(source: str) -> str:
    return source.split(":", 1)[0]


@dataclass
class _Figures:
    """One domain's figures from one source (``meter:method``) over the selected runs."""

    runs: int = 0
    estimated: int = 0
    energy_j: float = 0.0


@dataclass
class Study:
    """Everything the statement, its appendix and the model card say, read once from the runs."""

    runs: list[dict]
    issues: list[Issue] = field(default_factory=list)
    hardware: Counter = field(default_factory=Counter)  # setup text -> runs
    carbon: Counter = field(default_factory=Counter)  # (intensity, source, year, pue, place)
    places: Counter = field(default_factory=Counter)  # "DEU", "USA CA" -> runs
    figures: dict[tuple[str, str], _Figures] = field(default_factory=dict)  # (domain, source)
    unmeasured: Counter = field(default_factory=Counter)  # (domain, reason) -> runs
    meters_down: Counter = field(default_factory=Counter)  # (meter, reason, fix) -> runs
    runs_of: dict[str, list[dict]] = field(default_factory=dict)  # source -> runs it measured
    fake_runs: int = 0  # runs with a figure from the test meter "fake"

    @classmethod
    def read(cls, runs: Iterable[dict]) -> Study:
        study = cls(list(runs))
        if study.runs:
            study.issues = [i for found in runs_frame(study.runs)["issues"] for i in found]
        for run in study.runs:
            study._read_run(run)
        return study

    def _read_run(self, run: dict) -> None:
        issues = self.issues
        r = RunReader(run, issues)
        self.hardware[_hardware_of(r)] += 1
        c = r.mapping(r.run.get("carbon"), "carbon")
        intensity, pue, _ = carbon_factors(run, issues)
        place = " ".join(
            r.text(c.get(k), f"carbon.{k}") or "" for k in ("country", "region") if c.get(k)
        )
        if place:
            self.places[place] += 1
        if intensity is not None:
            year = c.get("year")
            if isinstance(year, int) and not isinstance(year, bool):
                year = str(year)
            year = "year not stated" if year is None else r.text(year, "carbon.year")
            source = r.text(c.get("source"), "carbon.source") or "unknown source"
            self.carbon[(intensity, source, year, pue, place)] += 1
        env = r.mapping(r.run.get("env"), "env")
        fake = False
        for domain, dom in r.energy().items():
            if dom.get("energy_j") is None:
                if domain == "gpu" and not env.get("gpu_models"):
                    continue  # no GPU on the machine: nothing was missed
                why = r.text(dom.get("reason"), f"energy.{domain}.reason")
                self.unmeasured[(domain, why or "no reason recorded")] += 1
                continue
            joules = domain_energy_j(run, domain, dom, issues)
            if joules is None:
                continue
            src = r.text(dom.get("source"), f"energy.{domain}.source") or "unknown"
            measured_by = self.runs_of.setdefault(src, [])
            if not measured_by or measured_by[-1] is not run:
                measured_by.append(run)
            fake = fake or is_fake(src)
            fig = self.figures.setdefault((domain, src), _Figures())
            fig.runs += 1
            fig.energy_j += joules
            fig.estimated += r.flag_true(dom.get("estimated"), f"energy.{domain}.estimated")
        self.fake_runs += fake
        for _, m in r.records(r.run.get("meters"), "meters"):
            if m.get("available") and not m.get("error"):
                continue
            meter = r.text(m.get("meter"), "meters.meter") or "unnamed meter"
            if m.get("error"):
                why = "failed: " + (r.text(m.get("error"), "meters.error") or "")
            else:
                why = r.text(m.get("reason"), "meters.reason") or "no reason recorded"
            self.meters_down[(meter, why, r.text(m.get("fix"), "meters.fix") or "")] += 1

    def measured(self, estimated: bool) -> dict[str, list[tuple[str, int]]]:
        """domain -> [(source, runs)] of the figures that are (not) estimates."""
        out: dict[str, list[tuple[str, int]]] = {}
        for (domain, src), fig in sorted(self.figures.items()):
            n = fig.estimated if estimated else fig.runs - fig.estimated
            if n:
                out.setdefault(domain, []).append((src, n))
        return out


def _hardware_of(r: RunReader) -> str:
    env = r.mapping(r.run.get("env"), "env")
    models = env.get("gpu_models")
    if isinstance(models, str) or not isinstance(models, (list, tuple, type(None))):
        r.flag("env.gpu_models", models, "shown as one GPU model", "not a list")
        models = [models]
    gpus = Counter(as_str(r.text(m, f"env.gpu_models[{i}]")) for i, m in enumerate(models or []))
    gdesc = " + ".join(f"{n}x {m}" for m, n in sorted(gpus.items()))
    cpu = r.text(env.get("cpu_model"), "env.cpu_model")
    cdesc = (cpu if "cpu" in cpu.lower() else f"{cpu} CPU") if cpu else "a CPU of unrecorded model"
    return f"{gdesc} and {cdesc}" if gdesc else f"{cdesc}, no GPU"


def carbon_order(item: tuple[tuple, int]) -> tuple:
    intensity, source, year, pue, place = item[0]
    return (intensity, source, year, math.inf if pue is None else pue, place)


def _sources(items: list[tuple[str, int]], total_runs: int, study: Study) -> str:
    """``the GPU's NVML energy counter`` (all runs) or ``the GPU's NVML energy counter in 7
    runs and Zeus in 1 run``: each ``meter:method`` in words, with its assumed uncertainty."""

    def words(src: str) -> str:
        said = source_words(src, study.runs_of.get(src))
        return f"{said} ({SHORT_UNCERTAINTY.get(method_of(src), 'uncertainty unknown')})"

    if len(items) == 1 and items[0][1] == total_runs:
        return words(items[0][0])
    return join_words([f"{words(src)} in {runs_phrase(n)}" for src, n in items])


def _measurement_sentence(study: Study) -> str:
    """``GPU energy was measured by nvml:counter and CPU and DRAM energy was estimated by
    estimate:estimated.`` -- domains described alike are named together."""
    n = len(study.runs)
    measured, estimated = study.measured(False), study.measured(True)
    by_desc: dict[str, list[str]] = {}
    for domain in sorted(set(measured) | set(estimated), key=_domain_order):
        bits = []
        if domain in measured:
            bits.append("measured by " + _sources(measured[domain], n, study))
        if domain in estimated:
            items = estimated[domain]
            bits.append(
                (
                    "modelled: "
                    if all(meter_of(s) == "estimate" for s, _ in items)
                    else "modelled by "
                )
                + _sources(items, n, study)
            )
        by_desc.setdefault(" and ".join(bits), []).append(domain.upper())
    if not by_desc:
        return "No meter measured any energy."
    return join_words([f"{join_words(d)} energy was {desc}" for desc, d in by_desc.items()]) + "."


def _cite(source: str, year: str) -> str:
    """``IEA, Global Energy & CO2 Status Report 2019, world average (...), 2019``."""
    text, when = carbon_citation(source, year)
    return f"{text}, {when}"


def _domain_order(domain: str) -> tuple[int, str]:
    order = ("gpu", "cpu", "dram")
    return (order.index(domain) if domain in order else len(order), domain)


def refuse_fake(study: Study, allow_fake: bool) -> None:
    """ConfigError when a selected run was metered by the test meter ``fake`` and
    ``allow_fake`` is false: its figures are not measurements."""
    if study.fake_runs and not allow_fake:
        raise ConfigError(
            f"{runs_phrase(study.fake_runs)} of the selection "
            f"{'was' if study.fake_runs == 1 else 'were'} metered by the test meter "
            "'fake' (not a measurement); leave them out (--status, --tag, --run) or pass "
            "--allow-fake"
        )


def statement(runs: Iterable[dict], metric: str | None = None, allow_fake: bool = False) -> str:
    """The paragraph (see the module docstring); one line of plain text. ``metric`` is the
    accuracy metric of the comparison sentence; runs metered by the test meter are refused
    unless ``allow_fake``."""
    study = Study.read(runs)
    if not study.runs:
        return "No runs were selected, so there is no energy to report.\n"
    refuse_fake(study, allow_fake)
    n = len(study.runs)
    totals = study_totals(study.runs)
    allt = totals.loc["all"]
    wasted = sum(float(totals.loc[s, "energy_kwh"]) for s in UNFINISHED if s in totals.index)
    by_status = ", ".join(
        f"{int(t['runs'])} {status}" for status, t in totals.iterrows() if status != "all"
    )
    places = join_words([p for p, _ in study.places.most_common()])
    hardware = join_words([f"{s} ({runs_phrase(k)})" for s, k in sorted(study.hardware.items())])
    out = [
        f"Experiments were conducted on {hardware}"
        + (f", located in {places}." if places else "."),
        f"A cumulative {fmt_duration_s(allt['duration_s'])} of computation was performed over "
        f"{runs_phrase(n)} ({by_status}), using {fmt_energy_kwh(allt['energy_kwh'])} of "
        "electricity in "
        + (
            f"total, runs that failed, were interrupted or were stopped by a budget included "
            f"({fmt_energy_kwh(wasted)} of it in "
            "runs that did not finish)."
            if any(s in totals.index for s in UNFINISHED)
            else "total."
        ),
    ]
    if allt["unmeasured_runs"]:
        out.append(
            f"{runs_phrase(int(allt['unmeasured_runs']))} have no energy figure and are not "
            "included in these totals, which are therefore lower bounds."
        )
    partial = [r for r in study.runs if r.get("incomplete") is True]  # groups missing nodes
    if partial:
        what = "is a run group" if len(partial) == 1 else "are run groups"
        notes = "; ".join(str(r.get("totals_note")) for r in partial)
        out.append(f"{runs_phrase(len(partial))} {what} with fewer nodes recorded than "
                   f"expected ({notes}).")  # fmt: skip
    if allt["nested_runs"]:
        out.append(
            f"{runs_phrase(int(allt['nested_runs']))} ran nested inside another selected run, "
            "whose figures already hold their energy, so the totals count it once."
        )
    if study.carbon:
        descs = [
            f"{readable(i)} gCO2e/kWh ({_cite(src, year)}{', ' + place if place else ''}) and "
            + ("an unreadable PUE" if pue is None else f"a PUE of {pue:g}")
            + ("" if len(study.carbon) == 1 else f" ({runs_phrase(k)})")
            for (i, src, year, pue, place), k in sorted(study.carbon.items(), key=carbon_order)
        ]
        out.append(
            f"With a carbon intensity of {join_words(descs)}, total emissions come to "
            f"{fmt_co2_g(allt['co2_g'])}; the intensity is an average for the grid, and the "
            "marginal intensity at the time of the runs may differ substantially."
        )
    else:
        out.append("No carbon intensity was recorded, so no emissions are stated.")
    sentence = _measurement_sentence(study)
    down = [d.upper() for d in sorted({d for d, _ in study.unmeasured}, key=_domain_order)]
    if down:
        runs_down = sum(study.unmeasured.values())
        sentence = sentence[:-1] + (
            f"; {join_words(down)} energy was not measured in {runs_phrase(runs_down)} and is "
            "missing from the totals, not counted as zero."
        )
    out.append(sentence)
    answer = compare(study.runs, metric=metric).answer
    if answer.best is not None:
        out.append(answer.sentence())
    out.append(
        "Each meter's method and stated uncertainty, and the meters that were unavailable and "
        f"why, are listed in {APPENDIX_NAME}."
    )
    listed = issue_lines(summarize(study.issues))
    if listed:
        out.append(
            "Values that could not be read were left out of these figures (never counted as "
            "0): " + "; ".join(line.rstrip(".") for line in listed) + "."
        )
    return plain_text(" ".join(out)) + "\n"

"""A Hugging Face model card's ``co2_eq_emissions`` metadata block (YAML) for selected runs.

:func:`model_card` gives ``emissions`` in grams, ``source`` (which domains were measured or
estimated, by which meter; the carbon intensity and its source), ``training_type``,
``geographical_location`` and ``hardware_used``. Texts from runs are made plain, then written
as JSON-quoted YAML strings; values that could not be read are listed as comments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from greentrain.report.citation import carbon_citation
from greentrain.report.escape import plain_text
from greentrain.report.formatting import fmt_duration_s, fmt_energy_kwh, readable
from greentrain.report.provenance import source_words
from greentrain.report.reading import RunReader, issue_lines, summarize
from greentrain.report.statement import (
    TRAINING_TYPES,
    Study,
    carbon_order,
    join_words,
    refuse_fake,
    runs_phrase,
)
from greentrain.report.study import study_totals


def _yaml_str(value: object) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it) of plain text."""
    return json.dumps(plain_text(value), ensure_ascii=False)


def _emissions_number(grams: float) -> str:
    """Grams to 3 significant digits, as a YAML number (never in e-notation when avoidable)."""
    return readable(grams).replace(",", "")


def _by(words: str) -> str:
    return words if words.startswith("estimated") else "by " + words


def _model_card_source(study: Study) -> str:
    measured, estimated = study.measured(False), study.measured(True)
    bits = []
    for what, by in (("measured", measured), ("modelled", estimated)):
        if by:
            bits.append(
                f"{what}: "
                + ", ".join(
                    f"{d.upper()} "
                    + " / ".join(_by(source_words(src, study.runs_of.get(src))) for src, _ in items)
                    for d, items in by.items()
                )
            )
    carbon = "; ".join(
        f"{readable(i)} gCO2e/kWh ({', '.join(carbon_citation(src, year))})"
        + ("" if pue is None else f", PUE {pue:g}")
        for (i, src, year, pue, _), _ in sorted(study.carbon.items(), key=carbon_order)
    )
    return (
        "greentrain ("
        + "; ".join(bits or ["no energy measured"])
        + ")"
        + (f"; carbon intensity {carbon}" if carbon else "")
    )


def model_card(
    runs: Iterable[dict], training_type: str | None = None, allow_fake: bool = False
) -> str:
    """The Hugging Face model card's ``co2_eq_emissions`` metadata (YAML), for the selected
    runs together; ``training_type`` defaults to the runs' ``config.training_type`` when they
    agree on one, else ``pre-training``. Only known fields are written (no location when none
    was recorded); runs metered by the test meter are refused unless ``allow_fake``."""
    study = Study.read(runs)
    header = "# co2_eq_emissions for the model card's YAML metadata (greentrain export)"
    if not study.runs:
        return header + "\n# No runs were selected, so there is no emissions figure.\n"
    refuse_fake(study, allow_fake)
    totals = study_totals(study.runs).loc["all"]
    if training_type is None:
        found = {
            RunReader(run).config().get("training_type")
            for run in study.runs
            if isinstance(run, dict)
        }
        found.discard(None)
        only = found.pop() if len(found) == 1 else None
        training_type = only if isinstance(only, str) and only else TRAINING_TYPES[0]
    places = join_words([p for p, _ in study.places.most_common()])
    hardware = join_words([s for s, _ in sorted(study.hardware.items())])
    co2 = totals["co2_g"]
    has_co2 = bool(study.carbon) and co2 is not None and math.isfinite(co2)
    lines = [header, "co2_eq_emissions:"]
    if has_co2:
        lines.append(f"  emissions: {_emissions_number(float(co2))}")
    else:
        lines.append("  emissions: null  # no run has a carbon intensity, so no emissions figure")
    lines += [
        f"  source: {_yaml_str(_model_card_source(study))}",
        f"  training_type: {_yaml_str(training_type)}",
    ]
    if places:
        lines.append(f"  geographical_location: {_yaml_str(places)}")
    lines.append(f"  hardware_used: {_yaml_str(hardware)}")
    lines.append(
        f"# {fmt_duration_s(totals['duration_s'])} of computation over "
        f"{runs_phrase(len(study.runs))}; energy {fmt_energy_kwh(totals['energy_kwh'])}"
    )
    listed = issue_lines(summarize(study.issues))
    if listed:
        lines.append("# values that could not be read were left out (never counted as 0):")
        lines += ["# " + plain_text(line) for line in listed]
    return "\n".join(lines) + "\n"

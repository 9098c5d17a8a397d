"""Where two meters measured the same domain of a run: do they agree within their stated
uncertainty, and does the comparison's ranking survive switching to the other meter?

Each domain of a record holds its best figure and the other meters' figures as
``alternatives`` (meter, method, joules). Two figures *disagree* when they differ by more than
the sum of their methods' assumed uncertainties (:data:`UNCERTAINTY_PCT`, the same stated
assumptions as the carbon statement's; an estimate is taken as +/-50%). For each alternative
meter, :func:`rankings` recomputes every run's accuracy per kWh with that meter's figure in
place of the best one and reports whether the best configuration, and the order of all, stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from greentrain.report.reading import RunReader
from greentrain.report.runs import final_accuracy
from greentrain.report.stats import missing
from greentrain.units import joules_to_kwh

# Assumed uncertainty (percent) of each measurement method; see statement.METHOD_UNCERTAINTY.
UNCERTAINTY_PCT: dict[str, float] = {
    "counter": 5.0,
    "sampled": 10.0,
    "zeus": 5.0,
    "rapl": 10.0,
    "codecarbon": 20.0,
    "estimated": 50.0,
}
UNKNOWN_PCT = 20.0


def _pct(method: str) -> float:
    return UNCERTAINTY_PCT.get(method, UNKNOWN_PCT)


@dataclass(frozen=True)
class Disagreement:
    """Meter ``alternative`` vs the best figure ``best`` of ``domain``: in ``runs`` runs they
    differ by more than ``tolerance_pct``; ``worst_ratio`` is the largest ratio seen (>= 1)."""

    domain: str
    best: str
    alternative: str
    runs: int
    worst_ratio: float
    tolerance_pct: float

    def text(self) -> str:
        return (
            f"{self.domain.upper()}: {self.best} and {self.alternative} differ by up to "
            f"{self.worst_ratio:.2f}× in {self.runs} run{'s' if self.runs != 1 else ''}, more "
            f"than their stated ±{self.tolerance_pct:g}% together"
        )


def _alternatives(run: Mapping) -> Iterable[tuple[str, str, float, str, float]]:
    """(domain, best source, best J, alternative source, alternative J) of one run."""
    r = RunReader(run)
    for domain, dom in r.energy().items():
        best = r.number(dom.get("energy_j"), f"energy.{domain}.energy_j", nonnegative=True)
        if best is None:
            continue
        source = str(dom.get("source") or "unknown")
        for _, alt in r.records(dom.get("alternatives"), f"energy.{domain}.alternatives"):
            joules = r.number(alt.get("energy_j"), "alternative.energy_j", nonnegative=True)
            if joules is not None:
                yield domain, source, best, f"{alt.get('meter')}:{alt.get('method')}", joules


def disagreements(runs: Iterable[Mapping]) -> list[Disagreement]:
    """Every (domain, best meter, other meter) whose figures differ beyond their uncertainty."""
    found: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        for domain, best, best_j, alt, alt_j in _alternatives(run):
            tol = _pct(best.split(":")[-1]) + _pct(alt.split(":")[-1])
            lo, hi = sorted((best_j, alt_j))
            ratio = hi / lo if lo > 0 else float("inf")
            if (hi - lo) / max(lo, 1e-300) * 100.0 > tol:
                found.setdefault((domain, best, alt), []).append(ratio)
    return [
        Disagreement(d, b, a, len(rs), max(rs), _pct(b.split(":")[-1]) + _pct(a.split(":")[-1]))
        for (d, b, a), rs in sorted(found.items())
    ]


@dataclass(frozen=True)
class Ranking:
    """The configurations' order by mean accuracy per kWh with ``meter``'s figures."""

    meter: str
    order: tuple[str, ...]


def _order(per_config: Mapping[str, list[float]]) -> tuple[str, ...]:
    means = {k: sum(v) / len(v) for k, v in per_config.items() if v}
    return tuple(sorted(means, key=lambda k: -means[k]))


def rankings(runs: Iterable[Mapping], labels: Mapping[str, str]) -> list[Ranking]:
    """The ranking with the best figures first, then one per alternative meter (its figure in
    place of the best one where it measured the same domain). ``labels``: run id ->
    configuration."""
    runs = [r for r in runs if r.get("id") in labels]
    alts = sorted({alt for run in runs for _, _, _, alt, _ in _alternatives(run)})
    out = []
    for meter in [None, *alts]:
        per: dict[str, list[float]] = {}
        for run in runs:
            acc = final_accuracy(dict(run))
            total = RunReader(run).number(run.get("energy_j"), "energy_j", nonnegative=True)
            if acc is None or missing(total):
                continue
            for _, _, best_j, alt, alt_j in _alternatives(run):
                if alt == meter:
                    total = total - best_j + alt_j
            kwh = joules_to_kwh(total)
            if kwh > 0:
                per.setdefault(labels[run["id"]], []).append(acc / kwh)
        out.append(Ranking(meter or "best figures", _order(per)))
    return out


def ranking_sentence(ranks: list[Ranking]) -> str:
    """``"With zeus:zeus instead, the best configuration stays X and the order is unchanged."``
    for each alternative meter; ``""`` when there is none."""
    if len(ranks) < 2 or not ranks[0].order:
        return ""
    base = ranks[0]
    parts = []
    for r in ranks[1:]:
        if not r.order:
            continue
        best = "stays" if r.order[0] == base.order[0] else f"becomes {r.order[0]} (not"
        tail = "" if best == "stays" else f" {base.order[0]})"
        order = "unchanged" if r.order == base.order else "changed"
        parts.append(
            f"with {r.meter} instead, the best configuration {best}{tail} and the order is {order}"
        )
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:] if parts else ""

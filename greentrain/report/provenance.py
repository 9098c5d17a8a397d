"""Where each joule came from, per energy domain: measured (by which meter) or modelled (how, from
which inputs), in words a reader can paste.

A record's domain figure names its source as ``meter:method`` (``nvml:counter``,
``estimate:estimated``). :func:`source_words` turns that into words, using what the meter wrote
into the run's ``meters`` list (for the estimate: the watts per busy core and their source).
:func:`energy_split` adds up, over a set of runs, how many joules of each domain were measured and
how many modelled, and by which source: every figure (a table cell, the answer sentence, the
statement) can then say "GPU 86% measured by NVML's energy counter; CPU and DRAM modelled".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from greentrain.report.escape import plain_text
from greentrain.report.reading import RunReader
from greentrain.report.runs import domain_energy_j

# meter name -> words; the method refines it (METHOD_WORDS).
METER_WORDS: dict[str, str] = {
    "nvml": "NVIDIA's NVML",
    "zeus": "Zeus",
    "rapl": "the CPU's RAPL energy counters",
    "codecarbon": "CodeCarbon (offline)",
    "estimate": "a power model",
    "fake": "a fake meter (for tests; not a measurement)",
}
METHOD_WORDS: dict[str, str] = {
    "nvml:counter": "the GPU's NVML energy counter",
    "nvml:sampled": "NVML power samples integrated over time",
}
DOMAIN_ORDER = ("gpu", "cpu", "dram")


def is_fake(source: str) -> bool:
    """Whether a ``meter:method`` source is the test meter ``fake``."""
    return source.split(":", 1)[0] == "fake"


def estimate_inputs(run: Mapping) -> str:
    """The estimate meter's stated inputs of ``run`` (``"3.52 W per busy core (TDP table: …),
    0.375 W/GB of RSS"``), from its ``meters`` entry; ``""`` when none was recorded."""
    r = RunReader(run)
    for _, m in r.records(r.run.get("meters"), "meters"):
        if m.get("meter") != "estimate":
            continue
        devices = m.get("devices")
        if isinstance(devices, list):
            parts = []
            for d in devices:
                text = plain_text(d)
                parts.append(text.split(": ", 1)[1] if ": " in text else text)
            return ", ".join(parts)
    return ""


def source_words(source: str, run: Mapping | None = None) -> str:
    """A ``meter:method`` source in words: ``"the GPU's NVML energy counter"``, ``"estimated
    from the process tree's CPU time (3.52 W per busy core …)"``."""
    source = plain_text(source)
    meter = source.split(":", 1)[0]
    if meter == "estimate":
        inputs = estimate_inputs(run) if run is not None else ""
        base = "estimated from the process tree's CPU time and memory"
        return f"{base} ({inputs})" if inputs else base
    if source in METHOD_WORDS:
        return METHOD_WORDS[source]
    return METER_WORDS.get(meter, f"the meter {meter!r}")


@dataclass
class DomainSplit:
    """Joules of one domain over some runs: measured and modelled, by source."""

    measured_j: float = 0.0
    modelled_j: float = 0.0
    by_source: dict[str, float] = field(default_factory=dict)  # source -> joules
    words: dict[str, str] = field(default_factory=dict)  # source -> words

    @property
    def total_j(self) -> float:
        return self.measured_j + self.modelled_j

    def measured_share(self) -> float | None:
        """Fraction of this domain's joules that were measured; ``None`` without any."""
        return self.measured_j / self.total_j if self.total_j > 0 else None


def energy_split(runs: Iterable[Mapping]) -> dict[str, DomainSplit]:
    """domain -> :class:`DomainSplit` over ``runs`` (unmeasured or invalid figures left out),
    in the order GPU, CPU, DRAM, then others."""
    out: dict[str, DomainSplit] = {}
    for run in runs:
        r = RunReader(run)
        for domain, dom in r.energy().items():
            joules = domain_energy_j(dict(run), domain, dict(dom))
            if joules is None:
                continue
            source = plain_text(dom.get("source") or "unknown")
            split = out.setdefault(domain, DomainSplit())
            if dom.get("estimated") is True or source.startswith("estimate:"):
                split.modelled_j += joules
            else:
                split.measured_j += joules
            split.by_source[source] = split.by_source.get(source, 0.0) + joules
            split.words.setdefault(source, source_words(source, run))
    order = {d: i for i, d in enumerate(DOMAIN_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def measured_share(runs: Iterable[Mapping]) -> float | None:
    """Fraction of all the joules of ``runs`` that were measured (not modelled)."""
    splits = energy_split(runs).values()
    total = sum(s.total_j for s in splits)
    return sum(s.measured_j for s in splits) / total if total > 0 else None


def split_sentence(splits: Mapping[str, DomainSplit], words: bool = True) -> str:
    """``"100% measured: GPU by the GPU's NVML energy counter"``, ``"0% measured: CPU and DRAM
    modelled, estimated from …"``: the share of all joules measured, then each domain's share and
    by what (domains described alike named together); ``"no energy figure"`` without any."""
    described: dict[str, list[str]] = {}
    for domain, s in splits.items():
        share = s.measured_share()
        if share is None:
            continue
        srcs = sorted(s.by_source, key=lambda k: -s.by_source[k])
        how = "; ".join(s.words[k] if words else k for k in srcs)
        if share >= 0.9995:
            desc = f"measured by {how}"
        elif share <= 0.0005:
            desc = f"modelled, {how}"
        else:
            desc = f"{share * 100:.0f}% measured ({how})"
        described.setdefault(desc, []).append(domain.upper())
    if not described:
        return "no energy figure"
    total = sum(s.total_j for s in splits.values())
    measured = sum(s.measured_j for s in splits.values())
    parts = [" and ".join(domains) + " " + desc for desc, domains in described.items()]
    return f"{measured / total * 100:.0f}% measured: " + "; ".join(parts)

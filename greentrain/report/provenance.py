"""Where each joule came from, per energy domain: measured (by which meter) or modelled (how, from
which inputs), in words a reader can paste.

A record's domain figure names its source as ``meter:method`` (``nvml:counter``,
``estimate:estimated``). :func:`source_words` turns that into words, using what the meter wrote
into the run's ``meters`` list (for the estimate: the watts per busy core and their source) and
the CPU-seconds its CPU figure records (``energy.cpu.inputs.cpu_s``).
:func:`energy_split` adds up, over a set of runs, how many joules of each domain were measured and
how many modelled, and by which source: every figure (a table cell, the answer sentence, the
statement) can then say "GPU 86% measured by NVML's energy counter; CPU and DRAM modelled".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from greentrain.report.escape import plain_text
from greentrain.report.reading import RunReader, check_number
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
    return ", ".join(_estimate_devices(run))


def _estimate_devices(run: Mapping) -> list[str]:
    """The estimate meter's ``devices`` lines of ``run``, each without its ``cpu 'X': `` head."""
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
            return parts
    return []


def estimate_cpu_s(runs: Iterable[Mapping]) -> float | None:
    """CPU-seconds of the process trees whose CPU energy the estimate modelled, over ``runs``
    (the ``inputs.cpu_s`` of each run's CPU figure); ``None`` when a run modelled by it does
    not record them, or none was."""
    total, seen = 0.0, False
    for run in runs:
        dom = RunReader(run).energy().get("cpu") or {}
        if not str(dom.get("source") or "").startswith("estimate:"):
            continue
        inputs = dom.get("inputs")
        cpu_s = inputs.get("cpu_s") if isinstance(inputs, Mapping) else None
        value, _ = check_number(cpu_s, nonnegative=True)
        if value is None:
            return None
        total, seen = total + value, True
    return total if seen else None


def _cpu_seconds(cpu_s: float) -> str:
    """``"412 CPU-seconds"``, ``"1.14 CPU-seconds"``, ``"12,345 CPU-seconds"``."""
    return f"{cpu_s:,.0f} CPU-seconds" if cpu_s >= 100 else f"{cpu_s:.3g} CPU-seconds"


def source_words(source: str, runs: Mapping | Sequence[Mapping] | None = None) -> str:
    """A ``meter:method`` source in words: ``"the GPU's NVML energy counter"``, ``"estimated
    from 412 CPU-seconds of the process tree at 3.52 W per busy core (TDP table: …) and its
    memory at 0.375 W/GB of RSS"``. ``runs``: the run (or runs) the source measured; the
    CPU-seconds are their sum, and without them the words say "the process tree's CPU time"."""
    source = plain_text(source)
    meter = source.split(":", 1)[0]
    if meter == "estimate":
        described = [runs] if isinstance(runs, Mapping) else list(runs or [])
        return _estimate_words(described)
    if source in METHOD_WORDS:
        return METHOD_WORDS[source]
    return METER_WORDS.get(meter, f"the meter {meter!r}")


def _estimate_words(runs: list[Mapping]) -> str:
    devices = _estimate_devices(runs[0]) if runs else []
    cpu_s = estimate_cpu_s(runs)
    cpu_in = [d for d in devices if "per busy core" in d]
    if cpu_s is not None and cpu_in:
        words = f"estimated from {_cpu_seconds(cpu_s)} of the process tree at {cpu_in[0]}"
        ram_in = [d for d in devices if d not in cpu_in]
        return words + (f" and its memory at {', '.join(ram_in)}" if ram_in else "")
    base = "estimated from the process tree's CPU time and memory"
    return f"{base} ({', '.join(devices)})" if devices else base


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
    runs_of: dict[str, list[Mapping]] = {}  # source -> the runs it gave a figure (per domain)
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
            runs_of.setdefault(source, []).append(run)
    for split in out.values():
        for source in split.by_source:
            unique = list({id(run): run for run in runs_of[source]}.values())
            split.words[source] = source_words(source, unique)
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

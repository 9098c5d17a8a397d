"""The words a run record is written in: energy domains, measurement methods and their ranking,
run statuses. Every other module takes them from here, so a live run and a stored one agree.

* Domains: ``gpu``, ``cpu``, ``dram``; each gets one best figure per run.
* Methods, most direct first (:data:`METHOD_PRIORITY`): ``counter`` (a hardware energy counter
  read through NVML) > ``sampled`` (NVML power integrated over time) > ``zeus`` > ``rapl`` >
  ``codecarbon`` > ``estimated`` (a power model) > ``fake`` (tests). Zeus reads the same NVML
  counter and RAPL files, so it ranks beside those direct readings, after our own NVML reader.
* Ties between meters whose figures share a method: :data:`METER_ORDER`, then the meter name.
* Scopes: a figure covers the job's processes or the whole machine (:func:`reading_scope`).
  Among estimates, one attributable to the job beats a model of the whole machine.
* Statuses: ``running`` until the run ends; then ``finished`` (exit 0), ``failed`` (non-zero
  exit, SIGKILL, command not found), ``budget`` (stopped by its energy or carbon budget, see
  :mod:`greentrain.run.budget`) or ``interrupted`` (SIGINT/SIGTERM/SIGHUP, or the wrapper
  process died).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Domain = Literal["gpu", "cpu", "dram"]
Method = Literal["counter", "sampled", "rapl", "zeus", "codecarbon", "estimated", "fake"]

DOMAINS: tuple[str, ...] = ("gpu", "cpu", "dram")

METHOD_PRIORITY: tuple[str, ...] = (
    "counter",
    "sampled",
    "zeus",
    "rapl",
    "codecarbon",
    "estimated",
    "fake",
)

METER_ORDER: tuple[str, ...] = ("nvml", "zeus", "rapl", "codecarbon", "estimate", "fake")

ESTIMATED_METHODS: tuple[str, ...] = ("estimated",)

STATUSES: tuple[str, ...] = ("running", "finished", "failed", "interrupted", "budget")

RUN_SCOPE = -1  # window index of the whole-run energy rows in the store

# A metrics entry's own fields; a logged metric of the same name is stored as ``user_<name>``.
RESERVED_METRICS: tuple[str, ...] = ("step", "window", "time_s")

# A reading's detail keys that count, like energy_j, since the meter started (unit in the name):
# a span's value (a window, the job after the baseline) is end - begin, and a figure over several
# devices adds them up. The estimate's CPU-seconds and RSS GB-hours; the samples integrated.
CUMULATIVE_DETAIL_KEYS: tuple[str, ...] = ("cpu_s", "rss_gb_h", "samples")

# The inputs of a modelled figure that the run object's figure carries (``inputs``): the
# process tree's CPU-seconds, watts per busy core and their source, RSS GB-hours, W per GB.
ESTIMATE_INPUT_KEYS: tuple[str, ...] = (
    "cpu_s",
    "w_per_core",
    "tdp_source",
    "rss_gb_h",
    "w_per_gb",
    "w_per_gb_source",
)

# What a figure covers: the job's own processes, or the whole machine (a device, a CPU package,
# a model of the host) that concurrent runs share.
SCOPES: tuple[str, ...] = ("process", "machine")


def method_rank(method: str) -> int:
    """Position of ``method`` in :data:`METHOD_PRIORITY` (unknown methods rank last)."""
    return METHOD_PRIORITY.index(method) if method in METHOD_PRIORITY else len(METHOD_PRIORITY)


def meter_rank(meter: str) -> int:
    """Position of ``meter`` in :data:`METER_ORDER` (unknown meters rank last)."""
    return METER_ORDER.index(meter) if meter in METER_ORDER else len(METER_ORDER)


def figure_is_estimated(method: str, detail: Mapping[str, Any] | None = None) -> bool:
    """Whether a figure is a model estimate rather than a measurement.

    True for method ``estimated`` and for figures a meter flagged ``detail["estimated"]``
    (CodeCarbon's TDP model, for instance).
    """
    return method in ESTIMATED_METHODS or bool((detail or {}).get("estimated"))


def reading_scope(method: str, detail: Mapping[str, Any] | None = None) -> str:
    """``process`` or ``machine``: what a reading covers (``detail["scope"]`` when the meter
    says; else process for the process-tree estimate and machine for everything else)."""
    scope = (detail or {}).get("scope")
    if scope in SCOPES:
        return scope
    return "process" if method in ESTIMATED_METHODS else "machine"


# -- one meter per physical device within a run group ---------------------------------------------
# The wrappers of one group on one host elect one meter per physical device: each GPU by its
# uuid, and the host's CPU packages with their DRAM as one device (a whole-host figure, such as
# CodeCarbon's model, cannot be cut by package). Process-scope figures (the job's own estimate)
# are never elected: each wrapper counts its own job.
HOST_CPU_KEY = "cpu"


def election_key(domain: str, device: str, method: str, detail: Mapping[str, Any]) -> str | None:
    """The physical device a reading measures, as the group's election names it; None for a
    figure of the job's own processes."""
    if reading_scope(method, detail) != "machine":
        return None
    if domain == "gpu":
        return f"gpu-{detail.get('uuid') or device}"
    return HOST_CPU_KEY if domain in ("cpu", "dram") else domain


def key_domains(key: str) -> tuple[str, ...]:
    """The domains an election key covers (``gpu-<uuid>`` -> gpu; ``cpu`` -> cpu and dram)."""
    if key.startswith("gpu-"):
        return ("gpu",)
    return ("cpu", "dram") if key == HOST_CPU_KEY else (key,)

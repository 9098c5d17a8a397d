"""The one interface every energy meter implements.

Life cycle: ``probe()`` -> ``start()`` -> ``read()`` (any number of times) -> ``stop()``.

* ``probe()`` never raises for a missing sensor: it returns a :class:`Probe` saying whether the
  meter can run here, and if not, why and how to fix it. Hardware libraries are imported lazily
  inside ``probe()``/``start()``, never at module import.
* ``read()`` and ``stop()`` return *cumulative* energy since ``start()``, one
  :class:`~greentrain.record.readings.EnergyReading` per (domain, device). Windows (epochs,
  eval) are differences of cumulative readings, computed by the harness.
* A meter that breaks mid-run raises; the harness records the error and carries on with the
  other meters.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from greentrain.record.readings import EnergyReading
from greentrain.record.vocabulary import DOMAINS, METHOD_PRIORITY, Domain, Method

__all__ = ["DOMAINS", "METHOD_PRIORITY", "Domain", "EnergyReading", "Meter", "Method", "Probe"]


@dataclass(frozen=True)
class Probe:
    """Whether a meter can run on this machine.

    ``reason`` is empty when available; otherwise it says why not, and ``fix`` what to do.
    ``devices`` lists what the meter would measure (e.g. ``["gpu:0 NVIDIA H100"]``).
    """

    meter: str
    available: bool
    reason: str = ""
    fix: str = ""
    devices: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "meter": self.meter,
            "available": self.available,
            "reason": self.reason,
            "fix": self.fix,
            "devices": list(self.devices),
        }


class Meter(abc.ABC):
    """Base class of all meters. Subclasses set ``name`` and implement the four methods.

    ``slow_start``: True for meters whose ``probe()``/``start()`` take seconds (library
    imports, hardware detection); a run starts its job without waiting for them and counts
    them from the moment they are ready (see :class:`greentrain.run.meterset.MeterSet`).
    """

    name: str = "meter"
    slow_start: bool = False

    @abc.abstractmethod
    def probe(self) -> Probe:
        """Check availability without side effects that outlive the call."""

    @abc.abstractmethod
    def start(self) -> None:
        """Begin measuring. Raises :class:`~greentrain.errors.MeterUnavailable` if it cannot."""

    @abc.abstractmethod
    def read(self) -> list[EnergyReading]:
        """Cumulative energy since ``start()``; cheap enough to call at every window boundary."""

    @abc.abstractmethod
    def stop(self) -> list[EnergyReading]:
        """Final cumulative readings; releases threads and handles. Safe to call twice."""

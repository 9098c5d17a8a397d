"""A run's energy and CO2e as Prometheus counters (``greentrain run --prometheus-port N``,
``track(..., prometheus_port=N)``), for the Prometheus a cluster already scrapes.

:class:`PrometheusExporter` is a run listener (:mod:`greentrain.run.listeners`): it binds its
port when it is built -- before the run's record and job start, so a port in use is a one-line
:class:`~greentrain.errors.ConfigError` (exit 2) and no job runs unmetered by surprise -- and
updates its figures at each of the run's samples (every ``--sample`` seconds, and at the end).
The endpoint stops when the run ends (``on_end``); the final figures are in the store.

Series (``prometheus_client``'s text format; the ``_total`` suffix marks a counter)::

    greentrain_energy_joules_total{run, group, node, host, domain, source, figure}
    greentrain_co2e_grams_total{run, group, node, host}

``source`` is ``meter:method`` (``nvml:counter``, ``rapl:rapl``, ...); ``figure`` is ``best``
for the figure the run's record counts for the domain and ``alternative`` for every other
meter's figure of it, so ``sum by (run) (greentrain_energy_joules_total{figure="best"})`` is
the run's energy and nothing is counted twice. CO2e (grams) is the best figures' energy at the
run's grid intensity and PUE. ``group`` and ``node`` are the run group's id and this wrapper's
rank in it (empty outside a group).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from greentrain.errors import ConfigError
from greentrain.extras import require
from greentrain.record.ranking import select_best, total_j
from greentrain.units import co2_g

RUN_LABELS = ("run", "group", "node", "host")


class PrometheusExporter:
    """Serve one run's counters on ``addr:port`` (see the module docstring).

    Args:
        port: TCP port to listen on, 1-65535.
        intensity_g_per_kwh: the run's grid intensity (gCO2e/kWh), for the CO2e counter.
        pue: the run's PUE (>= 1.0), for the CO2e counter.
        addr: address to bind (default all interfaces: the cluster's Prometheus scrapes it
            from another host).

    Raises:
        ConfigError: prometheus-client is missing, or the port cannot be bound.
    """

    def __init__(
        self, port: int, *, intensity_g_per_kwh: float, pue: float, addr: str = "0.0.0.0"
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"--prometheus-port must be a port number 1-65535 (got {port!r})")
        client = require("prometheus_client", what="--prometheus-port")
        registry = require("prometheus_client.registry").CollectorRegistry(auto_describe=True)
        self.intensity_g_per_kwh, self.pue = intensity_g_per_kwh, pue
        self._lock = threading.Lock()
        self._labels: dict[str, str] = {"run": "", "group": "", "node": "",
                                        "host": socket.gethostname()}  # fmt: skip
        self._energy: dict[tuple[str, str, str], float] = {}  # (domain, source, figure) -> J
        self._co2_g: float | None = None
        registry.register(self)
        try:
            self._server, self._thread = client.start_http_server(
                port, addr=addr, registry=registry
            )
        except OSError as err:
            raise ConfigError(
                f"--prometheus-port {port}: cannot listen on {addr}:{port} ({err.strerror or err});"
                " choose a free port or leave the option out"
            ) from None
        self.port = port

    # -- listener -------------------------------------------------------------------------------
    def on_sample(self, event: Mapping[str, Any]) -> None:
        """The run's totals so far: ``{"run_id", "group", "node", "readings", "meters"}``."""
        best = select_best(event.get("readings") or {}, event.get("meters") or ())
        energy: dict[tuple[str, str, str], float] = {}
        for domain, figure in best.items():
            if figure.get("energy_j") is None:
                continue
            energy[(domain, str(figure["source"]), "best")] = float(figure["energy_j"])
            for alt in figure.get("alternatives") or []:
                if alt.get("energy_j") is not None:
                    source = f"{alt.get('meter')}:{alt.get('method')}"
                    energy[(domain, source, "alternative")] = float(alt["energy_j"])
        joules = total_j(best)
        with self._lock:
            self._labels.update(
                run=str(event.get("run_id") or ""),
                group=str(event.get("group") or ""),
                node="" if event.get("node") is None else str(event["node"]),
            )
            # a counter never goes back: a figure a meter stopped giving keeps its last value
            for key, value in energy.items():
                self._energy[key] = max(value, self._energy.get(key, 0.0))
            if joules is not None:
                co2 = co2_g(joules, self.intensity_g_per_kwh, self.pue)
                self._co2_g = max(co2, self._co2_g or 0.0)

    def on_end(self, event: Mapping[str, Any]) -> None:
        """The run is final: stop serving."""
        self.close()

    def close(self) -> None:
        """Stop the endpoint (idempotent)."""
        server, self._server = getattr(self, "_server", None), None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- prometheus_client collector --------------------------------------------------------------
    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        core = require("prometheus_client.core")
        with self._lock:
            labels, energy, co2 = dict(self._labels), dict(self._energy), self._co2_g
        run_values = [labels[k] for k in RUN_LABELS]
        joules = core.CounterMetricFamily(
            "greentrain_energy_joules",
            "Energy of the run so far, joules, per domain and source (figure: best or "
            "alternative).",
            labels=[*RUN_LABELS, "domain", "source", "figure"],
        )
        for (domain, source, figure), value in sorted(energy.items()):
            joules.add_metric([*run_values, domain, source, figure], value)
        yield joules
        grams = core.CounterMetricFamily(
            "greentrain_co2e_grams",
            "CO2e of the run so far, grams (best figures at the run's grid intensity and PUE).",
            labels=list(RUN_LABELS),
        )
        if co2 is not None:
            grams.add_metric(run_values, co2)
        yield grams


def exporters_for(port: int | None, factors: Any) -> list[PrometheusExporter]:
    """The run's exporter as a listener list (empty without a port). ``factors``: the run's
    :class:`~greentrain.carbon.CarbonFactors`."""
    if port is None:
        return []
    return [PrometheusExporter(port, intensity_g_per_kwh=factors.intensity_g_per_kwh,
                               pue=factors.pue)]  # fmt: skip

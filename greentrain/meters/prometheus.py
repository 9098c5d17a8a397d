"""GPU energy from the counters a DCGM exporter publishes, read from a Prometheus server's query
API: for hosts where the job cannot open NVML but the cluster's Prometheus scrapes DCGM.

DCGM's exporter publishes ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``: each GPU's energy counter in
millijoules since the driver loaded (the counter NVML's ``counter`` method reads), labelled
``gpu`` (index), ``UUID``, ``modelName`` and ``Hostname``. The meter asks the server for this
host's series (``/api/v1/query`` of their samples over the last :data:`LOOKBACK`, keeping each
series' latest sample and the instant it was scraped) when it starts and at every read; a
reading is the difference of two such samples, per GPU, so a window or the whole run is
``value(end) - value(start)`` (the ``increase()`` of the counter over the run, a counter that
went back -- a driver reload -- taken as restarted from 0, as NVML's is).

Configuration (constructor arguments, else the environment):

* ``url``: the server (``--prometheus-url``, ``GREENTRAIN_PROMETHEUS_URL``);
* ``host_label``: the label that names the host (``GREENTRAIN_PROMETHEUS_HOST_LABEL``, default
  ``Hostname``, DCGM's own; ``instance`` -- the scrape target's ``host:port`` -- also works);
* ``host``: this host's name in that label (``GREENTRAIN_PROMETHEUS_HOST``, default the short
  hostname); matched with an optional domain and ``:port`` after it;
* ``settle_s``: seconds :meth:`stop` waits for a sample scraped after the run's end
  (``GREENTRAIN_PROMETHEUS_SETTLE_S``, default 0). Prometheus holds what it last scraped, so
  without waiting the figure covers the run from the last scrape before its start to the last
  scrape before its end (one scrape interval early at most); each reading's detail gives those
  sample instants (``start_sample_unix``, ``end_sample_unix``).

Only GPUs the job can see are kept when ``CUDA_VISIBLE_DEVICES`` lists indexes or ``GPU-``
UUIDs. The method is ``counter``; the detail records the query, the server and the sample
instants. A server that does not answer, or has no series for this host, makes the probe say
why (never a figure of 0 J); a read that fails mid-run keeps the last figure, marked ``stale``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe

METRIC = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"  # millijoules since the driver loaded
# The query asks for the raw samples of this span (a range vector) and keeps each series' last:
# an instant vector would carry the query's time, not the instant the value was scraped at.
LOOKBACK = "5m"
# Prometheus may move a scrape's timestamp by a few milliseconds to align it with its schedule:
# a sample counts as scraped after the run's end only this much after it (seconds).
ALIGN_MARGIN_S = 0.02
ENV_URL = "GREENTRAIN_PROMETHEUS_URL"
ENV_HOST_LABEL = "GREENTRAIN_PROMETHEUS_HOST_LABEL"
ENV_HOST = "GREENTRAIN_PROMETHEUS_HOST"
ENV_SETTLE = "GREENTRAIN_PROMETHEUS_SETTLE_S"
URL_FIX = f"pass --prometheus-url URL (or set {ENV_URL}) and check that the server is up"
SERIES_FIX = (
    "check that the server scrapes DCGM's exporter on this host, and the label that names the "
    f"host ({ENV_HOST_LABEL}: Hostname or instance; {ENV_HOST}: its value)"
)


@dataclass(frozen=True)
class Sample:
    """One GPU's counter as the server holds it: millijoules at unix instant ``t``."""

    key: str  # the GPU's UUID, else its index
    index: str
    uuid: str
    model: str
    mj: float
    t: float


def host_selector(label: str, host: str) -> str:
    """The PromQL label matcher of ``host`` (``Hostname=~"node1(\\..*)?(:[0-9]+)?"``)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
        raise ConfigError(f"{ENV_HOST_LABEL}={label!r} is not a Prometheus label name")
    pattern = re.escape(host) + r"(\..*)?(:[0-9]+)?"
    literal = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return f'{label}=~"{literal}"'


def visible(samples: list[Sample], cuda_visible: str | None) -> list[Sample]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` lets the job see (all when unset or not indexes/UUIDs)."""
    if cuda_visible is None or not cuda_visible.strip():
        return samples
    wanted = [part.strip() for part in cuda_visible.split(",") if part.strip()]
    if not all(w.isdigit() or w.startswith("GPU-") for w in wanted):
        return samples  # MIG instances and the like: their parent GPUs are not known here
    return [s for s in samples if s.index in wanted or any(s.uuid.startswith(w) for w in wanted
                                                             if w.startswith("GPU-"))]  # fmt: skip


class PrometheusMeter(Meter):
    """GPU energy from DCGM's counters in Prometheus (method ``counter``; see the module
    docstring for the arguments)."""

    name = "prometheus"

    def __init__(
        self,
        url: str | None = None,
        *,
        host: str | None = None,
        host_label: str | None = None,
        settle_s: float | None = None,
        timeout_s: float = 5.0,
        environ: Mapping[str, str] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        env = os.environ if environ is None else environ
        self.url = (url or env.get(ENV_URL) or "").rstrip("/")
        self.host = host or env.get(ENV_HOST) or socket.gethostname().split(".")[0]
        label = host_label or env.get(ENV_HOST_LABEL) or "Hostname"
        self.query = f"{METRIC}{{{host_selector(label, self.host)}}}[{LOOKBACK}]"
        try:
            self.settle_s = float(settle_s if settle_s is not None else env.get(ENV_SETTLE, 0))
        except ValueError:
            raise ConfigError(f"{ENV_SETTLE} must be a number of seconds") from None
        self.timeout_s = timeout_s
        self._cuda_visible = env.get("CUDA_VISIBLE_DEVICES")
        self._wall = wall
        self._start: dict[str, Sample] = {}
        self._last: dict[str, Sample] = {}
        self._restarted_mj: dict[str, float] = {}  # energy before a counter went back, mJ
        self._stale: str | None = None
        self._final: list[EnergyReading] | None = None

    # -- the query API --------------------------------------------------------------------------
    def _samples(self) -> list[Sample]:
        """This host's series now. Raises MeterUnavailable with the server's own words."""
        if not self.url:
            raise MeterUnavailable("no Prometheus server given", URL_FIX)
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": self.query})
        try:
            with urllib.request.urlopen(address, timeout=self.timeout_s) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:200]
            raise MeterUnavailable(f"Prometheus at {self.url} answered {err.code}: {detail}",
                                   URL_FIX) from None  # fmt: skip
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise MeterUnavailable(f"Prometheus at {self.url} did not answer: {reason}",
                                   URL_FIX) from None  # fmt: skip
        if body.get("status") != "success":
            raise MeterUnavailable(f"Prometheus at {self.url}: {body.get('error')}", URL_FIX)
        out = []
        for series in body.get("data", {}).get("result", []):
            if not series.get("values"):
                continue
            labels, (t, value) = series.get("metric", {}), series["values"][-1]
            index, uuid = str(labels.get("gpu", "")), str(labels.get("UUID", ""))
            out.append(Sample(uuid or index, index, uuid, str(labels.get("modelName", "")),
                              float(value), float(t)))  # fmt: skip
        return visible(out, self._cuda_visible)

    def probe(self) -> Probe:
        try:
            samples = self._samples()
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        if not samples:
            return Probe(self.name, False, f"no {self.query} series on {self.url}", SERIES_FIX)
        devices = tuple(f"gpu:{s.index} {s.model} (DCGM via {self.url})" for s in samples)
        return Probe(self.name, True, devices=devices)

    # -- measuring ------------------------------------------------------------------------------
    def start(self) -> None:
        samples = self._samples()
        if not samples:
            raise MeterUnavailable(f"no {self.query} series on {self.url}", SERIES_FIX)
        self._start = {s.key: s for s in samples}
        self._last = dict(self._start)
        self._restarted_mj = {key: 0.0 for key in self._start}
        self._stale, self._final = None, None

    def _update(self, samples: list[Sample]) -> None:
        for s in samples:
            last = self._last.get(s.key)
            if last is None:
                continue  # a GPU that appeared after the start: no honest difference
            if s.mj < last.mj:  # the counter went back (driver reload): restarted from 0
                self._restarted_mj[s.key] += last.mj
            self._last[s.key] = s
        missing = sorted(set(self._start) - {s.key for s in samples})
        self._stale = f"no sample of {', '.join(missing)} in the last query" if missing else None

    def _readings(self) -> list[EnergyReading]:
        out = []
        for key, first in self._start.items():
            last = self._last[key]
            energy_mj = self._restarted_mj[key] + last.mj - first.mj
            detail: dict[str, Any] = {
                "via": "prometheus", "url": self.url, "query": self.query, "metric_unit": "mJ",
                "uuid": first.uuid, "name": first.model, "start_sample_unix": first.t,
                "end_sample_unix": last.t,
            }  # fmt: skip
            if self._stale:
                detail["stale"] = self._stale
            out.append(EnergyReading("gpu", f"gpu:{first.index}", energy_mj / 1000.0, "counter",
                                     detail))  # fmt: skip
        return out

    def read(self) -> list[EnergyReading]:
        if self._final is not None:
            return self._final
        try:
            self._update(self._samples())
        except MeterUnavailable as err:  # a passing fault: the counter holds the energy anyway
            self._stale = f"the last query failed ({err.reason})"
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return self._final
        ended, deadline = self._wall(), time.monotonic() + self.settle_s
        error: str | None = None
        while True:
            try:
                samples = self._samples()
                error = None
            except MeterUnavailable as err:
                samples, error = [], err.reason
            fresh = bool(samples) and all(s.t >= ended + ALIGN_MARGIN_S for s in samples)
            if fresh or time.monotonic() >= deadline:
                break
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        if error is not None:
            if all(self._last[k] is s for k, s in self._start.items()):
                raise MeterUnavailable(f"the final query failed, and no query since the start "
                                       f"succeeded: {error}", URL_FIX)  # fmt: skip
            self._stale = f"the final query failed ({error})"
        else:
            self._update(samples)
        self._final = self._readings()
        return self._final

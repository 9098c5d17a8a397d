"""Splitting a shared machine's energy among the runs that ran on it at the same time.

A meter that measures the machine (a CPU package's RAPL counter, a GPU's NVML counter,
CodeCarbon's model of the host) books the whole machine to every run that was going while it
measured. Runs on one host whose times overlap would each count the others' energy. The split
gives each run its share of every machine-scope figure, interval by interval:

* The timeline of the runs involved is cut at every sample of any of them (each run stores its
  cumulative readings and its job's CPU seconds every few seconds, and at its start and end).
  Within each interval, each run's energy and CPU seconds are interpolated linearly from its
  own samples.
* CPU and DRAM: a run's share of the interval is its job's CPU seconds over the CPU seconds of
  every run active in the interval (equal shares when none used the CPU).
* A GPU, named by its uuid (``gpu:0`` differs between jobs with different
  CUDA_VISIBLE_DEVICES): shared equally among the active runs whose processes were on it, or,
  when the samples do not say, among the active runs that measured it.
* An interval in which the run was alone keeps the whole figure.
* Runs of one *group* (the wrappers of one multi-node job, :mod:`greentrain.record.group`) are
  one party: they never split among themselves -- on a host they elected one meter per
  physical device instead, so each device is in one of their records only -- and against other
  runs they share as one, with their CPU seconds added and a GPU theirs if any of their jobs
  used it.

Per interval the shares of the active runs sum to 1, so over concurrent runs the split never
adds up to more than the meters measured (for a shared counter, exactly what it measured).
Figures attributable to the job itself (``process`` scope: the process-tree estimate) are not
split. The result says that a split happened and how (:func:`split_note`).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

METHOD = (
    "machine energy split among concurrent runs on this host, interval by interval: "
    "CPU/DRAM by the jobs' CPU seconds, each GPU among the runs using it"
)


@dataclass
class Timeline:
    """One run's samples: unix seconds, job CPU seconds, cumulative readings (JSON rows).

    ``party``: the run's group id, else its own id (see the module docstring).
    """

    run_id: str
    times: list[float]
    cpu_s: list[float | None]
    readings: list[list[Mapping[str, Any]]]
    start: float = 0.0
    end: float = 0.0
    party: str = ""
    _series: dict[tuple, list[float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.party = self.party or self.run_id

    @classmethod
    def from_rows(
        cls, run_id: str, rows: Iterable[Mapping[str, Any]], party: str | None = None
    ) -> Timeline:
        """From the store's sample rows (``t``, ``cpu_s``, ``readings``) of one run."""
        rows = sorted(rows, key=lambda r: r["t"])
        tl = cls(run_id, [r["t"] for r in rows], [r["cpu_s"] for r in rows],
                 [list(r["readings"] or []) for r in rows], party=party or run_id)  # fmt: skip
        if tl.times:
            tl.start, tl.end = tl.times[0], tl.times[-1]
        return tl

    def series(self, meter: str, domain: str, device: str) -> list[float]:
        """Cumulative joules of one (meter, domain, device) at each sample (0 before it shows)."""
        key = (meter, domain, device)
        if key not in self._series:
            values, last = [], 0.0
            for rows in self.readings:
                for r in rows:
                    if (r.get("meter"), r.get("domain"), r.get("device")) == key:
                        last = float(r["energy_j"])
                        break
                values.append(last)
            self._series[key] = values
        return self._series[key]

    def cpu_series(self) -> list[float]:
        """The job's cumulative CPU seconds at each sample (a missing value repeats the last)."""
        if ("cpu",) not in self._series:
            values, last = [], 0.0
            for c in self.cpu_s:
                last = float(c) if c is not None else last
                values.append(last)
            self._series[("cpu",)] = values
        return self._series[("cpu",)]

    def at(self, values: Sequence[float], t: float) -> float:
        """``values`` (one per sample) interpolated linearly at ``t``, clamped to the run."""
        if not self.times:
            return 0.0
        if t <= self.times[0]:
            return values[0]
        if t >= self.times[-1]:
            return values[-1]
        i = bisect.bisect_right(self.times, t)
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = values[i - 1], values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1

    def gpu_users(self, uuid: str, a: float, b: float) -> bool | None:
        """Whether the job had processes on GPU ``uuid`` during [a, b]: the samples in it, or
        else the next one (which covers it); None when the samples never said."""
        flags = [
            (t, bool(r["job_on_device"]))
            for t, rows in zip(self.times, self.readings, strict=True)
            for r in rows
            if r.get("uuid") == uuid and "job_on_device" in r
        ]
        if not flags:
            return None
        inside = [f for t, f in flags if a <= t <= b]
        if not inside:
            inside = [f for t, f in flags if t > b][:1] or [flags[-1][1]]
        return any(inside)

    def measured(self, uuid: str) -> bool:
        return any(
            r.get("uuid") == uuid and "energy_j" in r for rows in self.readings for r in rows
        )

    def cpu_used(self, a: float, b: float) -> float:
        values = self.cpu_series()
        return self.at(values, b) - self.at(values, a)

    def active(self, a: float, b: float) -> bool:
        return self.start < b and self.end > a


class Party:
    """The runs that share as one: a run alone, or the runs of one group on the host."""

    def __init__(self, members: Sequence[Timeline]) -> None:
        self.members = list(members)

    def active(self, a: float, b: float) -> bool:
        return any(m.active(a, b) for m in self.members)

    def cpu_used(self, a: float, b: float) -> float:
        return sum(max(0.0, m.cpu_used(a, b)) for m in self.members if m.active(a, b))

    def gpu_users(self, uuid: str, a: float, b: float) -> bool | None:
        flags = [m.gpu_users(uuid, a, b) for m in self.members if m.active(a, b)]
        known = [f for f in flags if f is not None]
        return any(known) if known else None

    def measured(self, uuid: str) -> bool:
        return any(m.measured(uuid) for m in self.members)

    def run_ids(self, a: float, b: float) -> list[str]:
        return [m.run_id for m in self.members if m.active(a, b)]


def _grid(target: Timeline, others: Sequence[Timeline]) -> list[float]:
    points = set(target.times)
    for o in others:
        points.update(t for t in (*o.times, o.start, o.end) if target.start < t < target.end)
    return sorted(points)


def _share(target: Party, active: Sequence[Party], domain: str, uuid: str | None,
           a: float, b: float) -> float:  # fmt: skip
    """The target party's share of one interval of one machine-scope device."""
    if not active:
        return 1.0
    if domain == "gpu" and uuid:
        users = [p for p in (target, *active) if p.gpu_users(uuid, a, b)]
        if users:
            return (1.0 / len(users)) if target in users else 0.0
        sharing = [p for p in active if p.measured(uuid)]
        return 1.0 / (1 + len(sharing))
    used = [p.cpu_used(a, b) for p in (target, *active)]
    total = sum(used)
    if total <= 0:
        return 1.0 / (1 + len(active))
    return used[0] / total


def attribute(target: Timeline, others: Sequence[Timeline]) -> dict[tuple[str, str], dict]:
    """The target run's share of each machine-scope (meter, domain) figure.

    ``others``: the other runs on the target's host; those of the target's party (its group)
    share with it, never against it. Returns ``{(meter, domain): {"measured_j",
    "attributed_j", "devices": {device: joules}, "shared_with": [run ids]}}``; empty when no
    run of another party overlapped or there are no samples.
    """
    overlapping = [
        o for o in others if o.run_id != target.run_id and o.active(target.start, target.end)
    ]
    rivals = [o for o in overlapping if o.party != target.party]
    if not rivals or len(target.times) < 2:
        return {}
    own = Party([target, *(o for o in overlapping if o.party == target.party)])
    parties: dict[str, list[Timeline]] = {}
    for o in rivals:
        parties.setdefault(o.party, []).append(o)
    competitors = [Party(members) for members in parties.values()]
    keys = {
        (r["meter"], r["domain"], r["device"], r.get("uuid"))
        for rows in target.readings
        for r in rows
        if r.get("scope") == "machine" and "meter" in r
    }
    grid = _grid(target, rivals)
    out: dict[tuple[str, str], dict] = {}
    for meter, domain, device, uuid in sorted(keys, key=str):
        series = target.series(meter, domain, device)
        attributed = measured = 0.0
        shared_with: set[str] = set()
        for a, b in zip(grid, grid[1:], strict=False):
            delta = target.at(series, b) - target.at(series, a)
            active = [p for p in competitors if p.active(a, b)]
            share = _share(own, active, domain, uuid, a, b)
            measured += delta
            attributed += delta * share
            if active and share < 1.0:
                shared_with.update(i for p in active for i in p.run_ids(a, b))
        entry = out.setdefault(
            (meter, domain),
            {"measured_j": 0.0, "attributed_j": 0.0, "devices": {}, "shared_with": set()},
        )
        entry["measured_j"] += measured
        entry["attributed_j"] += attributed
        entry["devices"][device] = attributed
        entry["shared_with"] |= shared_with
    for entry in out.values():
        entry["shared_with"] = sorted(entry["shared_with"])
    return {k: v for k, v in out.items() if v["shared_with"]}


@dataclass(frozen=True)
class Span:
    """One run's interval on its host: unix seconds (``end`` = now for a run still going) and
    its party (its group's id, else its own id)."""

    host: str | None
    start: float
    end: float
    party: str


def overlapping(spans: Mapping[str, Span], wanted: Iterable[str]) -> dict[str, list[str]]:
    """For each run of ``wanted`` that overlapped a run of *another* party on its host: every
    run on that host it overlapped (``others`` of :func:`attribute`), by start then id.

    Two runs overlap when each starts before the other ends (``s1 < e2 and s2 < e1``; a run
    that lasted no time overlaps the runs going on strictly around its instant). One sweep per
    host over the intervals sorted by start, the runs still going kept in a heap by end: O(N log
    N + K) for N runs and K overlapping pairs, where comparing every pair was O(N^2).
    """
    want = {w for w in wanted if w in spans}
    by_host: dict[str | None, list[tuple[float, float, str]]] = {}
    for run_id, span in spans.items():
        by_host.setdefault(span.host, []).append((span.start, span.end, run_id))
    others: dict[str, set[str]] = {}
    for intervals in by_host.values():
        intervals.sort()
        going: list[tuple[float, str]] = []  # (end, run id): runs not yet ended at the sweep
        for start, end, run_id in intervals:
            while going and going[0][0] <= start:
                heapq.heappop(going)  # ended at or before this start: overlaps nothing after
            for _, other in going:  # each started no later and ends after `start`
                if spans[other].start < end and (run_id in want or other in want):
                    others.setdefault(run_id, set()).add(other)
                    others.setdefault(other, set()).add(run_id)
            heapq.heappush(going, (end, run_id))
    out: dict[str, list[str]] = {}
    for run_id in want:
        found = others.get(run_id, set())
        if any(spans[o].party != spans[run_id].party for o in found):
            out[run_id] = sorted(found, key=lambda o: (spans[o].start, o))
    return out


def split_note(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What a split figure records about itself."""
    measured = entry["measured_j"]
    return {
        "method": METHOD,
        "measured_j": measured,
        "share": entry["attributed_j"] / measured if measured else None,
        "shared_with": list(entry["shared_with"]),
    }


def apply(energy: dict[str, dict[str, Any]], split: Mapping[tuple[str, str], dict]) -> None:
    """Replace the machine-scope figures of a run's ``energy`` dict with the run's share."""
    for domain, figure in energy.items():
        if figure.get("energy_j") is None:
            continue
        meter = str(figure.get("source", "")).split(":", 1)[0]
        entry = split.get((meter, domain))
        if entry is not None:
            figure["energy_j"] = entry["attributed_j"]
            figure["devices"] = dict(entry["devices"])
            figure["split"] = split_note(entry)
        for alt in figure.get("alternatives", []):
            other = split.get((alt["meter"], domain))
            if other is not None:
                alt["energy_j"] = other["attributed_j"]
                alt["split"] = split_note(other)
        for alt in figure.get("alternatives", []):
            best = figure["energy_j"]
            alt["disagreement_pct"] = (alt["energy_j"] - best) / best * 100.0 if best else None

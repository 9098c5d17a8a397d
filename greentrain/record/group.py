"""Run groups: the records of one multi-node job's wrappers -> one run object.

Each node's ``greentrain run`` records its own part (a *member* run: its devices, its job's
windows) with the group's id; readers show the group as one run. Pure functions, no I/O.

What the group object adds up, and how (joules, grams, seconds):

* ``energy[domain]``: the members' best figures summed, each member's once. On one host the
  members elected one meter per physical device, so a GPU or the CPU packages are in one
  member's record only; and where a member's machine-wide figure (a RAPL package counter)
  covers a domain, another member's estimate of only its own processes on that host is shown
  in its node entry (``covered_by``) but not added again. Devices are keyed ``<node>/<device>``.
  A domain some nodes measured and others did not is marked ``partial`` (which, and why).
* ``co2_g``: each member's counted energy at its own carbon factors (nodes may sit on
  different grids); ``carbon`` is the lead's.
* ``status``: ``running`` while any member runs; then ``failed`` if any failed, else
  ``interrupted`` if any was, else ``budget`` if a node's budget stopped it, else
  ``finished``: one node that did not finish marks the group.
* ``started_at``/``ended_at``: the first start and the last end; ``duration_s`` between them.
* ``windows``: matched by index (each node's wrapper numbers the windows its client opened, in
  order), energy summed over the nodes, the earliest start and the latest end.
* ``metrics``, ``config``, ``command``, ``git``, ``env``: the lead's (the member whose workers
  report global rank 0, else the one of lowest node rank: global rank 0 runs there and is the
  one that logs), other members' metrics appended with ``time_s`` counted from the group's
  start.
* ``size``: ``{"expected", "seen", "source", "complete"}``: the members the group expects (the
  largest any member recorded; None: unknown) and the members recorded. ``incomplete``: True
  when fewer were recorded than expected -- its totals count only the members recorded, and
  ``totals_note`` says so ("1 of 2 nodes"). ``launch``: the lead's launch id.
* ``nodes``: one entry per member: ``{run_id, host, rank, label, status, exit_code,
  started_at, ended_at, duration_s, devices, metered_elsewhere, taken_over, energy: {domain:
  {energy_j, source, estimated, counted, covered_by}}, energy_j, co2_g}``; ``devices`` are the
  physical devices it metered (``gpu-<uuid>``, ``cpu`` for the host's packages and DRAM),
  ``metered_elsewhere`` those another member metered (device -> run id), ``taken_over`` those
  it metered only from the moment their first meter's run ended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greentrain.record.accounting import accounting_alternatives
from greentrain.record.assemble import co2_of
from greentrain.record.drops import client_drops
from greentrain.record.group_size import group_size
from greentrain.record.jsonable import loads
from greentrain.record.ranking import candidates_from_rows
from greentrain.record.vocabulary import DOMAINS, RUN_SCOPE
from greentrain.units import joules_to_kwh


@dataclass
class Member:
    """One member run: its run object and what grouping needs besides it."""

    run: dict[str, Any]
    rank: int | None
    started_unix: float
    host: str
    scopes: dict[str, str] = field(default_factory=dict)  # domain -> scope of its best figure
    election: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    global_rank: int | None = None  # the lowest global RANK its workers reported
    size: int | None = None  # the members its wrapper expected in the group
    launch: str | None = None


def member_of(
    run: dict[str, Any], row: Mapping[str, Any], energy_rows: Sequence[Mapping]
) -> Member:
    """A :class:`Member` from a member's run object, its ``runs`` row and its energy rows."""
    candidates = candidates_from_rows([e for e in energy_rows if e["window_idx"] == RUN_SCOPE])
    scopes = {}
    for domain, figure in run["energy"].items():
        meter = str(figure.get("source", "")).split(":", 1)[0]
        for cand in candidates.get(domain, []):
            if cand.meter == meter:
                scopes[domain] = cand.scope
    rank, global_rank, size = row.get("group_rank"), row.get("global_rank"), row.get("group_size")
    return Member(
        run=run,
        rank=rank if isinstance(rank, int) else None,
        global_rank=global_rank if isinstance(global_rank, int) else None,
        size=size if isinstance(size, int) and size > 0 else None,
        launch=row.get("launch_id") if isinstance(row.get("launch_id"), str) else None,
        started_unix=float(row.get("started_unix") or 0.0),
        host=str(row.get("host") or "?"),
        scopes=scopes,
        election=loads(row.get("election"), {}),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _order(members: Sequence[Member]) -> list[Member]:
    ordered = sorted(
        members,
        key=lambda m: (
            m.global_rank is None,
            m.global_rank or 0,
            m.rank is None,
            m.rank or 0,
            m.started_unix,
            str(m.run.get("id")),
        ),  # fmt: skip
    )
    hosts = [m.host for m in ordered]
    for m in ordered:
        unique = hosts.count(m.host) == 1
        m.label = m.host if unique else f"{m.host}#{m.rank if m.rank is not None else m.run['id']}"
    return ordered


def _covered(members: Sequence[Member]) -> dict[tuple[str, str], str]:
    """(member id, domain) -> the member whose machine-wide figure on the same host covers it."""
    out: dict[tuple[str, str], str] = {}
    for domain in DOMAINS:
        for host in {m.host for m in members}:
            on_host = [m for m in members if m.host == host]
            holders = [
                m for m in on_host
                if m.scopes.get(domain) == "machine"
                and _number(m.run["energy"][domain].get("energy_j")) is not None
            ]  # fmt: skip
            if not holders:
                continue
            for m in on_host:
                if m.scopes.get(domain) == "process":
                    out[(m.run["id"], domain)] = holders[0].run["id"]
    return out


def _domain(domain: str, members: Sequence[Member], covered: Mapping) -> dict[str, Any]:
    counted = [m for m in members if (m.run["id"], domain) not in covered]
    with_figure = [m for m in counted
                   if _number(m.run["energy"][domain].get("energy_j")) is not None]  # fmt: skip
    if not with_figure:
        reasons = "; ".join(
            f"{m.label}: {m.run['energy'][domain].get('reason', 'not measured')}" for m in counted
        )
        return {"energy_j": None, "reason": reasons or f"no node measured {domain}"}
    figures = [m.run["energy"][domain] for m in with_figure]
    sources = sorted({str(f.get("source")) for f in figures})
    out: dict[str, Any] = {
        "energy_j": sum(_number(f["energy_j"]) for f in figures),
        "source": " + ".join(sources),
        "estimated": any(bool(f.get("estimated")) for f in figures),
        "devices": {
            f"{m.label}/{device}": value
            for m, f in zip(with_figure, figures, strict=True)
            for device, value in (f.get("devices") or {}).items()
        },
        "alternatives": _alternatives(with_figure, domain),
        "nodes": len(with_figure),
    }
    missing = [m for m in counted if m not in with_figure]
    if missing:
        out["partial"] = {
            "missing": [m.label for m in missing],
            "reason": "; ".join(
                f"{m.label}: {m.run['energy'][domain].get('reason', '')}" for m in missing
            ),
        }
    return out


def _alternatives(members: Sequence[Member], domain: str) -> list[dict[str, Any]]:
    """Each other meter's figure summed over the nodes that have it, against those nodes'
    best figures."""
    sums: dict[tuple[str, str], list[float]] = {}
    for m in members:
        figure = m.run["energy"][domain]
        for alt in figure.get("alternatives") or []:
            value = _number(alt.get("energy_j"))
            if value is not None:
                entry = sums.setdefault((str(alt.get("meter")), str(alt.get("method"))), [0, 0, 0])
                entry[0] += value
                entry[1] += _number(figure.get("energy_j")) or 0.0
                entry[2] += 1
    return [
        {"meter": meter, "method": method, "energy_j": alt_j, "nodes": int(n),
         "disagreement_pct": (alt_j - best_j) / best_j * 100.0 if best_j else None}
        for (meter, method), (alt_j, best_j, n) in sums.items()
    ]  # fmt: skip


# a group's status: the first of these any member has, else finished (the store's listing
# selects by the same rule in SQL, greentrain.store.selection)
STATUS_ORDER = ("running", "failed", "interrupted", "budget")


def _status(members: Sequence[Member]) -> str:
    statuses = {m.run.get("status") for m in members}
    return next((s for s in STATUS_ORDER if s in statuses), "finished")


def _windows(members: Sequence[Member], covered: Mapping) -> list[dict[str, Any]]:
    by_index: dict[Any, list[tuple[Member, dict]]] = {}
    for m in members:
        for w in m.run.get("windows") or []:
            by_index.setdefault(w.get("index"), []).append((m, w))
    out = []
    for index in sorted(by_index, key=lambda i: (not isinstance(i, int), str(i))):
        parts = by_index[index]
        starts = [w["started_at"] for _, w in parts if w.get("started_at")]
        ends = [w["ended_at"] for _, w in parts if w.get("ended_at")]
        durations = [_number(w.get("duration_s")) for _, w in parts]
        energy: dict[str, Any] = {}
        for domain in DOMAINS:
            figs = [(m, (w.get("energy") or {}).get(domain)) for m, w in parts
                    if (m.run["id"], domain) not in covered]  # fmt: skip
            figs = [(m, f) for m, f in figs if f and _number(f.get("energy_j")) is not None]
            energy[domain] = None if not figs else {
                "energy_j": sum(_number(f["energy_j"]) for _, f in figs),
                "source": " + ".join(sorted({str(f.get("source")) for _, f in figs})),
                "estimated": any(bool(f.get("estimated")) for _, f in figs),
                "devices": {f"{m.label}/{d}": v for m, f in figs
                            for d, v in (f.get("devices") or {}).items()},
                "nodes": len(figs),
            }  # fmt: skip
        first = parts[0][1]
        out.append({
            "name": first.get("name"), "index": index, "started_at": min(starts, default=None),
            "ended_at": max(ends, default=None),
            "duration_s": max((d for d in durations if d is not None), default=None),
            "info": first.get("info", {}), "energy": energy, "nodes": len(parts),
        })  # fmt: skip
    return out


def _node(m: Member, covered: Mapping, counted_j: float | None) -> dict[str, Any]:
    energy = {}
    for domain, figure in m.run["energy"].items():
        entry = {k: figure.get(k) for k in ("energy_j", "source", "estimated", "reason")
                 if k in figure}  # fmt: skip
        entry["counted"] = (m.run["id"], domain) not in covered
        if not entry["counted"]:
            entry["covered_by"] = covered[(m.run["id"], domain)]
        energy[domain] = entry
    election = m.election if isinstance(m.election, Mapping) else {}
    held, elsewhere = election.get("held"), election.get("elsewhere")
    taken = election.get("taken_over")
    return {
        "run_id": m.run["id"], "host": m.host, "rank": m.rank, "label": m.label,
        "global_rank": m.global_rank, "launch": m.launch,
        "status": m.run.get("status"), "exit_code": m.run.get("exit_code"),
        "started_at": m.run.get("started_at"), "ended_at": m.run.get("ended_at"),
        "duration_s": m.run.get("duration_s"),
        "devices": sorted(held) if isinstance(held, (Mapping, list)) else [],
        "metered_elsewhere": dict(elsewhere) if isinstance(elsewhere, Mapping) else {},
        "taken_over": dict(taken) if isinstance(taken, Mapping) else {},
        "energy": energy, "energy_j": counted_j,
        "co2_g": co2_of(counted_j, m.run.get("carbon")),
    }  # fmt: skip


def _env(members: Sequence[Member]) -> Any:
    """The lead's machine description, with every host's GPUs once (``gpu_models``) and the
    hosts (``hosts``): a statement of the hardware counts each node once."""
    env = members[0].run.get("env")
    if not isinstance(env, Mapping):
        return env
    gpus: list[Any] = []
    hosts: list[str] = []
    for m in members:
        if m.host in hosts:
            continue
        hosts.append(m.host)
        own = m.run.get("env")
        models = own.get("gpu_models") if isinstance(own, Mapping) else None
        gpus.extend(models if isinstance(models, list) else [])
    return {**env, "gpu_models": gpus, "hosts": hosts}


def assemble_group(group_id: str, members: Sequence[Member]) -> dict[str, Any]:
    """The run object of a group (see the module docstring) from its members."""
    ordered = _order(members)
    lead = ordered[0].run
    size = group_size(ordered)
    covered = _covered(ordered)
    t0 = min(m.started_unix for m in ordered)
    energy = {d: _domain(d, ordered, covered) for d in DOMAINS}
    figures = [f for f in (_number(e.get("energy_j")) for e in energy.values()) if f is not None]
    energy_j = sum(figures) if figures else None
    counted: dict[str, float | None] = {}
    for m in ordered:
        parts = [_number(f.get("energy_j")) for d, f in m.run["energy"].items()
                 if (m.run["id"], d) not in covered]  # fmt: skip
        parts = [p for p in parts if p is not None]
        counted[m.run["id"]] = sum(parts) if parts else None
    co2s = [(co2_of(counted[m.run["id"]], m.run.get("carbon")), counted[m.run["id"]])
            for m in ordered]  # fmt: skip
    unknown = any(c is None and j is not None for c, j in co2s)
    co2 = None if unknown else sum(c or 0.0 for c, _ in co2s)
    running = any(m.run.get("status") == "running" for m in ordered)
    codes = [m.run.get("exit_code") for m in ordered]
    exit_code = None if running else next((c for c in codes if c not in (0, None)), codes[0])
    ends = [m.run.get("ended_at") for m in ordered]
    durations = [(m.started_unix - t0) + (_number(m.run.get("duration_s")) or 0.0) for m in ordered]
    nets = [_number(m.run.get("net_energy_j")) for m in ordered]
    metrics = []
    for m in ordered:
        offset = m.started_unix - t0
        for entry in m.run.get("metrics") or []:
            t = _number(entry.get("time_s"))
            metrics.append({**entry, "time_s": None if t is None else t + offset})
    tags, config = {}, {}
    for m in reversed(ordered):
        tags.update(m.run.get("tags") or {})
        config.update(m.run.get("config") or {})
    return {
        "id": group_id, "name": lead.get("name"), "status": _status(ordered),
        "exit_code": exit_code,
        "started_at": min(str(m.run.get("started_at")) for m in ordered),
        "ended_at": None if running or None in ends else max(ends),
        "duration_s": None if running else max(durations),
        "tags": tags, "config": config, "command": lead.get("command"), "cwd": lead.get("cwd"),
        "git": lead.get("git"), "env": _env(ordered), "host": lead.get("host"),
        "energy": energy, "energy_j": energy_j,
        "energy_kwh": joules_to_kwh(energy_j) if energy_j is not None else None,
        "co2_g": co2 if energy_j is not None else None, "carbon": lead.get("carbon"),
        "meters": lead.get("meters"), "windows": _windows(ordered, covered),
        "metrics": metrics, "baseline": None,
        "net_energy_j": sum(nets) if None not in nets and not covered else None,
        "events": [{**e, "node": m.label} for m in ordered for e in m.run.get("events") or []
                   if isinstance(e, Mapping)],
        "client_drops": client_drops(e for m in ordered for e in m.run.get("events") or []),
        "energy_alternatives": accounting_alternatives(
            (e for m in ordered for e in m.run.get("events") or []), energy_j
        )
        + [{**a, "node": m.label} for m in ordered  # other meters: against that node's figures
           for a in m.run.get("energy_alternatives") or [] if a.get("evidence")],
        "group": group_id, "launch": ordered[0].launch, "size": size,
        "incomplete": not size["complete"],
        "totals_note": None if size["complete"] else
        f"{size['seen']} of {size['expected']} nodes: the totals count only the nodes recorded",
        "nodes": [_node(m, covered, counted[m.run["id"]]) for m in ordered],
    }  # fmt: skip

"""A run's writes as typed values: one dataclass per kind of write, each running its own SQL
inside a transaction it is given.

The same objects are what a run appends to its journal (:mod:`greentrain.store.journal`, as
``{"op": KIND.op, "args": fields}``) and what :meth:`greentrain.store.Store.apply_entries`
applies (:meth:`~greentrain.store.Store.write` applies one outside a journal). :data:`WRITES`
maps each ``op`` name to its class (the only lookup by name, when a journal line is read back).

Every value is stored as JSON made safe by :mod:`greentrain.record.jsonable` (NaN and
infinities become null); times are unix seconds, durations seconds, energy joules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from greentrain.errors import StoreError
from greentrain.record.jsonable import dumps, loads, to_jsonable
from greentrain.record.vocabulary import STATUSES
from greentrain.store.connection import Connection, Tx
from greentrain.units import iso_utc

METRIC_ROWS = 100  # metrics entries per INSERT statement (500 parameters)
SETTABLE = frozenset(
    {"name", "carbon", "baseline", "best", "git", "env", "tags", "command", "cwd", "election",
     "parent_id", "group_rank", "global_rank"}
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Write:
    """One write of run ``run_id``'s record."""

    op: ClassVar[str] = ""
    run_id: str

    def run(self, tx: Tx, conn: Connection) -> None:
        """Execute this write's statements in ``tx`` (the caller commits)."""
        raise NotImplementedError

    def args(self) -> dict[str, Any]:
        """The fields, as the journal stores them (JSON-safe copies)."""
        return to_jsonable({f.name: getattr(self, f.name) for f in fields(self)})


def _json_row(tx: Tx, conn: Connection, run_id: str, column: str) -> Any:
    row = tx.execute(
        f"SELECT {column} FROM runs WHERE id = ?" + conn.for_update, (run_id,)
    ).fetchone()
    if row is None:
        raise StoreError(f"no run {run_id} in {conn.path}")
    return row[0]


@dataclass(frozen=True, eq=False)
class CreateRun(Write):
    """A ``running`` run owned by process ``pid`` on ``host`` (start ``pid_started`` unix s,
    ``pid_ticks`` clock ticks since boot). A run already there is left as it is."""

    op: ClassVar[str] = "create_run"
    name: str = ""
    command: list = field(default_factory=list)
    cwd: str = ""
    started_unix: float = 0.0
    tags: dict = field(default_factory=dict)
    git: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    carbon: dict | None = None
    host: str | None = None
    pid: int | None = None
    pid_started: float | None = None
    pid_ticks: int | None = None
    group_id: str | None = None
    group_rank: int | None = None
    parent_id: str | None = None
    launch_id: str | None = None
    group_size: int | None = None
    heartbeat_s: float | None = None  # the wrapper's heartbeat period (its samples'); None: none
    first_beat_s: float = 0.0  # seconds before its first sample (a baseline): the first beat

    def run(self, tx: Tx, conn: Connection) -> None:
        tx.execute(
            "INSERT INTO runs (id, name, status, started_at, started_unix, tags, config, command,"
            " cwd, git, env, carbon, host, pid, pid_started, pid_ticks, group_id, group_rank,"
            " parent_id, launch_id, group_size, heartbeat_unix, heartbeat_s) VALUES (?, ?,"
            " 'running', ?, ?, ?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (self.run_id, self.name, iso_utc(self.started_unix), self.started_unix,
             dumps(self.tags), dumps(self.command), self.cwd, dumps(self.git), dumps(self.env),
             None if self.carbon is None else dumps(self.carbon), self.host, self.pid,
             self.pid_started, self.pid_ticks, self.group_id, self.group_rank, self.parent_id,
             self.launch_id, self.group_size, self.started_unix + max(0.0, self.first_beat_s),
             self.heartbeat_s),
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class UpdateConfig(Write):
    """Merge ``params`` into the run's config (later keys win)."""

    op: ClassVar[str] = "update_config"
    params: dict = field(default_factory=dict)

    def run(self, tx: Tx, conn: Connection) -> None:
        config = loads(_json_row(tx, conn, self.run_id, "config"), {})
        config.update(to_jsonable(self.params))
        tx.execute("UPDATE runs SET config = ? WHERE id = ?", (dumps(config), self.run_id))


@dataclass(frozen=True, eq=False)
class SetRunFields(Write):
    """Set plain columns of the run (:data:`SETTABLE`); dicts and lists as JSON."""

    op: ClassVar[str] = "set_run_fields"
    fields: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = set(self.fields) - SETTABLE
        if bad:
            raise ValueError(f"cannot set {sorted(bad)}")

    def run(self, tx: Tx, conn: Connection) -> None:
        if self.fields:
            cols = ", ".join(f"{k} = ?" for k in self.fields)
            vals = [dumps(v) if isinstance(v, (dict, list)) else v for v in self.fields.values()]
            tx.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*vals, self.run_id))


@dataclass(frozen=True, eq=False)
class SetMeters(Write):
    """Record (replace) each meter's status: meter, available, reason, fix, error, devices."""

    op: ClassVar[str] = "set_meters"
    meters: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        rows = [(self.run_id, m["meter"], int(bool(m.get("available"))), m.get("reason") or "",
                 m.get("fix") or "", m.get("error"), dumps(list(m.get("devices") or [])))
                for m in self.meters]  # fmt: skip
        if rows:
            tx.executemany(
                "INSERT INTO meters (run_id, meter, available, reason, fix, error, devices)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, meter) DO UPDATE SET"
                " available = excluded.available, reason = excluded.reason, fix = excluded.fix,"
                " error = excluded.error, devices = excluded.devices",
                rows,
            )


@dataclass(frozen=True, eq=False)
class AddEnergy(Write):
    """Store (replace) energy rows (meter, domain, device, method, energy_j, detail) of a
    scope: ``window_idx`` -1 (the whole run) or a window. A non-finite energy is not stored."""

    op: ClassVar[str] = "add_energy"
    window_idx: int = -1
    rows: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        values = [(self.run_id, self.window_idx, r["meter"], r["domain"], r["device"],
                   r["method"], float(r["energy_j"]), dumps(dict(r.get("detail") or {})))
                  for r in self.rows if math.isfinite(float(r["energy_j"]))]  # fmt: skip
        if values:
            tx.executemany(
                "INSERT INTO energy (run_id, window_idx, meter, domain, device, method, energy_j,"
                " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, window_idx, meter, domain, device) DO UPDATE SET"
                " method = excluded.method, energy_j = excluded.energy_j, detail = excluded.detail",
                values,
            )


@dataclass(frozen=True, eq=False)
class BeginWindow(Write):
    """Open window ``idx`` named ``name`` at ``started_unix``."""

    op: ClassVar[str] = "begin_window"
    idx: int = 0
    name: str = ""
    started_unix: float = 0.0
    info: dict = field(default_factory=dict)

    def run(self, tx: Tx, conn: Connection) -> None:
        tx.execute(
            "INSERT INTO windows (run_id, idx, name, started_at, info) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, idx) DO UPDATE SET name = excluded.name,"
            " started_at = excluded.started_at, ended_at = NULL, duration_s = NULL,"
            " info = excluded.info",
            (self.run_id, self.idx, self.name, iso_utc(self.started_unix), dumps(self.info)),
        )


@dataclass(frozen=True, eq=False)
class EndWindow(Write):
    """Close window ``idx`` (``duration_s`` from a monotonic clock) and store its energy."""

    op: ClassVar[str] = "end_window"
    idx: int = 0
    ended_unix: float = 0.0
    duration_s: float = 0.0
    energy_rows: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        tx.execute(
            "UPDATE windows SET ended_at = ?, duration_s = ? WHERE run_id = ? AND idx = ?",
            (iso_utc(self.ended_unix), self.duration_s, self.run_id, self.idx),
        )
        AddEnergy(self.run_id, window_idx=self.idx, rows=self.energy_rows).run(tx, conn)


@dataclass(frozen=True, eq=False)
class AddMetrics(Write):
    """Append logged metrics, in order: each entry has step, window, time_s and metrics."""

    op: ClassVar[str] = "add_metrics"
    entries: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        rows = [(self.run_id, e.get("step"), e.get("window"), float(e["time_s"]),
                 dumps(dict(e.get("metrics") or {}))) for e in self.entries]  # fmt: skip
        for start in range(0, len(rows), METRIC_ROWS):
            chunk = rows[start : start + METRIC_ROWS]
            values = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            tx.execute(
                f'INSERT INTO metrics (run_id, step, "window", time_s, payload) VALUES {values}',
                [v for row in chunk for v in row],
            )


@dataclass(frozen=True, eq=False)
class AddEvents(Write):
    """Append events (``{"t", "event", ...}``) to the run's ``events`` list."""

    op: ClassVar[str] = "add_events"
    events: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        if self.events:
            stored = loads(_json_row(tx, conn, self.run_id, "events"), [])
            tx.execute("UPDATE runs SET events = ? WHERE id = ?",
                       (dumps(stored + to_jsonable(self.events)), self.run_id))  # fmt: skip


@dataclass(frozen=True, eq=False)
class AddSample(Write):
    """The run's ``seq``-th sample: unix time ``t``, the job's CPU seconds and cumulative
    readings (:func:`greentrain.record.readings.sample_readings`). A sample is also the
    wrapper's heartbeat: ``runs.heartbeat_unix`` moves to ``t`` (never back)."""

    op: ClassVar[str] = "add_sample"
    seq: int = 0
    t: float = 0.0
    cpu_s: float | None = None
    readings: list = field(default_factory=list)

    def run(self, tx: Tx, conn: Connection) -> None:
        tx.execute(
            "INSERT INTO samples (run_id, seq, t, cpu_s, readings) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, seq) DO UPDATE SET t = excluded.t, cpu_s = excluded.cpu_s,"
            " readings = excluded.readings",
            (self.run_id, self.seq, self.t, self.cpu_s, dumps(self.readings)),
        )
        tx.execute(
            "UPDATE runs SET heartbeat_unix = ? WHERE id = ?"
            " AND (heartbeat_unix IS NULL OR heartbeat_unix < ?)",
            (self.t, self.run_id, self.t),
        )


@dataclass(frozen=True, eq=False)
class FinishRun(Write):
    """The final status, exit code, end label (unix s) and duration (s, monotonic)."""

    op: ClassVar[str] = "finish_run"
    status: str = "finished"
    exit_code: int | None = None
    ended_unix: float = 0.0
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} not in {STATUSES}")

    def run(self, tx: Tx, conn: Connection) -> None:
        tx.execute(
            "UPDATE runs SET status = ?, exit_code = ?, ended_at = ?,"
            " duration_s = COALESCE(?, ? - started_unix) WHERE id = ?",
            (self.status, self.exit_code, iso_utc(self.ended_unix), self.duration_s,
             self.ended_unix, self.run_id),
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class AbandonRun(Write):
    """The run's wrapper died: mark it ``interrupted`` if still ``running`` (ended at
    ``ended_unix``, else at its last sample) and append ``event`` either way, in place of an
    event of its kind already there (a reader that found the wrapper gone first): one death,
    one event."""

    op: ClassVar[str] = "abandon_run"
    ended_unix: float | None = None
    event: dict = field(default_factory=dict)

    def run(self, tx: Tx, conn: Connection) -> None:
        row = tx.execute(
            "SELECT status, events FROM runs WHERE id = ?" + conn.for_update, (self.run_id,)
        ).fetchone()
        if row is None:
            return
        kind = self.event.get("event")
        kept = [e for e in loads(row[1], []) if not isinstance(e, dict) or e.get("event") != kind]
        events = dumps(kept + [to_jsonable(self.event)])
        if row[0] != "running":
            tx.execute("UPDATE runs SET events = ? WHERE id = ?", (events, self.run_id))
            return
        end = self.ended_unix
        if end is None:
            end = tx.execute("SELECT MAX(t) FROM samples WHERE run_id = ?",
                             (self.run_id,)).fetchone()[0]  # fmt: skip
        tx.execute(
            "UPDATE runs SET status = 'interrupted', events = ?, ended_at = COALESCE(?, ended_at),"
            " duration_s = COALESCE(? - started_unix, duration_s) WHERE id = ?",
            (events, None if end is None else iso_utc(end), end, self.run_id),
        )


WRITES: dict[str, type[Write]] = {cls.op: cls for cls in Write.__subclasses__()}

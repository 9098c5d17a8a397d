"""What a training script calls to tell greentrain about itself.

``config(**params)``, ``log(step=None, **metrics)``, ``window(name, **info)`` and ``active()``.
Every call is a no-op outside a run, so a script can call them unconditionally; the checks on
the values are the same inside and outside a run.

Routing:

* inside :func:`greentrain.run.track` in this process, calls go straight to that run;
* under ``greentrain run``, the harness sets ``GREENTRAIN_RUN`` (the run id) and
  ``GREENTRAIN_CHANNEL`` (a UNIX socket path); each call writes one JSON line on a
  per-process connection and does not wait for the harness (:mod:`greentrain.client.link`:
  reconnects, a bounded buffer, counted drops, fork safety). Child processes (DataLoader
  workers, torchrun ranks) inherit both variables;
* under DDP only global rank 0 (``RANK``, else ``SLURM_PROCID``, else ``LOCAL_RANK``) reports
  config and metrics, unless ``GREENTRAIN_LOG_ALL_RANKS=1`` (then each metric entry carries its
  ``rank``). Windows are marked by each node's local rank 0 (``LOCAL_RANK``, else ``RANK``):
  on a multi-node job every node's ``greentrain run`` reads its meters at the windows of its
  own node, and only the node of global rank 0 records metrics.

Values are made JSON-safe (:func:`greentrain.record.jsonable.to_jsonable`). A value the record
cannot store (an integer beyond 64 bits, a cycle, nesting deeper than 32 levels, over 1 MiB as
JSON: :mod:`greentrain.client.values`) is left out alone, with one warning (``logging``, logger
``greentrain.client``) naming it; the rest of its call is recorded, and within a run the
record counts what was left out (event ``client entries dropped``). ``step`` must be an
integer (TypeError otherwise, everywhere); a step beyond 64 bits leaves out its whole entry,
with a warning. Metric names that the record uses itself (``step``, ``window``, ``time_s``)
are stored with a ``user_`` prefix. Windows are per thread (:mod:`greentrain.client.windows`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from greentrain.client.answers import WindowHandle
from greentrain.client.link import Link
from greentrain.client.values import Unstorable, config_line, log_line, name_json, storable
from greentrain.client.windows import Windows
from greentrain.protocol import (
    ENV_ALL_RANKS,
    ENV_CHANNEL,
    ENV_RUN,
    Sink,
    evidence_message,
    tracker_run_message,
    window_begin_message,
    window_end_message,
)
from greentrain.protocol import encode as encode_message
from greentrain.record.drops import DROPS_EVENT
from greentrain.record.vocabulary import RESERVED_METRICS

__all__ = [
    "config",
    "log",
    "window",
    "active",
    "run_id",
    "flush",
    "tracker_run",
    "evidence",
    "WindowHandle",
]

logger = logging.getLogger("greentrain.client")
DROP_UNSTORABLE = "unstorable value"

# In-process runs opened by greentrain.run.track(), innermost last. Not a reset-me singleton:
# track() pushes on enter and pops in ``finally``.
_local_sinks: list[Sink] = []
_sink_drops: dict[int, collections.Counter[str]] = {}  # id(sink) -> values left out
_link = Link()
_windows = Windows()
_counter = itertools.count()
_state_lock = threading.Lock()
_warned: set[str] = set()


def _after_fork_in_child() -> None:
    global _state_lock
    _state_lock = threading.Lock()
    _link.after_fork_in_child()
    _windows.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def bind(sink: Sink) -> None:
    """Route this process's client calls to ``sink`` (used by ``greentrain.run.track``)."""
    with _state_lock:
        _local_sinks.append(sink)


def unbind(sink: Sink) -> None:
    """Undo :func:`bind`; values left out meanwhile become one event of ``sink``'s run."""
    with _state_lock:
        if sink in _local_sinks:
            _local_sinks.remove(sink)
        dropped = _sink_drops.pop(id(sink), None)
    if dropped:
        sink.event_now(DROPS_EVENT, count=sum(dropped.values()), reasons=dict(dropped),
                       pid=os.getpid())  # fmt: skip


def _rank_zero(*names: str) -> bool:
    """Whether the first of the environment variables ``names`` that is set says rank 0 (or
    ``GREENTRAIN_LOG_ALL_RANKS=1``); True when none is set."""
    if os.environ.get(ENV_ALL_RANKS, "") == "1":
        return True
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value) == 0
            except ValueError:
                return True
    return True


def _rank() -> int | None:
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK"))
    try:
        return int(rank) if rank is not None else None
    except ValueError:
        return None


def _target(windows: bool = False) -> tuple[Sink | None, str | None]:
    """(in-process sink, channel path); both None -> no-op. ``windows``: for a window
    boundary (sent by every node's local rank 0), else for config and metrics (rank 0)."""
    if _local_sinks:
        return _local_sinks[-1], None
    if windows:
        if not _rank_zero("LOCAL_RANK", "RANK"):
            return None, None
    elif not _rank_zero("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        return None, None
    path = os.environ.get(ENV_CHANNEL)
    if path and os.environ.get(ENV_RUN):
        return None, path
    return None, None


def active() -> bool:
    """Whether calls from here are recorded (inside a run, and rank 0 under DDP)."""
    sink, path = _target()
    return sink is not None or path is not None


def run_id() -> str | None:
    """The id of the run this process reports to, or None."""
    if _local_sinks:
        return getattr(_local_sinks[-1], "run_id", None)
    return os.environ.get(ENV_RUN) if active() else None


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("greentrain: %s", message)


def _left_out(what: str, name: str, reason: str, sink: Sink | None, path: str | None) -> None:
    """One value (or entry) refused: warn once per name and reason; count it within a run."""
    _warn_once(f"{what}:{name}:{reason}", f"{what} {name!r} was left out: {reason}")
    if sink is not None:
        with _state_lock:
            _sink_drops.setdefault(id(sink), collections.Counter())[DROP_UNSTORABLE] += 1
    elif path is not None:
        _link.count_drop(DROP_UNSTORABLE)


def _checked_step(step: Any) -> int | None:
    """``step`` as an int (ints, integral floats, one-element integer tensors); else TypeError.
    A step beyond 64 bits raises :class:`Unstorable`."""
    if step is None:
        return None
    if type(step) is int:
        value = step
    else:
        try:
            value, _ = storable(step)
        except Unstorable:
            raise TypeError(f"client.log(step=...) must be an integer, got {step!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"client.log(step=...) must be an integer, got {step!r}")
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"client.log(step=...) must be an integer, got {step!r}")
    value = int(value)
    storable(value)  # beyond 64 bits: Unstorable
    return value


def _entries(
    values: dict[str, Any], what: str, sink: Sink | None, path: str | None, metrics: bool = False
) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    """The storable ``values`` (plain, and as encoded (name, value) pairs); each refused one
    is left out alone (see :func:`_left_out`). ``metrics``: apply the ``user_`` prefix."""
    plain: dict[str, Any] = {}
    pieces: list[tuple[bytes, bytes]] = []
    for name, value in values.items():
        name = str(name)
        if metrics and name in RESERVED_METRICS:
            _warn_once(
                f"reserved:{name}",
                f"metric name {name!r} is the record's own; it is stored as 'user_{name}'",
            )
            name = f"user_{name}"
        try:
            plain[name], encoded = storable(value)
        except Unstorable as err:
            _left_out(what, name, str(err), sink, path)
            continue
        pieces.append((name_json(name), encoded))
    return plain, pieces


def config(**params: Any) -> None:
    """Record run parameters (model, drop rate, schedule, ...); merged over earlier calls."""
    sink, path = _target()
    plain, pieces = _entries(params, "config value", sink, path)
    if sink is not None:
        sink.on_config(plain)
    elif path is not None:
        _link.send(path, config_line(pieces))


def log(step: int | None = None, **metrics: Any) -> None:
    """Record metrics (accuracy, loss, FID, drop rate, FLOPs) at ``step``.

    The entry also records the window it belongs to (see :mod:`greentrain.client.windows`) and
    the time (seconds since the run started, computed by the harness).
    """
    sink, path = _target()
    try:
        step = _checked_step(step)
    except Unstorable as err:
        _left_out("log entry with step", str(step), str(err), sink, path)
        return
    plain, pieces = _entries(metrics, "metric", sink, path, metrics=True)
    if sink is None and path is None:
        return
    if os.environ.get(ENV_ALL_RANKS, "") == "1" and "rank" not in plain:
        rank = _rank()
        if rank is not None:
            plain["rank"] = rank
            pieces.append((b'"rank"', str(rank).encode()))
    current = _windows.current()
    t = time.time()
    if sink is not None:
        sink.on_log(step, plain, current, t)
    else:
        _link.send(path, log_line(step, pieces, current, t))


def flush(timeout_s: float = 5.0) -> bool:
    """Wait up to ``timeout_s`` seconds for entries buffered while the wrapper was not taking
    them (it happens at exit by itself); True when nothing is left to send. For a process that
    ends with ``os._exit``."""
    return _link.flush(timeout_s)


@contextlib.contextmanager
def window(name: str, **info: Any) -> Iterator[WindowHandle]:
    """Mark a phase (``"epoch"``, ``"eval"``): energy is read at enter and at exit.

    Windows may nest; metrics logged inside, by the same thread or task, carry the innermost
    window's name (threads without a window of their own: the main thread's). The handle it
    gives has the window's energy once it closed: ``w.answer(timeout_s)``
    (:mod:`greentrain.client.answers`).
    """
    sink, path = _target(windows=True)
    name = str(name)
    info, _ = _entries(info, "window info", sink, path)
    key = f"{os.getpid()}:{next(_counter)}"
    if sink is not None:
        sink.on_window_begin(key, name, info, time.time())
    elif path is not None:
        _link.send(path, encode_message(window_begin_message(key, name, info, time.time())))
    token = _windows.enter(key, name)
    handle = WindowHandle(key, name, _link.answer if path is not None else None)
    try:
        yield handle
    finally:
        _windows.leave(key, token)
        answer = None
        if sink is not None:
            answer = sink.on_window_end(key, time.time())
        elif path is not None:
            _link.send(path, encode_message(window_end_message(key, time.time())))
        handle.settle(answer if isinstance(answer, dict) else None)


def tracker_run(tracker: str, run: str, **where: Any) -> None:
    """Tell the run which tracker run the trainer logs to itself (``tracker``: ``mlflow`` or
    ``wandb``; ``run``: its id; ``where``: ``uri``, ``project``): stored as an event, and a
    ``greentrain run --mirror`` of the same tracker writes into that run instead of its own."""
    sink, path = _target()
    info = {"tracker": str(tracker), "run": str(run), **{k: str(v) for k, v in where.items()}}
    if sink is not None:
        sink.on_tracker_run(info)
    elif path is not None:
        _link.send(path, encode_message(tracker_run_message(info)))


def evidence(info: dict[str, Any]) -> None:
    """Hand the run another meter's figures for it (CodeCarbon's, Zeus's: see
    :mod:`greentrain.integrations.evidence`, which builds ``info``): stored as an event and
    shown beside greentrain's own figures, never counted in them. No-op outside a run.
    ``info`` that is not JSON with finite numbers is left out, with one warning."""
    sink, path = _target()
    if sink is None and path is None:
        return
    try:
        line = encode_message(evidence_message(dict(info)))
    except (TypeError, ValueError) as err:
        _warn_once(f"evidence:{info.get('meter')}", f"evidence left out (not JSON: {err})")
        return
    if sink is not None:
        sink.on_evidence(dict(info))
    else:
        _link.send(path, line)

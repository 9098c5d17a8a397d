"""What a training script calls to tell greentrain about itself.

``config(**params)``, ``log(step=None, **metrics)``, ``window(name, **info)`` and ``active()``.
Every call is a silent no-op outside a run, so a script can call them unconditionally.

Routing:

* inside :func:`greentrain.run.track` in this process, calls go straight to that run;
* under ``greentrain run``, the harness sets ``GREENTRAIN_RUN`` (the run id) and
  ``GREENTRAIN_CHANNEL`` (a UNIX socket path); each call writes one JSON line on a
  per-process connection and does not wait for a reply (tens of microseconds). Child
  processes (DataLoader workers, torchrun ranks) inherit both variables;
* under DDP only global rank 0 (``RANK``, else ``SLURM_PROCID``, else ``LOCAL_RANK``) reports
  config and metrics, unless ``GREENTRAIN_LOG_ALL_RANKS=1`` (then each metric entry carries its
  ``rank``). Windows are marked by each node's local rank 0 (``LOCAL_RANK``, else ``RANK``):
  on a multi-node job every node's ``greentrain run`` reads its meters at the windows of its
  own node, and only the node of global rank 0 records metrics.

Values are made JSON-safe (:func:`greentrain.record.jsonable.to_jsonable`): tensors and numpy
scalars become numbers, NaN and infinities None, other objects their ``str()``. Arguments are
checked the same way inside and outside a run: ``step`` must be an integer (TypeError). A value
whose JSON is larger than :data:`~greentrain.protocol.MAX_MESSAGE_BYTES` (1 MiB) is not
recorded (a warning on stderr says which), and later calls still arrive. Metric names that the
record uses itself (``step``, ``window``, ``time_s``) are stored with a ``user_`` prefix.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from greentrain import protocol
from greentrain.protocol import ENV_ALL_RANKS, ENV_CHANNEL, ENV_RUN, Sink
from greentrain.record.jsonable import to_jsonable
from greentrain.record.vocabulary import RESERVED_METRICS

__all__ = ["config", "log", "window", "active", "run_id"]


# In-process runs opened by greentrain.run.track(), innermost last. Not a reset-me singleton:
# track() pushes on enter and pops in ``finally``.
_local_sinks: list[Sink] = []
_window_names: list[str] = []  # open windows of this process, innermost last
_counter = itertools.count()
_state_lock = threading.Lock()


def bind(sink: Sink) -> None:
    """Route this process's client calls to ``sink`` (used by ``greentrain.run.track``)."""
    with _state_lock:
        _local_sinks.append(sink)


def unbind(sink: Sink) -> None:
    """Undo :func:`bind`."""
    with _state_lock:
        if sink in _local_sinks:
            _local_sinks.remove(sink)


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


def _rank_enabled() -> bool:
    """Config and metrics: global rank 0 only."""
    return _rank_zero("RANK", "SLURM_PROCID", "LOCAL_RANK")


def _node_leader() -> bool:
    """Windows: each node's (each wrapper's) local rank 0."""
    return _rank_zero("LOCAL_RANK", "RANK")


def _rank() -> int | None:
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK"))
    try:
        return int(rank) if rank is not None else None
    except ValueError:
        return None


class _Channel:
    """A UNIX stream connection to the harness, one per process (re-made after fork).

    Each message is one JSON line. The kernel buffers a few hundred kilobytes per connection,
    so a burst of calls does not wait for the harness.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._pid = -1
        self._path = ""
        self._broken = False
        self._lock = threading.Lock()

    def _connect(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10.0)
        self._sock, self._pid, self._path, self._broken = sock, os.getpid(), path, False
        sock.connect(path)

    def send(self, path: str, message: dict[str, Any]) -> None:
        data = protocol.encode(message)
        with self._lock:
            if self._broken and path == self._path and self._pid == os.getpid():
                return
            try:
                if self._sock is None or self._pid != os.getpid() or path != self._path:
                    self._connect(path)
                self._sock.sendall(data)
            except OSError as err:
                self._broken = True
                print(
                    f"greentrain: cannot reach the wrapping `greentrain run` ({err}); "
                    "further client calls in this process are ignored",
                    file=sys.stderr,
                )


_channel = _Channel()


def _target(windows: bool = False) -> tuple[Sink | None, str | None]:
    """(in-process sink, channel path); both None -> no-op. ``windows``: for a window
    boundary (sent by every node's local rank 0), else for config and metrics (rank 0)."""
    if _local_sinks:
        return _local_sinks[-1], None
    if not (_node_leader() if windows else _rank_enabled()):
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


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(f"greentrain: {message}", file=sys.stderr)


def _checked_step(step: Any) -> int | None:
    """``step`` as an int (ints, integral floats, one-element integer tensors); else TypeError."""
    if step is None:
        return None
    value = to_jsonable(step)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"client.log(step=...) must be an integer, got {step!r}")
    if isinstance(value, float) and not value.is_integer():
        raise TypeError(f"client.log(step=...) must be an integer, got {step!r}")
    return int(value)


def _bounded(values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` without the entries too large to send (each reported once on stderr)."""
    if len(protocol.encode({"v": values})) <= protocol.MAX_MESSAGE_BYTES:
        return values
    kept = {}
    for name, value in values.items():
        size = len(protocol.encode({"v": value}))
        if size > protocol.MAX_MESSAGE_BYTES // 2:
            _warn_once(
                f"{what}:{name}",
                f"{what} {name!r} ({size / 2**20:.1f} MiB as JSON) is larger than greentrain "
                f"records ({protocol.MAX_MESSAGE_BYTES // 2**20} MiB per call) and was left out",
            )
            continue
        kept[name] = value
    return kept


def _without_reserved(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metric names the record uses itself get a ``user_`` prefix (warned once per name)."""
    out = {}
    for name, value in metrics.items():
        if name in RESERVED_METRICS:
            _warn_once(
                f"reserved:{name}",
                f"metric name {name!r} is the record's own; it is stored as 'user_{name}'",
            )
            name = f"user_{name}"
        out[name] = value
    return out


def config(**params: Any) -> None:
    """Record run parameters (model, drop rate, schedule, ...); merged over earlier calls."""
    sink, path = _target()
    if sink is None and path is None:
        return
    params = _bounded(to_jsonable(params), "config value")
    if sink is not None:
        sink.on_config(params)
    else:
        _channel.send(path, protocol.config_message(params))


def log(step: int | None = None, **metrics: Any) -> None:
    """Record metrics (accuracy, loss, FID, drop rate, FLOPs) at ``step``.

    The entry also records the innermost open window's name and the time (seconds since the
    run started, computed by the harness).
    """
    step = _checked_step(step)
    sink, path = _target()
    if sink is None and path is None:
        return
    payload = _bounded(_without_reserved(to_jsonable(metrics)), "metric")
    if os.environ.get(ENV_ALL_RANKS, "") == "1" and _rank() is not None:
        payload.setdefault("rank", _rank())
    current = _window_names[-1] if _window_names else None
    t = time.time()
    if sink is not None:
        sink.on_log(step, payload, current, t)
    else:
        _channel.send(path, protocol.log_message(step, payload, current, t))


@contextlib.contextmanager
def window(name: str, **info: Any) -> Iterator[None]:
    """Mark a phase (``"epoch"``, ``"eval"``): energy is read at enter and at exit.

    Windows may nest; metrics logged inside carry the innermost window's name.
    """
    sink, path = _target(windows=True)
    if sink is None and path is None:
        yield
        return
    key = f"{os.getpid()}:{next(_counter)}"
    info = _bounded(to_jsonable(info), "window info")
    if sink is not None:
        sink.on_window_begin(key, str(name), info, time.time())
    else:
        _channel.send(path, protocol.window_begin_message(key, str(name), info, time.time()))
    _window_names.append(str(name))
    try:
        yield
    finally:
        _window_names.pop()
        if sink is not None:
            sink.on_window_end(key, time.time())
        else:
            _channel.send(path, protocol.window_end_message(key, time.time()))

"""The messages a training script's client sends to the harness, known to both sides.

Under ``greentrain run`` the harness sets :data:`ENV_RUN` (the run id) and :data:`ENV_CHANNEL`
(a UNIX socket path) in the job's environment; each ``greentrain.client`` call writes one JSON
line on a per-process connection (``"k"`` is the kind). Inside ``track()`` the same calls go
straight to an in-process :class:`Sink`. Times are unix seconds taken by the caller.

=============  =========================================================================
kind           fields
=============  =========================================================================
``config``     ``params`` (dict merged into the run's config)
``log``        ``step`` (int | None), ``m`` (metrics dict), ``w`` (innermost window), ``t``
``wb``         window begin: ``id`` (per-process key), ``name``, ``info`` (dict), ``t``
``we``         window end: ``id``, ``t``
``dr``         drops: ``src`` (one process's connection: pid and a random tag), ``pid``,
               ``counts`` (reason -> entries dropped so far by that process, cumulative)
``tr``         the trainer's own tracker run: ``tracker`` (``mlflow``, ``wandb``), ``run``
               (its id), ``uri`` / ``project`` (where it is)
``ev``         another meter's figures for the run (evidence, never counted): ``meter``
               (``codecarbon``, ``zeus``), ``method``, ``scope`` (``machine``, ``process``,
               ``devices``), ``energy_j`` (domain -> J), ``co2_g``, ``intensity_g_per_kwh``,
               ``intensity_source``, ``region``, ``duration_s``
=============  =========================================================================

The harness answers on the same connection, one JSON line per closed window (kind ``wa``):
``id`` (the window's key), ``name``, ``index`` (its ``info["index"]``), ``duration_s``,
``energy`` (the best figure per domain: ``energy_j``, ``source``, ``estimated``; a domain no
meter measured has ``energy_j`` None) and ``carbon`` (``intensity_g_per_kwh``, ``pue``).

The harness reads every meter when a window boundary (``wb``/``we``) arrives, so those kinds
are :data:`BOUNDARIES`. A client that could not hand its last lines to the harness before it
exited writes them, as the same JSON lines, to a file named ``spill-<src>-<n>.jsonl`` in the
socket's directory (:data:`SPILL_PREFIX`); the harness reads those when the job has ended.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

ENV_RUN = "GREENTRAIN_RUN"
ENV_CHANNEL = "GREENTRAIN_CHANNEL"
ENV_ALL_RANKS = "GREENTRAIN_LOG_ALL_RANKS"

CONFIG = "config"
LOG = "log"
WINDOW_BEGIN = "wb"
WINDOW_END = "we"
DROPS = "dr"
TRACKER_RUN = "tr"
EVIDENCE = "ev"
WINDOW_ANSWER = "wa"  # harness -> client
KINDS = (CONFIG, LOG, WINDOW_BEGIN, WINDOW_END, DROPS, TRACKER_RUN, EVIDENCE)
BOUNDARIES = (WINDOW_BEGIN, WINDOW_END)
MAX_MESSAGE_BYTES = 1 << 20  # the client leaves out a value whose JSON is larger
SPILL_PREFIX = "spill-"


class Sink(Protocol):
    """A receiver of client calls (the harness's recorder implements it)."""

    def on_config(self, params: dict[str, Any]) -> None: ...

    def on_log(
        self, step: int | None, metrics: dict[str, Any], window: str | None, t: float
    ) -> None: ...

    def on_window_begin(self, key: str, name: str, info: dict[str, Any], t: float) -> None: ...

    def on_window_end(self, key: str, t: float) -> dict[str, Any] | None: ...

    def on_tracker_run(self, info: dict[str, Any]) -> None: ...

    def on_evidence(self, info: dict[str, Any]) -> None: ...

    def event_now(self, event: str, **detail: Any) -> None: ...


def config_message(params: dict[str, Any]) -> dict[str, Any]:
    return {"k": CONFIG, "params": params}


def log_message(
    step: int | None, metrics: dict[str, Any], window: str | None, t: float
) -> dict[str, Any]:
    return {"k": LOG, "step": step, "m": metrics, "w": window, "t": t}


def window_begin_message(key: str, name: str, info: dict[str, Any], t: float) -> dict[str, Any]:
    return {"k": WINDOW_BEGIN, "id": key, "name": name, "info": info, "t": t}


def window_end_message(key: str, t: float) -> dict[str, Any]:
    return {"k": WINDOW_END, "id": key, "t": t}


def drops_message(source: str, pid: int, counts: dict[str, int]) -> dict[str, Any]:
    return {"k": DROPS, "src": source, "pid": pid, "counts": counts}


def tracker_run_message(info: dict[str, Any]) -> dict[str, Any]:
    return {"k": TRACKER_RUN, **info}


def evidence_message(info: dict[str, Any]) -> dict[str, Any]:
    return {"k": EVIDENCE, **info}


def window_answer_message(key: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The harness's answer to a window's end (see the module docstring)."""
    return {"k": WINDOW_ANSWER, "id": key, **answer}


def encode(message: dict[str, Any]) -> bytes:
    """One message as a JSON line (values must already be JSON-safe)."""
    return json.dumps(message, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One JSON line -> a message dict; ValueError for anything that is not a known kind."""
    message = json.loads(line)
    if not isinstance(message, dict) or message.get("k") not in KINDS:
        raise ValueError(f"not a greentrain client message: {line[:80]!r}")
    return message


def is_boundary(message: dict[str, Any]) -> bool:
    """Whether the harness must read the meters when ``message`` arrives."""
    return message.get("k") in BOUNDARIES


def deliver(message: dict[str, Any], sink: Any, readings: Any = None) -> dict[str, Any] | None:
    """Apply ``message`` to ``sink`` (a :class:`Sink`; boundaries also take ``readings``);
    a window's end returns the answer for the client (None when there is none).
    ``drops`` messages are the harness's own to account (they need its per-process state)."""
    kind = message["k"]
    if kind == LOG:
        sink.on_log(
            message.get("step"), message.get("m") or {}, message.get("w"), float(message["t"])
        )
    elif kind == CONFIG:
        sink.on_config(message.get("params") or {})
    elif kind == WINDOW_BEGIN:
        sink.on_window_begin(
            message["id"], message["name"], message.get("info") or {}, float(message["t"]), readings
        )
    elif kind == WINDOW_END:
        return sink.on_window_end(message["id"], float(message["t"]), readings)
    elif kind == TRACKER_RUN:
        info = {k: v for k, v in message.items() if k != "k"}
        sink.on_tracker_run(info)
    elif kind == EVIDENCE:
        sink.on_evidence({k: v for k, v in message.items() if k != "k"})
    return None

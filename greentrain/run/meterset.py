"""The meters of one run: probe, start, read, stop -- errors recorded, never raised.

A meter that cannot run here, or breaks mid-run, is recorded with its reason or error in
:meth:`MeterSet.statuses` (stored with the run, quoted when a domain has no figure) and the
other meters carry on.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from greentrain import meters as registry
from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import Meter
from greentrain.record.readings import Readings


class MeterSet:
    """The meters of one run.

    Args:
        names: registry names to create (see :data:`greentrain.meters.METERS`).
        meters: ready meter objects (tests), used in addition to ``names``.
        options: constructor options per meter name.
    """

    def __init__(
        self,
        names: Sequence[str] = (),
        *,
        meters: Sequence[Meter] = (),
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.status: dict[str, dict[str, Any]] = {}
        self.running: dict[str, Meter] = {}
        self._candidates: list[tuple[str, Meter | None, str]] = []
        for name in names:
            try:
                meter = registry.create_meter(name, **dict((options or {}).get(name, {})))
                self._candidates.append((name, meter, ""))
            except ConfigError:
                raise
            except Exception as err:  # noqa: BLE001 - a broken meter must not stop the run
                self._candidates.append((name, None, f"{type(err).__name__}: {err}"))
        for meter in meters:
            self._candidates.append((meter.name, meter, ""))
        self._lock = threading.Lock()

    def _set(self, name: str, **fields: Any) -> None:
        entry = self.status.setdefault(
            name,
            {"meter": name, "available": False, "reason": "", "fix": "", "error": None,
             "devices": []},
        )  # fmt: skip
        entry.update(fields)

    def start(self) -> None:
        """Probe every candidate and start the available ones, all meters concurrently.

        Probing and starting are dominated by library imports and hardware discovery (Zeus,
        CodeCarbon: seconds each), so they run in one thread per meter; the run's start
        latency is that of the slowest meter, not their sum.
        """
        for name, _, _ in self._candidates:
            self._set(name)  # status entries in candidate order, whatever finishes first
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self._candidates))) as ex:
            started = list(ex.map(lambda c: self._probe_and_start(*c), self._candidates))
        for (name, _, _), meter in zip(self._candidates, started, strict=True):
            if meter is not None:
                self.running[name] = meter

    def _probe_and_start(self, name: str, meter: Meter | None, create_error: str) -> Meter | None:
        """Probe and start one meter; returns it when running, else records why not."""
        if meter is None:
            self._set(name, available=False, reason=f"could not create: {create_error}")
            return None
        try:
            probe = meter.probe()
        except Exception as err:  # noqa: BLE001
            self._set(name, available=False, reason=f"probe failed: {err}")
            return None
        self._set(
            name,
            available=probe.available,
            reason=probe.reason,
            fix=probe.fix,
            devices=list(probe.devices),
        )
        if not probe.available:
            return None
        try:
            meter.start()
        except MeterUnavailable as err:
            self._set(name, available=False, reason=err.reason, fix=err.fix)
            return None
        except Exception as err:  # noqa: BLE001
            self._set(name, error=f"start failed: {type(err).__name__}: {err}")
            return None
        return meter

    def _fail(self, name: str, err: BaseException, when: str) -> None:
        self._set(name, error=f"{when} failed: {type(err).__name__}: {err}")
        meter = self.running.pop(name, None)
        if meter is not None:
            with contextlib.suppress(Exception):
                meter.stop()

    def read(self) -> Readings:
        """Cumulative readings of every healthy meter; a meter that raises is dropped."""
        out: Readings = {}
        with self._lock:
            for name, meter in list(self.running.items()):
                try:
                    out[name] = list(meter.read())
                except Exception as err:  # noqa: BLE001 - record and carry on
                    self._fail(name, err, "read")
        return out

    def stop(self) -> Readings:
        """Final cumulative readings; every meter is stopped (errors recorded)."""
        out: Readings = {}
        with self._lock:
            for name, meter in list(self.running.items()):
                try:
                    out[name] = list(meter.stop())
                except Exception as err:  # noqa: BLE001
                    self._set(name, error=f"stop failed: {type(err).__name__}: {err}")
                self.running.pop(name, None)
        return out

    def attach(self, pid: int) -> None:
        """Tell meters that follow a process tree (estimate) which child to follow."""
        for name, meter in list(self.running.items()):
            attach = getattr(meter, "attach", None)
            if callable(attach):
                try:
                    attach(pid)
                except Exception as err:  # noqa: BLE001
                    self._fail(name, err, "attach")

    def statuses(self) -> list[dict[str, Any]]:
        """Every meter's status: meter, available, reason, fix, error (mid-run), devices."""
        return [dict(v) for v in self.status.values()]

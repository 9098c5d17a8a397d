"""A scripted meter for tests and dry runs (``--meter fake``).

The fake meter returns cumulative energy from a *script*, never from hardware. Its figures are
labelled with method ``"fake"`` (unless a channel says otherwise, for tests of the best-figure
choice), so a dry run can never be mistaken for a measurement.

Script format (a dict; the same shape is accepted as JSON in the environment variable
``GREENTRAIN_FAKE_METER``, either the JSON text itself or a path to a JSON file)::

    {
      "name": "fake",                # meter name recorded in the run (default "fake")
      "available": true,             # false -> probe() unavailable, start() raises MeterUnavailable
      "reason": "...", "fix": "...", # used when available is false
      "fail_after": null,            # int N: the N-th read (1-based; stop() counts as a read)
                                     # and every later one raises RuntimeError
      "channels": [                  # one per (domain, device)
        {"domain": "gpu", "device": "gpu:0", "power_w": 100.0},
        {"domain": "cpu", "device": "host", "per_read_j": 10.0},
        {"domain": "dram", "device": "host", "energy_j": [1.0, 2.5, 4.0]},
        {"domain": "gpu", "device": "gpu:1", "power_w": 3.0, "method": "counter"}
      ]
    }

Each channel gives cumulative joules in exactly one way:

* ``power_w``: ``power_w * seconds since start()`` (monotonic clock) -- time-based;
* ``per_read_j``: ``k * per_read_j`` at the k-th read (1-based) -- deterministic per read;
* ``energy_j``: a list; the k-th read returns ``energy_j[k-1]`` (the last value repeats);
* (Python only) ``fn``: a callable ``fn(k, elapsed_s) -> joules``.

Optional per channel: ``method`` (default ``"fake"``) and ``detail`` (dict).

Reads are counted over ``read()`` and the first ``stop()``; a second ``stop()`` returns the
same readings as the first without counting. ``start()`` resets the count and the clock.

Without a script (and without ``GREENTRAIN_FAKE_METER``) the meter uses :data:`DEFAULT_SCRIPT`:
a constant 100 W on ``gpu:0``, 50 W on cpu ``host`` and 5 W on dram ``host``, time-based.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from greentrain.errors import ConfigError, MeterUnavailable
from greentrain.meters.base import DOMAINS, EnergyReading, Meter, Probe

ENV_VAR = "GREENTRAIN_FAKE_METER"

DEFAULT_SCRIPT: dict[str, Any] = {
    "name": "fake",
    "available": True,
    "channels": [
        {"domain": "gpu", "device": "gpu:0", "power_w": 100.0},
        {"domain": "cpu", "device": "host", "power_w": 50.0},
        {"domain": "dram", "device": "host", "power_w": 5.0},
    ],
}

_WAYS = ("power_w", "per_read_j", "energy_j", "fn")


def script_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The script in ``GREENTRAIN_FAKE_METER`` (JSON text or a path to a JSON file), or None."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR, "").strip()
    if not raw:
        return None
    if not raw.startswith("{"):
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(
                f"{ENV_VAR} is neither JSON nor an existing file: {raw!r}; "
                'set it to e.g. \'{"channels": [{"domain": "gpu", "device": "gpu:0", '
                '"power_w": 100}]}\''
            )
        raw = path.read_text(encoding="utf-8")
    try:
        script = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{ENV_VAR} is not valid JSON ({err}); fix the JSON") from err
    if not isinstance(script, dict):
        raise ConfigError(f"{ENV_VAR} must be a JSON object with a 'channels' list")
    return script


def _validate(script: Mapping[str, Any]) -> list[dict[str, Any]]:
    channels = script.get("channels", [])
    if not isinstance(channels, list):
        raise ConfigError("fake meter script: 'channels' must be a list")
    out = []
    for i, ch in enumerate(channels):
        if not isinstance(ch, Mapping):
            raise ConfigError(f"fake meter script: channel {i} must be an object")
        domain = ch.get("domain")
        if domain not in DOMAINS:
            raise ConfigError(
                f"fake meter script: channel {i} has domain {domain!r}; use one of {DOMAINS}"
            )
        ways = [w for w in _WAYS if w in ch]
        if len(ways) != 1:
            raise ConfigError(
                f"fake meter script: channel {i} needs exactly one of power_w, per_read_j, "
                f"energy_j (got {ways or 'none'})"
            )
        if "energy_j" in ch and (not isinstance(ch["energy_j"], list) or not ch["energy_j"]):
            raise ConfigError(f"fake meter script: channel {i} energy_j must be a non-empty list")
        out.append(dict(ch))
    return out


class FakeMeter(Meter):
    """Scripted cumulative readings (see the module docstring for the script format).

    Args:
        script: the script dict; None -> ``GREENTRAIN_FAKE_METER`` if set, else
            :data:`DEFAULT_SCRIPT`.
        available, reason, fix, fail_after: override the script's keys of the same name.
        clock: monotonic seconds source (tests may inject one for time-based channels).
    """

    name = "fake"

    def __init__(
        self,
        script: Mapping[str, Any] | None = None,
        *,
        available: bool | None = None,
        reason: str | None = None,
        fix: str | None = None,
        fail_after: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if script is None:
            script = script_from_env()
        if script is None:
            script = copy.deepcopy(DEFAULT_SCRIPT)
        self.script = dict(script)
        self.name = str(self.script.get("name", "fake"))
        self.available = bool(
            self.script.get("available", True) if available is None else available
        )
        self.reason = (
            reason if reason is not None else str(self.script.get("reason", "fake meter disabled"))
        )
        self.fix = fix if fix is not None else str(self.script.get("fix", ""))
        fa = fail_after if fail_after is not None else self.script.get("fail_after")
        self.fail_after = int(fa) if fa is not None else None
        self.channels = _validate(self.script)
        self._clock = clock
        self._t0: float | None = None
        self._reads = 0
        self._final: list[EnergyReading] | None = None

    def probe(self) -> Probe:
        devices = tuple(sorted({f"{c['device']} ({c['domain']})" for c in self.channels}))
        if not self.available:
            return Probe(self.name, False, self.reason, self.fix, devices)
        return Probe(self.name, True, "", "", devices)

    def start(self) -> None:
        if not self.available:
            raise MeterUnavailable(self.reason, self.fix)
        self._t0 = self._clock()
        self._reads = 0
        self._final = None

    def _readings(self) -> list[EnergyReading]:
        if self._t0 is None:
            raise RuntimeError("fake meter read before start()")
        self._reads += 1
        k = self._reads
        if self.fail_after is not None and k >= self.fail_after:
            raise RuntimeError(f"fake meter scripted failure on read {k}")
        elapsed_s = self._clock() - self._t0
        out = []
        for ch in self.channels:
            if "power_w" in ch:
                energy_j = float(ch["power_w"]) * elapsed_s
            elif "per_read_j" in ch:
                energy_j = float(ch["per_read_j"]) * k
            elif "energy_j" in ch:
                values = ch["energy_j"]
                energy_j = float(values[min(k, len(values)) - 1])
            else:
                energy_j = float(ch["fn"](k, elapsed_s))
            detail = {"read": k, "elapsed_s": elapsed_s, "scripted": True}
            detail.update(ch.get("detail", {}))
            out.append(
                EnergyReading(
                    domain=ch["domain"],
                    device=str(ch.get("device", "host")),
                    energy_j=energy_j,
                    method=str(ch.get("method", "fake")),
                    detail=detail,
                )
            )
        return out

    def read(self) -> list[EnergyReading]:
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is None:
            self._final = self._readings()
        return list(self._final)

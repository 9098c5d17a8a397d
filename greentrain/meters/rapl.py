"""CPU package and DRAM energy from Linux RAPL counters in ``/sys/class/powercap``.

Zones read: every top-level ``intel-rapl:N`` whose ``name`` starts with ``package`` (domain
``cpu``, device ``package-N``) and its ``dram`` sub-zone ``intel-rapl:N:M`` (domain ``dram``,
device ``dram-N``). ``core``/``uncore`` sub-zones are part of the package figure and ``psys``
(whole platform) would double count, so neither is read.

``energy_uj`` is a free-running microjoule counter that wraps at ``max_energy_range_uj``; a
delta that goes backwards is taken as one wrap (``cur + max_range - last``). So that no wrap is
missed between two window boundaries, a daemon thread polls the counters every ``poll_s``
seconds (default 5 s; a counter wraps after ~20 min even at 200 W).

Since CVE-2020-8694 (Platypus), ``energy_uj`` is readable by root only; the probe then says so
and how to grant read access.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from greentrain.errors import MeterUnavailable
from greentrain.meters.base import EnergyReading, Meter, Probe
from greentrain.meters.poller import Poller

DEFAULT_ROOT = "/sys/class/powercap"

PERMISSION_REASON = (
    "RAPL energy counters are readable by root only (since CVE-2020-8694 the kernel restricts "
    "energy_uj)"
)
PERMISSION_FIX = (
    "grant read access: `sudo chmod -R a+r /sys/class/powercap/intel-rapl` (until reboot) or a "
    'udev rule, e.g. SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod a+r '
    '/sys%p/energy_uj"; or run as root'
)
ABSENT_FIX = (
    "run on bare metal with an Intel or AMD CPU that has RAPL and load the driver "
    "(`sudo modprobe intel_rapl_common`); VMs and containers usually hide it"
)


@dataclass
class _Zone:
    path: Path
    domain: str  # "cpu" | "dram"
    device: str
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


class RaplMeter(Meter):
    """Reads RAPL ``energy_uj`` counters directly (method ``"rapl"``).

    Args:
        root: the powercap directory (tests pass a fake tree).
        poll_s: polling interval of the wrap-guard thread, seconds (None: no thread).
    """

    name = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT, poll_s: float | None = 5.0) -> None:
        self.root = Path(root)
        self.poll_s = poll_s
        self._zones: list[_Zone] = []
        self._lock = threading.Lock()
        self._poller: Poller | None = None
        self._final: list[EnergyReading] | None = None

    # -- discovery ---------------------------------------------------------------------------
    def _discover(self) -> list[_Zone]:
        """Package and DRAM zones; raises MeterUnavailable when absent or unreadable."""
        if not self.root.is_dir():
            raise MeterUnavailable(f"no RAPL powercap interface at {self.root}", ABSENT_FIX)
        packages = sorted(
            (p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1),
            key=lambda p: p.name,
        )
        zones: list[_Zone] = []
        try:
            for pkg in packages:
                name = (pkg / "name").read_text().strip()
                if not name.startswith("package"):
                    continue  # psys etc.
                index = name.split("-", 1)[1] if "-" in name else pkg.name.split(":")[1]
                zones.append(self._zone(pkg, "cpu", f"package-{index}"))
                subs = {p.name: p for p in pkg.glob(f"{pkg.name}:*")}
                subs.update({p.name: p for p in self.root.glob(f"{pkg.name}:*")})
                for sub in sorted(subs.values(), key=lambda p: p.name):
                    if (sub / "name").read_text().strip() == "dram":
                        zones.append(self._zone(sub, "dram", f"dram-{index}"))
        except PermissionError as err:
            raise MeterUnavailable(f"{PERMISSION_REASON}: {err.filename}", PERMISSION_FIX) from err
        if not zones:
            raise MeterUnavailable(f"no RAPL package zone under {self.root}", ABSENT_FIX)
        return zones

    @staticmethod
    def _zone(path: Path, domain: str, device: str) -> _Zone:
        max_range = _read_int(path / "max_energy_range_uj")
        now = _read_int(path / "energy_uj")  # PermissionError here when root-only
        return _Zone(path, domain, device, max_range, last_uj=now)

    def probe(self) -> Probe:
        try:
            zones = self._discover()
        except MeterUnavailable as err:
            return Probe(self.name, False, err.reason, err.fix)
        except OSError as err:
            return Probe(self.name, False, f"cannot read RAPL: {err}", ABSENT_FIX)
        return Probe(self.name, True, devices=tuple(f"{z.device} ({z.domain})" for z in zones))

    # -- measuring ---------------------------------------------------------------------------
    def start(self) -> None:
        self._zones = self._discover()
        self._final = None
        if self.poll_s:
            # a read error stops the polling; read() then raises the same error to the harness
            self._poller = Poller(self._update, self.poll_s, "greentrain-rapl")
            self._poller.start()

    def _update(self) -> None:
        with self._lock:
            for z in self._zones:
                now = _read_int(z.path / "energy_uj")
                delta = now - z.last_uj
                if delta < 0:  # wrapped at max_energy_range_uj
                    delta += z.max_range_uj
                z.total_uj += delta
                z.last_uj = now

    def _readings(self) -> list[EnergyReading]:
        self._update()
        return [
            EnergyReading(
                z.domain,
                z.device,
                z.total_uj / 1e6,
                "rapl",
                {"zone": z.path.name, "max_energy_range_uj": z.max_range_uj},
            )
            for z in self._zones
        ]

    def read(self) -> list[EnergyReading]:
        if not self._zones:
            raise RuntimeError("rapl meter read before start()")
        return self._readings()

    def stop(self) -> list[EnergyReading]:
        if self._final is not None:
            return list(self._final)
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self._final = self.read()
        return list(self._final)

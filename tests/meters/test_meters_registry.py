"""The meter registry: every backend by name, unknown names refused, probes that never raise."""

from __future__ import annotations

import pytest

from greentrain.errors import ConfigError
from greentrain.meters import DEFAULT_METERS, METERS, create_meter, probe_all


def test_registry_knows_every_meter_and_rejects_unknown_names():
    assert set(METERS) == {"nvml", "zeus", "codecarbon", "rapl", "estimate", "fake", "prometheus"}
    assert "prometheus" not in DEFAULT_METERS  # joins the defaults with --prometheus-url
    assert "fake" not in DEFAULT_METERS
    with pytest.raises(ConfigError, match="unknown meter"):
        create_meter("nope")


def test_probe_all_reports_fake_and_never_raises_for_missing_hardware():
    probes = {p.meter: p for p in probe_all(["rapl", "fake"])}
    assert probes["fake"].available
    assert probes["rapl"].available in (True, False) and (
        probes["rapl"].available or probes["rapl"].reason
    )

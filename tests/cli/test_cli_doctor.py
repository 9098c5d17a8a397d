"""``greentrain doctor``: every meter with availability, reason, fix and devices."""

from __future__ import annotations

import json

from greentrain.cli import main


def test_doctor_json_lists_every_meter_with_reason_on_this_machine(capsys):
    assert main(["doctor", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_meter = {r["meter"]: r for r in rows}
    assert set(by_meter) == {"nvml", "zeus", "codecarbon", "rapl", "estimate", "fake",
                             "prometheus"}  # fmt: skip
    assert "--prometheus-url" in by_meter["prometheus"]["fix"]  # no server given here
    for row in rows:
        assert set(row) >= {"meter", "available", "reason", "fix", "devices"}
        if not row["available"]:
            assert row["reason"] and row["fix"]
    assert by_meter["estimate"]["available"] and by_meter["codecarbon"]["available"]
    assert "tests and dry runs" in by_meter["fake"]["note"]


def test_doctor_text_names_every_meter(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for meter in ("nvml", "zeus", "codecarbon", "rapl", "estimate", "fake"):
        assert meter in out


def test_text_format_shows_unavailable_reason_and_fix_and_devices():
    from greentrain.cli.doctor import format_report

    text = format_report(
        [
            {
                "meter": "rapl",
                "available": False,
                "reason": "root only",
                "fix": "chmod",
                "devices": [],
            },
            {"meter": "estimate", "available": True, "reason": "", "fix": "", "devices": ["cpu x"]},
        ]
    )
    assert "rapl      unavailable: root only" in text and "fix: chmod" in text
    assert "estimate  available" in text and "- cpu x" in text

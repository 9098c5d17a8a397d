"""The ``prometheus`` meter against a real Prometheus server (Debian's package) scraping a small
exporter that serves DCGM-format counters the test sets: the meter's figure is the known
increase of this host's counters, per GPU, and a server it cannot use is said, never 0 J."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fixtures.promserver import DcgmExporter, PromServer, binary, free_port

from greentrain.errors import MeterUnavailable
from greentrain.meters.prometheus import METRIC, PrometheusMeter, host_selector
from greentrain.store import Store

pytestmark = pytest.mark.slow

HOST = "testnode"
GPUS = [(HOST, "0", "GPU-aaaa-0000"), (HOST, "1", "GPU-bbbb-1111"), ("othernode", "0", "GPU-cccc")]


@pytest.fixture(scope="module")
def dcgm():
    exporter = DcgmExporter(GPUS)
    yield exporter
    exporter.stop()


@pytest.fixture(scope="module")
def prom(dcgm):
    path, why = binary()
    if path is None:
        pytest.skip(why)
    server = PromServer({"dcgm": dcgm.target})
    yield server
    server.stop()


def _scraped(prom: PromServer, values_mj: dict[str, int]) -> None:
    """Wait until the server holds exactly ``values_mj`` (uuid -> mJ) for those GPUs."""

    def holds(result: list[dict]) -> bool:
        got = {r["metric"].get("UUID"): float(r["value"][1]) for r in result}
        return all(got.get(uuid) == value for uuid, value in values_mj.items())

    prom.wait_for(METRIC, holds, f"the server to scrape {values_mj}")


def _set(dcgm: DcgmExporter, values_mj: dict[str, int]) -> None:
    for uuid, value in values_mj.items():
        dcgm.set(uuid, value)


def test_meter_reports_the_known_increase_of_each_gpu_of_this_host_only(prom, dcgm):
    start = {"GPU-aaaa-0000": 1_000_000, "GPU-bbbb-1111": 2_000_000, "GPU-cccc": 5}
    _set(dcgm, start)
    _scraped(prom, start)
    meter = PrometheusMeter(prom.url, host=HOST)
    probe = meter.probe()
    assert probe.available and len(probe.devices) == 2, probe
    meter.start()
    end = {"GPU-aaaa-0000": 1_250_500, "GPU-bbbb-1111": 2_000_750, "GPU-cccc": 9_999_999}
    _set(dcgm, end)
    _scraped(prom, end)
    readings = {r.device: r for r in meter.stop()}
    assert set(readings) == {"gpu:0", "gpu:1"}  # othernode's GPU is not this host's
    assert readings["gpu:0"].energy_j == pytest.approx(250.5)  # 250,500 mJ
    assert readings["gpu:1"].energy_j == pytest.approx(0.75)
    r = readings["gpu:0"]
    assert r.method == "counter" and r.domain == "gpu"
    assert r.detail["query"] == f"{METRIC}{{{host_selector('Hostname', HOST)}}}[5m]"
    assert r.detail["url"] == prom.url and r.detail["uuid"] == "GPU-aaaa-0000"
    assert r.detail["end_sample_unix"] > r.detail["start_sample_unix"]
    assert "stale" not in r.detail


def test_stop_with_settle_waits_for_a_scrape_after_the_end(prom, dcgm):
    start = {"GPU-aaaa-0000": 3_000_000, "GPU-bbbb-1111": 3_000_000}
    _set(dcgm, start)
    _scraped(prom, start)
    meter = PrometheusMeter(prom.url, host=HOST, settle_s=60)
    meter.start()
    _set(dcgm, {"GPU-aaaa-0000": 3_400_000, "GPU-bbbb-1111": 3_100_000})
    readings = {r.device: r.energy_j for r in meter.stop()}  # no wait by the test
    assert readings == {"gpu:0": pytest.approx(400.0), "gpu:1": pytest.approx(100.0)}


def test_a_counter_that_goes_back_is_taken_as_restarted_from_zero(prom, dcgm):
    uuid = "GPU-aaaa-0000"
    _set(dcgm, {uuid: 10_000})
    _scraped(prom, {uuid: 10_000})
    meter = PrometheusMeter(prom.url, host=HOST, environ={"CUDA_VISIBLE_DEVICES": "0"})
    meter.start()
    for value in (50_000, 2_000, 9_000):  # a driver reload between 50,000 and 2,000 mJ
        _set(dcgm, {uuid: value})
        _scraped(prom, {uuid: value})
        meter.read()
    readings = meter.stop()
    assert [r.device for r in readings] == ["gpu:0"]  # CUDA_VISIBLE_DEVICES=0 only
    assert readings[0].energy_j == pytest.approx((50_000 - 10_000 + 9_000) / 1000)


def test_host_label_instance_selects_by_the_scrape_target(prom, dcgm):
    host = dcgm.target.split(":")[0]  # instance="127.0.0.1:PORT"
    meter = PrometheusMeter(prom.url, host=host, host_label="instance")
    probe = meter.probe()
    assert probe.available and len(probe.devices) == 3  # every GPU that target serves


def test_a_host_without_series_is_unavailable_with_the_reason_and_the_fix(prom):
    probe = PrometheusMeter(prom.url, host="nosuchnode").probe()
    assert not probe.available
    assert (
        "no DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" in probe.reason and "nosuchnode" in probe.reason
    )
    assert "GREENTRAIN_PROMETHEUS_HOST_LABEL" in probe.fix


def test_an_unreachable_server_is_said_never_a_zero(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    probe = PrometheusMeter(url, host=HOST).probe()
    assert not probe.available and "did not answer" in probe.reason and url in probe.reason
    store = tmp_path / "g.db"
    proc = subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter",
         "prometheus", "--prometheus-url", url, "--", sys.executable, "-c", "pass"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = Store(store).list_runs()[0]
    assert run["energy"]["gpu"]["energy_j"] is None
    assert "did not answer" in run["energy"]["gpu"]["reason"]
    meter = next(m for m in run["meters"] if m["meter"] == "prometheus")
    assert not meter["available"] and "--prometheus-url" in meter["fix"]


def test_greentrain_run_with_prometheus_url_records_the_gpu_figure_from_dcgm(prom, dcgm, tmp_path):
    start = {"GPU-aaaa-0000": 7_000_000, "GPU-bbbb-1111": 8_000_000}
    _set(dcgm, start)
    _scraped(prom, start)
    store, started, flag = tmp_path / "g.db", tmp_path / "started", tmp_path / "go"
    job = (f"import os,time\nopen({str(started)!r}, 'w').close()\n"
           f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--meter", "prometheus", "--prometheus-url", prom.url, "--", sys.executable, "-c", job],
        env={**os.environ, "GREENTRAIN_PROMETHEUS_HOST": HOST,
             "GREENTRAIN_PROMETHEUS_SETTLE_S": "60"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        prom.wait_until(started.exists, "the job to start (the meters read before it)")
        _set(dcgm, {"GPU-aaaa-0000": 7_600_000, "GPU-bbbb-1111": 8_300_000})
        flag.touch()
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    run = Store(store).list_runs()[0]
    gpu = run["energy"]["gpu"]
    # fake's 100 W gpu:0 is an alternative; DCGM's counter is a measurement and ranks first
    assert gpu["source"] == "prometheus:counter"
    assert gpu["energy_j"] == pytest.approx(900.0)
    assert gpu["devices"] == {"gpu:0": pytest.approx(600.0), "gpu:1": pytest.approx(300.0)}


def test_a_server_that_goes_away_mid_run_leaves_the_last_figure_marked_stale(dcgm):
    path, why = binary()
    if path is None:
        pytest.skip(why)
    own = PromServer({"dcgm": dcgm.target})  # a server of this test's own, to stop mid-run
    try:
        uuid = "GPU-bbbb-1111"
        _set(dcgm, {uuid: 100_000})
        _scraped(own, {uuid: 100_000})
        meter = PrometheusMeter(own.url, host=HOST, environ={"CUDA_VISIBLE_DEVICES": "1"})
        never_read = PrometheusMeter(own.url, host=HOST, environ={"CUDA_VISIBLE_DEVICES": "1"})
        meter.start()
        never_read.start()
        _set(dcgm, {uuid: 130_000})
        _scraped(own, {uuid: 130_000})
        assert meter.read()[0].energy_j == pytest.approx(30.0)
    finally:
        own.stop()  # a real fault: the server process ends
    (stale,) = meter.read()
    assert stale.energy_j == pytest.approx(30.0) and "did not answer" in stale.detail["stale"]
    (final,) = meter.stop()
    assert final.energy_j == pytest.approx(30.0) and "final query failed" in final.detail["stale"]
    with pytest.raises(MeterUnavailable, match="no query since the start succeeded"):
        never_read.stop()  # nothing but its start: no figure, never 0 J

"""``--prometheus-port`` / ``track(prometheus_port=)``: a run serves its energy (J, per domain
and source) and CO2e (g) as counters labelled by run, group, node and host, updated at each
sample, until the run ends; a real Prometheus server scrapes them; a port in use stops the run
before its job starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from fixtures.promserver import DEADLINE_S, PromServer, binary, free_port
from prometheus_client.parser import text_string_to_metric_families

from greentrain.meters.fake import FakeMeter
from greentrain.run.track import track
from greentrain.store import Store

pytestmark = pytest.mark.slow


def _scrape(port: int) -> dict[str, list]:
    """metric family name -> its samples, as a scraper reads them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _wait(condition, what: str):
    import time

    deadline = time.monotonic() + DEADLINE_S
    while not (value := condition()):
        assert time.monotonic() < deadline, f"waited {DEADLINE_S} s for {what}"
        time.sleep(0.05)
    return value


def test_track_serves_counters_labelled_by_run_updated_each_sample_until_the_block_ends(tmp_path):
    port = free_port()
    counter = FakeMeter({"name": "other", "channels": [
        {"domain": "gpu", "device": "gpu:0", "power_w": 50.0, "method": "counter"}]})  # fmt: skip
    with track(store=tmp_path / "g.db", meter_objects=[FakeMeter(), counter],
               prometheus_port=port, sample_s=0.1, carbon_intensity=100.0) as run:  # fmt: skip

        def best_gpu() -> float | None:
            samples = _scrape(port).get("greentrain_energy_joules", [])
            mine = [s for s in samples if s.labels["run"] == run.id
                    and s.labels["domain"] == "gpu" and s.labels["figure"] == "best"]  # fmt: skip
            return mine[0].value if mine and mine[0].value > 0 else None

        first = _wait(best_gpu, "a first sample with energy")
        _wait(lambda: (best_gpu() or 0) > first, "a later sample (the counter grows)")
        families = _scrape(port)
        gpu = {s.labels["figure"]: s for s in families["greentrain_energy_joules"]
               if s.labels["domain"] == "gpu"}  # fmt: skip
        sample = gpu["best"]
        assert sample.name == "greentrain_energy_joules_total"  # a counter
        assert sample.labels["source"] == "other:counter"  # a counter outranks fake
        assert gpu["alternative"].labels["source"] == "fake:fake"
        assert sample.labels["host"] == socket.gethostname()
        assert sample.labels["group"] == "" and sample.labels["node"] == ""
        (co2,) = families["greentrain_co2e_grams"]
        assert co2.labels["run"] == run.id and co2.value > 0
    assert _refused(port)  # the endpoint ended with the run
    stored = run.record
    # the last scrape lags the end; never above the final figure
    assert 0 < sample.value <= stored["energy"]["gpu"]["energy_j"]


def test_a_port_in_use_is_a_one_line_error_and_the_job_never_starts(tmp_path):
    marker, store = tmp_path / "ran", tmp_path / "g.db"
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
             "--prometheus-port", str(port), "--", sys.executable, "-c",
             f"open({str(marker)!r}, 'w').close()"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--prometheus-port {port}" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()  # the job never ran
    assert not store.exists() or Store(store).list_runs() == []


def test_a_real_prometheus_scrapes_a_greentrain_run_labelled_by_run_group_node_and_host(tmp_path):
    path, why = binary()
    if path is None:
        pytest.skip(why)
    port = free_port()
    prom = PromServer({"greentrain": f"127.0.0.1:{port}"})
    store, started, flag = tmp_path / "g.db", tmp_path / "started", tmp_path / "go"
    job = (f"import os,time\nopen({str(started)!r}, 'w').close()\n"
           f"while not os.path.exists({str(flag)!r}): time.sleep(0.05)")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
         "--prometheus-port", str(port), "--sample-s", "0.2", "--carbon-intensity", "200",
         "--group", "G-prom", "--", sys.executable, "-c", job],
        env={**os.environ, "GROUP_RANK": "0"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        expr = 'greentrain_energy_joules_total{figure="best",domain="gpu"}'
        (series,) = prom.wait_for(expr, lambda r: r and float(r[0]["value"][1]) > 0,
                                  "Prometheus to hold the run's GPU energy")  # fmt: skip
        (co2,) = prom.wait_for("greentrain_co2e_grams_total", bool, "the run's CO2e")
        flag.touch()
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert _refused(port)
    finally:
        if proc.poll() is None:
            proc.kill()
        prom.stop()
    run = Store(store).list_runs()[0]
    labels = series["metric"]
    assert run["id"] == "G-prom"  # the group's run object; its one node is this run
    assert labels["run"] == run["nodes"][0]["run_id"]
    assert labels["group"] == "G-prom" and labels["node"] == "0"
    assert labels["host"] == socket.gethostname() and labels["source"] == "fake:fake"
    assert labels["job"] == "greentrain"  # the scrape job of the server's config
    assert 0 < float(series["value"][1]) <= run["energy"]["gpu"]["energy_j"]
    assert 0 < float(co2["value"][1]) <= run["co2_g"]


@pytest.mark.parametrize("port", ["0", "70000"])
def test_a_port_outside_1_to_65535_is_a_one_line_error(port, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"),
         "--meter", "fake", "--prometheus-port", port, "--", "true"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: --prometheus-port must be a port number 1-65535 (got {port})"
    )

"""Other meters in the same process are evidence, not noise (issue 23): CodeCarbon's figures
(HF's ``report_to=["codecarbon"]``, offline) and Zeus's (a ``Measurement``) reach the run's
record as ``energy_alternatives`` with the disagreement per domain and in CO2e, and a sentence
saying why they differ (scope; intensity and its source) -- and never greentrain's totals."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from greentrain.client import evidence
from greentrain.meters.fake import FakeMeter
from greentrain.record.evidence import evidence_alternatives
from greentrain.run.track import track
from greentrain.store import Store

pytestmark = pytest.mark.slow  # trains, starts wrappers, runs CodeCarbon

CHANNELS = {"channels": [
    {"domain": "cpu", "device": "host", "per_read_j": 2.0},
    {"domain": "gpu", "device": "gpu:0", "per_read_j": 1.0},
]}  # fmt: skip


def only_run(store) -> dict:
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


def _own_total(record: dict) -> float:
    return math.fsum(
        f["energy_j"] for f in record["energy"].values() if f.get("energy_j") is not None
    )


def test_zeus_measurement_under_track_is_evidence_per_domain_and_not_in_the_totals(tmp_path):
    zeus_energy = pytest.importorskip("zeus.monitor.energy")
    from greentrain.integrations.evidence import zeus_evidence

    store = tmp_path / "g.db"
    with track(store=store, meter_objects=[FakeMeter(CHANNELS)], meters=[], sample_s=0,
               carbon_intensity=100.0):  # fmt: skip
        # what ZeusMonitor.end_window returns: joules per GPU index and per RAPL zone
        measured = zeus_energy.Measurement(
            time=1.5, gpu_energy={0: 3.0, 1: 1.0}, cpu_energy=None, dram_energy=None
        )
        sent = zeus_evidence(measured)
    assert sent["energy_j"] == {"gpu": 4.0}
    record = only_run(store)
    (alt,) = record["energy_alternatives"]
    ours_gpu = record["energy"]["gpu"]["energy_j"]
    assert ours_gpu > 0
    assert alt["meter"] == "zeus" and alt["evidence"] and alt["scope"] == "devices"
    assert alt["domains"]["gpu"] == {
        "energy_j": 4.0,
        "ours_j": ours_gpu,
        "disagreement_pct": pytest.approx((4.0 - ours_gpu) / ours_gpu * 100),
    }
    assert alt["co2_g"] is None and alt["co2_disagreement_pct"] is None  # no intensity: None
    assert "device" in alt["why"] and "no CO2e intensity" in alt["why"]
    assert record["energy_j"] == pytest.approx(_own_total(record))  # evidence is not counted
    (beside,) = [a for a in record["energy"]["gpu"]["alternatives"] if a["meter"] == "zeus"]
    assert beside == {"meter": "zeus", "method": "counter", "energy_j": 4.0, "evidence": True,
                      "scope": "devices", "disagreement_pct": alt["domains"]["gpu"][
                          "disagreement_pct"]}  # fmt: skip
    assert record["energy"]["gpu"]["source"] == "fake:fake"  # the best figure stays ours


def test_evidence_outside_a_run_is_a_no_op():
    evidence({"meter": "zeus", "energy_j": {"gpu": 1.0}})  # nothing to send to: no error


def test_evidence_that_is_not_json_is_left_out_with_a_warning_and_the_run_goes_on(tmp_path, caplog):
    store = tmp_path / "g.db"
    with track(store=store, meter_objects=[FakeMeter(CHANNELS)], meters=[], sample_s=0):
        evidence({"meter": "zeus", "energy_j": {"gpu": float("nan")}})
    assert "evidence left out" in caplog.text
    record = only_run(store)
    assert record["status"] == "finished" and record["energy_alternatives"] == []


def test_why_tells_a_co2_gap_from_an_energy_gap_by_the_intensity_and_its_source():
    events = [{"event": "other meter", "meter": "codecarbon", "method": "machine model",
               "scope": "machine", "energy_j": {"cpu": 200.0, "dram": 50.0}, "co2_g": 0.01,
               "intensity_g_per_kwh": 34.0, "intensity_source": "codecarbon energy mix of Canada",
               "region": "CAN/quebec"}]  # fmt: skip
    energy = {"cpu": {"energy_j": 100.0}, "gpu": {"energy_j": None}, "dram": {"energy_j": None}}
    carbon = {"intensity_g_per_kwh": 475.0, "source": "world average"}
    (alt,) = evidence_alternatives(events, energy, 100.0, 0.02, carbon)
    assert alt["energy_j"] == 250.0 and alt["disagreement_pct"] == pytest.approx(150.0)
    assert alt["domains"]["cpu"]["disagreement_pct"] == pytest.approx(100.0)
    assert alt["domains"]["dram"] == {"energy_j": 50.0, "ours_j": None, "disagreement_pct": None}
    assert alt["co2_disagreement_pct"] == pytest.approx(-50.0)
    assert alt["intensity_disagreement_pct"] == pytest.approx((34.0 - 475.0) / 475.0 * 100)
    assert "whole machine" in alt["why"] and "a different intensity" in alt["why"]
    assert "Canada" in alt["why"] and "world average" in alt["why"]
    same = evidence_alternatives(events, energy, 100.0, 0.02, {"intensity_g_per_kwh": 34.0})
    assert "the same intensity" in same[0]["why"]  # then a CO2e gap is the energy gap


# -- HF Trainer with report_to=["codecarbon"], offline, with and without `greentrain run` -------

HF = """
import sys
from greentrain.integrations.transformers import EnergyCallback
store = sys.argv[1]
options = dict(store=store, meters=["fake"], sample_s=0, summary=False) if store else {}
args.report_to = ["codecarbon"]
trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                  compute_metrics=compute_metrics, callbacks=[EnergyCallback(**options)])
trainer.train()
"""


@pytest.mark.parametrize("wrapped", [False, True], ids=["callback-only", "greentrain-run"])
def test_hf_report_to_codecarbon_figures_are_evidence_with_scope_intensity_and_disagreement(
    tmp_path, monkeypatch, capsys, wrapped
):
    pytest.importorskip("codecarbon")
    pytest.importorskip("transformers")
    from test_integrations_training import OFFLINE_ENV
    from test_integrations_transformers import tiny_source

    from greentrain.cli import main

    for name, value in {**OFFLINE_ENV, "CODECARBON_LOG_LEVEL": "error",
                        "GREENTRAIN_FAKE_METER": json.dumps(CHANNELS)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".codecarbon.config").write_text(  # offline: a country code, no network
        "[codecarbon]\nsave_to_file = false\ncountry_iso_code = CAN\ntracking_mode = machine\n",
        encoding="utf-8",
    )
    script = tmp_path / "train.py"
    script.write_text(tiny_source(tmp_path / "out") + HF, encoding="utf-8")
    store = tmp_path / "g.db"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if wrapped:  # and mirrored to MLflow: the evidence reaches the tracker run at the end
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        argv = [sys.executable, "-m", "greentrain", "run", "--store", str(store), "--meter",
                "fake", "--sample-s", "0", "--mirror", "mlflow", "--", sys.executable,
                str(script), ""]  # fmt: skip
    else:
        argv = [sys.executable, str(script), str(store)]
    capsys.readouterr()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    record = only_run(store)
    (alt,) = [a for a in record["energy_alternatives"] if a["meter"] == "codecarbon"]
    assert alt["evidence"] and alt["scope"] == "machine" and alt["method"] == "machine model"
    assert alt["energy_j"] > 0 and alt["co2_g"] > 0
    assert alt["intensity_source"] == "codecarbon energy mix of Canada"
    cpu = alt["domains"]["cpu"]
    assert cpu["energy_j"] > 0 and cpu["ours_j"] == record["energy"]["cpu"]["energy_j"]
    assert cpu["disagreement_pct"] == pytest.approx(
        (cpu["energy_j"] - cpu["ours_j"]) / cpu["ours_j"] * 100
    )
    assert alt["disagreement_pct"] == pytest.approx(
        (alt["energy_j"] - record["energy_j"]) / record["energy_j"] * 100
    )
    assert alt["co2_disagreement_pct"] == pytest.approx(
        (alt["co2_g"] - record["co2_g"]) / record["co2_g"] * 100
    )
    ours = record["carbon"]["intensity_g_per_kwh"]
    assert alt["intensity_g_per_kwh"] != pytest.approx(ours, rel=0.01)  # Canada vs the run's
    pue = record["carbon"].get("pue") or 1.0
    assert (1 + alt["co2_disagreement_pct"] / 100) * pue == pytest.approx(  # gap = energy x CO2
        (1 + alt["disagreement_pct"] / 100) * (1 + alt["intensity_disagreement_pct"] / 100),
        rel=1e-3,
    )
    assert "gpu" not in alt["domains"]  # CodeCarbon found no GPU: no figure, not 0 J
    (beside,) = [a for a in record["energy"]["cpu"]["alternatives"] if a.get("evidence")]
    assert beside["meter"] == "codecarbon" and beside["energy_j"] == cpu["energy_j"]
    assert "whole machine" in alt["why"] and "a different intensity" in alt["why"]
    assert record["energy_j"] == pytest.approx(_own_total(record))  # never in greentrain's
    assert record["status"] == "finished"
    if wrapped:
        mlflow = pytest.importorskip("mlflow")
        client = mlflow.MlflowClient(uri)
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert run.data.params["evidence.codecarbon.scope"] == "machine"
        assert run.data.params["evidence.codecarbon.why"].startswith("codecarbon measures")
    assert main(["show", record["id"], "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    assert "codecarbon:machine model [machine, evidence]" in shown
    assert shown.count("codecarbon:machine model [machine, evidence]") >= 2  # total, cpu
    assert "why: codecarbon measures the whole machine" in shown


def test_lightning_others_a_users_codecarbon_tracker_and_a_zeus_window_are_evidence(
    tmp_path, monkeypatch
):
    codecarbon = pytest.importorskip("codecarbon")
    zeus_energy = pytest.importorskip("zeus.monitor.energy")
    pytest.importorskip("lightning")
    import lightning.pytorch as L
    from test_integrations_lightning import QUIET, TINY

    from greentrain.integrations.lightning import EnergyCallback

    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(CHANNELS))
    monkeypatch.setenv("CODECARBON_LOG_LEVEL", "error")
    monkeypatch.chdir(tmp_path)
    tiny: dict = {}
    exec(compile(TINY, "tiny_lightning", "exec"), tiny)
    tracker = codecarbon.OfflineEmissionsTracker(
        country_iso_code="FRA", save_to_file=False, tracking_mode="process"
    )
    tracker.start()
    measured = zeus_energy.Measurement(time=2.0, gpu_energy={0: 5.0}, cpu_energy={0: 7.0},
                                       dram_energy={0: 1.0})  # fmt: skip
    store = tmp_path / "g.db"
    cb = EnergyCallback(store=store, meters=["fake"], sample_s=0, summary=False,
                        others=[tracker, lambda: measured])  # fmt: skip
    trainer = L.Trainer(max_epochs=1, callbacks=[cb], logger=False, **QUIET)
    trainer.fit(tiny["Tiny"](), tiny["train_loader"], tiny["val_loader"])
    assert tracker.final_emissions_data is not None  # stopped at fit end, before the run closed
    record = only_run(store)
    alts = {a["meter"]: a for a in record["energy_alternatives"]}
    assert set(alts) == {"codecarbon", "zeus"}
    cc, zeus = alts["codecarbon"], alts["zeus"]
    assert cc["scope"] == "process" and cc["method"] == "process model"
    assert cc["intensity_source"] == "codecarbon energy mix of France" and cc["co2_g"] > 0
    assert "this process's share" in cc["why"]
    assert zeus["energy_j"] == 13.0 and zeus["domains"]["cpu"]["energy_j"] == 7.0
    assert zeus["domains"]["gpu"]["ours_j"] == record["energy"]["gpu"]["energy_j"]
    assert record["energy_j"] == pytest.approx(_own_total(record))


def test_export_to_mlflow_carries_the_evidence_as_params_with_why(tmp_path, monkeypatch, capsys):
    mlflow = pytest.importorskip("mlflow")
    zeus_energy = pytest.importorskip("zeus.monitor.energy")
    from test_integrations_training import OFFLINE_ENV

    from greentrain.cli import main
    from greentrain.integrations.evidence import zeus_evidence

    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    store = tmp_path / "g.db"
    with track(store=store, meter_objects=[FakeMeter(CHANNELS)], meters=[], sample_s=0):
        zeus_evidence(zeus_energy.Measurement(time=1.0, gpu_energy={0: 2.0}, cpu_energy=None,
                                              dram_energy=None))  # fmt: skip
    record = only_run(store)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["export", "--to", "mlflow", "--store", str(store), "--tracking-uri", uri]) == 0
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    params = run.data.params
    (alt,) = record["energy_alternatives"]
    assert params["evidence.zeus.scope"] == "devices"
    assert float(params["evidence.zeus.disagreement_pct"]) == pytest.approx(alt["disagreement_pct"])
    assert params["evidence.zeus.why"].startswith("zeus measures the devices' own energy")
    assert run.data.metrics["greentrain/energy_j"] == pytest.approx(record["energy_j"])


def test_a_group_lists_each_nodes_evidence_against_that_nodes_figures(tmp_path):
    from test_cluster_groups import _member

    from greentrain.store import ops

    store = str(tmp_path / "g.db")
    with Store(store) as st:
        _member(st, "aaaa00000000", "node-a", 0, gpu_j=3.6e6, cpu_j=1.8e6)
        _member(st, "bbbb00000000", "node-b", 1, gpu_j=1.8e6, cpu_j=None)
        st.write(ops.AddEvents("aaaa00000000", events=[{
            "t": 1031.0, "event": "other meter", "meter": "zeus", "method": "counter",
            "scope": "devices", "energy_j": {"gpu": 4.0e6},
        }]))  # fmt: skip
    with Store(store, read_only=True) as st:
        group = st.get_run("job-1")
    (alt,) = group["energy_alternatives"]
    assert alt["node"] == "node-a" and alt["meter"] == "zeus"
    assert alt["domains"]["gpu"]["ours_j"] == 3.6e6  # node-a's own figure, not the group's
    assert alt["domains"]["gpu"]["disagreement_pct"] == pytest.approx((4.0 - 3.6) / 3.6 * 100)
    assert group["energy"]["gpu"]["energy_j"] == pytest.approx(5.4e6)  # never in the totals

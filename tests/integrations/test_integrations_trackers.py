"""Runs into MLflow (a sqlite tracking URI in a temporary folder) and W&B (offline mode, files
in a temporary folder): nothing leaves the machine. What is sent (payload), `greentrain export
--to`, `greentrain run --mirror`, and the one-line errors for bad input."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.runs import BAD_VALUES, NASTY_TEXTS, make_run, study
from fixtures.store import write_store
from test_integrations_training import OFFLINE_ENV  # noqa: E402

from greentrain.cli import main
from greentrain.integrations import payload
from greentrain.report.reading import check_number


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine(monkeypatch):
    """The libraries' own telemetry, crash reports and hub look-ups off (subprocesses too)."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


PY = sys.executable
JOB = (
    "from greentrain import client\n"
    "client.config(lr=0.1, model='tiny')\n"
    "for e in range(3):\n"
    "    with client.window('epoch', index=e):\n"
    "        client.log(step=10 * (e + 1), val_acc=0.5 + e / 10)\n"
    "client.log(step=30, final_test_acc=0.7)\n"
)


# -- what is sent -------------------------------------------------------------------------------


def test_a_record_becomes_per_window_points_metrics_totals_params_and_tags():
    run = make_run("d0", accs=[0.5, 0.7, 0.8], epoch_energy_j=[3.6e5] * 3, tags={"sweep": "s1"})
    points = payload.record_points(run)
    energy = [(p.step, p.value) for p in points if p.key == "greentrain/epoch.energy_kwh"]
    assert energy == [(0, pytest.approx(0.1)), (1, pytest.approx(0.1)), (2, pytest.approx(0.1))]
    co2 = [p.value for p in points if p.key == "greentrain/epoch.co2_g"]
    assert co2 == [pytest.approx(0.1 * 400 * 1.2)] * 3  # the run's intensity and PUE
    assert {p.axis for p in points} == {"greentrain/step"}  # one x-axis
    acc = [(p.step, p.value) for p in points if p.key == "test_acc"]
    assert acc == [(0, 0.5), (1, 0.7), (2, 0.8)]
    assert all(p.timestamp_ms for p in points)
    totals = payload.totals(run)
    assert totals["greentrain/energy_kwh"] == pytest.approx(0.3)
    assert totals["greentrain/gpu_energy_j"] == 1.08e6
    params = payload.params(run)
    assert params["carbon.intensity_g_per_kwh"] == "400.0" and params["carbon.source"] == "Ember"
    assert params["carbon.year"] == "2023" and params["carbon.pue"] == "1.2"
    assert params["energy.gpu.source"] == "nvml:counter"
    assert params["energy.gpu.estimated"] == "false"
    assert params["meter.rapl"] == "unavailable: no RAPL" and params["meter.nvml"] == "available"
    assert params["config.model"] == "resnet18"
    tags = payload.tags(run)
    assert tags["greentrain.run_id"] == "d0" and tags["sweep"] == "s1"


def test_bad_values_are_left_out_and_hostile_text_becomes_safe_keys():
    for k, value in enumerate(BAD_VALUES):
        run = make_run(f"v{k}")
        run["metrics"][0]["test_acc"] = value
        run["windows"][0]["energy"]["gpu"]["energy_j"] = value
        points = payload.record_points(run)
        assert all(isinstance(p.value, float) and math.isfinite(p.value) for p in points)
        usable = check_number(value, nonnegative=True)[0] is not None  # 1e308, a long int
        steps = [p.step for p in points if p.key == "greentrain/epoch.energy_j"]
        assert steps == ([0, 1, 2] if usable else [1, 2]), value
    for text in NASTY_TEXTS:
        key = payload.tracker_key(text)
        assert key and len(key) <= payload.MAX_KEY_CHARS
        assert all(c.isascii() and (c.isalnum() or c in "_-. /:") for c in key), key
        assert "\x1b" not in payload.tracker_text(text)


# -- MLflow -------------------------------------------------------------------------------------

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """One sqlite tracking store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def store_path(tmp_path):
    runs = study()
    for r in runs:
        r["tags"] = {"sweep": "sw1" if r["id"].startswith("b") else "other"}
    return write_store(tmp_path / "s.db", runs)


def _mlflow_runs(uri: str, experiment: str, greentrain_id: str | None = None) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id])
    if greentrain_id is not None:
        runs = [r for r in runs if r.data.tags.get("greentrain.run_id") == greentrain_id]
    return runs


def _history(uri: str, run, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in mlflow.MlflowClient(uri).get_metric_history(
        run.info.run_id, key)]  # fmt: skip


def test_export_to_mlflow_logs_windows_metrics_totals_factors_and_provenance(
    store_path, mlflow_uri, capsys
):
    args = ["export", "--to", "mlflow", "d0", "--store", str(store_path),
            "--tracking-uri", mlflow_uri, "--project", "export-one"]  # fmt: skip
    assert main(args) == 0
    assert "exported d0: MLflow run" in capsys.readouterr().err
    (run,) = _mlflow_runs(mlflow_uri, "export-one")
    assert run.info.status == "FINISHED" and run.info.run_name == "d0"
    assert _history(mlflow_uri, run, "greentrain/epoch.energy_kwh") == [
        (0, pytest.approx(0.1)), (1, pytest.approx(0.1)), (2, pytest.approx(0.1))
    ]  # fmt: skip
    assert _history(mlflow_uri, run, "test_acc") == [(0, 0.5), (1, 0.7), (2, 0.8)]
    assert run.data.metrics["greentrain/energy_kwh"] == pytest.approx(0.3)
    assert run.data.params["carbon.source"] == "Ember"
    assert run.data.params["energy.gpu.source"] == "nvml:counter"
    assert run.data.tags["greentrain.status"] == "finished"
    assert main(args) == 0  # a second export adds nothing
    assert "skipped d0: run d0 is already in MLflow" in capsys.readouterr().err
    assert len(_mlflow_runs(mlflow_uri, "export-one")) == 1


def test_export_a_sweep_to_mlflow_one_run_each_with_its_status(store_path, mlflow_uri, capsys):
    args = ["export", "--to", "mlflow", "--sweep", "sw1", "--store", str(store_path),
            "--tracking-uri", mlflow_uri, "--project", "export-sweep"]  # fmt: skip
    assert main(args) == 0
    runs = _mlflow_runs(mlflow_uri, "export-sweep")
    assert sorted(r.data.tags["greentrain.run_id"] for r in runs) == ["b0", "b1", "b2"]
    assert {r.data.tags["greentrain.group"] for r in runs} == {"sw1"}
    args = ["export", "--to", "mlflow", "--run", "f0", "--store", str(store_path),
            "--tracking-uri", mlflow_uri, "--project", "export-sweep"]  # fmt: skip
    assert main(args) == 0
    (failed,) = _mlflow_runs(mlflow_uri, "export-sweep", "f0")
    assert failed.info.status == "FAILED"


def test_a_run_its_budget_stopped_is_killed_in_mlflow_not_failed(tmp_path, mlflow_uri):
    store = write_store(tmp_path / "b.db", [make_run("s0", status="budget")])
    args = ["export", "--to", "mlflow", "s0", "--store", str(store),
            "--tracking-uri", mlflow_uri, "--project", "export-budget"]  # fmt: skip
    assert main(args) == 0
    (run,) = _mlflow_runs(mlflow_uri, "export-budget")
    assert run.info.status == "KILLED" and run.data.tags["greentrain.status"] == "budget"


def test_mirror_mlflow_follows_a_run_live(tmp_path, mlflow_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mirror")
    store = tmp_path / "g.db"
    args = ["run", "--store", str(store), "--meter", "fake", "--sample-s", "0",
            "--carbon-intensity", "300", "--mirror", "mlflow", "--", PY, "-c", JOB]  # fmt: skip
    assert main(args) == 0
    assert "mirrored to MLflow run" in capsys.readouterr().err
    (run,) = _mlflow_runs(mlflow_uri, "mirror")
    assert run.info.status == "FINISHED"
    energy = _history(mlflow_uri, run, "greentrain/epoch.energy_j")
    assert [s for s, _ in energy] == [10, 20, 30]  # the step logged in each window
    assert all(v > 0 for _, v in energy)
    co2 = _history(mlflow_uri, run, "greentrain/epoch.co2_g")
    assert co2[0][1] == pytest.approx(energy[0][1] / 3.6e6 * 300)
    assert _history(mlflow_uri, run, "val_acc") == [(10, 0.5), (20, 0.6), (30, 0.7)]
    assert _history(mlflow_uri, run, "final_test_acc") == [(30, 0.7)]  # logged outside windows
    assert run.data.params["config.lr"] == "0.1" and run.data.params["carbon.pue"] == "1.0"
    assert run.data.params["energy.gpu.source"] == "fake:fake"
    assert run.data.metrics["greentrain/energy_j"] > 0
    assert run.data.tags["greentrain.status"] == "finished"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--to", "mlflow", "nosuchrun"], 1, "no run 'nosuchrun'"),
        (["--to", "mlflow", "d0", "--tracking-uri", "http://127.0.0.1:9"], 1,
         "cannot reach the MLflow tracking server at http://127.0.0.1:9"),
        (["--to", "neptune", "d0"], 2, "--to 'neptune': use one of mlflow, wandb"),
        (["--to", "wandb", "d0", "--tracking-uri", "sqlite:///x.db"], 2, "MLflow's"),
        (["--tracking-uri", "sqlite:///x.db"], 2, "goes with --to mlflow"),
        (["--to", "mlflow", "d0", "-o", "x.md"], 2, "-o and --plot go with --format"),
    ],
)  # fmt: skip
def test_export_bad_input_is_a_one_line_error(store_path, capsys, args, code, message):
    assert main(["export", "--store", str(store_path), *args]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_missing_library_names_the_extra(store_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    assert main(["export", "--to", "mlflow", "d0", "--store", str(store_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --to/--mirror mlflow needs mlflow, which is not installed: "
        "pip install 'greentrain[mlflow]'\n"
    )
    args = ["run", "--store", str(tmp_path / "g.db"), "--mirror", "mlflow", "--", PY, "-c", ""]
    assert main(args) == 2  # before the job starts
    assert "pip install 'greentrain[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "g.db").exists()


# -- W&B (offline) ------------------------------------------------------------------------------


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    folder = tmp_path / "wandb"
    folder.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_PROJECT", "greentrain-test")
    return folder


def wandb_records(folder: Path) -> dict[str, list]:
    """The records of the one offline run in ``folder``, by type (the .wandb file is a LevelDB
    log of protobuf records; wandb itself no longer ships a Python reader)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data, out, pos, buf = path.read_bytes(), {}, 7, b""  # 7: ":W&B", magic, version
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # block trailer
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if n == 0 and kind == 0:
            pos += 32768 - pos % 32768
            continue
        buf, pos = (buf if kind in (3, 4) else b"") + data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # a full record, or the last part of one
            record = pb.Record()
            record.ParseFromString(buf)
            out.setdefault(record.WhichOneof("record_type"), []).append(record)
    return out


def _history_rows(records: dict) -> list[dict]:
    import json

    return [
        {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in h.history.item}
        for h in records.get("history", [])
    ]


def greentrain(*args: str) -> subprocess.CompletedProcess:
    """The command in a process of its own: W&B keeps one service per process."""
    return subprocess.run([PY, "-m", "greentrain", *args], capture_output=True, text=True,
                          timeout=240)  # fmt: skip


def test_export_to_wandb_offline_writes_windows_metrics_summary_and_config(
    store_path, wandb_offline
):
    import json

    out = greentrain("export", "--to", "wandb", "--run", "d0", "--store", str(store_path))
    assert out.returncode == 0, out.stderr
    assert "exported d0: W&B run" in out.stderr
    records = wandb_records(wandb_offline)
    (run,) = [r.run for r in records["run"]]
    assert run.project == "greentrain-test" and run.display_name == "d0"
    rows = _history_rows(records)
    energy = [(r["greentrain/step"], r["greentrain/epoch.energy_kwh"]) for r in rows
              if "greentrain/epoch.energy_kwh" in r]  # fmt: skip
    assert energy == [(0, pytest.approx(0.1)), (1, pytest.approx(0.1)), (2, pytest.approx(0.1))]
    acc = [(r["greentrain/step"], r["test_acc"]) for r in rows if "test_acc" in r]
    assert acc == [(0, 0.5), (1, 0.7), (2, 0.8)]
    summary = {
        "/".join(u.nested_key) or u.key: json.loads(u.value_json)
        for s in records["summary"]
        for u in s.summary.update
    }
    assert summary["greentrain/energy_kwh"] == pytest.approx(0.3)
    config = {
        u.key: json.loads(u.value_json) for c in records.get("config", []) for u in c.config.update
    }
    config.update({u.key: json.loads(u.value_json) for u in run.config.update})
    assert config["carbon.source"] == "Ember" and config["energy.gpu.source"] == "nvml:counter"
    assert records["exit"][0].exit.exit_code == 0


def test_mirror_wandb_offline_follows_a_run_live_and_survives_the_jobs_end(tmp_path, wandb_offline):
    out = greentrain("run", "--store", str(tmp_path / "g.db"), "--meter", "fake",
                     "--sample-s", "0", "--mirror", "wandb", "--", PY, "-c", JOB)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "mirrored to W&B run" in out.stderr and "stopped following" not in out.stderr
    records = wandb_records(wandb_offline)
    rows = _history_rows(records)
    assert [r["greentrain/step"] for r in rows if "greentrain/epoch.energy_j" in r] == [10, 20, 30]
    assert [r["val_acc"] for r in rows if "val_acc" in r] == [0.5, 0.6, 0.7]
    assert records["exit"][0].exit.exit_code == 0

"""The trainer's own tracker run gets the energy (issue 23), with the real libraries: Lightning
with MLFlowLogger and CSVLogger, the HF Trainer with report_to mlflow, wandb (offline) and
codecarbon (offline), each with and without `greentrain run --mirror`: one energy value per
epoch in the trainer's run at the trainer's step, and no second run. Exports to MLflow file and
SQLite stores and W&B offline, twice each: the second adds nothing; a failed export is finished,
never RUNNING, and a retry finishes the same run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains, starts wrappers and trackers

pytest.importorskip("lightning")
pytest.importorskip("transformers")
mlflow = pytest.importorskip("mlflow")
from test_integrations_lightning import QUIET, SCRIPT, TINY  # noqa: E402
from test_integrations_training import OFFLINE_ENV  # noqa: E402
from test_integrations_transformers import tiny_source  # noqa: E402

from greentrain.cli import main  # noqa: E402
from greentrain.integrations.trackers import MlflowTracker, wandb_id  # noqa: E402
from greentrain.store import Store  # noqa: E402

PY = sys.executable


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it behind a switch
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GREENTRAIN_FAKE_METER", json.dumps(SCRIPT))
    monkeypatch.chdir(tmp_path)


def only_run(store) -> dict:
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


def all_mlflow_runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids)


def history(uri: str, run, key: str) -> list[tuple[int, float]]:
    got = mlflow.MlflowClient(uri).get_metric_history(run.info.run_id, key)
    return sorted((m.step, m.value) for m in got)


LIGHTNING = (
    "import sys\nimport lightning as L\n"
    + TINY
    + """
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from greentrain.integrations.lightning import EnergyCallback
uri, store = sys.argv[1], sys.argv[2]
options = dict(store=store, meters=["fake"], sample_s=0, summary=False) if store else {}
mlf = MLFlowLogger(experiment_name="train", tracking_uri=uri)
trainer = L.Trainer(max_epochs=2, callbacks=[EnergyCallback(**options)],
                    logger=[mlf, CSVLogger("csv")], **QUIET)
trainer.fit(Tiny(), train_loader, val_loader)
""".replace("**QUIET", "**" + repr(QUIET))
)


@pytest.mark.parametrize("wrapped", [False, True], ids=["callback-only", "greentrain-run"])
def test_lightning_mlflow_logger_run_gets_each_epochs_energy_beside_val_acc_and_no_second_run(
    tmp_path, monkeypatch, wrapped
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "train.py"
    script.write_text(LIGHTNING, encoding="utf-8")
    store = tmp_path / "g.db"
    if wrapped:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        argv = ["run", "--store", str(store), "--meter", "fake", "--sample-s", "0",
                "--mirror", "mlflow", "--", PY, str(script), uri, ""]  # fmt: skip
        assert main(argv) == 0
    else:
        out = subprocess.run([PY, str(script), uri, str(store)], capture_output=True, text=True,
                             timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"greentrain: recording run {only_run(store)['id']} in {store}" in out.stderr
    record = only_run(store)
    (run,) = all_mlflow_runs(uri)  # the trainer's run only: the mirror wrote into it
    assert run.data.tags["greentrain.run_id"] == record["id"]
    val_steps = [s for s, _ in history(uri, run, "val_acc")]
    assert val_steps == [3, 7]  # Lightning's own steps
    energy = history(uri, run, "greentrain/epoch.energy_kwh")
    assert [s for s, _ in energy] == val_steps  # one value per epoch, beside val_acc
    assert all(v == pytest.approx(9.0 / 3.6e6, rel=1e-6) for _, v in energy)
    assert [s for s, _ in history(uri, run, "greentrain/eval.energy_j")] == val_steps
    if wrapped:  # what the mirror adds to the trainer's run
        assert run.data.params["carbon.source"] and run.data.params["energy.gpu.source"]
        assert run.data.tags["greentrain.status"] == "finished"
        assert run.data.metrics["greentrain/energy_j"] > 0
        assert run.info.status == "FINISHED"  # as the trainer left it
        events = [e for e in record["events"] if e["event"] == "trainer tracker run"]
        assert [(e["tracker"], e["run"]) for e in events] == [("mlflow", run.info.run_id)]


HF = """
import sys
from greentrain.integrations.transformers import EnergyCallback
report_to, store = sys.argv[1], sys.argv[2]
options = dict(store=store, meters=["fake"], sample_s=0, summary=False) if store else {}
args.report_to = [report_to]
trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                  compute_metrics=compute_metrics, callbacks=[EnergyCallback(**options)])
trainer.train()
json_out = [h for h in trainer.state.log_history]
import json
json.dump(json_out, open("history.json", "w"))
"""


def _hf(tmp_path, report_to: str, wrapped: bool, mirror: str | None = None):
    script = tmp_path / "train.py"
    script.write_text(tiny_source(tmp_path / "out") + HF, encoding="utf-8")
    store = tmp_path / "g.db"
    if wrapped:
        extra = ["--mirror", mirror] if mirror else []
        argv = [PY, "-m", "greentrain", "run", "--store", str(store), "--meter", "fake",
                "--sample-s", "0", *extra, "--", PY, str(script), report_to, ""]  # fmt: skip
    else:
        argv = [PY, str(script), report_to, str(store)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    history = json.loads((tmp_path / "history.json").read_text())
    return only_run(store), history, out.stderr


def _epoch_energy_in(history: list[dict]) -> list[tuple[int, float]]:
    return [(h["step"], h["epoch"]) for h in history if "greentrain/epoch.energy_j" in h]


@pytest.mark.parametrize("wrapped", [False, True], ids=["callback-only", "greentrain-run"])
def test_hf_report_to_mlflow_run_gets_each_epochs_energy_in_its_epoch_and_no_second_run(
    tmp_path, monkeypatch, wrapped
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf")
    record, history_, _ = _hf(tmp_path, "mlflow", wrapped, "mlflow" if wrapped else None)
    assert _epoch_energy_in(history_) == [(2, 1.0), (4, 2.0)]  # the last epoch's too
    (run,) = all_mlflow_runs(uri)
    assert run.data.tags["greentrain.run_id"] == record["id"]
    energy = history(uri, run, "greentrain/epoch.energy_j")
    loss_steps = [s for s, _ in history(uri, run, "loss")]
    assert [s for s, _ in energy] == loss_steps == [2, 4]
    assert [s for s, _ in history(uri, run, "greentrain/eval.energy_j")] == [2, 4]
    if wrapped:
        assert run.data.tags["greentrain.status"] == "finished"
        assert run.data.params["carbon.source"]


@pytest.mark.parametrize("wrapped", [False, True], ids=["callback-only", "greentrain-run"])
def test_hf_report_to_wandb_offline_gets_each_epochs_energy_at_the_trainers_step(
    tmp_path, monkeypatch, wrapped
):
    pytest.importorskip("wandb")
    from test_integrations_trackers import wandb_records

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "hf")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record, history_, _ = _hf(tmp_path, "wandb", wrapped)
    assert _epoch_energy_in(history_) == [(2, 1.0), (4, 2.0)]
    records = wandb_records(tmp_path)
    rows = [
        {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in h.history.item}
        for h in records.get("history", [])
    ]
    # HF's W&B integration puts train logs under train/; the energy rides in the same rows
    energy = [r["train/global_step"] for r in rows if "train/greentrain/epoch.energy_j" in r]
    assert energy == [2, 4]
    config = {u.key: json.loads(u.value_json) for c in records.get("config", [])
              for u in c.config.update}  # fmt: skip
    assert config.get("greentrain.run_id") == record["id"]


@pytest.mark.parametrize("wrapped", [False, True], ids=["callback-only", "greentrain-run"])
def test_hf_report_to_codecarbon_offline_still_gets_the_energy_in_its_logs(
    tmp_path, monkeypatch, wrapped
):
    pytest.importorskip("codecarbon")
    monkeypatch.setenv("CODECARBON_LOG_LEVEL", "error")
    (tmp_path / ".codecarbon.config").write_text(
        "[codecarbon]\nsave_to_file = false\ncountry_iso_code = CAN\ntracking_mode = process\n",
        encoding="utf-8",
    )
    record, history_, _ = _hf(tmp_path, "codecarbon", wrapped)
    assert _epoch_energy_in(history_) == [(2, 1.0), (4, 2.0)]
    assert record["status"] == "finished"


# -- exports, twice ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lightning_store(tmp_path_factory):
    """A Lightning run recorded by the callback alone (its metrics include `epoch`)."""
    folder = tmp_path_factory.mktemp("lightning")
    script = folder / "train.py"
    script.write_text(LIGHTNING, encoding="utf-8")
    env = {**OFFLINE_ENV, "GREENTRAIN_FAKE_METER": json.dumps(SCRIPT)}
    import os

    out = subprocess.run([PY, str(script), f"sqlite:///{folder / 'own.db'}", str(folder / "g.db")],
                         capture_output=True, text=True, timeout=300, cwd=folder,
                         env={**os.environ, **env})  # fmt: skip
    assert out.returncode == 0, out.stderr
    return folder / "g.db"


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_export_to_mlflow_twice_writes_one_run_and_names_that_never_collide_with_epoch(
    lightning_store, tmp_path, capsys, kind
):
    uri = f"file:{tmp_path / 'mlruns'}" if kind == "file" else f"sqlite:///{tmp_path / 'm.db'}"
    record = only_run(lightning_store)
    assert any("epoch" in m for m in record["metrics"])  # the metric `epoch` and greentrain/...
    args = ["export", "--to", "mlflow", "--store", str(lightning_store), "--tracking-uri", uri]
    assert main(args) == 0
    assert f"exported {record['id']}" in capsys.readouterr().err
    assert main(args) == 0
    assert f"skipped {record['id']}" in capsys.readouterr().err
    (run,) = all_mlflow_runs(uri)
    assert run.info.status == "FINISHED" and run.data.tags["greentrain.exported"] == "true"
    assert [s for s, _ in history(uri, run, "greentrain/epoch.energy_kwh")] == [3, 7]
    assert [s for s, _ in history(uri, run, "epoch")] == [3, 3, 7, 7]  # eval's and epoch's
    assert run.data.metrics["greentrain/energy_j"] > 0


def test_an_interrupted_export_is_finished_by_the_retry_in_the_same_run(
    lightning_store, tmp_path, capsys
):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    record = only_run(lightning_store)
    # an earlier export that died after its first write: a run tagged, not marked
    earlier = MlflowTracker(uri)
    earlier.start("x", {"greentrain.run_id": record["id"]})
    earlier.points([])
    args = ["export", "--to", "mlflow", "--store", str(lightning_store), "--tracking-uri", uri]
    assert main(args) == 0
    assert f"exported {record['id']}" in capsys.readouterr().err
    (run,) = all_mlflow_runs(uri)  # the same run, finished
    assert run.info.run_id == earlier.run_id and run.info.status == "FINISHED"
    assert run.data.tags["greentrain.exported"] == "true"
    assert [s for s, _ in history(uri, run, "greentrain/epoch.energy_kwh")] == [3, 7]


def test_a_failed_export_is_finished_failed_not_running_and_not_counted_exported(tmp_path, capsys):
    from fixtures.runs import make_run
    from fixtures.store import write_store

    run = make_run("c0")
    run["metrics"].append({"step": 0, "window": None, "time_s": 1.0, "loss": 1.0,
                           "loss/val": 2.0})  # fmt: skip  # `loss` is a file, `loss/` a folder
    store = write_store(tmp_path / "s.db", [run])
    uri = f"file:{tmp_path / 'mlruns'}"
    args = ["export", "--to", "mlflow", "--store", str(store), "--tracking-uri", uri]
    assert main(args) == 1
    assert capsys.readouterr().err.startswith("error: MLflow at")
    (failed,) = all_mlflow_runs(uri)
    assert failed.info.status == "FAILED" and "greentrain.exported" not in failed.data.tags
    assert main(args) == 1  # the retry resumes the same run (and meets the same collision)
    (again,) = all_mlflow_runs(uri)
    assert again.info.run_id == failed.info.run_id and again.info.status == "FAILED"


def test_export_to_wandb_offline_twice_resumes_the_same_run_id(lightning_store, tmp_path):
    pytest.importorskip("wandb")
    import os

    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true", "WANDB_PROJECT": "exports"}  # fmt: skip
    record = only_run(lightning_store)
    for _ in range(2):
        out = subprocess.run([PY, "-m", "greentrain", "export", "--to", "wandb", "--store",
                              str(lightning_store)], capture_output=True, text=True, env=env,
                             timeout=240)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"W&B run {wandb_id(record['id'])}" in out.stderr
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(p.name.endswith(wandb_id(record["id"])) for p in runs)


def test_mirror_wandb_status_reaches_wandb_when_the_job_ends(tmp_path):
    pytest.importorskip("wandb")
    import os

    from test_integrations_trackers import JOB, wandb_records

    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true", "WANDB_PROJECT": "mirror"}  # fmt: skip
    out = subprocess.run([PY, "-m", "greentrain", "run", "--store", str(tmp_path / "g.db"),
                          "--meter", "fake", "--sample-s", "0", "--mirror", "wandb", "--", PY,
                          "-c", JOB + "raise SystemExit(3)\n"], capture_output=True, text=True,
                         env=env, timeout=240)  # fmt: skip
    assert out.returncode == 3, out.stderr
    records = wandb_records(tmp_path)
    summary = {u.key: json.loads(u.value_json) for s in records["summary"]
               for u in s.summary.update}  # fmt: skip
    assert summary["greentrain.status"] == "failed"
    config = {u.key: json.loads(u.value_json) for c in records.get("config", [])
              for u in c.config.update}  # fmt: skip
    assert config["greentrain.status"] == "failed"
    (run,) = [r.run for r in records["run"]]
    assert not any("status" in t for t in run.tags)  # no label frozen at `running`
    assert records["exit"][0].exit.exit_code == 3

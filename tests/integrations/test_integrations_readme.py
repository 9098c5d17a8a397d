"""The integrations guide's snippets (docs/guides/integrations.md) are true: an existing
Lightning script with the one callback line, run under `greentrain run --mirror mlflow`, shows
per-epoch energy next to accuracy in `greentrain show`, in the app and in MLflow; the Trainer
snippet does the same under `greentrain run`; the export commands work as written (RUN and the
URI filled in)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
pytest.importorskip("transformers")
mlflow = pytest.importorskip("mlflow")
from test_integrations_lightning import TINY as TINY_LIGHTNING  # noqa: E402
from test_integrations_training import OFFLINE_ENV  # noqa: E402
from test_integrations_transformers import tiny_source  # noqa: E402

from greentrain.cli import main  # noqa: E402
from greentrain.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def _nothing_leaves_the_machine(monkeypatch):
    """The libraries' own telemetry, crash reports and hub look-ups off (subprocesses too)."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)


ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "integrations.md"


def section() -> str:
    return GUIDE.read_text(encoding="utf-8")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)\n```", section(), flags=re.S)


def only_run(store: Path) -> dict:
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
    return run


@pytest.fixture
def mlflow_env(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_the_lightning_snippet_under_greentrain_run_shows_energy_next_to_accuracy_everywhere(
    tmp_path, mlflow_env, monkeypatch, capfd
):
    lightning_snippet = blocks("python")[0]
    assert "callbacks=[EnergyCallback()]" in lightning_snippet
    script = tmp_path / "train.py"
    script.write_text(
        "import lightning as L\n" + TINY_LIGHTNING + "model = Tiny()\n" + lightning_snippet + "\n"
        # the script's own logger gets the energy under greentrain run too
        "assert 'greentrain/epoch.energy_kwh' in trainer.callback_metrics\n",
        encoding="utf-8",
    )  # fmt: skip
    mirror = next(line for line in blocks("bash")[0].splitlines() if "--mirror mlflow" in line)
    argv = shlex.split(mirror.split("#")[0])[1:]  # greentrain run --mirror mlflow -- python ...
    store = tmp_path / "g.db"
    argv[1:1] = ["--store", str(store), "--meter", "fake", "--sample-s", "0"]
    argv[argv.index("python")] = sys.executable
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "mirrored to MLflow run" in err

    # greentrain show: each epoch's window with its energy, the accuracy logged in it
    run = only_run(store)
    assert run["status"] == "finished" and run["config"]["framework"] == "lightning"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch", "eval"]
    assert all(w["energy"]["gpu"]["energy_j"] > 0 for w in run["windows"])
    accs = [(m["epoch"], m["val_acc"]) for m in run["metrics"] if m.get("window") == "eval"]
    assert [e for e, _ in accs] == [1, 2]  # epochs from 1, in their eval windows
    assert main(["show", run["id"], "--store", str(store)]) == 0
    shown = capfd.readouterr().out
    assert shown.count(" epoch ") >= 2 and "val_acc" in shown

    # MLflow: greentrain/epoch.energy_kwh per epoch beside val_acc, at the same steps
    client = mlflow.MlflowClient(mlflow_env)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("greentrain").experiment_id])
    energy = client.get_metric_history(mlrun.info.run_id, "greentrain/epoch.energy_kwh")
    val_acc = client.get_metric_history(mlrun.info.run_id, "val_acc")
    assert [m.step for m in energy] == [m.step for m in val_acc] == [3, 7]
    assert all(m.value > 0 for m in energy)
    assert [m.value for m in val_acc] == [a for _, a in accs]

    # the app's Run page: energy per epoch and the accuracy the script logged
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(store))
    at = AppTest.from_file(str(ROOT / "app" / "views" / "run.py"), default_timeout=60)
    at.run()
    assert not at.exception
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Energy per epoch" in t for t in titles)
    assert any("val_acc (%)" in t for t in titles)

    # the export lines, as written
    for line in blocks("bash")[0].splitlines()[1:]:
        argv = shlex.split(line.split("#")[0].replace("RUN", run["id"]))[1:]
        argv = [a.replace("sqlite:///mlflow.db", mlflow_env) for a in argv]
        if "--sweep" in argv:
            continue  # the reference sweep is not in this store; test_integrations_trackers
        if {"model-card", "statement"} & set(argv):  # the run was metered by the fake meter
            argv.append("--allow-fake")
        assert main([*argv, "--store", str(store)]) == 0, line
    out = capfd.readouterr()
    assert "skipped" in out.err  # export --to mlflow: the mirror already wrote this run
    assert "co2_eq_emissions:" in out.out and "emissions: " in out.out


def test_the_trainer_snippet_under_greentrain_run_records_epochs_and_eval_accuracy(
    tmp_path, monkeypatch
):
    trainer_snippet = blocks("python")[1]
    assert "callbacks=[EnergyCallback()]" in trainer_snippet
    script = tmp_path / "train.py"
    script.write_text(tiny_source(tmp_path / "out") + trainer_snippet + "\n", encoding="utf-8")
    store = tmp_path / "g.db"
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--store", str(store), "--meter", "fake", "--sample-s", "0", "--",
            sys.executable, str(script)]  # fmt: skip
    assert main(argv) == 0
    run = only_run(store)
    assert run["config"]["framework"] == "transformers"
    assert [w["name"] for w in run["windows"]] == ["epoch", "eval", "epoch", "eval"]
    evals = [m for m in run["metrics"] if "eval_accuracy" in m]
    assert [m["window"] for m in evals] == ["eval", "eval"]

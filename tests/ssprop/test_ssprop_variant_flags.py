"""``--backend``, ``--reselect-every`` and ``--min-channels`` on ``train``, ``sweep`` and ``bench
ssprop``: they reach every converted layer, the recorded config and FLOPs, every sweep point
(and the sweep id), and the bench variants; bad values are one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch

from greentrain.cli import main
from greentrain.cli.train import parse_train_options
from greentrain.jobs.config import TrainConfig
from greentrain.store import Store
from greentrain.studies.sweep import train_command
from greentrain.studies.sweep_plan import compute_sweep_id, parse_grid, plan
from ssprop import flops
from ssprop.convert import sparse_modules

VARIANT = ["--backend", "aten", "--reselect-every", "4", "--min-channels", "128"]
TINY_TRAIN = [
    "--dataset", "digits", "--epochs", "1", "--batch-size", "16", "--eval-batch-size", "64",
    "--max-steps-per-epoch", "2", "--limit-eval-batches", "1", "--meter", "fake",
    "--device", "cpu", "--no-progress",
]  # fmt: skip
TINY_BENCH = [
    "bench", "ssprop", "--model", "resnet18", "--input", "3,8,8", "--batch-size", "4",
    "--steps", "1", "--warmup", "0", "--threads", "1", "--quiet", "--no-record",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_records_the_variant_settings_and_every_converted_layer_carries_them(tmp_path):
    from greentrain.studies.launch import launch

    store = str(tmp_path / "s.db")
    args = [*TINY_TRAIN, "--drop", "0.8", "--schedule", "constant", *VARIANT, "--store", store]
    cfg, run = parse_train_options(args)
    outcome = launch(cfg, run)

    recorded = Store(store).get_run(outcome.run_id)
    config = recorded["config"]
    assert (config["backend"], config["reselect_every"], config["min_channels"]) == ("aten", 4, 128)
    layers = sparse_modules(outcome.result.model)
    assert len(layers) == 20  # every conv of ResNet-18, the 64-channel ones included
    for _, layer in layers:
        assert (layer.backend, layer.reselect_every, layer.min_channels) == ("aten", 4, 128)
        assert "reselect_every=4" in repr(layer) and "min_channels=128" in repr(layer)
    # the logged backward FLOPs count the 64-channel layers dense and amortise the ranking
    model = outcome.result.model
    counted = flops.analyze(model, (16, 1, 8, 8)).paper()
    assert sum(not row.sparse for row in counted.layers if row.kind == "conv") == 5
    logged = [m["backward_flops_per_iter"] for m in recorded["metrics"] if m.get("epoch")]
    assert logged == [pytest.approx(counted.flops_at(0.8))]


def test_train_defaults_are_the_papers_method():
    cfg, _ = parse_train_options([], resolved=False)
    assert (cfg.backend, cfg.reselect_every, cfg.min_channels) == ("auto", 1, 0)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--reselect-every", "0"], "--reselect-every must be >= 1"),
        (["--min-channels", "-1"], "--min-channels must be >= 0"),
        (["--backend", "cuda"], "--backend must be one of auto, aten, triton"),
        (["--backend", "triton", "--device", "cpu"], "--backend triton"),
    ],
)
def test_bad_variant_flags_on_train_exit_2_with_one_line_error_naming_the_flag(
    args, flag, capsys, monkeypatch
):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert main(["train", "--drop", "0.8", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and flag in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_sweep_points_carry_the_variant_flags_and_the_sweep_id_changes_with_them():
    grid = parse_grid({"drop": "0,0.8", "seed": "0,1"})
    base, run = parse_train_options(["--epochs", "2", *VARIANT], resolved=False)
    points = plan(grid, base, run).points
    for point in points.values():
        command = train_command(point)
        for flag, value in zip(VARIANT[::2], VARIANT[1::2], strict=True):
            assert command[command.index(flag) + 1] == value
        # a point's command parses back to the same variant settings
        again, _ = parse_train_options(command[4:], resolved=False)
        assert (again.backend, again.reselect_every, again.min_channels) == ("aten", 4, 128)
    plain = compute_sweep_id(grid, TrainConfig(epochs=2))
    ids = {
        compute_sweep_id(grid, TrainConfig(epochs=2, **change))
        for change in ({"backend": "aten"}, {"reselect_every": 4}, {"min_channels": 128})
    }
    assert plain not in ids and len(ids) == 3


def test_bench_sparse_variants_carry_the_settings_and_the_json_records_them(capsys):
    code = main([*TINY_BENCH, "--drops", "0.8", "--no-layers", "--json", *VARIANT])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    config = result["config"]
    assert (config["backend"], config["reselect_every"], config["min_channels"]) == ("aten", 4, 128)
    from greentrain.bench.report import title

    assert title(result).endswith("; sparse: backend aten, reselect every 4, min channels 128")


def test_make_variants_converts_sparse_and_schedule_models_with_the_settings():
    from greentrain.bench.config import BenchConfig
    from greentrain.bench.variants import make_variants
    from greentrain.jobs.models import build_model

    cfg = BenchConfig(input_shape=(3, 8, 8), batch_size=4, drops=(0.8,), schedule_check=True,
                      backend="aten", reselect_every=4, min_channels=128)  # fmt: skip
    variants = make_variants(cfg, build_model("resnet18", num_classes=10), torch.device("cpu"))
    assert [v.kind for v in variants] == ["dense", "dense", "sparse", "schedule"]
    for v in variants:
        layers = sparse_modules(v.model)
        assert bool(layers) == (v.kind != "dense")
        for _, layer in layers:
            assert (layer.backend, layer.reselect_every, layer.min_channels) == ("aten", 4, 128)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--reselect-every", "0"], "--reselect-every must be >= 1"),
        (["--min-channels", "-1"], "--min-channels must be >= 0"),
        (["--backend", "cuda"], "--backend must be one of auto, aten, triton"),
    ],
)
def test_bad_variant_flags_on_bench_exit_2_with_one_line_error_naming_the_flag(args, flag, capsys):
    assert main([*TINY_BENCH, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and flag in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

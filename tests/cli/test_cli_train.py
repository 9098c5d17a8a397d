"""``greentrain train`` / ``sweep`` option handling: user mistakes are one-line errors (exit 2)."""

from __future__ import annotations

import pytest

from greentrain.cli import main
from greentrain.cli.train import parse_train_options
from greentrain.jobs.config import TrainConfig
from greentrain.jobs.recipes import resolve
from greentrain.run import RunOptions
from greentrain.studies.sweep_plan import train_args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop", "1.5"], "--drop must be in [0, 1)"),
        (["--schedule", "zigzag"], "unknown --schedule 'zigzag': use one of constant, linear"),
        (["--model", "vgg"], "unknown model 'vgg'"),
        (["--resume"], "--resume needs --out DIR"),
        (["--tag", "novalue"], "--tag 'novalue': write it as KEY=VALUE"),
        (["--model", "ddpm", "--dataset", "cifar10"], "ddpm is not set up for 'cifar10'"),
        (["--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs --device cuda"),
    ],
)
def test_bad_train_options_exit_2_with_one_line_error(args, message, capsys):
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_dataset_is_a_one_line_error_naming_the_fix_and_records_no_run(tmp_path, capsys):
    code = main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--meter", "fake",
                 "--store", str(tmp_path / "s.db"), "--device", "cpu"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"dataset cifar10 not found in {tmp_path}; pass --download or --data-dir" in err
    from greentrain.store import Store

    with Store(tmp_path / "s.db") as st:
        assert st.list_runs() == []  # the data is checked before metering starts


def test_paper_defaults_fill_unset_recipe_fields_per_dataset_and_model():
    cfg = resolve(TrainConfig(model="resnet50", dataset="cifar10"))
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.betas) == (250, 128, 2e-4, (0.9, 0.999))
    assert resolve(TrainConfig(model="resnet50", dataset="imagenet")).batch_size == 16
    assert resolve(TrainConfig(dataset="celeba", model="resnet50")).batch_size == 32
    ddpm = resolve(TrainConfig(model="ddpm", dataset="celeba"))
    assert (ddpm.timesteps, ddpm.lr, ddpm.epochs) == (1000, 2e-4, 200)
    assert resolve(TrainConfig(drop=0.8)).period == 2  # bar: the paper's 2-epoch period


def test_cli_args_round_trip_to_the_same_config():
    cfg = TrainConfig(epochs=3, drop=0.8, schedule="cosine", betas=(0.8, 0.99),
                      deterministic=True, progress=False)  # fmt: skip
    run = RunOptions.build(tags={"a": "b"}, meters=["fake"], country="FRA", pue=1.2)
    assert parse_train_options(train_args(cfg, run), resolved=False) == (cfg, run)

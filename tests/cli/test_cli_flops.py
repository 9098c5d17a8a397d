"""``greentrain flops``: JSON and table output, defaults, executed counts and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from greentrain.cli import main
from greentrain.jobs.models import build_model
from ssprop import flops as F


def run_json(capsys, *args: str) -> dict:
    assert main(["flops", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_defaults_are_resnet18_cifar_batch128_bar_08_period_2_epochs(capsys):
    report = run_json(capsys)
    assert report["model"] == "resnet18" and report["stem"] == "cifar"
    assert report["input"] == [128, 3, 32, 32] and report["num_classes"] == 10
    assert (report["schedule"], report["drop_rate"], report["period"]) == ("bar", 0.8, 2)
    assert report["epochs"] == 50 and report["period_unit"] == "epoch"
    every = F.analyze(build_model("resnet18", num_classes=10), (128, 3, 32, 32))
    expected = every.paper().dense_flops
    assert report["convention"] == "paper"
    assert report["head_flops_per_iter"] == every.dense_flops - expected > 0
    assert report["dense_flops_per_iter"] == expected
    # bar period 2 over 50 epochs: half the iterations dense, half at 0.8
    mean = (report["dense_flops_per_iter"] + report["flops_at_drop_per_iter"]) / 2
    assert report["sparse_flops_per_iter"] == pytest.approx(mean)
    assert report["mean_drop_rate"] == pytest.approx(0.4)
    assert report["total_dense_flops"] is None and report["executed"] is None
    convs = [r for r in report["layers"] if r["kind"] == "conv"]
    assert len(convs) == 20 and all(r["sparse"] for r in convs)
    fc = [r for r in report["layers"] if r["kind"] == "linear"]
    assert len(fc) == 1 and not fc[0]["sparse"]  # the head stays dense
    assert not fc[0]["counted"]  # and the paper does not count it
    counted = [r for r in report["layers"] if r["counted"]]
    assert sum(r["sparse_flops_per_iter"] for r in counted) == pytest.approx(
        report["sparse_flops_per_iter"]
    )


def test_the_paper_convention_reproduces_its_resnet50_figure_with_the_head_apart(
    capsys, monkeypatch
):
    # the paper's ResNet-50 (CIFAR stem) at 16x3x224x224: 4,102.22 billion backward FLOPs per
    # iteration; the 1000-class head's 0.13 G is shown on its own row, not in the figure
    args = ["--model", "resnet50", "--input", "16,3,224,224", "--num-classes", "1000"]
    report = run_json(capsys, *args)
    assert f"{report['dense_flops_per_iter'] / 1e9:,.2f}" == "4,102.22"
    assert f"{report['head_flops_per_iter'] / 1e9:.2f}" == "0.13"
    everything = run_json(capsys, *args, "--convention", "all")
    assert f"{everything['dense_flops_per_iter'] / 1e9:,.2f}" == "4,102.35"
    assert all(r["counted"] for r in everything["layers"])
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["flops", *args]) == 0
    table = capsys.readouterr().out
    assert "4,102.22" in table and "not in the paper's count" in table


def test_the_opt_in_variants_are_counted_as_the_jobs_count_them(capsys):
    exact = run_json(capsys)
    thin_dense = run_json(capsys, "--min-channels", "128")  # the stem and layer1 stay dense
    stale = run_json(capsys, "--reselect-every", "4")  # the ranking sum amortised over 4
    assert (thin_dense["min_channels"], stale["reselect_every"]) == (128, 4)
    assert thin_dense["flops_at_drop_per_iter"] > exact["flops_at_drop_per_iter"]
    assert stale["flops_at_drop_per_iter"] < exact["flops_at_drop_per_iter"]
    assert stale["dense_flops_per_iter"] == exact["dense_flops_per_iter"]
    dense_layers = [r for r in thin_dense["layers"] if r["kind"] == "conv" and not r["sparse"]]
    assert len(dense_layers) == 5  # conv1 and layer1's four 64-channel convs
    assert main(["flops", "--reselect-every", "0"]) == 2
    assert "--reselect-every" in capsys.readouterr().err


def test_an_unknown_convention_is_a_one_line_error(capsys):
    assert main(["flops", "--convention", "some"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--convention" in err and "\n" not in err


def test_linear_schedule_over_iterations_and_run_totals(capsys):
    report = run_json(
        capsys,
        "--model",
        "resnet26",
        "--input",
        "4,1,28,28",
        "--schedule",
        "linear",
        "--period",
        "10",
        "--period-unit",
        "iter",
        "--steps-per-epoch",
        "20",
        "--epochs",
        "3",
    )
    assert report["input"] == [4, 1, 28, 28] and report["layers"][0]["input_shape"][1] == 1
    assert report["mean_drop_rate"] == pytest.approx(0.4)  # ramp 0..1 in 10 steps, mean 0.5
    assert report["total_dense_flops"] == report["dense_flops_per_iter"] * 60


def test_resnet50_imagenet_stem_at_224_is_instant_on_meta(capsys):
    report = run_json(
        capsys,
        "--model",
        "resnet50",
        "--stem",
        "imagenet",
        "--input",
        "128,3,224,224",
        "--num-classes",
        "1000",
        "--schedule",
        "constant",
    )
    # torchvision's 4.09 GMAC/image: conv+fc GEMMs = 4 FLOPs per MAC per image
    gemm = report["by_kind"]["conv"] + report["by_kind"]["linear"]
    assert gemm / (4 * 128) == pytest.approx(4.09e9, rel=0.01)
    assert report["sparse_flops_per_iter"] == pytest.approx(report["flops_at_drop_per_iter"])


def test_human_output_has_totals_and_per_layer_rows(capsys):
    assert main(["flops", "--model", "resnet18", "--input", "2,3,32,32", "--per-layer"]) == 0
    out = capsys.readouterr().out
    assert "dense" in out and "schedule mean" in out and "mean drop rate" in out
    assert "layer4.1.conv2" in out and "per layer" in out


def test_executed_counts_fall_with_the_drop_rate(capsys):
    report = run_json(capsys, "--input", "4,3,8,8", "--executed")
    ex = report["executed"]
    assert ex["measured_batch"] == 2 and ex["scaled_to_batch"] == 4
    # executed dense = conv + fc GEMMs minus the first conv's grad_input half
    rows = report["layers"]
    stem = rows[0]
    gemm = sum(r["gemm_flops"] for r in rows)
    assert ex["dense_backward_flops"] == gemm - stem["gemm_flops"] // 2
    # floor((1 - 0.8) * C) channels kept: 12/64 .. 102/512, under 20 % of the conv work
    assert ex["sparse_backward_flops"] < 0.21 * ex["dense_backward_flops"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--drop", "1"], "--drop must be in [0, 1)"),
        (["--drop", "-0.1"], "--drop must be in [0, 1)"),
        (["--model", "vgg16"], "unknown model 'vgg16'"),
        (["--stem", "tiny"], "unknown stem 'tiny'"),
        (["--input", "128,3,32"], "--input must be B,C,H,W"),
        (["--input", "a,b,c,d"], "--input must be B,C,H,W"),
        (["--input", "1,3,0,32"], "--input must be B,C,H,W"),
        (["--schedule", "step"], "unknown --schedule 'step'"),
        (["--period", "1"], "period must be >= 2"),
        (["--period-unit", "iter"], "--period-unit iter needs --steps-per-epoch"),
        (["--period-unit", "batch"], "--period-unit must be 'epoch' or 'iter'"),
        (["--warmup", "50"], "must be shorter than the run"),
    ],
)
def test_bad_values_give_one_line_error_and_exit_2(capsys, args, message):
    assert main(["flops", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_console_script_prints_one_json_object():
    script = Path(sys.executable).with_name("greentrain")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "greentrain"]
    proc = subprocess.run(
        [
            *cmd,
            "flops",
            "--json",
            "--model",
            "resnet18",
            "--input",
            "8,3,32,32",
            "--schedule",
            "cosine",
            "--epochs",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schedule"] == "cosine" and report["period"] is None
    assert 0 < report["sparse_flops_per_iter"] < report["dense_flops_per_iter"]
    assert {"dense_flops_per_iter", "sparse_flops_per_iter", "layers"} <= set(report)


@pytest.mark.parametrize("command", ["flops", "train", "sweep"])
def test_schedule_help_and_check_come_from_ssprops_registry(command, capsys):
    from ssprop.schedule_names import SCHEDULE_NAMES

    assert main([command, "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert " | ".join(SCHEDULE_NAMES) in help_text
    assert main([command, "--schedule", "bar,step" if command == "sweep" else "step"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: unknown --schedule 'step': use one of {', '.join(SCHEDULE_NAMES)}"


def test_the_cli_reads_schedule_names_without_importing_torch():
    probe = (
        "import sys, greentrain.cli.flops, greentrain.cli.train, greentrain.cli.sweep;"
        "import greentrain.cli.schedules as s; print(s.SCHEDULE_CHOICES, 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["constant", "|", "linear", "|", "cosine", "|", "bar", "False"]

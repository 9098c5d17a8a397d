"""Plumbing of ``greentrain bench ssprop`` on a tiny model (no speed assertions)."""

from __future__ import annotations

import json
import math

import pytest

from greentrain.cli import main
from greentrain.store import Store

TINY = [
    "bench", "ssprop", "--model", "resnet18", "--input", "3,8,8", "--batch-size", "4",
    "--steps", "2", "--warmup", "1", "--layer-reps", "1", "--threads", "1", "--quiet",
]  # fmt: skip


def _run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory) -> dict:
    """One recorded tiny run in channels_last with the schedule check: JSON result + store."""
    store = tmp_path_factory.mktemp("bench") / "bench.db"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            [*TINY, "--drops", "0.8", "--channels-last", "--schedule-check", "--json",
             "--store", str(store), "--meter", "estimate"]
        )  # fmt: skip
    assert code == 0
    result = json.loads(buf.getvalue())
    result["_store"] = str(store)
    return result


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_json_result_has_documented_fields(bench_result):
    for key in ("schema", "config", "env", "method", "energy", "dense_baseline", "variants",
                "layers", "layers_total", "schedule", "summary", "run_id"):  # fmt: skip
        assert key in bench_result, key
    names = [v["name"] for v in bench_result["variants"]]
    assert names == ["dense", "dense[contiguous]", "sparse@0.8", "bar@0.8"]
    for v in bench_result["variants"]:
        assert v["steps"] == 2
        for metric in ("step_time_s", "backward_time_s"):
            assert set(v[metric]) >= {"median", "p10", "p90", "q25", "q75", "mean"}


def test_every_ratio_is_positive_and_finite(bench_result):
    for v in bench_result["variants"]:
        for table in ("ratios", "ratios_vs_fastest_dense"):
            for metric in ("step_time", "backward_time"):
                r = v[table][metric]
                assert _positive_finite(r["median"]), (v["name"], table, metric)
                assert r["p10"] <= r["median"] <= r["p90"]
    for row in bench_result["summary"]:
        assert _positive_finite(row["step_time_ratio"])
        assert _positive_finite(row["backward_time_ratio_vs_fastest_dense"])


def test_per_layer_rows_cover_every_conv_with_each_drop_rate(bench_result):
    from torch import nn

    from greentrain.jobs.models import build_model

    convs = [
        n for n, m in build_model("resnet18", num_classes=10).named_modules()
        if isinstance(m, nn.Conv2d)
    ]  # fmt: skip
    rows = bench_result["layers"]
    assert [r["name"] for r in rows] == convs
    assert rows[0]["needs_input_grad"] is False  # the stem's input needs no grad_input
    for row in rows:
        assert _positive_finite(row["dense_backward_s"])
        assert _positive_finite(row["dense_alt_layout_backward_s"])
        assert [s["drop_rate"] for s in row["sparse"]] == [0.8]
        for s in row["sparse"]:
            assert s["converted"] is True
            assert _positive_finite(s["ratio"]) and _positive_finite(s["ratio_vs_fastest_dense"])
    assert len(bench_result["layers_total"]["sparse"]) == 1


def test_dense_baseline_uses_the_same_settings_as_sparse_variants(bench_result):
    by_name = {v["name"]: v for v in bench_result["variants"]}
    dense = by_name["dense"]
    for v in bench_result["variants"]:
        if v["kind"] != "dense":
            for key in ("layout", "dtype", "compile"):
                assert v[key] == dense[key], (v["name"], key)
    assert dense["layout"] == "channels_last"
    assert by_name["dense[contiguous]"]["layout"] == "contiguous"
    fastest = bench_result["dense_baseline"]["fastest"]
    assert fastest["step_time"] in ("dense", "dense[contiguous]")


def test_energy_on_cpu_is_unavailable_with_a_reason_not_zero(bench_result):
    energy = bench_result["energy"]
    assert energy["available"] is False
    assert "no NVML" in energy["reason"]
    for v in bench_result["variants"]:
        assert v["energy_j_per_step"] is None
        assert v["ratios"]["energy"] is None
    for row in bench_result["summary"]:
        assert row["energy_j_per_step"] is None


def test_schedule_check_measures_both_bar_phases(bench_result):
    s = bench_result["schedule"]
    assert s["rates"] == [0.0, 0.8] or s["rates"] == [0.8, 0.0]
    assert _positive_finite(s["mean_step_time_ratio"])
    assert _positive_finite(s["phase_step_time_ratios"]["dense_phase"])
    assert _positive_finite(s["phase_step_time_ratios"]["sparse_phase"])


def test_result_is_recorded_as_a_bench_run_with_ratios(bench_result):
    from greentrain.store import Store

    run = Store(bench_result["_store"]).get_run(bench_result["run_id"])
    assert run["status"] == "finished"
    assert run["config"]["job"] == "bench"
    assert run["config"]["bench_variants"][2] == "sparse@0.8"
    rows = [m for m in run["metrics"] if "step_time_ratio" in m]
    assert len(rows) == len(bench_result["variants"])
    assert all(_positive_finite(m["step_time_ratio"]) for m in rows)


def test_markdown_report_lists_every_variant(bench_result):
    from greentrain.bench import to_markdown

    text = to_markdown(bench_result, command="greentrain bench ssprop")
    for v in bench_result["variants"]:
        assert f"| {v['name']} |" in text
    assert "n/a: no NVML" in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--drops", "0,1.0"], "must be in [0, 1)"),
        (["--drops", "0.5,abc"], "--drops must be comma-separated"),
        (["--input", "3,32"], "--input must be three positive integers"),
        (["--input", "3,x,32"], "--input must be three positive integers"),
        (["--dtype", "float16"], "--dtype must be one of"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--model", "vgg"], "--model must be one of"),
        (["--compile-mode", "fast"], "--compile-mode must be one of"),
        (["--energy-rounds", "0"], "--energy-rounds must be >= 1"),
        (["--energy-block-s", "0"], "--energy-block-s must be > 0 seconds"),
        (["--cuda-graphs"], "--cuda-graphs needs --device cuda"),
        (["--graph-replays", "0"], "--graph-replays must be >= 1"),
    ],
)
def test_bad_options_give_one_line_error_and_exit_2(capsys, extra, message):
    code, out, err = _run_cli(capsys, [*TINY, "--no-record", *extra])
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_schedule_has_one_ratio_the_mean_of_its_per_step_ratios_everywhere(bench_result):
    """Its phases alternate, so the median of its per-step ratios is one phase's; the summary
    row and the schedule section report the same figure: their mean."""
    [bar] = [v for v in bench_result["variants"] if v["kind"] == "schedule"]
    [row] = [r for r in bench_result["summary"] if r["variant"] == bar["name"]]
    assert bar["ratio_statistic"] == "mean"
    assert row["step_time_ratio"] == bar["ratios"]["step_time"]["mean"]
    assert row["step_time_ratio"] == bench_result["schedule"]["mean_step_time_ratio"]
    steady = [v for v in bench_result["variants"] if v["kind"] != "schedule"]
    assert all(v["ratio_statistic"] == "median" for v in steady)


def test_every_variant_steps_with_the_same_fused_optimizer(bench_result):
    impls = {v["optimizer"] for v in bench_result["variants"]}
    assert impls == {"fused"}


def test_cuda_without_a_gpu_is_a_one_line_error(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = _run_cli(capsys, [*TINY, "--no-record", "--device", "cuda"])
    assert code == 2
    assert err.startswith("error: --device cuda") and len(err.strip().splitlines()) == 1


def test_rich_report_prints_ratios_layers_and_schedule(bench_result):
    import io

    from rich.console import Console

    from greentrain.bench import print_rich

    buf = io.StringIO()
    print_rich(bench_result, Console(file=buf, width=250))
    out = buf.getvalue()
    assert "sparse@0.8" in out and "x dense" in out and "n/a: no NVML" in out
    assert "layer4.1.conv2" in out and "bar schedule" in out
    assert "[p10-p90]" in out  # rich markup must not eat the bracketed spread


def test_step_energy_counter_converts_nvml_millijoules_to_joules():
    from greentrain.bench.energy import StepEnergyCounter

    readings = iter([1_000_000, 1_250_500])
    counter = StepEnergyCounter(lambda: next(readings), "cuda:0 fake")
    before, after = counter.read_j(), counter.read_j()
    assert after - before == pytest.approx(250.5)
    assert counter.source == "nvml:counter"


def test_step_energy_on_cpu_raises_meter_unavailable_with_fix():
    from greentrain.bench.energy import open_step_energy
    from greentrain.errors import MeterUnavailable

    with pytest.raises(MeterUnavailable) as info:
        open_step_energy("cpu")
    assert info.value.reason.startswith("n/a: no NVML") and info.value.fix


def test_energy_blocks_give_joules_per_step_from_whole_blocks_with_even_step_counts():
    import contextlib

    import torch

    from greentrain.bench import task
    from greentrain.bench.config import BenchConfig
    from greentrain.bench.rounds import energy_block_steps, run_energy_blocks
    from greentrain.bench.variants import make_variants

    cfg = BenchConfig(
        model="resnet18", batch_size=2, input_shape=(3, 8, 8), drops=(0.8,), steps=1,
        warmup=0, energy_rounds=2, energy_block_s=0.05, per_layer=False,
    )  # fmt: skip
    assert energy_block_steps(cfg, [0.01, 0.01, 0.01]) == 6  # 5 steps last 0.05 s -> even: 6
    assert energy_block_steps(cfg, [1.0]) == 2  # never fewer than 2
    device = torch.device("cpu")
    variants = make_variants(cfg, task.build(cfg), device)
    for v in variants:
        v.step_s = [0.02]  # dense's median sets the block length: 0.05 s / 0.02 s -> 3 -> 4

    class Counter:  # cumulative joules: 1.5 J per read
        def __init__(self):
            self.j = 0.0

        def read_j(self):
            self.j += 1.5
            return self.j

    batch = task.make_batch(cfg, device)
    steps = run_energy_blocks(cfg, variants, batch, lambda: None, contextlib.nullcontext, Counter())
    assert steps == 4
    for v in variants:
        assert v.energy_j == [pytest.approx(1.5 / 4)] * 2  # one figure per round, J per step


def test_the_ddpm_unet_benches_with_its_noise_prediction_loss(capsys):
    pytest.importorskip("diffusers")
    code, out, err = _run_cli(
        capsys,
        ["bench", "ssprop", "--model", "ddpm", "--input", "1,8,8", "--unet-base", "16",
         "--batch-size", "2", "--drops", "0.8", "--steps", "1", "--warmup", "0",
         "--layer-reps", "1", "--threads", "1", "--quiet", "--no-record", "--json"],
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["config"]["model"] == "ddpm" and result["config"]["unet_base"] == 16
    assert [v["name"] for v in result["variants"]] == [
        "dense",
        "dense[channels_last]",
        "sparse@0.8",
    ]
    assert len(result["layers"]) > 10  # every conv of the UNet is timed


def test_phases_time_each_phase_alone_and_flag_joules_unavailable_on_cpu(capsys):
    from greentrain.bench.report import to_markdown

    code, out, err = _run_cli(
        capsys,
        [*TINY, "--drops", "0.8", "--no-layers", "--phases", "--energy-rounds", "2",
         "--energy-block-s", "0.01", "--no-record", "--json"],
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    phases = result["phases"]
    assert phases["baseline"] == "dense" and phases["rounds"] == 2
    assert phases["joules_reason"].startswith("n/a: no NVML")
    rows = {row["variant"]: row for row in phases["variants"]}
    assert set(rows) == {"dense", "dense[channels_last]", "sparse@0.8"}
    for row in rows.values():
        for phase in ("forward", "backward", "optimizer"):
            assert _positive_finite(row[phase]["seconds"])
            assert row[phase]["joules"] is None  # never 0 where nothing measured
            assert row[phase]["repetitions"] >= 2
    assert rows["dense"]["backward_flops_ratio"] == 1.0
    assert 0 < rows["sparse@0.8"]["backward_flops_ratio"] < 1
    assert "Per phase (each alone)" in to_markdown(result)


def test_phase_joules_come_from_the_counter_per_repetition():
    import contextlib

    import torch

    from greentrain.bench import task
    from greentrain.bench.config import BenchConfig
    from greentrain.bench.phases import measure_phases
    from greentrain.bench.variants import make_variants

    cfg = BenchConfig(
        model="resnet18", batch_size=2, input_shape=(3, 8, 8), drops=(0.8,), steps=1,
        warmup=0, energy_rounds=1, energy_block_s=1e-9, per_layer=False,
    )  # fmt: skip
    device = torch.device("cpu")
    variants = make_variants(cfg, task.build(cfg), device)

    class Counter:  # cumulative joules: 3 J between two reads
        def __init__(self):
            self.j = 0.0

        def read_j(self):
            self.j += 3.0
            return self.j

    batch = task.make_batch(cfg, device)
    result = measure_phases(cfg, variants, batch, device, contextlib.nullcontext, Counter(), None)
    for row in result["variants"]:
        for phase in ("forward", "backward", "optimizer"):
            reps = row[phase]["repetitions"]
            assert reps == 2  # a block shorter than one repetition still repeats twice
            assert row[phase]["joules"] == pytest.approx(3.0 / reps)
            assert row[phase]["joules_ratio"] == pytest.approx(1.0)


def test_a_recorded_bench_run_gives_the_same_where_row_as_its_json_result(bench_result):
    from greentrain.bench.where import row
    from greentrain.report.where import rows_from_runs

    with Store(bench_result["_store"]) as st:
        runs = [st.get_run(r["id"]) for r in st.list_runs()]
    (stored,) = rows_from_runs(runs)
    from_json = row(bench_result)
    for key in ("workload", "setting", "verdict"):
        assert stored[key] == from_json[key], key
    for key in ("sparse_step", "sparse_backward", "bar_step", "zero_step"):
        for end in ("ratio", "low", "high", "level"):
            assert stored[key][end] == pytest.approx(from_json[key][end]), (key, end)
    assert stored["sparse_energy"]["ratio"] is None and stored["device"]


def test_bench_where_tabulates_each_result_with_a_verdict_from_its_ratios(bench_result, capsys,
                                                                          tmp_path):  # fmt: skip
    from greentrain.bench.where import row

    path = tmp_path / "r.json"
    path.write_text(json.dumps(bench_result))
    code, out, err = _run_cli(capsys, ["bench", "where", str(path), "--markdown"])
    assert code == 0, err
    r = row(bench_result)
    sparse = next(v for v in bench_result["variants"] if v["name"] == "sparse@0.8")
    assert r["sparse_step"]["ratio"] == sparse["ratios_vs_fastest_dense"]["step_time"]["median"]
    assert r["sparse_energy"]["ratio"] is None  # CPU: no NVML, and the table says so
    assert "n/a (no NVML)" in out and r["verdict"] in out
    interval = sparse["ratios_vs_fastest_dense"]["step_time"]["interval"]
    assert (r["sparse_step"]["low"], r["sparse_step"]["high"]) == (
        interval["low"],
        interval["high"],
    )
    # two rounds cannot give a 95% interval ([min, max] covers the median with 50%)
    assert r["sparse_step"]["level"] == pytest.approx(0.5)
    assert r["verdict"] == "no verdict (time: too few rounds for a 95% interval)"
    code, _, err = _run_cli(capsys, ["bench", "where", str(tmp_path / "missing.json")])
    assert code == 2 and err.startswith("error: cannot read bench result")


def test_no_other_layout_times_dense_in_the_run_layout_only_and_the_table_says_so(capsys):
    from greentrain.bench.where import row

    code, out, err = _run_cli(
        capsys, [*TINY, "--drops", "0.8", "--no-other-layout", "--no-layers", "--no-record",
                 "--json"],
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert [v["name"] for v in result["variants"]] == ["dense", "sparse@0.8"]
    assert result["dense_baseline"]["other_layout_measured"] is False
    assert set(result["dense_baseline"]["fastest"].values()) <= {"dense", None}
    assert "dense in this layout only" in row(result)["setting"]


def test_per_layer_baselines_are_the_row_layout_and_one_fastest_layout_for_the_model(
    bench_result,
):
    rows, total = bench_result["layers"], bench_result["layers_total"]
    layouts = {r["fastest_dense_layout"] for r in rows}
    assert layouts == {total["fastest_dense_layout"]}  # one layout for every layer
    same = sum(r["dense_backward_s"] for r in rows)
    alt = sum(r["dense_alt_layout_backward_s"] for r in rows)
    assert total["fastest_dense_layout"] == ("contiguous" if alt < same else "channels_last")
    for row in rows:
        assert row["layout"] == "channels_last" and row["timing"] == "wall"
        assert row["capture_error"] is None
        for s in row["sparse"]:  # ratio: against dense in the row's own layout, per round
            per_round = row["per_round_s"]
            want = [a / b for a, b in zip(per_round[s["variant"]], per_round["dense"], strict=True)]
            assert s["ratio_per_round"] == pytest.approx(want)
    (entry,) = total["sparse"]
    assert entry["round_ratio"]["n"] == bench_result["config"]["layer_reps"]

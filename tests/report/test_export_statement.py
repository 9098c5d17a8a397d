"""The statement and model card a reviewer would paste: a citation for the carbon source, meters
in words with their uncertainty, no caveat about a device the machine lacks, the accuracy metric
the runs logged, fake-meter runs refused unless allowed, only known model-card fields."""

from __future__ import annotations

import pytest
from fixtures.runs import make_run, study
from fixtures.store import write_store

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.report import formats, tables
from greentrain.report.citation import carbon_citation

CODECARBON_WORLD = (
    "codecarbon data/private_infra/carbon_intensity_per_source.json [world_average] "
    "(https://www.iea.org/reports/global-energy-co2-status-report-2019/emissions)"
)


def _cpu_only(run_id: str, **kw) -> dict:
    """A run on a machine without a GPU, its CPU energy modelled, on the default world average."""
    run = make_run(run_id, **kw)
    run["env"]["gpu_models"] = []
    run["energy"] = {
        "gpu": {"energy_j": None, "reason": "no meter measured gpu (used: estimate)"},
        "cpu": {"energy_j": 300.0, "source": "estimate:estimated", "estimated": True},
    }
    run["meters"] = [
        {"meter": "estimate", "available": True,
         "devices": ["cpu 'X': 6.40 W per busy core (TDP table: X family)", "ram: 0.375 W/GB"]},
    ]  # fmt: skip
    run["carbon"] = {"intensity_g_per_kwh": 475.0, "source": CODECARBON_WORLD, "year": None,
                     "pue": 1.0, "country": None, "region": None}  # fmt: skip
    return run


def test_carbon_source_is_a_citation_with_publisher_year_and_scope_never_a_path():
    text, year = carbon_citation(CODECARBON_WORLD, None)
    assert text.startswith("IEA, Global Energy & CO2 Status Report 2019, world average")
    assert "location-based grid average" in text and year == "2019"
    statement = tables.render([_cpu_only("c")], "statement")
    assert "IEA, Global Energy & CO2 Status Report 2019" in statement
    assert "private_infra" not in statement and ".json" not in statement
    assert "year not stated" not in statement


def test_statement_names_meters_in_words_with_their_inputs_and_uncertainty():
    statement = tables.render([_cpu_only("c")], "statement")
    assert "estimated from the process tree's CPU time and memory" in statement
    assert "6.40 W per busy core (TDP table: X family)" in statement
    assert "correct to an order of magnitude only" in statement
    assert "estimate:estimated" not in statement


def test_no_caveat_about_a_gpu_the_machine_does_not_have():
    statement = tables.render([_cpu_only("c")], "statement")
    assert "GPU energy was not measured" not in statement


def test_fake_meter_runs_are_refused_unless_allowed():
    run = make_run("f")
    run["energy"]["gpu"]["source"] = "fake:fake"
    for name in ("statement", "model-card"):
        with pytest.raises(ConfigError, match="--allow-fake"):
            tables.render([run], name)
        text = formats.render([run], name, formats.RenderOptions(allow_fake=True))
        assert "fake" in text


def test_accuracy_defaults_to_the_metric_the_runs_logged():
    runs = []
    for k, name in enumerate(("d0", "d1")):
        run = make_run(name, seed=k, accs=[])
        run["metrics"] = [{"step": 0, "epoch": 1, "val_acc": 0.7 + k / 100}]  # Lightning
        runs.append(run)
    md = tables.render(runs, "markdown")
    assert "| resnet18 / cifar10 / dense | 2 | 70.5 ± " in md  # not n/a
    chosen = formats.render(runs, "markdown", formats.RenderOptions(metric="test_acc"))
    assert "| resnet18 / cifar10 / dense | 2 | n/a |" in chosen


def test_model_card_has_only_known_fields_and_no_duration_in_hardware():
    card = tables.render([_cpu_only("c")], "model-card")
    assert "geographical_location" not in card  # none recorded: the field is left out
    hardware = next(line for line in card.splitlines() if "hardware_used" in line)
    assert "minutes" not in hardware and "seconds" not in hardware
    assert "IEA, Global Energy & CO2 Status Report 2019" in card and "private_infra" not in card
    assert 'geographical_location: "DEU"' in tables.render(study(), "model-card")


def test_cli_export_takes_group_by_metric_and_allow_fake(tmp_path, capsys):
    run = make_run("f")
    run["energy"]["gpu"].update(source="fake:fake", alternatives=[])
    store = write_store(tmp_path / "f.db", [run])
    assert main(["export", "-f", "statement", "--store", str(store)]) == 2
    assert "--allow-fake" in capsys.readouterr().err
    assert main(["export", "-f", "statement", "--allow-fake", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["export", "-f", "markdown", "--group-by", "", "--store", str(store)]) == 0
    assert main(["export", "--help"]) == 0
    help_text = capsys.readouterr().out
    for fmt in formats.REGISTRY:  # the help is the registry's
        assert fmt.name in help_text


def test_meters_in_words_state_the_cpu_seconds_the_estimates_used_summed_over_runs():
    runs = [_cpu_only("a"), _cpu_only("b")]
    runs[0]["energy"]["cpu"]["inputs"] = {"cpu_s": 100.0, "w_per_core": 6.4}
    runs[1]["energy"]["cpu"]["inputs"] = {"cpu_s": 312.0, "w_per_core": 6.4}
    statement = tables.render(runs, "statement")
    assert (
        "estimated from 412 CPU-seconds of the process tree at 6.40 W per busy core "
        "(TDP table: X family) and its memory at 0.375 W/GB"
    ) in statement
    del runs[1]["energy"]["cpu"]["inputs"]  # one run without them: no partial sum is stated
    statement = tables.render(runs, "statement")
    assert "CPU-seconds" not in statement
    assert "estimated from the process tree's CPU time and memory" in statement

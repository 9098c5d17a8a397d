"""`greentrain run` option errors and `runs` / `show` / `rm` over a store."""

from __future__ import annotations

import json
import sys

import pytest

from greentrain.cli import main
from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command
from greentrain.store import Store


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "--tag", "nokey", "--", "true"], "KEY=VALUE"),
        (["run", "--pue", "0.9", "--", "true"], "--pue"),
        (["run", "--baseline", "-1", "--", "true"], "--baseline"),
        (["run", "--meter", "nosuchmeter", "--", "true"], "unknown meter"),
        (["run", "--carbon-intensity", "-5", "--", "true"], "carbon-intensity"),
        (["run"], "no command"),
        (["run", "--"], "no command"),
        (["runs", "--status", "bogus"], "--status"),
        (["runs", "--tag", "x"], "KEY=VALUE"),
    ],
)
def test_bad_options_get_one_line_error_and_exit_2(argv, needle, capsys, tmp_path):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_unknown_country_is_a_config_error(capsys):
    assert main(["run", "--country", "XXX", "--meter", "fake", "--", "true"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_run_records_tags_name_and_carbon_factors(tmp_path, capsys):
    store = tmp_path / "g.db"
    code = main(
        [
            "run",
            "--store",
            str(store),
            "--meter",
            "fake",
            "--name",
            "n1",
            "--tag",
            "study=cifar",
            "--carbon-intensity",
            "100",
            "--pue",
            "1.2",
            "--",
            sys.executable,
            "-c",
            "print('child-out')",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert "child-out" not in err  # child output is not captured into the summary
    assert "gCO2e" in err and "fake:fake" in err
    run = Store(store).list_runs()[0]
    assert run["name"] == "n1" and run["tags"] == {"study": "cifar"}
    assert run["carbon"]["intensity_g_per_kwh"] == 100.0 and run["carbon"]["pue"] == 1.2
    assert run["co2_g"] == pytest.approx(run["energy_kwh"] * 100.0 * 1.2)
    assert run["command"] == [sys.executable, "-c", "print('child-out')"]
    assert run["env"]["python"] and "host" in run["env"]


def _two_runs(store):
    ids = []
    for tag in ("a", "b"):
        r = run_command(
            ["true"],
            store=store,
            tags={"grp": tag},
            name=f"run-{tag}",
            meter_objects=[FakeMeter()],
            summary=False,
        )
        ids.append(r.run_id)
    return ids


def test_runs_json_filters_by_tag_status_and_name(tmp_path, capsys):
    store = tmp_path / "g.db"
    ids = _two_runs(store)
    assert main(["runs", "--store", str(store), "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ids
    assert main(["runs", "--store", str(store), "--json", "--tag", "grp=b"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ids[1:]
    assert main(["runs", "--store", str(store), "--json", "--name", "run-a"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ids[:1]
    assert main(["runs", "--store", str(store), "--json", "--status", "failed"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["runs", "--store", str(store)]) == 0
    assert ids[0] in capsys.readouterr().out


def test_show_by_prefix_and_rm_with_yes(tmp_path, capsys):
    store = tmp_path / "g.db"
    ids = _two_runs(store)
    assert main(["show", ids[0][:8], "--store", str(store)]) == 0
    assert ids[0] in capsys.readouterr().out
    assert main(["show", ids[0], "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["energy"]["gpu"]["source"] == "fake:fake"
    assert main(["rm", ids[0], "--store", str(store), "--yes"]) == 0
    assert [r["id"] for r in Store(store).list_runs()] == ids[1:]
    assert main(["show", ids[0], "--store", str(store)]) == 1
    assert capsys.readouterr().err.startswith("error: no run")


def test_show_on_a_foreign_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "x.db"
    bad.write_text("hello")
    assert main(["runs", "--store", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert bad.read_text() == "hello"

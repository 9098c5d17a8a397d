"""Every page of the Streamlit app, with data and without, through streamlit's AppTest."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from fixtures.runs import NASTY, make_run, study  # noqa: E402
from fixtures.store import write_store  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from greentrain.report import formats  # noqa: E402
from greentrain.report import runs as run_figures  # noqa: E402
from greentrain.report.formats import NAMES as FORMATS  # noqa: E402
from greentrain.store import Store  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "app"
PAGES = ["runs", "compare", "run", "export"]


@pytest.fixture
def data_store(tmp_path, monkeypatch):
    runs = study() + [make_run("n0", model=NASTY, accs=[0.4, 0.6], name=NASTY)]
    path = write_store(tmp_path / "s.db", runs)
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(path))
    monkeypatch.setenv("GREENTRAIN_APP_STORE_NOTE", "given with --store")
    return path


@pytest.fixture
def missing_store(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(tmp_path / "none.db"))
    return tmp_path / "none.db"


def _run(page: str) -> AppTest:
    at = AppTest.from_file(str(APP / "views" / f"{page}.py"), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plotly_count(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [i.value for i in at.info] + [w.value for w in at.warning]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_page_without_store_shows_empty_state_not_exception(missing_store, page):
    at = _run(page)
    assert len(at.info) >= 1
    assert "greentrain demo" in at.info[0].value
    assert _plotly_count(at) == 0


@pytest.mark.parametrize("page", PAGES)
def test_page_with_empty_store_shows_empty_state(tmp_path, monkeypatch, page):
    path = write_store(tmp_path / "empty.db", [])
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(path))
    at = _run(page)
    assert "No runs to show" in at.info[0].value


def test_runs_page_lists_runs_totals_and_marks_estimates(data_store):
    at = _run("runs")
    table = at.dataframe[0].value
    assert set(table["id"]) >= {"d0", "b0", "c0", "f0", "i0", "n0"}
    est = table[table["id"] == "c0"].iloc[0]
    assert est["energy"].startswith("≈") and "(estimated)" in est["energy"]
    totals = at.dataframe[1].value
    assert list(totals.index) == ["finished", "failed", "interrupted", "all"]
    assert "read-only" in at.sidebar.caption[0].value


def test_runs_page_filters_by_status(data_store):
    at = _run("runs")
    at.selectbox[0].set_value("failed").run()  # one status, chosen in SQL
    assert list(at.dataframe[0].value["id"]) == ["f0"]


def test_runs_page_filters_by_name_and_tag_in_sql(data_store):
    at = _run("runs")
    name = at.dataframe[0].value["name"].iloc[0]
    at.text_input[0].set_value(str(name)).run()
    assert set(at.dataframe[0].value["name"]) == {name}
    at.text_input[0].set_value("").run()
    at.text_input[1].set_value("nosuchtag=1").run()
    assert not at.dataframe and "No runs match" in at.info[0].value


def test_compare_page_draws_heatmap_pareto_energy_to_accuracy_and_savings(data_store):
    at = _run("compare")
    assert _plotly_count(at) == 4
    assert "Pareto-optimal: resnet18 / cifar10 / bar / 0.8, resnet18 / cifar10 / dense" in _text(at)
    table = at.dataframe[0].value  # the comparison table comes first
    assert {"n", "vs dense [95% CI]", "Measured energy"} <= set(table.columns)
    e2a = at.dataframe[1].value
    assert {"configuration", "energy to target", "reached"} <= set(e2a.columns)


def test_compare_page_tabulates_where_ssprop_saves_from_recorded_bench_runs(tmp_path, monkeypatch):
    bench = make_run("bn0", accs=[0.5])
    bench["tags"] = {"job": "bench", "bench": "ssprop"}
    bench["config"] = {
        "model": "resnet50", "input_shape": [3, 224, 224], "batch_size": 64, "device": "cuda",
        "dtype": "bfloat16", "channels_last": True, "cuda_graphs": True,
        "bench_variants": ["dense", "dense[contiguous]", "sparse@0", "sparse@0.8", "bar@0.8"],
    }  # fmt: skip
    ratios = [(1.0, 1.0), (1.1, 1.1), (1.004, 1.0), (0.9, 0.85), (0.95, None)]
    bench["metrics"] = [
        {"step": i, "window": None, "time_s": 1.0 + i, "step_time_ratio_vs_fastest_dense": step,
         "energy_ratio_vs_fastest_dense": energy, "step_time_ratio": step,
         "energy_ratio_vs_fastest_dense_low": energy and energy - 0.03,
         "energy_ratio_vs_fastest_dense_high": energy and energy + 0.02}
        for i, (step, energy) in enumerate(ratios)
    ]  # fmt: skip
    bench["env"] = {**bench["env"], "gpu_models": ["NVIDIA H200"]}
    runs = study() + [bench]
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(write_store(tmp_path / "b.db", runs)))
    at = _run("compare")
    assert "Where ssProp saves energy, and where it does not" in [h.value for h in at.subheader]
    table = at.dataframe[-1].value
    (row,) = table.to_dict("records")
    assert (
        row["device"] == "NVIDIA H200" and row["setting"] == "bfloat16, channels_last, CUDA graphs"
    )
    assert (row["sparse step ×"], row["sparse J/step ×"], row["bar step ×"]) == (
        "0.900",
        "0.850 [0.820-0.870]",
        "0.950",
    )
    assert row["drop 0 step ×"] == "1.004" and row["verdict"] == "saves energy (15%, CI 13-18%)"


def test_compare_page_without_bench_runs_says_how_to_get_them(data_store):
    at = _run("compare")
    assert "greentrain bench ssprop" in _text(at)


def test_compare_page_switches_model_dataset_scope(data_store):
    at = _run("compare")
    labels = at.selectbox[0].options
    assert len(labels) == 2
    at.selectbox[0].select(next(o for o in labels if o.startswith("a_b"))).run()
    assert not at.exception
    assert any("Needs a sparse configuration" in i.value for i in at.info)


def test_run_page_shows_provenance_meters_and_epochs(data_store):
    at = AppTest.from_file(str(APP / "views" / "run.py"), default_timeout=30)
    at.query_params["run"] = "b0"
    at.run()
    assert not at.exception
    assert at.selectbox[0].value == "b0"
    frames = [d.value for d in at.dataframe]
    domains = frames[0]
    assert "nvml:counter" in set(domains["source"])
    assert "not measured" in set(domains["source"])  # cpu/dram: reason, not zero
    sides = frames[1]
    assert "zeus:zeus" in set(sides["meter"]) and 2.0 in set(sides["disagreement vs best (%)"])
    assert _plotly_count(at) == 3  # energy per epoch, power, accuracy
    assert any("train.py" in c.value for c in at.code)


def test_run_page_plots_the_recorded_forecasts_against_the_actual_energy(tmp_path, monkeypatch):
    run = make_run("f0", accs=[0.5, 0.6, 0.7, 0.8], epoch_energy_j=[1000.0] * 4)
    t0 = datetime.fromisoformat(run["started_at"]).timestamp()
    run["events"] = [
        {"t": t0 + 10 * k, "event": "forecast", "epochs_done": k, "epochs_total": 4,
         "spent_j": 1000.0 * k, "total_j": 4000.0 + 50 * k, "low_j": 3900.0, "high_j": 4300.0,
         "method": "mean"}
        for k in (1, 2, 3)
    ]  # fmt: skip
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(write_store(tmp_path / "f.db", [run])))
    at = AppTest.from_file(str(APP / "views" / "run.py"), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Energy forecast vs actual" in [h.value for h in at.subheader]
    assert _plotly_count(at) == 4  # energy per epoch, power, accuracy, forecast
    points = run_figures.recorded_forecasts(Store(tmp_path / "f.db").get_run("f0"))
    assert [p["epochs_done"] for p in points] == [1, 2, 3]
    assert points[0]["t_s"] == pytest.approx(10.0) and points[2]["high_kwh"] == 4300.0 / 3.6e6


def test_run_page_warns_about_estimated_energy(data_store):
    at = AppTest.from_file(str(APP / "views" / "run.py"), default_timeout=30)
    at.query_params["run"] = "c0"
    at.run()
    assert any("estimate" in w.value for w in at.warning)


def test_export_page_offers_every_registered_format_as_a_labelled_download(data_store):
    at = _run("export")
    buttons = at.get("download_button")
    assert len(buttons) == len(FORMATS)
    labels = [b.proto.label for b in buttons]
    assert labels == [f"Download {f.file_name}" for f in formats.REGISTRY]
    assert "Best accuracy per kWh" in _text(at)  # the Markdown preview is rendered
    at.selectbox[0].set_value("latex").run()
    assert r"\toprule" in at.code[0].value
    at.selectbox[0].set_value("statement").run()
    assert "of electricity in total" in at.code[0].value
    at.selectbox[0].set_value("model-card").run()
    assert "co2_eq_emissions:" in at.code[0].value


def test_main_script_opens_the_runs_page(data_store):
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=30)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    at.switch_page(str(APP / "views" / "compare.py")).run()
    assert not at.exception and at.title[0].value == "Compare"


def test_app_never_writes_the_store(data_store):
    before = data_store.read_bytes()
    for page in PAGES:
        _run(page)
    assert data_store.read_bytes() == before


# -- readable numbers (issue 15) ----------------------------------------------------------------

SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]?\d", re.IGNORECASE)


@pytest.fixture
def small_store(tmp_path, monkeypatch):
    """Runs as short as the CPU demo's: tens of joules, so kWh figures are about 1e-5."""
    runs = [
        make_run("s0", accs=[0.5, 0.9], epoch_energy_j=[100.0, 100.0], co2_per_kwh_g=475.0),
        make_run("s1", drop_rate=0.8, schedule="bar", accs=[0.5, 0.8], epoch_energy_j=[50.0] * 2),
    ]
    path = write_store(tmp_path / "small.db", runs)
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(path))
    return path


def _shown(at: AppTest) -> str:
    """Every text a person reads on the page: markdown, metrics, tables, chart labels."""
    parts = [_text(at)]
    parts += [f"{m.label} {m.value}" for m in at.get("metric")]
    parts += [d.value.to_csv(index=False) for d in at.dataframe]
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        for trace in spec["data"]:
            parts += [str(t) for t in trace.get("text") or [] if t is not None]
            parts.append(str(trace.get("texttemplate", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_a_figure_in_scientific_notation(small_store, page):
    at = AppTest.from_file(str(APP / "views" / f"{page}.py"), default_timeout=30)
    if page == "run":
        at.query_params["run"] = "s0"
    at.run()
    assert not at.exception
    shown = _shown(at)
    assert not SCIENTIFIC.search(shown.replace("e-mail", "")), SCIENTIFIC.findall(shown)


def test_accuracy_per_energy_reads_in_the_unit_policys_prefixed_unit(small_store):
    at = _run("compare")
    table = at.dataframe[0].value.set_index("Configuration")
    # dense: 200 J = 55.6 mWh (the table's unit: its smallest energy reads >= 1 in it);
    # 90 % / 55.6 mWh = 1.62 %/mWh -- never 1,620,000 %/kWh or 1.62e+6
    assert table.loc["resnet18 / cifar10 / dense", "Energy (mWh)"] == "55.6 (n=1)"
    assert table.loc["resnet18 / cifar10 / dense", "Accuracy per energy (%/mWh)"] == "1.62 (n=1)"
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    cells = [c for row in heat["text"] for c in row if c]
    assert "1.00×<br>no interval<br>n=1" in cells  # colour centred on dense
    runs_page = _run("runs")
    energies = set(runs_page.dataframe[0].value["energy"])
    assert "55.6 mWh" in energies  # 200 J, not 5.56e-05 kWh


def test_runs_page_says_how_much_of_a_partly_measured_run_was_measured(tmp_path, monkeypatch):
    run = make_run("h100", accs=[0.5], epoch_energy_j=[900.0])
    run["energy"]["cpu"] = {"energy_j": 100.0, "source": "estimate:estimated", "estimated": True}
    run["energy_j"] = 1000.0
    run["energy_kwh"] = 1000.0 / 3.6e6
    monkeypatch.setenv("GREENTRAIN_APP_STORE", str(write_store(tmp_path / "m.db", [run])))
    at = _run("runs")
    energy = at.dataframe[0].value.iloc[0]["energy"]
    assert energy.endswith("(90% measured)") and not energy.startswith("≈")


def test_run_page_numbers_epochs_from_one_on_energy_and_accuracy_charts_alike(data_store):
    at = AppTest.from_file(str(APP / "views" / "run.py"), default_timeout=30)
    at.query_params["run"] = "b0"  # its script logged epochs from 0, its windows from index 0
    at.run()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    xs = {s["layout"]["title"]["text"]: _values(s["data"][0]["x"]) for s in specs}
    assert xs["Energy per epoch"] == xs["Accuracy"] == [1, 2, 3]


def _values(array) -> list:
    """A plotly spec's array: a list, or numpy bytes as ``{"dtype", "bdata"}``."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)

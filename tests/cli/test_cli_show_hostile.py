"""``greentrain runs`` and ``greentrain show`` on hostile stores (issue 13): user text never
reaches the terminal raw (escape sequences, controls, CR, backspace are shown escaped), odd
values never crash the listing, and ``--json`` is always strict JSON."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from fixtures.runs import NASTY_TEXTS, make_run, study
from fixtures.store import write_raw, write_store

from greentrain.cli import main
from greentrain.report.formats import NAMES as FORMATS

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own styling, when the terminal has colour


def raw_controls(text: str) -> list[str]:
    """Control characters in ``text`` other than the line ends the CLI writes itself."""
    return [
        ch
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch != "\n")
        or ch in BIDI
        or ch in "\u2028\u2029"
    ]


def nasty_runs() -> list[dict]:
    runs = []
    for k, text in enumerate(NASTY_TEXTS):
        run = make_run(f"t{k}", name=text or "empty", model=text, tags={text: text, "k": text})
        run["command"] = ["python", text, "--flag", text]
        run["cwd"] = text
        run["git"] = {"commit": text, "dirty": text}
        run["env"].update(host=text, cpu_model=text, gpu_models=[text])
        run["config"][text] = text
        run["metrics"][-1][text] = text
        run["meters"][1].update(reason=text, fix=text)
        run["carbon"]["source"] = text
        runs.append(run)
    return runs


@pytest.fixture
def nasty_store(tmp_path):
    return write_store(tmp_path / "nasty.db", nasty_runs())


def _run(capsys, *args) -> str:
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_runs_prints_no_raw_control_character(nasty_store, capsys):
    out = _run(capsys, "runs", "--store", str(nasty_store))
    assert raw_controls(out) == []
    assert r"\x1b[31mred" in out  # shown, escaped
    assert len(out.splitlines()) == 2 + len(NASTY_TEXTS)  # no name split a row (+ the total)


@pytest.mark.parametrize("k", range(len(NASTY_TEXTS)))
def test_show_prints_no_raw_control_character(nasty_store, capsys, k):
    out = _run(capsys, "show", f"t{k}", "--store", str(nasty_store))
    assert raw_controls(out) == [], out


def test_show_shows_escape_sequences_visibly_and_markup_literally(nasty_store, capsys):
    out = _run(capsys, "show", "t1", "--store", str(nasty_store))
    assert r"\x1b[31mred\x1b[0m \x1b[2J\x1b[H" in out
    out = _run(capsys, "show", "t4", "--store", str(nasty_store))
    assert r"cr\roverwrite\nnew line\ttab\x08\x08bs" in out
    out = _run(capsys, "show", "t0", "--store", str(nasty_store))
    assert "[q](r)<script>" in out  # rich markup and brackets printed as written


def test_colour_terminal_gets_only_rich_styling_escapes(nasty_store, capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for args in (["runs"], ["show", "t1"], ["show", "t2"], ["show", "t3"]):
        out = _run(capsys, *args, "--store", str(nasty_store))
        assert raw_controls(SGR.sub("", out)) == [], args


def test_runs_and_show_json_are_the_records_as_written(nasty_store, capsys):
    runs = json.loads(_run(capsys, "runs", "--store", str(nasty_store), "--json"))
    names = {r["id"]: r["name"] for r in runs}
    assert names == {f"t{k}": t or "empty" for k, t in enumerate(NASTY_TEXTS)}
    one = json.loads(_run(capsys, "show", "t1", "--store", str(nasty_store), "--json"))
    assert one["tags"]["k"] == NASTY_TEXTS[1]  # JSON keeps the exact text


# -- values another tool, an old version or a hand edit left in the store ----------------------


def _strict(text: str):
    def no_constant(name):
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=no_constant)


@pytest.fixture
def odd_store(tmp_path):
    path = write_store(tmp_path / "odd.db", study() + [make_run(f"o{k}") for k in range(5)])
    write_raw(path, "o0", carbon='{"intensity_g_per_kwh": Infinity, "pue": 1.2, "year": 2023}')
    write_raw(path, "o1", carbon='{"intensity_g_per_kwh": 400, "pue": NaN, "source": "x"}')
    write_raw(path, "o2", carbon='{"intensity_g_per_kwh": 1e308, "pue": 1e308}')  # co2 = inf
    write_raw(path, "o3", config='{"model": {"a": NaN}, "drop_rate": "high", "seed": [1]}')
    write_raw(
        path,
        "o4",
        metrics_payload='{"final_test_acc": Infinity, "test_acc": "0.9", "x": [NaN, {"y": 1}]}',
        tags='{"k": "\\u001b[31mred", "n": NaN}',
    )
    return path


def test_runs_and_show_json_are_strict_json_whatever_is_stored(odd_store, capsys):
    runs = _strict(_run(capsys, "runs", "--store", str(odd_store), "--json"))
    assert len(runs) == 13
    for k in range(5):
        _strict(_run(capsys, "show", f"o{k}", "--store", str(odd_store), "--json"))
    by_id = {r["id"]: r for r in runs}
    assert by_id["o2"]["co2_g"] is None  # inf: JSON has no infinity
    assert by_id["o4"]["tags"] == {"k": "\x1b[31mred", "n": None}


def test_runs_and_show_print_odd_values_without_crashing(odd_store, capsys):
    out = _run(capsys, "runs", "--store", str(odd_store))
    assert raw_controls(out) == [] and r"k=\x1b[31mred" in out
    for k in range(5):
        assert raw_controls(_run(capsys, "show", f"o{k}", "--store", str(odd_store))) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_of_a_store_with_odd_values_succeeds_and_flags_them(odd_store, capsys, fmt):
    out = _run(capsys, "export", "--format", fmt, "--store", str(odd_store))
    assert out.strip()
    if fmt in ("markdown", "latex", "statement", "json"):
        assert "carbon.intensity" in out.replace("\\_", "_")


@pytest.mark.parametrize("carbon", ['{"intensity_g_per_kwh": 400, "pue": null}',
                                    '{"intensity_g_per_kwh": "x"}'])  # fmt: skip
def test_a_null_or_text_carbon_factor_does_not_break_runs_json(tmp_path, capsys, carbon):
    path = write_store(tmp_path / "s.db", [make_run("a"), make_run("b")])
    write_raw(path, "b", carbon=carbon)
    runs = _strict(_run(capsys, "runs", "--store", str(path), "--json"))
    assert [r["co2_g"] is None for r in runs] == [False, True]


# -- property-based ---------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

texts = st.text(max_size=20)  # all of Unicode but surrogates (the store holds valid text)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=texts, tags=st.dictionaries(texts, texts, max_size=3), value=texts, metric=texts)
def test_any_user_text_reaches_the_terminal_escaped(tmp_path, capsys, name, tags, value, metric):
    run = make_run("r1", name=name, model=value, tags=tags)
    run["config"]["x"] = value
    run["metrics"][-1][metric] = value
    run["command"] = ["python", value]
    path = tmp_path / "p.db"
    path.unlink(missing_ok=True)
    write_store(path, [run])
    for args in (["runs"], ["show", "r1"]):
        assert raw_controls(_run(capsys, *args, "--store", str(path))) == []
    _strict(_run(capsys, "show", "r1", "--store", str(path), "--json"))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tags", "{not json"),
        ("config", "[1, 2]"),
        ("best", '{"gpu": "not a dict", "cpu": {"energy_j": "12", "source": 3}}'),
        ("carbon", "[400]"),
        ("baseline", '{"duration_s": 1, "power_w": {"cpu": "ten"}}'),
        ("events", '"oops"'),
    ],
)
def test_one_malformed_column_never_breaks_a_listing(tmp_path, capsys, column, value):
    path = write_store(tmp_path / "s.db", [make_run("a"), make_run("b")])
    write_raw(path, "b", **{column: value})
    runs = _strict(_run(capsys, "runs", "--store", str(path), "--json"))
    assert [r["name"] for r in runs] == ["a", "b"]


# -- show by name ---------------------------------------------------------------------------------


def test_show_accepts_a_unique_run_name_as_well_as_an_id(tmp_path, capsys):
    store = write_store(tmp_path / "n.db", [make_run("abc123", name="baseline-lr3")])
    out = _run(capsys, "show", "baseline-lr3", "--store", str(store))
    assert "abc123" in out
    out = _run(capsys, "show", "abc", "--store", str(store))  # an id prefix still works
    assert "abc123" in out


def test_show_refuses_a_name_two_runs_share_naming_their_ids(tmp_path, capsys):
    runs = [make_run("r1", name="twin"), make_run("r2", name="twin")]
    store = write_store(tmp_path / "t.db", runs)
    assert main(["show", "twin", "--store", str(store)]) != 0
    err = capsys.readouterr().err
    assert "2 runs are named 'twin' (r1, r2)" in err and len(err.strip().splitlines()) == 1
    assert main(["show", "nobody", "--store", str(store)]) != 0
    assert "no run is named 'nobody' either" in capsys.readouterr().err


def test_runs_table_shows_energy_and_carbon_in_the_unit_policys_units(tmp_path, capsys):
    runs = [make_run("tiny", accs=[0.5], epoch_energy_j=[200.0], co2_per_kwh_g=475.0)]
    out = _run(capsys, "runs", "--store", str(write_store(tmp_path / "u.db", runs)))
    header = out.splitlines()[0].split()
    assert "mWh" in header and "mgCO2e" in header  # 200 J = 55.6 mWh, never 5.56e-05 kWh
    assert "55.6" in out and "e-0" not in out

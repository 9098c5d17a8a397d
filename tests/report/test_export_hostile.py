"""Every export format on hostile run records (issue 13): any text in any name, tag, config value
or metric name, values of any type anywhere. Nothing crashes, nothing bad is used, every bad
value is flagged, and each format stays well-formed for its consumer (pdflatex, a Markdown
renderer, a spreadsheet, a JSON parser)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import unicodedata

import pytest
from fixtures.runs import BAD_VALUES, NASTY_TEXTS, hostile_run, make_run, set_path, study

from greentrain.report import grouping, tables
from greentrain.report.formats import NAMES as FORMATS

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FORMULA_TRIGGERS = tuple("=+-@\t\r＝＋－＠")
TEXT_COLUMNS = {"configuration", "model", "dataset", "schedule", "settings", "estimated",
                "vs_dense_method", "ci_note", "issues"}  # fmt: skip
LATIN1_MISSING_IN_OT1 = set("«»ÐÞðþ")

# Where a bad value is put in the hostile study (cycled over BAD_VALUES).
BAD_PATHS = (
    "metrics[-1].final_test_acc",
    "metrics[0].test_acc",
    "metrics[1].backward_flops_per_iter",
    "config.drop_rate",
    "config.model",
    "config.dataset",
    "config.schedule",
    "config.seed",
    "carbon.pue",
    "carbon.intensity_g_per_kwh",
    "energy_kwh",
    "co2_g",
    "duration_s",
    "energy.gpu",
    "energy.gpu.energy_j",
    "energy.gpu.estimated",
    "windows[0]",
    "env.gpu_models",
)


def nasty_text_study() -> list[dict]:
    """The fixture study plus one finished run per nasty text, used as its name, model,
    schedule, tag, config value and metric name, and one failed run per bad value."""
    runs = study()
    for k, text in enumerate(NASTY_TEXTS):
        run = make_run(
            f"t{k}", model=text, schedule=text, drop_rate=0.5, name=text, tags={text: text}
        )
        run["config"][text] = text
        run["metrics"][0][text] = text
        run["env"]["cpu_model"] = text
        run["carbon"]["source"] = text
        run["energy"]["cpu"] = {"energy_j": None, "reason": text}
        runs.append(run)
    for k, value in enumerate(BAD_VALUES * 2):
        path = BAD_PATHS[k % len(BAD_PATHS)]
        runs.append(hostile_run(f"v{k}", {path: value}, seed=k, drop_rate=0.8, schedule="bar"))
    return runs


def raw_controls(text: str) -> list[str]:
    return [
        ch
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch != "\n")
        or ch in BIDI
        or ch in "\u2028\u2029"
    ]


def check_every_format(runs: list[dict]) -> None:
    """Render every format of ``runs`` and check each against its consumer's rules."""
    n_configs = len(grouping.group_runs(runs))
    out = {fmt: tables.render(runs, fmt) for fmt in FORMATS}
    for fmt, text in out.items():
        assert raw_controls(text) == [], fmt
    check_csv(out["csv"], n_configs)
    check_json(out["json"], n_configs, len(runs))
    check_markdown(out["markdown"], n_configs)
    check_latex(out["latex"], n_configs)
    assert out["statement"].endswith("\n") and out["statement"].count("\n") == 1


def check_csv(text: str, n_configs: int) -> None:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == tables.CSV_COLUMNS
    assert len(rows) == 1 + n_configs  # no name split a row
    for row in rows[1:]:
        assert len(row) == len(tables.CSV_COLUMNS)
        for col, cell in zip(tables.CSV_COLUMNS, row, strict=True):
            if col in TEXT_COLUMNS:
                assert not cell.lstrip(" ").startswith(FORMULA_TRIGGERS), (col, cell)
            elif cell:
                float(cell)  # numbers stay numbers


def check_json(text: str, n_configs: int, n_runs: int) -> None:
    def no_constant(name):
        raise AssertionError(f"{name} in JSON")

    doc = json.loads(text, parse_constant=no_constant)
    assert len(doc["configurations"]) == n_configs and len(doc["runs"]) == n_runs
    for record in doc["configurations"] + doc["runs"]:
        assert isinstance(record["issues"], list)


def check_markdown(text: str, n_configs: int) -> None:
    first_table = [b for b in text.split("\n\n") if b.startswith("|")][0].splitlines()
    assert len(first_table) == 2 + max(n_configs, 1)
    mdit = pytest.importorskip("markdown_it")
    html = mdit.MarkdownIt("commonmark").enable("table").render(text)
    tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", html))
    assert tags <= {"table", "thead", "tbody", "tr", "th", "td", "p", "ul", "li", "strong"}, tags
    first = html.split("</table>", 1)[0]
    assert first.count("<tr>") == 1 + max(n_configs, 1)
    if n_configs:
        assert first.count("<td") == 9 * n_configs  # no name split or merged a cell


def check_latex(text: str, n_configs: int) -> None:
    odd = {
        ch
        for ch in text
        if not (" " <= ch <= "~" or ch == "\n")
        and not ("\xa0" <= ch <= "\xff" and ch not in LATIN1_MISSING_IN_OT1)
    }
    assert odd == set(), odd
    body = text.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    assert len(body.splitlines()) == max(n_configs, 1)  # no name split a line


# -- fixed hostile study ----------------------------------------------------------------------


def test_every_format_renders_the_nasty_study_well_formed():
    check_every_format(nasty_text_study())


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_every_format_renders_a_bad_value_in_any_field(value):
    # one run per field, each with this one bad value and otherwise well-formed
    runs = [make_run("ok")] + [
        hostile_run(f"x{k}", {path: value}, seed=k + 1) for k, path in enumerate(BAD_PATHS)
    ]
    check_every_format(runs)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_metric_is_flagged_in_every_format_and_the_rest_still_renders(fmt):
    bad = hostile_run("x1", {"metrics[-1].final_test_acc": "0.9"}, schedule="bar", drop_rate=0.8)
    text = tables.render(study() + [bad], fmt)
    assert "final" in text and "test" in text and "0.9" in text  # which key, which value
    tables_of_configurations = fmt in ("latex", "markdown", "csv", "json")
    assert "resnet18 / cifar10 / dense" in text or not tables_of_configurations
    if fmt in ("markdown", "latex"):
        assert "not a number" in text and ("†" in text or r"\dagger" in text)


def test_bad_value_is_left_out_of_the_statistics_not_counted_as_zero():
    bad = hostile_run("x1", {"metrics[-1].final_test_acc": "0.9"}, schedule="bar", drop_rate=0.8)
    doc = json.loads(tables.render(study() + [bad], "json"))
    bar = next(c for c in doc["configurations"] if c["configuration"].endswith("bar / 0.8"))
    assert bar["n_runs"] == 4 and bar["accuracy_n"] == 3
    assert bar["accuracy_mean"] == pytest.approx(0.79)  # mean of the three readable ones
    (issue,) = bar["issues"]
    assert issue == {
        "run": "x1",
        "field": "metrics[3].final_test_acc",
        "value": "'0.9'",
        "action": "ignored",
        "reason": "text, not a number",
        "count": 1,
    }
    row = next(r for r in doc["runs"] if r["id"] == "x1")
    assert row["accuracy"] is None and row["issues"] == [issue]


def test_csv_flags_the_configuration_whose_run_had_a_bad_value():
    bad = hostile_run("x1", {"carbon.pue": float("inf")})
    rows = list(csv.DictReader(io.StringIO(tables.render(study() + [bad], "csv"))))
    dense = next(r for r in rows if r["configuration"] == "resnet18 / cifar10 / dense")
    assert "run x1: carbon.pue = inf ignored (infinite)" in dense["issues"]
    assert all(r["issues"] == "" for r in rows if r is not dense)


def test_long_issue_lists_are_cut_in_text_formats_but_complete_in_json():
    runs = [hostile_run(f"r{k}", {"config.seed": "s"}, seed=k) for k in range(25)]
    for fmt in ("markdown", "latex", "statement"):
        text = tables.render(runs, fmt)
        assert "r19: config" in text and "r20: config" not in text
        assert "and 5 more" in text and "json lists them all" in text
    doc = json.loads(tables.render(runs, "json"))
    assert sum(len(r["issues"]) for r in doc["runs"]) == 25


def test_sums_that_overflow_print_as_inf_not_a_crash():
    huge = [hostile_run(f"h{k}", {"energy_kwh": 1e308}, seed=k) for k in range(2)]
    huge.append(hostile_run("tiny", {"energy_kwh": 1e-310}, model="other"))  # acc/kWh overflows
    md = tables.render(huge, "markdown")
    assert "| resnet18 / cifar10 / dense | 2 | 80.0 ± 0 | inf ± inf |" in md
    assert "| other / cifar10 / dense | 1 | 80.0 \\(n=1\\) | 1.00e\\-304 \\(n=1\\) |" in md
    assert "| all | 3 | inf |" in md
    tex = tables.render(huge, "latex")
    assert r"\shortstack[r]{$\infty$\\" in tex  # inf over its interval
    doc = json.loads(tables.render(huge, "json"))
    assert doc["totals"]["all"]["energy_kwh"] is None  # JSON has no infinity
    assert "inf" in tables.render(huge, "statement")


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_plots_survive_names_that_are_math_text_or_controls(tmp_path):
    from greentrain.report.plots import save_plots

    runs = study() + [
        make_run("m", model=r"$\frac$", name=r"$\x$"),
        make_run("c", model="\x1b[31m中\x00"),
        hostile_run("v", {"metrics[-1].final_test_acc": "0.9", "config.drop_rate": [1]}),
        hostile_run("h", {"energy_kwh": 1e308, "windows[0].energy.gpu.energy_j": 1e308}),
    ]
    assert save_plots(runs, tmp_path / "f.png").stat().st_size > 1000


# -- pdflatex ---------------------------------------------------------------------------------

needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)",
)


def _compile(tmp_path, body: str, preamble: str) -> subprocess.CompletedProcess:
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n" + preamble + "\\usepackage{booktabs}\n"
        "\\begin{document}\n\\input{table}\n\\end{document}\n",
        encoding="utf-8",
    )
    (tmp_path / "table.tex").write_text(body, encoding="utf-8")
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_pdflatex
@pytest.mark.parametrize("preamble", ["\\usepackage[T1]{fontenc}\n", ""], ids=["T1", "OT1"])
def test_latex_of_the_nasty_study_compiles_with_plain_pdflatex(tmp_path, preamble):
    tex = tables.render(nasty_text_study(), "latex")
    assert r"\lbrack{}x\rbrack{}" in tex  # the leading-"[" name is in the table
    assert r"\lbrack{}U+4E2D\rbrack{}" in tex  # CJK as a visible placeholder
    proc = _compile(tmp_path, tex, preamble)
    assert proc.returncode == 0, proc.stdout[-3000:]


@needs_pdflatex
def test_a_name_starting_with_a_bracket_right_after_midrule_compiles(tmp_path):
    # the first data row follows \midrule, which (like \\) takes an optional [width]
    tex = tables.render([make_run("a", model="[0.5pt] x", dataset="[y]")], "latex")
    body = tex.split("\\midrule\n", 1)[1]
    assert body.startswith(r"\raggedright \lbrack{}")
    proc = _compile(tmp_path, tex, "\\usepackage[T1]{fontenc}\n")
    assert proc.returncode == 0, proc.stdout[-3000:]


# -- property-based ---------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

texts = st.text(max_size=20)  # all of Unicode but surrogates (JSON needs valid text)
leaves = st.none() | st.booleans() | st.integers() | st.floats() | texts
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
VALUE_PATHS = BAD_PATHS + ("tags", "metrics[0]", "env", "carbon", "config", "status")


@st.composite
def hostile_studies(draw) -> list[dict]:
    runs = []
    for k in range(draw(st.integers(1, 4))):
        run = make_run(
            f"r{k}",
            name=draw(texts),
            model=draw(texts),
            dataset=draw(texts),
            schedule=draw(texts),
            drop_rate=draw(st.sampled_from([0.0, 0.5, 0.8])),
            seed=k,
            status=draw(st.sampled_from(["finished", "finished", "failed", "interrupted"])),
            tags=draw(st.dictionaries(texts, values, max_size=2)),
        )
        run["metrics"][0][draw(texts)] = draw(values)
        for path, value in draw(
            st.dictionaries(st.sampled_from(VALUE_PATHS), values, max_size=3)
        ).items():
            try:
                set_path(run, path, value)
            except (TypeError, AttributeError, IndexError, KeyError):
                pass  # an earlier value replaced this path's parent: the record is odd enough
        runs.append(run)
    return runs


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_studies())
def test_any_text_and_any_value_render_well_formed_in_every_format(runs):
    check_every_format(runs)


# -- the statement's appendix and the model card (issue 15) -------------------------------------


@needs_pdflatex
@pytest.mark.parametrize("preamble", ["\\usepackage[T1]{fontenc}\n", ""], ids=["T1", "OT1"])
def test_the_latex_appendix_of_the_nasty_study_compiles(tmp_path, preamble):
    tex = tables.render(nasty_text_study(), "statement-appendix-latex")
    assert r"\begin{tabular}" in tex and "Fermi and Kepler" in tex
    proc = _compile(tmp_path, tex, preamble)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_model_card_of_the_nasty_study_is_valid_yaml_with_a_number_of_grams():
    yaml = pytest.importorskip("yaml")
    runs = nasty_text_study()
    doc = yaml.safe_load(tables.render(runs, "model-card"))
    block = doc["co2_eq_emissions"]
    assert isinstance(block["emissions"], (int, float)) and block["emissions"] > 0
    for key in ("source", "training_type", "geographical_location", "hardware_used"):
        assert isinstance(block[key], str) and raw_controls(block[key]) == [], key
    assert block["training_type"] == "pre-training"
    card = tables.render(runs, "model-card", training_type="fine-tuning")
    assert yaml.safe_load(card)["co2_eq_emissions"]["training_type"] == "fine-tuning"


def test_the_statement_paragraph_never_quotes_a_meters_error_text():
    error = "nvml: NVML init failed: NVML Shared Library Not Found (no NVIDIA driver?)"
    runs = study()
    for run in runs:
        run["energy"]["dram"] = {"energy_j": None, "reason": f"no meter measured dram ({error})"}
        run["meters"].append({"meter": "nvml", "available": False, "reason": error, "fix": "x"})
    paragraph = tables.render(runs, "statement")
    # (NVML is named as the meter, in words; its error text is not quoted)
    assert "init failed" not in paragraph and "Not Found" not in paragraph
    assert "DRAM energy was not measured in 8 runs" in paragraph
    appendix = tables.render(runs, "statement-appendix")
    assert "NVML Shared Library Not Found" in appendix

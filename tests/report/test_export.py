"""Every export format on the fixture study, including names full of special characters."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from fixtures.runs import NASTY, make_run, study
from fixtures.store import write_store

from greentrain.cli import main
from greentrain.errors import ConfigError
from greentrain.report import (
    formats,
    formatting,
    latex_table,
    statement,
    statement_appendix,
    tables,
)

LATEX_SPECIALS = "\\{}$&#^_%~<>|"


def nasty_study() -> list[dict]:
    return study() + [
        make_run("n0", model=NASTY, dataset="data_set&1", schedule="bar%", drop_rate=0.5,
                 accs=[0.4, 0.6], name=NASTY),
    ]  # fmt: skip


# -- LaTeX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", list(LATEX_SPECIALS))
def test_latex_escape_replaces_every_special_character(ch):
    out = formatting.latex_escape(f"a{ch}b")
    assert out != f"a{ch}b"
    # what remains is letters, a backslash command or a backslash-escaped character
    assert re.fullmatch(r"a(\\[A-Za-z]+\{\}|\\[{}$&#_%])b", out), out


def test_latex_escape_leaves_no_raw_special_character():
    out = formatting.latex_escape(NASTY + "\n" + LATEX_SPECIALS * 2)
    stripped = re.sub(r"\\[A-Za-z]+\{\}|\\[{}$&#_%]", "", out)
    assert not set(stripped) & set(LATEX_SPECIALS), stripped
    assert "\n" not in out


def test_latex_table_has_booktabs_rules_and_escaped_names():
    tex = tables.render(nasty_study(), "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular*}{\linewidth}"):
        assert rule in tex
    assert latex_table.breakable(NASTY) in tex  # escaped, with break points in long words
    assert formatting.latex_escape(NASTY) in tex.replace(r"\allowbreak{}", "")
    # dense: mean 81.0 %, over the half-width of its 95% interval (n=2: t=12.7 x 1.41 / 1.41)
    assert r"\shortstack[r]{81.0\\{$\pm$ 12.7}}" in tex
    assert "constant / 0.5$^{\\approx}$" in tex  # the modelled configuration is marked


def _compile(tmp_path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n\\input{table}\n\\end{document}\n",
        encoding="utf-8",
    )
    (tmp_path / "table.tex").write_text(body, encoding="utf-8")
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed "
                    "(apt-get install texlive-latex-base texlive-latex-recommended)")  # fmt: skip
def test_latex_table_compiles_with_pdflatex(tmp_path):
    proc = _compile(tmp_path, tables.render(nasty_study(), "latex"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "t.pdf").exists()


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_escape_renders_names_literally():
    mdit = pytest.importorskip("markdown_it")
    md = mdit.MarkdownIt("commonmark").enable("table")
    html = md.render("| a | b |\n|---|---|\n| " + formatting.markdown_escape(NASTY) + " | x |\n")
    assert "<script>" not in html
    assert html.count("<td>") == 2  # the | in the name did not split the cell
    assert "<em>" not in html and "<a " not in html and "<code>" not in html


def test_markdown_table_lists_configurations_and_totals():
    text = tables.render(nasty_study(), "markdown")
    assert "| resnet18 / cifar10 / dense | 2 | 81.0 ± 12.7 | 300 ± 0 |" in text
    assert formatting.markdown_escape(NASTY) in text
    assert "| failed | 1 | 50.0 |" in text  # Wh: the unit the totals' smallest figure reads in
    assert "| all | 9 |" in text


# -- CSV / JSON -------------------------------------------------------------------------------


def test_csv_round_trips_names_and_statistics():
    df = pd.read_csv(io.StringIO(tables.render(nasty_study(), "csv")), keep_default_na=False)
    assert list(df.columns) == tables.CSV_COLUMNS
    assert NASTY in set(df["model"])
    dense = df[df["configuration"] == "resnet18 / cifar10 / dense"].iloc[0]
    assert float(dense["accuracy_mean"]) == pytest.approx(0.81)
    one = df[df["configuration"] == "resnet18 / cifar10 / constant / 0.5"].iloc[0]
    assert one["accuracy_std"] == "" and one["ci_note"] == "n=1: CI undefined"


def test_json_has_stable_sorted_keys_and_null_for_undefined():
    text = tables.render(nasty_study(), "json")
    assert text == tables.render(nasty_study(), "json")
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert doc["format"] == "greentrain.export/1"
    one = next(c for c in doc["configurations"] if c["configuration"].endswith("constant / 0.5"))
    assert one["accuracy_std"] is None
    assert doc["totals"]["all"]["runs"] == 9
    assert doc["pareto_front"][0] == "resnet18 / cifar10 / bar / 0.8"
    assert any(r["name"] == NASTY for r in doc["runs"])


# -- statement --------------------------------------------------------------------------------


def test_statement_reports_hardware_totals_carbon_meters_estimates_and_uncertainty():
    text = tables.render(study(), "statement")
    assert text.count("\n") == 1  # one paragraph to paste
    assert "1x NVIDIA H100 80GB HBM3" in text and "located in DEU" in text
    assert "A cumulative 3.50 minutes of computation was performed over 8 runs" in text
    assert "1.50 kWh of electricity in total" in text
    assert (
        "runs that failed, were interrupted or were stopped by a budget included" in text
        and "150 Wh" in text  # one unit policy: SI prefix, no leading 0.
    )
    assert "400 gCO2e/kWh (Ember, 2023, DEU) and a PUE of 1.2" in text
    assert "total emissions come to 600 g CO2e" in text
    # which figures were measured and which modelled, by which meter in words, with the
    # assumed uncertainty of each: one sentence
    assert (
        "GPU energy was measured by the GPU's NVML energy counter (±5%) in 7 runs and "
        "modelled: estimated from the process tree's CPU time and memory (correct to an order "
        "of magnitude only) in 1 run." in text
    )
    assert "Best accuracy per kWh: resnet18 / cifar10 / bar / 0.8, at 1.94× dense" in text
    assert "appendix" in text
    # the details are in the appendix, not in the paragraph
    assert "Fermi and Kepler" not in text
    appendix = tables.render(study(), "statement-appendix")
    assert "| GPU | nvml | counter | 7 | 1.20 kWh | measured |" in appendix
    assert "| GPU | estimate | estimated | 1 | 300 Wh | estimated |" in appendix
    assert "Fermi and Kepler" in appendix and "stated assumption" in appendix
    assert "order of magnitude" in appendix
    assert "| rapl | 8 | no RAPL | run on Linux |" in appendix


def test_statement_names_unmeasured_domains_and_empty_selection():
    text = statement.statement([make_run("x", cpu_unavailable=True)])
    assert "CPU energy was not measured in 1 run" in text
    assert "RAPL not readable" not in text  # a meter's reason: in the appendix only
    appendix = statement_appendix.appendix_markdown([make_run("x", cpu_unavailable=True)])
    assert "| CPU | 1 | RAPL not readable \\(permission\\) |" in appendix
    assert "estimated" not in text.split("appendix")[0]
    assert "No runs" in statement.statement([])


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="latex"):
        tables.render([], "docx")


def test_every_format_handles_an_empty_selection():
    for fmt in formats.NAMES:
        assert tables.render([], fmt).strip()


# -- plots ------------------------------------------------------------------------------------


def test_plots_write_png_and_pdf(tmp_path):
    from greentrain.report.plots import save_plots

    for name in ("f.png", "f.pdf"):
        out = save_plots(nasty_study(), tmp_path / name)
        assert out.stat().st_size > 1000
    with pytest.raises(ConfigError):
        save_plots(study(), tmp_path / "f.gif")


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def store_path(tmp_path):
    runs = nasty_study()
    for r in runs:
        r["tags"] = {"sweep": "sw1" if r["id"].startswith("b") else "other", "study": "x"}
    return write_store(tmp_path / "s.db", runs)


def test_cli_export_selects_by_sweep_status_tag_and_run(store_path, capsys):
    assert main(["export", "--format", "json", "--store", str(store_path), "--sweep", "sw1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in doc["runs"]) == ["b0", "b1", "b2"]
    assert main(["export", "-f", "json", "--store", str(store_path), "--status", "failed"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["f0"]
    args = ["export", "-f", "json", "--store", str(store_path), "--run", "d0", "--run", "d1"]
    assert main(args) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ["d0", "d1"]
    assert main(["export", "-f", "csv", "--store", str(store_path), "--tag", "study=x"]) == 0
    assert "resnet18 / cifar10 / dense" in capsys.readouterr().out


def test_cli_export_writes_file_and_plot(store_path, tmp_path, capsys):
    out, fig = tmp_path / "t.tex", tmp_path / "fig.png"
    args = ["export", "-f", "latex", "--store", str(store_path), "-o", str(out), "--plot", str(fig)]
    assert main(args) == 0
    assert r"\toprule" in out.read_text() and fig.stat().st_size > 1000
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "docx"], "--format"),
        (["--status", "done"], "--status"),
        (["--tag", "novalue"], "KEY=VALUE"),
        (["--plot", "x.gif"], "--plot"),
    ],
)
def test_cli_export_bad_input_is_a_one_line_error(store_path, capsys, args, message):
    assert main(["export", "--store", str(store_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_cli_export_missing_store_says_how_to_fix(tmp_path, capsys):
    assert main(["export", "--store", str(tmp_path / "none.db")]) == 2
    assert "no run store" in capsys.readouterr().err

"""The LaTeX table fits \\textwidth of a plain article with booktabs only: compiled with
pdflatex, and the log must hold no Overfull \\hbox."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.runs import NASTY, make_run, study

from greentrain.report import tables
from greentrain.store import Store

VARIANTS_DB = Path(__file__).resolve().parents[2] / "reports" / "ssprop-variants" / "runs.db"

pytestmark = pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex not installed (apt-get install texlive)"
)


def _compile(tmp_path: Path, table: str) -> str:
    (tmp_path / "table.tex").write_text(table, encoding="utf-8")
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "Some text before.\n\n\\input{table}\n\nSome text after.\n\\end{document}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return (tmp_path / "paper.log").read_text(encoding="latin-1")


def test_latex_table_of_the_ssprop_variants_store_fits_the_text_width(tmp_path):
    with Store(VARIANTS_DB, read_only=True) as store:
        runs = store.list_runs()
    log = _compile(tmp_path, tables.render(runs, "latex"))
    assert "Overfull \\hbox" not in log


def test_latex_table_with_long_hostile_names_and_a_failed_run_fits(tmp_path):
    runs = study() + [make_run("n", model=NASTY * 2, name=NASTY, accs=[0.4, 0.6])]
    runs.append(make_run("long", model="resnet18", dataset="x" * 30, accs=[0.5]))
    log = _compile(tmp_path, tables.render(runs, "latex"))
    assert "Overfull \\hbox" not in log

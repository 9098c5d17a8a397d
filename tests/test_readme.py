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


def test_readme_ssprop_example_trains_with_a_bar_schedule():
    """The README's Python example runs as written: a dense epoch, then a sparse one."""
    import torch

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)\n```", text, flags=re.S)
    assert example, "README has no python example"
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(example.group(1), "README.md", "exec"), namespace)
    model, sched = namespace["model"], namespace["sched"]
    import ssprop

    layers = ssprop.sparse_modules(model)
    assert layers and all(name != "conv1" for name, _ in layers)
    steps_per_epoch = len(namespace["loader"])
    rates = [sched.rate(step) for step in range(2 * steps_per_epoch)]
    assert rates == [0.0] * steps_per_epoch + [0.8] * steps_per_epoch  # dense, then sparse epoch
    assert sched.last_step == 2 * steps_per_epoch

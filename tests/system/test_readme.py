"""The README and the documentation site are true: the README's first two commands are the ones a
newcomer runs (and CI runs the second verbatim), its examples and the guides' run as written,
its links stay inside the repository, and the site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from greentrain.cli import main
from greentrain.cli._app import COMMANDS
from greentrain.store import Store

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SSPROP_GUIDE = ROOT / "docs" / "guides" / "ssprop.md"
README_MAX_LINES = 300


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _readme_commands() -> list[str]:
    head = _text(README).split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.*?)\n```", head, flags=re.S)


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", _text(path), flags=re.S)


def test_readme_opens_with_run_and_test_commands():
    commands = _readme_commands()
    assert len(commands) >= 2, "README must open with two command blocks (main job, tests)"
    assert "pip install torch==2.14.1 torchvision==0.29.1" in commands[0]
    assert 'pip install -e ".[paper]"' in commands[0] and "greentrain " in commands[0]
    assert "pytest -n auto --durations=25" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _readme_commands()[1].strip().splitlines()[-1]
    ci = _text(ROOT / ".ci" / "run")
    assert test_command in ci, f".ci/run does not run the README's test command: {test_command}"


def test_readme_is_a_front_page_whose_links_stay_in_the_repository():
    text = _text(README)
    assert len(text.splitlines()) <= README_MAX_LINES
    assert 'pytest -m "not slow"' in text  # the contributing section gives the fast loop
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local, "README links to no page of the documentation"
    for link in local:
        target = (ROOT / link).resolve()
        assert target.is_relative_to(ROOT), f"README points outside the repository: {link}"
        assert target.exists(), f"README links to a missing file: {link}"


@pytest.mark.parametrize("page", [README, SSPROP_GUIDE], ids=["README", "ssprop-guide"])
def test_the_ssprop_example_trains_with_a_bar_schedule(page):
    """The ssprop example runs as written: a dense epoch, then a sparse one."""
    import torch

    import ssprop

    (example,) = [b for b in _python_blocks(page) if "import torch, torchvision, ssprop" in b]
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(example, str(page), "exec"), namespace)
    model, sched = namespace["model"], namespace["sched"]
    layers = ssprop.sparse_modules(model)
    assert layers and all(name != "conv1" for name, _ in layers)
    steps_per_epoch = len(namespace["loader"])
    rates = [sched.rate(step) for step in range(2 * steps_per_epoch)]
    assert rates == [0.0] * steps_per_epoch + [0.8] * steps_per_epoch  # dense, then sparse epoch
    assert sched.last_step == 2 * steps_per_epoch


def test_the_readme_client_example_records_each_epoch_window_and_its_loss(tmp_path):
    (example,) = [b for b in _python_blocks(README) if "from greentrain import client" in b]
    script = tmp_path / "train.py"
    own_code = "def train_one_epoch():\n    return 0.5\n\n\n"  # the "your training code" part
    script.write_text(own_code + example + "\n", encoding="utf-8")
    store = tmp_path / "g.db"
    argv = ["run", "--store", str(store), "--meter", "fake", "--", sys.executable, str(script)]
    assert main(argv) == 0
    with Store(store, read_only=True) as st:
        (run,) = st.list_runs()
        run = st.get_run(run["id"])
    assert run["config"] == {"model": "resnet18", "lr": 0.1}
    assert [w["name"] for w in run["windows"]] == ["epoch"] * 3
    assert all(w["energy"]["gpu"]["energy_j"] > 0 for w in run["windows"])
    assert [m["loss"] for m in run["metrics"]] == [0.5] * 3


def test_the_generated_cli_reference_documents_every_command_and_option():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        from cli_reference import _argument_name, cli_markdown
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    from greentrain.cli._app import load_all_commands

    page = cli_markdown()
    root = load_all_commands()
    for name in COMMANDS:
        assert f"## `greentrain {name}`" in page
        command = root.commands[name]
        for param in command.params:
            if not getattr(param, "hidden", False) and getattr(param, "opts", None):
                shown = _argument_name(param) if param.param_type_name == "argument" else None
                assert (f"`{shown}`" if shown else f"`{param.opts[0]}`") in page, (name, param)


@pytest.mark.slow
def test_the_documentation_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: every page in the nav, every link and anchor resolves, the CLI
    reference and the API pages generate without a warning."""
    pytest.importorskip("mkdocs", reason="the site needs the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()

"""The core install works without torch or any extra: `greentrain run`, track(), the client, the
SQLite store, runs/show/export; the commands that need an extra say, in one line, which one.

Every Python process of these tests (the CLI, the wrapped job) starts with an import hook
(a ``sitecustomize`` on ``PYTHONPATH``) under which torch and every other extra's modules
cannot be imported, exactly as in a core install (``pip install greentrain``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greentrain.extras import PROVIDES

BLOCKED = sorted({m for mods in PROVIDES.values() for m in mods})

# None in sys.modules: `import torch` raises ModuleNotFoundError and importlib.util.find_spec
# says None, exactly as when the package is not installed
HOOK = f"import sys\n\nfor name in {tuple(BLOCKED)!r}:\n    sys.modules[name] = None\n"


@pytest.fixture
def core_env(tmp_path) -> dict[str, str]:
    """An environment whose Python processes cannot import torch or any extra."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook_dir), env.get("PYTHONPATH")]))
    env["GREENTRAIN_STORE"] = str(tmp_path / "g.db")
    return env


def _python(env: dict[str, str], *args: str, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _greentrain(env: dict[str, str], *args: str, cwd: Path | None = None):
    return _python(env, "-m", "greentrain", *args, cwd=cwd)


def test_the_hook_blocks_torch_as_a_core_install_lacks_it(core_env):
    done = _python(core_env, "-c", "import torch")
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr
    found = _python(
        core_env, "-c", "import importlib.util; print(importlib.util.find_spec('torch'))"
    )
    assert found.stdout.strip() == "None"


def test_core_modules_import_and_work_without_torch(core_env, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        import greentrain, greentrain.client, greentrain.cli, greentrain.store, greentrain.meters
        import greentrain.report.tables, greentrain.record, greentrain.carbon
        from greentrain import client, track
        from greentrain.store import Store

        client.log(step=1, loss=0.5)  # outside a run: a no-op, no error
        with track(name="notebook", store={str(tmp_path / "t.db")!r}, meters=["fake"]) as run:
            with client.window("epoch"):
                client.log(step=1, accuracy=0.9)
        with Store({str(tmp_path / "t.db")!r}, read_only=True) as st:
            (row,) = st.list_runs()
        assert row["name"] == "notebook" and row["status"] == "finished", row
        loaded = [m for m, mod in sys.modules.items() if mod and m.split(".")[0] in {BLOCKED!r}]
        assert not loaded, loaded
        print("ok")
        """
    )
    done = _python(core_env, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_greentrain_run_runs_show_and_export_work_without_torch(core_env, tmp_path):
    job = "from greentrain import client; client.log(step=1, loss=0.25)"
    run = _greentrain(core_env, "run", "--meter", "fake", "--name", "job", "--", sys.executable,
                      "-c", job)  # fmt: skip
    assert run.returncode == 0, run.stderr
    listed = _greentrain(core_env, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "job" and row["status"] == "finished"
    shown = _greentrain(core_env, "show", row["id"])
    assert shown.returncode == 0 and "job" in shown.stdout, shown.stderr
    for fmt in ("markdown", "latex", "csv", "json"):
        out = tmp_path / f"runs.{fmt}"
        exported = _greentrain(core_env, "export", "-f", fmt, "-o", str(out))
        assert exported.returncode == 0, exported.stderr
        assert out.stat().st_size > 0


@pytest.mark.parametrize(
    "args, extra, code",
    [
        (["train"], "paper", 2),
        (["demo"], "paper", 2),
        (["flops"], "paper", 2),
        (["bench", "ssprop"], "paper", 2),
        (["sweep", "--seed", "0"], "paper", 2),
        (["export", "--plot", "figure.png"], "paper", 2),
        (["export", "--to", "mlflow"], "mlflow", 2),
        (["export", "--to", "wandb"], "wandb", 2),
        (["run", "--store", "postgresql://nobody@127.0.0.1:1/none", "--", "true"], "postgres", 1),
    ],
)  # fmt: skip
def test_a_command_needing_an_extra_names_that_extra_in_one_line(
    core_env, tmp_path, args, extra, code
):
    """Exit 2 for a missing extra a command needs; 1 for a store that cannot be opened."""
    assert _greentrain(core_env, "run", "--meter", "fake", "--", "true").returncode == 0
    done = _greentrain(core_env, *args, cwd=tmp_path)
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.rstrip().endswith(f"pip install 'greentrain[{extra}]'"), done.stderr


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[2]
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_extra_named_in_an_error_exists_and_the_core_has_no_torch_and_no_upper_pin():
    project = _pyproject()
    extras = project["optional-dependencies"]
    assert set(PROVIDES) <= set(extras)
    core = " ".join(project["dependencies"])
    assert "torch" not in core and "<" not in core  # an upper pin would downgrade other tools
    assert extras["ssprop"] == ["torch>=2.3"]
    assert extras["integrations"] == ["greentrain[lightning,transformers,mlflow,wandb]"]
    (everything,) = [d for d in extras["dev"] if d.startswith("greentrain[")]
    included = {"dev", "ssprop", "lightning", "transformers", "mlflow", "wandb"}  # via others
    assert set(everything[len("greentrain[") : -1].split(",")) == set(extras) - included

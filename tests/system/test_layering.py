"""The dependency direction of DESIGN.md, read from every import statement, function-level ones
included.

``cli -> studies, bench -> jobs, run, report -> meters, store, client -> record, carbon,
envinfo -> units, protocol, errors``; ``ssprop -> torch``; ``app -> store, report``. Each
greentrain package may import only the packages :data:`ALLOWED` lists for it (and itself);
nothing imports back up, no module-level import cycle exists anywhere, and imports sit at the
top of a module unless they load something heavy or optional (:data:`HEAVY_EXTERNAL`).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# greentrain package (first level under greentrain/) -> the greentrain packages it may import.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "extras": {"errors"},
    "units": set(),
    "protocol": set(),
    "record": {"units", "errors"},
    "envinfo": set(),
    "carbon": {"units", "errors"},
    "meters": {"record", "envinfo", "carbon", "units", "errors"},
    "store": {"record", "units", "errors", "extras"},
    "client": {"protocol", "record", "errors"},
    "run": {"meters", "store", "client", "record", "carbon", "envinfo", "protocol", "units",
            "errors", "extras"},
    "report": {"record", "units", "errors"},
    "jobs": {"client", "units", "errors"},
    "studies": {"jobs", "run", "report", "meters", "store", "client", "protocol", "record",
                "units", "errors"},
    "bench": {"jobs", "run", "report", "meters", "client", "envinfo", "record", "units",
              "errors"},
    "integrations": {"client", "run", "report", "record", "store", "units", "errors", "protocol",
                     "extras"},
    "cli": {"studies", "bench", "jobs", "run", "report", "meters", "store", "client", "record",
            "carbon", "envinfo", "protocol", "units", "errors", "integrations", "extras"},
    "__init__": {"run", "client"},
    "__main__": {"cli"},
}  # fmt: skip

# What the app may import from greentrain (it reads runs; it never meters or trains).
APP_ALLOWED = ("store", "report", "record", "units", "errors")
APP_FORBIDDEN_TOP = ("torch", "torchvision", "ssprop", "pynvml", "zeus", "codecarbon")

# Imported inside functions on purpose: slow to import (seconds), optional, or hardware
# libraries that must stay lazy (DESIGN.md). Internal modules that import one of these at their
# top count as heavy too (computed below).
HEAVY_EXTERNAL = {
    "torch", "torchvision", "triton", "ssprop", "numpy", "pandas", "scipy", "sklearn",
    "matplotlib", "plotly", "streamlit", "submitit", "diffusers", "torch_fidelity", "PIL",
    "pynvml", "zeus", "codecarbon", "psutil", "markdown_it", "psycopg", "lightning",
    "pytorch_lightning", "transformers", "mlflow", "wandb",
}  # fmt: skip
# A package facade may import lazily so that ``import greentrain`` stays light for training
# scripts that only use greentrain.client.
LAZY_FACADES = {"greentrain/__init__.py"}


def _python_files(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])


class _Imports(ast.NodeVisitor):
    """Every import of a module, each marked top-level (run at import) or function-level."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.depth = 0
        # (absolute module name, at top level, statement number)
        self.found: list[tuple[str, bool, int]] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.extend((alias.name, self.depth == 0, id(node)) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "__future__":
            return
        if node.level:
            base = _package_of(self.path).split(".")
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        top = self.depth == 0
        self.found.append((module, top, id(node)))
        # ``from pkg import submodule`` imports the submodule too
        self.found.extend((f"{module}.{alias.name}", top, id(node)) for alias in node.names)


@cache
def _imports(path: Path) -> tuple[tuple[str, bool, int], ...]:
    visitor = _Imports(path)
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return tuple(visitor.found)


@cache
def _internal_modules() -> dict[str, Path]:
    return {_module_name(p): p for top in ("greentrain", "ssprop") for p in _python_files(top)}


def _resolve(name: str) -> str | None:
    """The internal module an imported name refers to (``pkg.mod.attr`` -> ``pkg.mod``)."""
    modules = _internal_modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _greentrain_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@cache
def _heavy(module: str) -> bool:
    """Whether importing internal ``module`` loads a heavy library (at its top level)."""
    for name, top, _ in _imports(_internal_modules()[module]):
        if not top:
            continue
        if name.split(".")[0] in HEAVY_EXTERNAL - {"ssprop"}:
            return True
        target = _resolve(name)
        if target is not None and target != module and _heavy(target):
            return True
    return False


def test_layering_scan_finds_the_packages():
    assert _python_files("ssprop"), "ssprop/ has no modules"
    assert _python_files("greentrain"), "greentrain/ has no modules"
    assert set(ALLOWED) >= {_greentrain_package(m) for m in _internal_modules() if
                            m.startswith("greentrain")}  # fmt: skip


@pytest.mark.parametrize("path", _python_files("ssprop"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ssprop_never_imports_greentrain_or_app(path: Path):
    bad = [n for n, _, _ in _imports(path) if n.split(".")[0] in ("greentrain", "app")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: ssprop must depend on torch only"


@pytest.mark.parametrize(
    "path", _python_files("greentrain"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_greentrain_packages_import_only_the_layers_below_them(path: Path):
    own = _greentrain_package(_module_name(path))
    for name, _, _ in _imports(path):
        top = name.split(".")[0]
        assert top != "app", (
            f"{path.relative_to(ROOT)} imports {name}: greentrain must not import app/"
        )
        if top != "greentrain" or name == "greentrain":
            continue
        target = _greentrain_package(name)
        assert target == own or target in ALLOWED[own], (
            f"{path.relative_to(ROOT)} ({own}) imports {name} ({target}); "
            f"{own} may import {sorted(ALLOWED[own]) or 'no other greentrain package'}"
        )


def test_no_import_cycle_between_modules_function_level_imports_included():
    graph: dict[str, set[str]] = {}
    for module, path in _internal_modules().items():
        targets = {_resolve(name) for name, _, _ in _imports(path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    done: set[str] = set()

    def visit(module: str, stack: list[str]) -> None:
        if module in stack:
            cycle = stack[stack.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            # a package's __init__ importing its own submodules is the package, not a cycle
            if not module or not target.startswith(module + "."):
                visit(target, [*stack, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize(
    "path",
    _python_files("greentrain") + _python_files("app"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_function_level_imports_are_only_for_heavy_or_optional_modules(path: Path):
    rel = str(path.relative_to(ROOT))
    if rel in LAZY_FACADES:
        return
    statements: dict[int, list[str]] = {}
    for name, top, stmt in _imports(path):
        if not top:
            statements.setdefault(stmt, []).append(name)
    for names in statements.values():
        heavy = any(
            n.split(".")[0] in HEAVY_EXTERNAL or (_resolve(n) is not None and _heavy(_resolve(n)))
            for n in names
        )
        assert heavy, (
            f"{rel} imports {names[0]} inside a function; import it at the top of the module"
        )


@pytest.mark.parametrize("path", _python_files("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_reads_runs_only_through_store_and_report(path: Path):
    for name, _, _ in _imports(path):
        top = name.split(".")[0]
        assert top not in APP_FORBIDDEN_TOP, f"{path.relative_to(ROOT)} imports {name}"
        if top == "greentrain" and name != "greentrain":
            assert _greentrain_package(name) in APP_ALLOWED, (
                f"{path.relative_to(ROOT)} imports {name}; the app may only use "
                f"{', '.join('greentrain.' + p for p in APP_ALLOWED)}"
            )


def test_running_every_app_page_never_imports_meters_run_or_torch(tmp_path):
    """What the pages really load, not only what they name: run each one, then look."""
    pytest.importorskip("streamlit")
    from fixtures.runs import study
    from fixtures.store import write_store

    store = write_store(tmp_path / "s.db", study())
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "for page in ('runs', 'compare', 'run', 'export'):\n"
        "    at = AppTest.from_file(f'app/views/{page}.py', default_timeout=60)\n"
        "    at.run()\n"
        "    assert not at.exception, (page, [e.value for e in at.exception])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in"
        " ('torch', 'ssprop', 'pynvml', 'zeus', 'codecarbon')"
        " or m.startswith(('greentrain.meters', 'greentrain.run'))]\n"
        "print(','.join(sorted(bad)))\n"
    )
    env = {**os.environ, "GREENTRAIN_APP_STORE": str(store)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"the app loaded: {out.stdout.strip()}"


def test_importing_greentrain_touches_no_hardware_library():
    """DESIGN.md: hardware libraries load lazily inside a meter, never at import."""
    code = (
        "import sys, greentrain, greentrain.cli, greentrain.meters, greentrain.store, "
        "greentrain.run; bad=[m for m in ('pynvml','zeus','codecarbon') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at startup: {out.stdout.strip()}"

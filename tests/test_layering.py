"""The dependency direction of DESIGN.md, read from every module's import statements.

app -> greentrain.store/export/analysis;  greentrain -> ssprop -> torch.  Nothing points back up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the app may import from greentrain (it reads runs; it never meters or trains).
APP_ALLOWED_GREENTRAIN = ("greentrain.store", "greentrain.export", "greentrain.analysis")
APP_FORBIDDEN_TOP = ("torch", "torchvision", "ssprop", "pynvml", "zeus", "codecarbon")


def _imports(path: Path) -> list[str]:
    """Every module name imported by ``path`` (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def _python_files(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_layering_scan_finds_the_packages():
    assert _python_files("ssprop"), "ssprop/ has no modules"
    assert _python_files("greentrain"), "greentrain/ has no modules"


@pytest.mark.parametrize("path", _python_files("ssprop"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ssprop_never_imports_greentrain_or_app(path: Path):
    bad = [n for n in _imports(path) if _top(n) in ("greentrain", "app")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: ssprop must depend on torch only"


@pytest.mark.parametrize(
    "path", _python_files("greentrain"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_greentrain_never_imports_app(path: Path):
    bad = [n for n in _imports(path) if _top(n) == "app"]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: greentrain must not import app/"


@pytest.mark.parametrize("path", _python_files("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_reads_runs_only_through_store_export_analysis(path: Path):
    for name in _imports(path):
        top = _top(name)
        assert top not in APP_FORBIDDEN_TOP, f"{path.relative_to(ROOT)} imports {name}"
        if top == "greentrain" and name != "greentrain":
            assert name.startswith(APP_ALLOWED_GREENTRAIN), (
                f"{path.relative_to(ROOT)} imports {name}; the app may only use "
                f"{', '.join(APP_ALLOWED_GREENTRAIN)}"
            )


def test_importing_greentrain_touches_no_hardware_library():
    """DESIGN.md: hardware libraries load lazily inside a meter, never at import."""
    import subprocess
    import sys

    code = (
        "import sys, greentrain, greentrain.cli, greentrain.meters, greentrain.store; "
        "bad=[m for m in ('pynvml','zeus','codecarbon') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at startup: {out.stdout.strip()}"

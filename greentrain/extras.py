"""Optional dependencies: which extra brings each one, and the one-line error when it is missing.

The core install (``pip install greentrain``) meters commands, stores and shows runs and
exports tables; it has no torch. Everything else comes with an extra of ``pyproject.toml``:
``greentrain train`` without torch says ``pip install 'greentrain[paper]'``, ``--to mlflow``
without MLflow says ``pip install 'greentrain[mlflow]'``: always one line, always the one extra
that brings what is missing, never a traceback.

Use :func:`require` for one module, or :func:`needs_extra` around the lazy imports of a
command whose whole machinery comes with one extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from greentrain.errors import ConfigError

# extra -> the top-level modules it brings (each module listed under the smallest extra)
PROVIDES: dict[str, tuple[str, ...]] = {
    "ssprop": ("torch",),
    "paper": ("torchvision", "diffusers", "torch_fidelity", "sklearn", "matplotlib"),
    "app": ("streamlit", "plotly"),
    "postgres": ("psycopg",),
    "slurm": ("submitit",),
    "lightning": ("lightning", "pytorch_lightning"),
    "transformers": ("transformers", "accelerate"),
    "mlflow": ("mlflow",),
    "wandb": ("wandb",),
    "prometheus": ("prometheus_client",),
    "docs": ("mkdocs", "mkdocstrings"),
}
# extras that include others (pyproject.toml): what a command needing them may miss
INCLUDES: dict[str, tuple[str, ...]] = {
    "paper": ("ssprop",),
    "integrations": ("lightning", "transformers", "mlflow", "wandb"),
}


def extra_for(module: str) -> str | None:
    """The extra that brings top-level module ``module`` (``"torch"`` -> ``"ssprop"``)."""
    top = module.split(".")[0]
    return next((extra for extra, mods in PROVIDES.items() if top in mods), None)


def install_hint(extra: str) -> str:
    """``pip install 'greentrain[EXTRA]'``."""
    return f"pip install 'greentrain[{extra}]'"


def missing_message(what: str, package: str, extra: str) -> str:
    """``"<what> needs <package>, which is not installed: pip install 'greentrain[<extra>]'"``."""
    return f"{what} needs {package}, which is not installed: {install_hint(extra)}"


def _modules_of(extra: str) -> set[str]:
    mods = set(PROVIDES.get(extra, ()))
    for included in INCLUDES.get(extra, ()):
        mods |= _modules_of(included)
    return mods


def require(module: str, *, extra: str | None = None, what: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"torch"``), or raise one line naming the extra that brings it.

    ``extra`` defaults to :func:`extra_for` of the module; ``what`` (e.g. ``"--to mlflow"``)
    names what needs it (default: greentrain).

    Raises:
        ConfigError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        chosen = extra or extra_for(module)
        if chosen is None:
            raise
        package = (err.name or module).split(".")[0]
        raise ConfigError(missing_message(what or "greentrain", package, chosen)) from err


def missing_extra_error(err: ModuleNotFoundError, what: str, *extras: str) -> ConfigError | None:
    """The one-line error for ``err`` when one of ``extras`` brings the missing module, naming
    the first such extra; None when none does (a bug, not a missing extra)."""
    package = (err.name or "").split(".")[0]
    extra = next((e for e in extras if package in _modules_of(e)), None)
    return None if extra is None else ConfigError(missing_message(what, package, extra))


@contextmanager
def needs_extra(what: str, *extras: str) -> Iterator[None]:
    """Turn a missing module of one of ``extras`` inside the block into one line naming it.

    ``with needs_extra("greentrain train", "paper"): from greentrain.jobs import ...`` — a
    missing torch or torchvision says ``pip install 'greentrain[paper]'``. Any other
    ``ModuleNotFoundError`` passes through unchanged.

    Raises:
        ConfigError: a module that one of ``extras`` brings is not installed.
    """
    try:
        yield
    except ModuleNotFoundError as err:
        error = missing_extra_error(err, what, *extras)
        if error is None:
            raise
        raise error from err

"""The optional libraries of the ``integrations`` extra, loaded on first use.

:func:`require` imports one by name and turns its absence into a one-line
:class:`~greentrain.errors.ConfigError` that names the extra to install, so ``greentrain export
--to mlflow`` without MLflow says what to do instead of printing a traceback. The callbacks'
modules, which must subclass the framework's own callback class, raise :class:`ImportError`
with the same text (:func:`missing_message`) when imported without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from greentrain.errors import ConfigError

EXTRA = "integrations"
INSTALL = f"pip install 'greentrain[{EXTRA}]'"


def missing_message(what: str, package: str) -> str:
    """``"<what> needs <package>, which is not installed: pip install 'greentrain[...]'"``."""
    return f"{what} needs {package}, which is not installed: {INSTALL}"


def require(module: str, what: str, package: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"mlflow"``) for ``what`` (e.g. ``"--to mlflow"``).

    Raises:
        ConfigError: the library is not installed (one line naming the extra).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(missing_message(what, package or module.split(".")[0])) from err

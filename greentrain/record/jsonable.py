"""One way to make values JSON-safe, used by the client, the store, the exports and the CLI.

Tensors and numpy scalars become Python numbers (multi-element tensors and arrays lists), NaN and
infinities become ``None``, mapping keys become strings, tuples and sets become lists, and any
other object its ``str()``. The result always serialises with ``allow_nan=False``.

Every text (and key) is made storable here, the boundary text crosses into a record's JSON, an
export or the client's channel (the store's writer passes its plain text columns through the
same function): text that is not UTF-8 (a surrogate-escaped name, path or argument from
``os.fsdecode``) is escaped and marked by :func:`greentrain.record.text.storable`, never lost and
never an encoding error further on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from greentrain.record.text import storable


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (see the module docstring); containers recursively."""
    if isinstance(value, str):
        return storable(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {storable(str(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    for convert in ("item", "tolist"):  # tensors and numpy: scalars first, then arrays
        fn = getattr(value, convert, None)
        if callable(fn):
            try:
                return to_jsonable(fn())
            except (ValueError, RuntimeError, TypeError):
                continue
    return str(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`to_jsonable` (``value``); never emits NaN or Infinity."""
    return json.dumps(to_jsonable(value), allow_nan=False, **kwargs)


def loads(text: Any, default: Any = None) -> Any:
    """A stored JSON column: ``json.loads(text)``, or ``default`` when ``text`` is None, is not
    valid JSON, or (for a dict or list ``default``) is valid JSON of another shape. Reading
    never fails on one bad column."""
    if text is None:
        return default
    try:
        value = json.loads(text) if isinstance(text, (str, bytes, bytearray)) else text
    except ValueError:
        return default
    if isinstance(default, (dict, list)) and not isinstance(value, type(default)):
        return default
    return value

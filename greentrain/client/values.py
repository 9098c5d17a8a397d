"""Which logged values the record can store, checked one value at a time and encoded once.

A value is made JSON-safe by :func:`greentrain.record.jsonable.to_jsonable` (tensors and numpy
scalars to numbers, NaN and infinities to None, other objects to their ``str()``) and refused,
alone, when it cannot be stored:

* an integer outside the signed 64-bit range (``2**63``, ``10**5000``): stores and readers
  other than Python cannot hold it, and a float copy would silently change it;
* a container that contains itself (a cycle);
* nesting deeper than :data:`MAX_DEPTH` levels;
* a value whose JSON is larger than :data:`MAX_VALUE_BYTES` (1 MiB).

:func:`storable` returns the plain value and its JSON bytes, which :func:`log_line` and
:func:`config_line` put into the message as they are: a value is encoded exactly once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from greentrain import protocol
from greentrain.record.jsonable import to_jsonable

MAX_DEPTH = 32  # containers nested deeper than this are refused
MAX_VALUE_BYTES = protocol.MAX_MESSAGE_BYTES  # one value's JSON, bytes
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_SCALARS = (str, float, bool, type(None))
_CONTAINERS = (Mapping, list, tuple, set, frozenset)
_NAMES_KEPT = 4096  # metric names whose JSON form is kept (a script has a few dozen)
_names: dict[str, bytes] = {}
_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=True)


class Unstorable(ValueError):
    """A value the record cannot hold; the message says why, in a few words."""


def _check_shape(value: Any, depth: int, path: set[int]) -> None:
    """Refuse cycles and deep nesting before :func:`to_jsonable` walks ``value``."""
    if not isinstance(value, _CONTAINERS):
        return
    if depth >= MAX_DEPTH:
        raise Unstorable(f"nested deeper than {MAX_DEPTH} levels")
    if id(value) in path:
        raise Unstorable("contains itself (a cycle)")
    path.add(id(value))
    for item in value.values() if isinstance(value, Mapping) else value:
        _check_shape(item, depth + 1, path)
    path.discard(id(value))


def _check_plain(value: Any, depth: int) -> None:
    """Refuse integers beyond 64 bits and deep nesting in an already JSON-safe value (a
    tensor's ``tolist()`` may add levels)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise Unstorable("an integer beyond 64 bits")
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise Unstorable(f"nested deeper than {MAX_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            _check_plain(item, depth + 1)


def storable(value: Any) -> tuple[Any, bytes]:
    """(``value`` as plain JSON types, its JSON bytes); :class:`Unstorable` if it cannot be
    stored (see the module docstring)."""
    kind = type(value)
    if kind is float:  # the common case, one float per metric: JSON's own float form
        return (value, repr(value).encode()) if math.isfinite(value) else (None, b"null")
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise Unstorable("an integer beyond 64 bits")
        return value, str(value).encode()
    if kind in _SCALARS:
        plain = to_jsonable(value)
    else:
        _check_shape(value, 0, set())
        plain = to_jsonable(value)
        _check_plain(plain, 0)
    encoded = _encoder.encode(plain).encode()
    if len(encoded) > MAX_VALUE_BYTES:
        raise Unstorable(
            f"{len(encoded) / 2**20:.1f} MiB as JSON, over the {MAX_VALUE_BYTES >> 20} MiB limit"
        )
    return plain, encoded


def name_json(name: str) -> bytes:
    """A metric or parameter name as JSON bytes (the first :data:`_NAMES_KEPT` are kept)."""
    encoded = _names.get(name)
    if encoded is None:
        encoded = _encoder.encode(name).encode()
        if len(_names) < _NAMES_KEPT:
            _names[name] = encoded
    return encoded


def _object(pieces: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(k + b":" + v for k, v in pieces) + b"}"


def log_line(
    step: int | None, pieces: list[tuple[bytes, bytes]], window: str | None, t: float
) -> bytes:
    """The ``log`` message (see :mod:`greentrain.protocol`) from already encoded metrics."""
    head = b'{"k":"log","step":' + (b"null" if step is None else str(step).encode())
    w = b"null" if window is None else name_json(window)
    return head + b',"m":' + _object(pieces) + b',"w":' + w + b',"t":' + repr(t).encode() + b"}\n"


def config_line(pieces: list[tuple[bytes, bytes]]) -> bytes:
    """The ``config`` message from already encoded parameters."""
    return b'{"k":"config","params":' + _object(pieces) + b"}\n"

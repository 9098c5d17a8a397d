"""Plain option values (str, int, float, bool and lists of them) parsed without pydantic.

typer >= 0.29 coerces every parameter through a pydantic ``TypeAdapter`` that it builds the
first time the command is parsed, even for an option left at its default. For ``greentrain
run`` that is importing pydantic and building about twenty adapters: some 0.1 s of CPU, a
fifth of its fixed cost.

A command made with ``cls=PlainValuesCommand`` (and the root group, through
:class:`PlainValues`) gives each parameter that typer describes as a plain builtin (``str``,
``int``, ``float``, ``bool`` or a list of one of them; no parser, no ``min``/``max``, no
choices, no path or file) a coercion that converts the usual spellings (``"3"``, ``"-1.5e3"``,
a default of the right type) directly. Any other value goes to typer's own coercion, built on
first need, so unusual spellings (``"1_000"``, ``" 2"``, ``"inf"``) and every error message are
exactly typer's. The options themselves are still defined once, with ``typer.Option``. With
typer < 0.29 (click's types, no pydantic) there is nothing to do and nothing is changed. This
leans on typer's private coercion hooks (``typer._coercion``, ``param._runtime_param``): a typer
that changes them gets its own coercion back, correct but slower, and
``tests/cli/test_cli_plain_values.py`` then fails on the pydantic import to say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer.core import TyperCommand

if TYPE_CHECKING:  # typer >= 0.29 runs on its own copy of click (typer._click)
    import click

try:  # typer >= 0.29: each parameter's coercion is a RuntimeParam, built lazily
    from typer._coercion import RuntimeParam, build_runtime_param
except ImportError:  # pragma: no cover - typer < 0.29 parses with click's types
    RuntimeParam = None  # type: ignore[assignment,misc]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class NotPlain(ValueError):
    """A value this module does not convert itself; typer's coercion takes it."""


def _to_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise NotPlain(value)


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and _INT.fullmatch(value):
        try:
            return int(value)
        except ValueError:  # more digits than int() converts
            pass
    raise NotPlain(value)


def _to_float(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int and abs(value) < 2**53:  # exactly a float; a larger one is typer's
        return float(value)
    if type(value) is str and _FLOAT.fullmatch(value):
        result = float(value)
        if math.isfinite(result):  # "1" * 400 overflows: typer's answer, not ours
            return result
    raise NotPlain(value)


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise NotPlain(value)


PLAIN: dict[type, Callable[[Any], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
}


def plain_converter(annotation: Any, parameter_info: Any) -> Callable[[Any], Any] | None:
    """The direct conversion for a parameter of this annotation and typer ``ParameterInfo``,
    or None when typer's own coercion must handle it (constraints, a parser, other types)."""
    for constraint in ("parser", "min", "max"):
        if getattr(parameter_info, constraint, None) is not None:
            return None
    if getattr(parameter_info, "clamp", False):
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        convert = PLAIN.get(item)
        if convert is None:
            return None

        def convert_list(value: Any) -> list[Any]:
            if not isinstance(value, (list, tuple)):
                raise NotPlain(value)
            return [convert(v) for v in value]

        return convert_list
    return PLAIN.get(annotation) if isinstance(annotation, type) else None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """typer's RuntimeParam for a plain parameter: the direct conversion, else typer's."""

        convert: Callable[[Any], Any]
        descriptor: Any

        @cached_property
        def typers(self) -> Any:
            """typer's own coercion for this parameter (imports pydantic on first use)."""
            return build_runtime_param(self.descriptor)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except NotPlain:
                return self.typers._coerce_value(value, param=param, ctx=ctx)


def coerce_plain_values(params: Iterable[Any]) -> None:
    """Give each plain parameter among ``params`` the direct coercion; a no-op for typer < 0.29,
    for a typer whose coercion hooks differ, and for a parameter typer has coerced already."""
    if RuntimeParam is None:  # pragma: no cover - typer < 0.29
        return
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not typer's lazily-coerced parameter, or already built
        if getattr(descriptor, "file_annotation", None) is not None:
            continue
        convert = plain_converter(descriptor.annotation, descriptor.parameter_info)
        if convert is None:
            continue
        try:
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                convert=convert,
                descriptor=descriptor,
            )
        except TypeError:  # a later typer's RuntimeParam has other fields or methods: its own
            return


class PlainValues:
    """Mixin for a typer command or group: its plain parameters, ``--help`` included (which
    click creates on first use), are coerced by :func:`coerce_plain_values`."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)  # type: ignore[misc]
        coerce_plain_values(params)
        return params


class PlainValuesCommand(PlainValues, TyperCommand):
    """A typer command whose plain options are parsed without pydantic (``cls=`` of
    ``app.command``)."""

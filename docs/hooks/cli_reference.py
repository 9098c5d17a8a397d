"""The CLI reference, generated from the code: every command, its usage, arguments and options.

As a MkDocs hook (``hooks:`` in mkdocs.yml) it adds the page ``reference/cli.md`` to the site at
build time, so the reference cannot drift from the parser. Run as a script it prints the same
Markdown::

    python docs/hooks/cli_reference.py > cli.md
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

PAGE = "reference/cli.md"
INTRO = """# Command-line reference

Generated from the code (`docs/hooks/cli_reference.py` walks the `greentrain` command tree),
so every command, argument, option and default below is what the installed version accepts.
`greentrain COMMAND --help` prints the same. Exit codes are in
[Exit codes](exit-codes.md).
"""


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    default = getattr(param, "default", None)
    if default is None or getattr(param, "required", False) or callable(default):
        return ""
    if isinstance(default, (list, tuple)):
        return ", ".join(map(str, default)) if default else ""
    if getattr(param, "is_flag", False) and default is False:
        return ""
    return f"`{default}`"


def _argument_name(param: Any) -> str:
    """An argument's name as its usage line shows it (click's ``human_readable_name``, which
    typer >= 0.29's own arguments lack: their metavar or upper-cased name instead)."""
    shown = getattr(param, "human_readable_name", None) or getattr(param, "metavar", None)
    return str(shown or param.name or "").upper()


def _type_name(param: Any, ctx: Any) -> str:
    """The parameter's type as the installed parser names it: click's (``text``, ``integer``)
    up to typer 0.28; typer >= 0.29 keeps no click type and names the annotation (``str``)."""
    kind = getattr(param, "type", None)
    if kind is not None:
        return str(getattr(kind, "name", "") or "")
    display = getattr(param, "display_type", None)
    return str(display(ctx)).strip("<>") if callable(display) else ""


def _param_row(param: Any, ctx: Any) -> str:
    names = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    is_argument = getattr(param, "param_type_name", "") == "argument"
    shown = f"`{_argument_name(param)}`" if is_argument else ", ".join(f"`{n}`" for n in names)
    kind = "flag" if getattr(param, "is_flag", False) else _type_name(param, ctx)
    if getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1:
        kind += ", repeatable"
    if getattr(param, "required", False):
        kind += ", required"
    meaning = _cell(getattr(param, "help", "") or "")
    return f"| {shown} | {_cell(kind)} | {_default(param)} | {meaning} |"


def _command(name: str, cmd: Any, parent_ctx: Any, lines: list[str], depth: int) -> None:
    ctx = cmd.context_class(cmd, info_name=name.split()[-1], parent=parent_ctx)
    lines.append(f"{'#' * depth} `{name}`\n")
    help_text = inspect.cleandoc(cmd.help or "")
    if help_text:
        lines.append(help_text.replace("\b\n", "") + "\n")
    lines.append(f"```text\n{cmd.get_usage(ctx).strip()}\n```\n")
    params = [p for p in cmd.params if not getattr(p, "hidden", False)]
    if params:
        lines.append("| argument / option | type | default | meaning |")
        lines.append("|---|---|---|---|")
        lines.extend(_param_row(p, ctx) for p in params)
        lines.append("")
    for sub_name in getattr(cmd, "list_commands", lambda _ctx: [])(ctx):
        sub = cmd.get_command(ctx, sub_name)
        if sub is not None and not getattr(sub, "hidden", False):
            _command(f"{name} {sub_name}", sub, ctx, lines, depth + 1)


def cli_markdown() -> str:
    """The whole reference page as Markdown."""
    from greentrain.cli._app import load_all_commands

    root = load_all_commands()
    ctx = root.context_class(root, info_name="greentrain")
    lines = [INTRO]
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        if cmd is not None and not getattr(cmd, "hidden", False):
            _command(f"greentrain {name}", cmd, ctx, lines, 2)
    return "\n".join(lines)


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated page to the site."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=cli_markdown()))
    return files


if __name__ == "__main__":
    sys.stdout.write(cli_markdown())

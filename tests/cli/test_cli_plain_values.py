"""`greentrain run`'s plain options are parsed without pydantic (greentrain.cli.plain_values),
with exactly the values and errors typer's own coercion gives, under any typer version."""

from __future__ import annotations

import subprocess
import sys

import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from greentrain.cli.plain_values import PlainValuesCommand

PROBE = """
import sys
from greentrain.cli import main
code = main(["run", "--store", sys.argv[1], "--meter", "fake", "--pue", "1.2", "--epochs", "3",
             "--carbon-intensity", "1e2", "--tag", "a=b", "--budget-forecast", "--", "true"])
print("pydantic" in sys.modules)
raise SystemExit(code)
"""


def test_greentrain_run_never_imports_pydantic(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "g.db")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def _app(cls: type | None) -> typer.Typer:
    """One command with an option of each plain type, printing what it received."""
    app = typer.Typer(add_completion=False)
    kwargs = {"cls": cls} if cls is not None else {}

    @app.command(**kwargs)
    def show(
        count: int = typer.Option(None, "--count"),
        ratio: float = typer.Option(1.0, "--ratio"),
        label: str = typer.Option(None, "--label"),
        flag: bool = typer.Option(False, "--flag"),
        names: list[str] = typer.Option(None, "--name"),
        rates: list[float] = typer.Option(None, "--rate"),
        bounded: int = typer.Option(0, "--bounded", min=0, max=9),
    ) -> None:
        print(repr((count, ratio, label, flag, names, rates, bounded)))

    @app.command("other")
    def other() -> None:  # a second command, so that `show` is a sub-command as in greentrain
        """Nothing."""

    return app


TYPERS, PLAIN = _app(None), _app(PlainValuesCommand)


def _both(args: list[str]) -> tuple[tuple[int, str], tuple[int, str]]:
    runner = CliRunner()
    typers = runner.invoke(TYPERS, ["show", *args])
    plain = runner.invoke(PLAIN, ["show", *args])
    return (typers.exit_code, typers.output), (plain.exit_code, plain.output)


def test_plain_values_are_converted_as_typer_converts_them():
    cases = [
        [],
        ["--count", "7", "--ratio", "-1.5e3", "--label", "x y", "--flag"],
        ["--name", "a", "--name", "b", "--rate", "0.5", "--rate", "2"],
        ["--bounded", "5"],
    ]
    for args in cases:
        typers, plain = _both(args)
        assert typers[0] == 0, typers
        assert plain == typers, args
    # spellings that typer >= 0.29 accepts and click's types refuse: handed to typer either way
    for args in (["--count", "1.0"], ["--ratio", "1_000"], ["--ratio", "inf"], ["--count", " 2"]):
        assert _both(args)[1] == _both(args)[0], args


def test_invalid_plain_values_fail_with_typers_own_message():
    for args in (["--count", "x"], ["--ratio", "abc"], ["--rate", "1", "--rate", "z"],
                 ["--bounded", "12"], ["--count", "1.5"]):  # fmt: skip
        typers, plain = _both(args)
        assert typers[0] == 2 and "Invalid value" in typers[1], typers
        assert plain == typers, args


def test_long_numbers_give_typers_value_or_error():
    for args in (["--count", "1" * 30], ["--ratio", "1" * 400], ["--count", "9" * 5000]):
        typers, plain = _both(args)
        assert plain == typers, args[0]


@settings(max_examples=150, deadline=None)
@given(
    count=st.text(alphabet="0123456789+-._ eE", max_size=6),
    ratio=st.text(alphabet="0123456789+-._ eEinfa", max_size=8),
)
def test_any_number_spelling_gives_typers_value_or_error(count, ratio):
    typers, plain = _both(["--count", count, "--ratio", ratio])
    assert plain == typers

"""greentrain.report.escape: the one place text from a run is made safe for each target."""

from __future__ import annotations

import re
import unicodedata

import pytest
from fixtures.runs import NASTY_TEXTS

from greentrain.report import escape

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def raw_controls(text: str) -> list[str]:
    """Characters no output may contain raw: C0, DEL, C1, surrogates, bidi controls, and the
    Unicode line separators."""
    return [
        ch
        for ch in text
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI or ch in "\u2028\u2029"
    ]


@pytest.mark.parametrize("text", NASTY_TEXTS)
def test_terminal_text_shows_every_control_character_escaped(text):
    out = escape.terminal_text(text)
    assert raw_controls(out) == []
    assert "\x1b" not in out and "\r" not in out and "\n" not in out


def test_terminal_text_escapes_are_python_escapes():
    assert escape.terminal_text("a\x1b[31mb\x07") == r"a\x1b[31mb\x07"
    assert escape.terminal_text("a\rb\nc\td") == r"a\rb\nc\td"
    assert escape.terminal_text("\x9b\u202e\x00") == r"\x9b\u202e\x00"
    assert escape.terminal_text("plain café 中文 😀") == "plain café 中文 😀"  # printable kept


def test_terminal_text_never_raises_on_odd_objects():
    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    assert escape.terminal_text(Bad()) == "<Bad>"
    assert "bits" in escape.terminal_text(10**5000)  # past Python's int-to-text digit limit
    assert escape.terminal_text(None) == "None"


@pytest.mark.parametrize("text", NASTY_TEXTS)
def test_plain_text_has_no_raw_control_and_no_line_break(text):
    out = escape.plain_text(text)
    assert raw_controls(out) == []
    assert "\n" not in out and "\r" not in out and "\t" not in out


def test_plain_text_turns_line_breaks_into_one_space_and_shows_other_controls():
    assert escape.plain_text("a\r\nb\tc\u2028d") == "a  b c d"
    assert escape.plain_text("a\x1b[0mb\x00") == r"a\x1b[0mb\x00"


# -- LaTeX ------------------------------------------------------------------------------------

LATIN1_MISSING_IN_OT1 = set("«»ÐÞðþ")


@pytest.mark.parametrize("text", NASTY_TEXTS)
def test_latex_text_is_printable_ascii_or_latin1_that_ot1_and_t1_both_have(text):
    out = escape.latex_text(text)
    bad = [
        ch
        for ch in out
        if not (" " <= ch <= "~" or ("\xa0" <= ch <= "\xff" and ch not in LATIN1_MISSING_IN_OT1))
    ]
    assert bad == [], (text, out)


def test_latex_text_brackets_cannot_open_an_optional_argument():
    assert escape.latex_text("[x]") == r"\lbrack{}x\rbrack{}"
    assert "[" not in escape.latex_text("  [0.5pt] x") and "]" not in escape.latex_text("]")


def test_latex_text_mapping_of_non_latin_text():
    assert escape.latex_text("中") == r"\lbrack{}U+4E2D\rbrack{}"  # visible placeholder
    assert escape.latex_text("😀") == r"\lbrack{}U+1F600\rbrack{}"
    assert escape.latex_text("e\u0301") == "é"  # NFC: one Latin-1 letter
    assert escape.latex_text("ő ﬁ Ａ") == "o fi A"  # decomposed, accent dropped
    assert escape.latex_text("«Þ»") == r"\textless{}\textless{}Th\textgreater{}\textgreater{}"
    assert escape.latex_text("‘a’ “b” – — Œ") == "`a' ``b'' -- --- OE"
    assert escape.latex_text("a\x00b\x1b") == r"a\textbackslash{}x00b\textbackslash{}x1b"
    assert escape.latex_text("a\nb\rc") == "a b c"


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_text_renders_literally_and_never_as_html():
    mdit = pytest.importorskip("markdown_it")
    md = mdit.MarkdownIt("commonmark").enable("table")
    for text in NASTY_TEXTS:
        cell = escape.markdown_text(text)
        html = md.render("| a | b |\n|---|---|\n| " + cell + " | x |\n")
        tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", html))
        assert tags <= {"table", "thead", "tbody", "tr", "th", "td"}, (text, html)
        assert html.count("<tr>") == 2 and html.count("<td>") == 2, (text, html)


def test_markdown_text_has_no_carriage_return_or_raw_control():
    out = escape.markdown_text("a\rb\x1b[1m<c>")
    assert out == r"a b\\x1b\[1m\<c\>"


# -- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "  =1", "＝1", "－1"]
)
def test_csv_cell_neutralises_formula_triggers_with_an_apostrophe(text):
    out = escape.csv_cell(text)
    assert out.startswith("'")
    assert out.lstrip("'").strip() == escape.plain_text(text).strip()


def test_csv_cell_keeps_numbers_and_harmless_text():
    for value in (-1.5, 0, 3, None, True, float("nan")):
        assert escape.csv_cell(value) is value
    assert escape.csv_cell("resnet18 / cifar10 / bar / 0.8") == "resnet18 / cifar10 / bar / 0.8"
    assert escape.csv_cell("a\r\nb") == "a  b"


def test_plot_text_cannot_open_math_text():
    assert escape.plot_text(r"a$\frac$b") == r"a\$\frac\$b"

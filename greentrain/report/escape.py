"""Text from run records into each output: one function per target, used for every text a user
or a training script could have written (run names, tags, config values, metric names, meter
reasons, hardware strings, the notes quoting bad values), so the escaping is decided once.

=====================  ====================================================================
target                 function
=====================  ====================================================================
LaTeX (pdflatex)       :func:`latex_text`
Markdown (GFM/HTML)    :func:`markdown_text`
CSV cell               :func:`csv_cell`
plain text             :func:`plain_text` (the carbon statement)
terminal (rich)        :func:`terminal_text` (``greentrain runs`` and ``show``)
matplotlib label       :func:`plot_text`
HTML, plotly label     :func:`html_text`
=====================  ====================================================================

The rules:

1. **Control characters are never emitted raw.** In the exports, line breaks and tabs
   (``\\t \\n \\v \\f \\r``, U+0085, U+2028, U+2029) become one space, so a name never splits a
   CSV or Markdown row or a LaTeX line. Every other control character -- C0 (NUL, BEL, BS, ESC
   and so every terminal escape sequence), DEL, C1, lone surrogates -- and the bidirectional
   controls that reorder what a reader sees (U+061C, U+200E, U+200F, U+202A..U+202E,
   U+2066..U+2069) is shown as its Python escape, ``\\x1b``, ``\\u202e``: visible, never acted
   upon, never silently dropped. The terminal shows line breaks and tabs escaped as well
   (``\\n``, ``\\r``, ``\\t``), since a bare ``\\r`` or ``\\n`` could overwrite or fake a line.
2. **LaTeX** compiles with plain pdflatex in the OT1 or T1 font encoding. The text-mode specials
   ``\\ { } $ & # ^ _ % ~ < > |`` become commands or escaped characters, and ``[ ]`` become
   ``\\lbrack{}`` ``\\rbrack{}``, so no cell can be taken for the optional argument of ``\\\\``
   or ``\\midrule``. Text is NFC-normalised (a letter and its combining accent become one
   letter where Unicode has one); then printable ASCII and Latin-1 (U+00A0..U+00FF) pass as
   UTF-8, LaTeX's default input encoding, except ``« » Ð Þ ð þ``, which OT1 lacks and are
   written ``<< >> D Th d th``. Typographic quotes and dashes become their TeX ligatures
   (single quotes -> a backquote and an apostrophe, double quotes -> two of each, en and em
   dash -> ``--`` and ``---``), and a few Latin letters without a decomposition their usual
   transliteration (``Œ`` -> ``OE``, ``ł`` -> ``l``). Any other character becomes its
   compatibility decomposition without accents when that is printable ASCII (``ﬁ`` -> ``fi``,
   ``Ａ`` -> ``A``, ``ő`` -> ``o``); otherwise -- CJK, emoji, Greek, Cyrillic, Arabic, Hebrew,
   stray combining marks, other format characters -- a visible placeholder that names its code
   point, ``[U+4E2D]``.
3. **Markdown**: every ASCII punctuation character that Markdown or HTML could interpret,
   ``\\ ` * _ { } [ ] ( ) # + - ! | < > ~ ^ $ &``, is backslash-escaped (CommonMark allows
   escaping any ASCII punctuation), and a word joiner (U+2060) splits ``://``, ``www.`` and
   ``@`` (GFM's autolinks act after escapes), so a name renders literally: never a tag, an
   entity, a link (autolinks included), emphasis or a new cell.
4. **CSV**: a text cell whose first non-blank character is ``= + - @`` (or a full-width form of
   one) gets a leading apostrophe ``'``, OWASP's convention against formula injection in
   spreadsheets (tab and CR, the other triggers, are already spaces by rule 1). Numbers stay
   numbers.
5. **Terminal**: rule 1 only; the CLI prints the result as plain text, never as rich markup or
   emoji codes.
6. **matplotlib**: rule 1, and ``$`` escaped so that a name cannot open math text.

Backslashes themselves are not doubled (outside LaTeX and Markdown, where they must be), so a
name that contains the four characters ``\\x1b`` reads the same as an escaped ESC; the JSON
export keeps every string exactly as recorded.
"""

from __future__ import annotations

import html
import re
import unicodedata

# -- rule 1: control characters ----------------------------------------------------------------

_BREAKS = frozenset("\t\n\v\f\r\x85\u2028\u2029")
_BIDI = frozenset(
    chr(c) for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def as_str(value: object) -> str:
    """``str(value)``, for any value: never raises (a failing ``__str__`` or an integer too long
    for Python's digit limit gives a description instead)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - last resort for text of an arbitrary object
        if isinstance(value, int):
            return f"<integer of {value.bit_length()} bits>"
        return f"<{type(value).__name__}>"


def _is_control(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs")


def _escape_code(ch: str) -> str:
    cp = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _visible(text: str, breaks_as_space: bool) -> str:
    """Rule 1 (see the module docstring)."""
    if text.isprintable():  # the common case, fast (bidi controls are not printable)
        return text
    out = []
    for ch in text:
        if breaks_as_space and ch in _BREAKS:
            out.append(" ")
        elif ch in _BREAKS or _is_control(ch):
            out.append(_escape_code(ch))
        else:
            out.append(ch)
    return "".join(out)


def plain_text(value: object) -> str:
    """Text for a plain-text export: rule 1, line breaks and tabs as one space."""
    return _visible(as_str(value), breaks_as_space=True)


def terminal_text(value: object) -> str:
    """Text for a terminal: every control character, line breaks included, shown escaped."""
    return _visible(as_str(value), breaks_as_space=False)


# -- rule 2: LaTeX -----------------------------------------------------------------------------

_LATEX_MAP = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "[": r"\lbrack{}",
    "]": r"\rbrack{}",
}
# Latin-1 characters OT1 has no glyph for, and typographic punctuation and Latin letters with
# no Unicode decomposition: their usual ASCII spelling (escaped like any other ASCII).
_LATEX_TRANSLIT = {
    "«": "<<",
    "»": ">>",
    "Ð": "D",
    "ð": "d",
    "Þ": "Th",
    "þ": "th",
    "‘": "`",
    "’": "'",
    "‚": ",",
    "“": "``",
    "”": "''",
    "„": ",,",
    "–": "--",
    "—": "---",
    "−": "-",
    "Œ": "OE",
    "œ": "oe",
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "ı": "i",
}


def _latex_ascii(text: str) -> str:
    return "".join(_LATEX_MAP.get(ch, ch) for ch in text)


def _latex_char(ch: str) -> str:
    if ch in _LATEX_MAP:
        return _LATEX_MAP[ch]
    if " " <= ch <= "~" or ("\xa0" <= ch <= "\xff" and ch not in _LATEX_TRANSLIT):
        return ch
    if ch in _BREAKS:
        return " "
    if _is_control(ch):
        return _latex_ascii(_escape_code(ch))
    if ch in _LATEX_TRANSLIT:
        return _latex_ascii(_LATEX_TRANSLIT[ch])
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and all(" " <= c <= "~" for c in base):
        return _latex_ascii(base)
    return _latex_ascii(f"[U+{ord(ch):04X}]")


def latex_text(value: object) -> str:
    """Text for LaTeX text mode that compiles with plain pdflatex (rules 1 and 2)."""
    text = as_str(value)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return "".join(_latex_char(ch) for ch in text)


# -- rule 3: Markdown --------------------------------------------------------------------------

_MD_PUNCT = frozenset("\\`*_{}[]()#+-!|<>~^$&")
WORD_JOINER = "\u2060"  # invisible, zero width: splits what an autolinker would match
_AUTOLINK = re.compile(r"(?i)(:)(//)|(www)(\.)|(@)")


def _break_autolink(m: re.Match) -> str:
    return WORD_JOINER.join(g for g in m.groups() if g is not None) + (
        WORD_JOINER if m.group(5) else ""
    )


def markdown_text(value: object) -> str:
    """Text for a Markdown table cell or paragraph that renders literally (rules 1 and 3).

    GFM's autolinks (GitHub's, Streamlit's) find URLs and e-mail addresses in the text *after*
    escapes are resolved, so an escape cannot stop them: a word joiner (U+2060, invisible)
    goes after the ``:`` of ``://``, between ``www`` and its dot, and after ``@``."""
    text = "".join("\\" + ch if ch in _MD_PUNCT else ch for ch in plain_text(value))
    return _AUTOLINK.sub(_break_autolink, text)


# -- rule 4: CSV -------------------------------------------------------------------------------

_FORMULA_TRIGGERS = frozenset("=+-@＝＋－＠")


def csv_cell(value: object) -> object:
    """A CSV cell: text per rules 1 and 4; anything that is not text is returned unchanged."""
    if not isinstance(value, str):
        return value
    text = plain_text(value)
    head = text.lstrip(" ")
    return "'" + text if head and head[0] in _FORMULA_TRIGGERS else text


# -- rule 6: matplotlib ------------------------------------------------------------------------


def plot_text(value: object) -> str:
    """Text for a matplotlib label: rule 1 and ``$`` escaped (no math text)."""
    return plain_text(value).replace("$", r"\$")


# -- rule 7: HTML and plotly labels ------------------------------------------------------------


def html_text(value: object) -> str:
    """Text for HTML or a plotly label (plotly renders a subset of HTML: ``<a>``, ``<b>``,
    ``<br>``, entities): rule 1, then ``& < >`` as entities, so it is shown, never acted upon
    (quotes stay: plotly shows ``&quot;`` literally, and no tag can open without ``<``)."""
    return html.escape(plain_text(value), quote=False)

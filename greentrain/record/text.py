"""Text as the system gives it: names, paths and argv that are not UTF-8, stored losslessly.

On POSIX a file name, a working directory or an argument is bytes. Python decodes it with
``os.fsdecode`` and turns each byte that is not UTF-8 into a lone surrogate (U+DC80..U+DCFF,
the ``surrogateescape`` error handler), which no UTF-8 store, JSON file or terminal accepts.
:func:`storable` turns such a text into one that every surface takes, visibly and reversibly:

* each such byte becomes ``\\xNN`` (its two hex digits), any other lone surrogate
  ``\\uXXXX``, and every backslash of the original is doubled;
* the whole text starts with the marker :data:`MARK` (``(non-UTF-8) ``), which says it was
  escaped, so a reader knows ``\\xff`` stands for the byte 0xFF and not for the four
  characters.

Text that is valid UTF-8 is returned as is, so :func:`storable` is idempotent (a record passes
it on every hop: the client's channel, the store, an export) and costs one ``isascii()`` for
ASCII text. ``original(storable(s)) == s`` for every ``s`` except valid text that itself starts
with :data:`MARK` and holds a backslash escape (nobody names a run that way by accident).
"""

from __future__ import annotations

import re

MARK = "(non-UTF-8) "

_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def needs_escape(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (so UTF-8 cannot encode it)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return char


def storable(text: str) -> str:
    """``text`` as valid UTF-8: unchanged when it is, else escaped and marked (see the module
    docstring)."""
    if not needs_escape(text):
        return text
    return MARK + "".join(_escape_char(c) for c in text)


def original(text: str) -> str:
    """The inverse of :func:`storable`: the text as the system gave it (lone surrogates for the
    bytes that are not UTF-8, ready for ``os.fsencode``). Unmarked text is returned as is."""
    if not text.startswith(MARK):
        return text

    def unescape(match: re.Match[str]) -> str:
        body = match.group(1)
        if body == "\\":
            return "\\"
        code = int(body[1:], 16)
        return chr(0xDC00 + code) if body[0] == "x" else chr(code)

    return _ESCAPE.sub(unescape, text[len(MARK) :])

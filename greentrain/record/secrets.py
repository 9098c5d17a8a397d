"""Credentials kept out of every record, export and message: one masking function for all text.

What is masked (replaced by ``***``, the rest of the text kept so a reader still sees what was
run):

* the password or token in any URL's user-info, whatever the scheme: ``https://u:TOKEN@host``,
  ``postgresql+psycopg2://u:pw@host``, ``mysql://u:pw@host``, ``s3://KEY:SECRET@bucket``;
  a user-info without a password (``https://TOKEN@github.com``, ``ssh://git@host``) is a user
  name and is kept;
* ``password=`` and ``sslpassword=`` (and ``passwd=``, ``pwd=``) in connection strings, URL
  queries and key=value text;
* the value of a command-line option named like a secret: ``--password X``,
  ``--password=X``, ``--token``, ``--api-key``/``--api_key``, ``--secret``,
  ``--access-key``, ``--secret-key``, ``--auth-token``, ``--hf-token`` ... (see
  :func:`secret_name`); in a list (argv) the element after such an option is the value, in a
  longer text (``sh -c "python t.py --token abc"``) the word after it;
* the value of a mapping key named like a secret (a config's ``password``, ``api_key``,
  ``wandb_token``), when that value is text.

:func:`redact` masks one text, :func:`redact_all` every text of a JSON-like value (dicts, lists,
argv lists). Both are pure and idempotent; non-text values pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

HIDDEN = "***"

# words that make a name a secret's: an option or key named exactly one of these, or ending in
# ``-word`` / ``_word`` (``--hf-token``, ``wandb_api_key``); ``tokens``, ``max_tokens`` are not.
_SECRET_WORDS = (
    r"password|passwd|passphrase|token|secret|api[-_]?key|apikey|access[-_]?key|"
    r"secret[-_]?key|private[-_]?key|auth|auth[-_]?token|credentials?|sslpassword|client[-_]?secret"
)
_SECRET_NAME = re.compile(rf"(?i)^(?:.*[-_.])?(?:{_SECRET_WORDS})$")

# scheme://user:password@ -- the user and the password stop at the first '/', '?', '#', '@' or
# white space; the password may contain ':' (only the first ':' separates it from the user)
# (one slash too: a URL that went through path normalisation, ``scheme:/user:pw@host``)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*:/{1,2}[^:/@\s?#'\"]*:)([^@\s/?#'\"]+)(@)")
_KEY_VALUE = re.compile(
    r"(?i)((?:^|[?&;\s,(])(?:ssl)?(?:password|passwd|pwd)\s*=\s*)('[^']*'|\"[^\"]*\"|[^&;\s,)]+)"
)
_OPTION_EQ = re.compile(r"^(--?[A-Za-z0-9][A-Za-z0-9_.-]*)=(.+)$", re.S)
# an option inside a longer text (``sh -c "python t.py --token abc"``): its value, up to the
# next blank, unless the value is itself an option
_OPTION_IN_TEXT = re.compile(
    rf"(?i)(?<![\w-])(--?(?:[a-z0-9]+[-_.])*(?:{_SECRET_WORDS}))(=|[ \t]+)(?!-)"
    r"('[^']*'|\"[^\"]*\"|[^\s'\"]+)"
)
_QUICK = re.compile(r"(?i):/|passw|pwd|=|token|secret|key|auth|credential|passphrase")


def secret_name(name: Any) -> bool:
    """Whether ``name`` (an option without its dashes, or a mapping key) names a secret."""
    if not isinstance(name, str):
        return False
    return bool(_SECRET_NAME.match(name.lstrip("-")))


def redact(text: Any) -> Any:
    """``text`` with URL passwords, ``password=`` values and a ``--secret-option=VALUE``'s value
    replaced by ``***`` (non-text unchanged)."""
    if not isinstance(text, str) or not _QUICK.search(text):
        return text
    option = _OPTION_EQ.match(text)
    if option and secret_name(option.group(1)):
        return f"{option.group(1)}={HIDDEN}"
    text = _USERINFO.sub(rf"\g<1>{HIDDEN}\3", text)
    text = _OPTION_IN_TEXT.sub(rf"\g<1>\g<2>{HIDDEN}", text)
    return _KEY_VALUE.sub(rf"\g<1>{HIDDEN}", text)


def redact_all(value: Any) -> Any:
    """:func:`redact` applied to every text in a JSON-like value; a mapping key named like a
    secret has its text value masked, and in a list the element after an option named like a
    secret (``["--token", "abc"]``) is masked. Tuples come back as lists."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            redact(k): HIDDEN if secret_name(k) and isinstance(v, str) and v else redact_all(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        out = []
        hide_next = False
        for item in value:
            if hide_next and isinstance(item, str) and not item.startswith("--"):
                out.append(HIDDEN)
            else:
                out.append(redact_all(item))
            hide_next = isinstance(item, str) and item.startswith("-") and secret_name(item)
        return out
    return value

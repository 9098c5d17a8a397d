"""Text as the system gives it, and credentials that never land.

A name, working directory or argument that is not UTF-8 (bytes that ``os.fsdecode`` turns into
lone surrogates) is recorded escaped and marked, never lost; passwords and tokens in any URL,
``password=`` values and the values of secret-named options are masked in the record, every
export and every message. Real runs (``python -m greentrain run``) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from greentrain.record.jsonable import dumps, to_jsonable
from greentrain.record.secrets import HIDDEN, redact, redact_all, secret_name
from greentrain.record.text import MARK, original, storable
from greentrain.store import Store

# -- text ---------------------------------------------------------------------------------------


@given(st.binary(max_size=40))
def test_storable_text_is_utf8_and_gives_back_the_bytes_the_system_gave(raw):
    text = os.fsdecode(raw)
    kept = storable(text)
    kept.encode("utf-8")  # never an encoding error further on
    assert os.fsencode(original(kept)) == raw
    assert storable(kept) == kept  # idempotent: every hop may apply it


@given(st.text(max_size=40))
def test_valid_text_is_stored_unchanged(text):
    if not text.startswith(MARK):
        assert storable(text) == text
        assert original(text) == text


def test_escaped_text_is_marked_and_shows_each_byte_as_hex():
    kept = storable(os.fsdecode(b"/tmp/d\xff\\x41"))
    assert kept == MARK + "/tmp/d\\xff\\\\x41"
    assert os.fsencode(original(kept)) == b"/tmp/d\xff\\x41"


def test_jsonable_makes_every_text_and_key_storable():
    value = {os.fsdecode(b"k\xfe"): [os.fsdecode(b"v\xfd"), 1.5]}
    out = to_jsonable(value)
    assert out == {MARK + "k\\xfe": [MARK + "v\\xfd", 1.5]}
    dumps(value).encode("utf-8")


# -- secrets ------------------------------------------------------------------------------------

_SCHEMES = st.sampled_from(
    ["https", "http", "postgresql", "postgres", "postgresql+psycopg2", "mysql", "mysql+pymysql",
     "redis", "s3", "ftp", "amqp", "mongodb+srv", "git+https"]
)  # fmt: skip
_USER = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=0, max_size=12)
_SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%^*()-_+=~,;[]{}.:", min_size=1,
                  max_size=24).map(lambda s: "PW" + s + "QX")  # fmt: skip


@given(_SCHEMES, _USER, _SECRET, st.sampled_from(["", "/db", "/db?sslmode=require", ":5432/x"]))
def test_a_password_in_any_urls_user_info_is_masked(scheme, user, secret, tail):
    text = f"connect to {scheme}://{user}:{secret}@host.example{tail} now"
    shown = redact(text)
    assert secret not in shown
    assert f"{scheme}://{user}:{HIDDEN}@host.example{tail} now" in shown
    assert redact(shown) == shown


@given(_SECRET, st.sampled_from(["password", "sslpassword", "PASSWORD", "passwd"]))
def test_password_in_a_connection_string_is_masked(secret, key):
    for text in (
        f"host=db user=u {key}={secret} dbname=x",
        f"postgresql://u@db/x?sslmode=require&{key}={secret}",
        f"Server=db;{key}={secret};Database=x",
    ):
        assert secret not in redact(text), text


@given(
    _SECRET,
    st.sampled_from(["--password", "--token", "--api-key", "--api_key", "--secret",
                     "--access-key", "--secret-key", "--hf-token", "--wandb_api_key",
                     "--auth-token", "--client-secret", "--passphrase"]),
)  # fmt: skip
def test_the_value_of_an_option_named_like_a_secret_is_masked(secret, option):
    argv = ["python", "train.py", option, secret, f"{option}={secret}", "--lr", "0.1"]
    shown = redact_all(argv)
    assert secret not in json.dumps(shown)
    assert shown == ["python", "train.py", option, HIDDEN, f"{option}={HIDDEN}", "--lr", "0.1"]


@given(_SECRET)
def test_a_secret_option_inside_a_shell_command_string_is_masked(secret):
    argv = ["sh", "-c", f"python t.py --lr 0.1 --hf-token {secret} --wandb_api_key={secret} -v"]
    shown = redact_all(argv)
    assert secret not in json.dumps(shown)
    assert shown[2] == f"python t.py --lr 0.1 --hf-token {HIDDEN} --wandb_api_key={HIDDEN} -v"


def test_options_and_keys_that_only_resemble_secrets_are_kept():
    argv = ["x", "--max-tokens", "512", "--tokenizer", "gpt2", "--lr", "0.1"]
    assert redact_all(argv) == argv
    assert not secret_name("max_tokens") and not secret_name("tokenizer")
    assert not secret_name("pwd")  # the working directory, not a password
    assert redact("https://github.com/org/repo") == "https://github.com/org/repo"
    assert redact("ssh://git@host/x") == "ssh://git@host/x"  # a user name, no password


def test_a_config_value_under_a_secret_named_key_is_masked_and_numbers_kept():
    config = {"wandb_api_key": "abc123", "db": {"password": "pw1"}, "num_token": 4, "lr": 0.1}
    assert redact_all(config) == {
        "wandb_api_key": HIDDEN, "db": {"password": HIDDEN}, "num_token": 4, "lr": 0.1
    }  # fmt: skip


# -- real runs ----------------------------------------------------------------------------------

SECRETS = ("TOKEN1a", "PW2b", "ARG3c", "EQ4d", "CFG5e", "URL6f", "TAG7g", "NAME8h", "SH9i")
_JOB = (
    "from greentrain import client\n"
    "client.config(password='CFG5e', upstream='mysql://me:URL6f@db/x', lr=0.1)\n"
    "client.log(step=1, loss=0.5)\n"
)


def _gt(*args: str | bytes, cwd: str | bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greentrain", *args], cwd=cwd,
                          capture_output=True, timeout=300, env=dict(os.environ))  # fmt: skip


def _raw_sqlite_text(path: str) -> bytes:
    """Every byte of the SQLite store and its WAL (what a person with the file could read)."""
    sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    return b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())


def _raw_pg_text(url: str) -> bytes:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT r::text FROM runs r").fetchall()
        rows += conn.execute("SELECT m::text FROM metrics m").fetchall()
    return "\n".join(r[0] for r in rows).encode()


def test_credentials_never_land_in_the_record_exports_or_messages(store_target, tmp_path):
    code = [sys.executable, "-c", _JOB, "--token", "TOKEN1a", "--password=PW2b",
            "https://u:ARG3c@github.com/org/repo", "--api_key", "EQ4d",
            "x --secret SH9i"]  # fmt: skip
    done = _gt("run", "--store", store_target, "--meter", "fake", "--name",
               "from https://u:NAME8h@host/x", "--tag",
               "remote=postgresql+psycopg2://me:TAG7g@db/x", "--", *code)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = Store(store_target).list_runs()[0]["id"]
    shown = _gt("show", "--store", store_target, "--json", run_id)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    surfaces_shown = _gt("show", "--store", store_target, run_id)
    assert record["config"]["password"] == HIDDEN and record["config"]["lr"] == 0.1
    assert HIDDEN in record["command"] and record["tags"]["remote"].count(HIDDEN) == 1
    surfaces = [done.stdout + done.stderr, json.dumps(record).encode(),
                surfaces_shown.stdout + surfaces_shown.stderr]  # fmt: skip
    for fmt in ("csv", "json", "markdown", "latex", "statement", "statement-appendix"):
        out = _gt("export", "--allow-fake", "--store", store_target, "-f", fmt)
        assert out.returncode == 0, out.stderr
        surfaces.append(out.stdout + out.stderr)
    listing = _gt("runs", "--store", store_target)
    surfaces.append(listing.stdout + listing.stderr)
    raw = _raw_pg_text(store_target) if "://" in store_target else _raw_sqlite_text(store_target)
    surfaces.append(raw)
    for surface in surfaces:
        for secret in SECRETS:
            assert secret.encode() not in surface, (secret, surface[:300])


def test_a_store_url_of_any_scheme_is_masked_in_error_messages(tmp_path):
    done = _gt("runs", "--store", "postgresql+psycopg2://me:SeCrEt9@127.0.0.1:1/db")
    assert done.returncode != 0
    assert b"SeCrEt9" not in done.stderr and b"Traceback" not in done.stderr
    assert done.stderr.count(b"\n") == 1


def test_a_non_utf8_directory_name_and_argument_are_recorded_escaped_not_lost(
    store_target, tmp_path
):
    folder = os.fsencode(tmp_path) + b"/d\xff"
    os.mkdir(folder)
    if "://" not in store_target:
        store_target = str(Path(store_target).resolve())
    done = _gt("run", "--store", store_target, "--meter", "fake", "--name", b"n\xfe",
               "--", b"/bin/echo", b"a\xfdb", cwd=folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"UnicodeEncodeError" not in done.stderr
    runs = Store(store_target).list_runs()
    assert len(runs) == 1
    run = runs[0]
    assert run["cwd"] == MARK + os.fsdecode(folder).encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace"
    )
    assert os.fsencode(original(run["cwd"])) == folder
    assert os.fsencode(original(run["name"])) == b"n\xfe"
    assert os.fsencode(original(run["command"][1])) == b"a\xfdb"
    listing = _gt("runs", "--store", store_target)
    assert listing.returncode == 0 and b"n\\xfe" in listing.stdout
    shown = _gt("show", "--store", store_target, "--json", run["id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["cwd"] == run["cwd"]
    for fmt in ("csv", "json", "markdown", "latex", "statement"):
        out = _gt("export", "--allow-fake", "--store", store_target, "-f", fmt)
        assert out.returncode == 0 and b"Traceback" not in out.stderr, out.stderr

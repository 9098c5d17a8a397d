"""The PostgreSQL store against a real throwaway server: what goes wrong when opening it (a bad
URL, no server, wrong credentials, a missing or foreign database) is one line naming the fix
and writes nothing; a password is never stored or printed; concurrent first writers migrate
once; a locked server delays nothing and loses nothing (a frozen or vanished one:
test_store_faults_pg.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
from fixtures.pgserver import raw_rows

from greentrain.errors import StoreError
from greentrain.meters.fake import FakeMeter
from greentrain.run import run_command
from greentrain.store import SCHEMA_VERSION, Store, redact

PY = sys.executable
LOGGING_JOB = """
import time
from greentrain import client
for i in range(30):
    client.log(step=i, loss=1.0 / (i + 1))
    time.sleep(0.01)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(target: str, **kwargs) -> str:
    with pytest.raises(StoreError) as err:
        Store(target, **kwargs)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_bad_urls_are_one_line_errors_naming_the_form(pg_server):
    text = _one_line_error("postgresql://u:pw123secret@localhost:notaport/db")
    assert "port" in text and "postgresql://USER@HOST:5432/DATABASE" in text
    assert "pw123secret" not in text
    text = _one_line_error(f"{pg_server.url('postgres')}&bogus=1")
    assert "not a valid PostgreSQL URL" in text


def test_an_unreachable_server_is_named_with_the_fix(pg_server):
    text = _one_line_error(f"postgresql://greentrain:hunter2@127.0.0.1:{_free_port()}/db")
    assert "cannot reach the PostgreSQL server" in text and "nothing was written" in text
    assert "hunter2" not in text and "***" in text


def test_wrong_credentials_are_refused_without_showing_the_password(pg_server):
    db = pg_server.new_database()
    text = _one_line_error(pg_server.tcp_url(db, password="wrong-pass-5e1f"))
    assert "refused user 'greentrain'" in text and "PGPASSWORD" in text
    assert "wrong-pass-5e1f" not in text
    assert raw_rows(pg_server.url(db), "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public'") == []  # fmt: skip


def test_a_missing_database_says_create_it(pg_server):
    assert "createdb" in _one_line_error(pg_server.url("no_such_db"))


def test_a_database_of_another_application_is_refused_and_untouched(pg_server):
    db = pg_server.new_database()
    pg_server.sql("CREATE TABLE customers (name TEXT)", db)
    for kwargs in ({}, {"read_only": True}, {"create": False}):
        assert "foreign" in _one_line_error(pg_server.url(db), **kwargs)
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    assert raw_rows(pg_server.url(db), tables) == [("customers",)]


def test_reading_commands_never_create_a_store_in_an_empty_database(pg_url):
    for command in (["runs"], ["show", "abc"], ["rm", "abc", "--yes"]):
        out = subprocess.run([PY, "-m", "greentrain", *command, "--store", pg_url],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 1 and "no greentrain store in database" in out.stderr, command
        assert "Traceback" not in out.stderr
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    assert raw_rows(pg_url, tables) == []


def test_a_password_in_the_url_is_never_stored_nor_printed(pg_server, tmp_path):
    db = pg_server.new_database()
    url = pg_server.tcp_url(db)
    secret = pg_server.password
    child = (
        "import sys\n"
        "from greentrain import track, client\n"
        "from greentrain.meters.fake import FakeMeter\n"
        "with track('pw', store=sys.argv[1], meter_objects=[FakeMeter()]):\n"
        "    client.config(store=sys.argv[1])\n"
    )
    proc = subprocess.run([PY, "-c", child, url], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    wrapped = subprocess.run(
        [PY, "-m", "greentrain", "run", "--store", url, "--meter", "fake", "--tag", f"s={url}",
         "--", PY, "-c", "pass", url], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert wrapped.returncode == 0, wrapped.stderr
    shown = [proc.stdout, proc.stderr, wrapped.stdout, wrapped.stderr]
    for command in (["runs"], ["runs", "--json"]):
        out = subprocess.run([PY, "-m", "greentrain", *command, "--store", url],
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        shown += [out.stdout, out.stderr]
    assert all(secret not in text for text in shown)
    dump = raw_rows(
        pg_server.url(db),
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM runs) t UNION ALL "
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM metrics) t UNION ALL "
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM energy) t",
    )
    text = " ".join(str(r[0]) for r in dump)
    assert "greentrain:***@127.0.0.1" in text  # the URL is recorded, its password hidden
    assert secret not in text
    assert redact(url) != url and secret not in redact(url)


def test_the_watchdog_gets_the_store_in_its_environment_not_its_command_line(pg_server):
    from greentrain.run.watchdog import Watchdog
    from greentrain.store import locate

    location = locate(pg_server.tcp_url("postgres"))
    dog = Watchdog(location, "abc", 1.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the watchdog's own program runs
            cmdline = open(f"/proc/{dog.pid}/cmdline", "rb").read()
            environ = open(f"/proc/{dog.pid}/environ", "rb").read()
            if b"BOOTSTRAP" in cmdline or b"rescue(" in cmdline:
                break
            time.sleep(0.01)
    finally:
        dog.dismiss()
    assert pg_server.password.encode() not in cmdline
    assert pg_server.password.encode() in environ  # readable by this user only (mode 0400)


def test_concurrent_first_writers_migrate_the_schema_once(pg_url):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store(pg_url).close()
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    meta = dict(raw_rows(pg_url, "SELECT key, value FROM greentrain_meta"))
    assert meta == {"app": "greentrain", "schema_version": str(SCHEMA_VERSION)}


def _meter() -> FakeMeter:
    return FakeMeter({"channels": [{"domain": "cpu", "device": "host", "power_w": 10.0}]})


def test_a_locked_table_neither_stretches_the_run_nor_loses_a_metric(pg_url, caplog):
    import psycopg

    Store(pg_url).close()
    ready = threading.Event()

    def hold() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("BEGIN")
            conn.execute("LOCK TABLE runs, metrics, energy, samples IN ACCESS EXCLUSIVE MODE")
            ready.set()
            time.sleep(6.0)
            conn.execute("ROLLBACK")

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    ready.wait(10)
    started = time.monotonic()
    result = run_command([PY, "-c", LOGGING_JOB], store=pg_url, meter_objects=[_meter()],
                         summary=False, sample_s=0)  # fmt: skip
    holder.join()
    run = result.record
    assert result.exit_code == 0 and run["status"] == "finished"
    assert run["duration_s"] < 4.0 < time.monotonic() - started
    assert [m["step"] for m in run["metrics"]] == list(range(30))
    assert "locked by another client" in caplog.text  # logged: the CLI shows it on stderr

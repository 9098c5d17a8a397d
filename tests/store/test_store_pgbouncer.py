"""The PostgreSQL store behind a connection pooler: pgbouncer in transaction mode, a real one.

Each transaction may be served by another server connection, so the store may keep no state in
a session: its timeouts are ``SET LOCAL``, its migration lock ``pg_advisory_xact_lock``, and it
never prepares statements on the server. Its startup ``options`` (the read lock timeout) are
passed over by pgbouncer (``ignore_startup_parameters = options``). Skips without Debian's
``pgbouncer`` package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from fixtures.pgserver import NOBODY, USER
from fixtures.synthetic_store import Shape, mixed_layout, write_runs

from greentrain.record.jsonable import dumps
from greentrain.store import Store
from greentrain.store.reader import StoreReader

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bouncer(pg_server):
    """pgbouncer in transaction mode before the session's server, pool of 2 server
    connections; yields a function giving a database's URL through it."""
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(exe).exists():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    folder = Path(tempfile.mkdtemp(prefix="greentrain-pgb-"))
    port = _free_port()
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={pg_server.root} port={pg_server.port} user={USER}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\ndefault_pool_size = 2\n"
        "ignore_startup_parameters = options\nmax_client_conn = 100\n"
        f"logfile = {folder / 'log'}\npidfile = {folder / 'pid'}\n"
    )
    argv = [exe, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        os.chown(folder, NOBODY, NOBODY)
        argv += ["-u", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"pgbouncer did not start: {proc.stderr.read()!r}")
            time.sleep(0.1)
    try:
        yield lambda db: f"postgresql://{USER}@127.0.0.1:{port}/{db}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_store_behind_pgbouncer_in_transaction_mode_migrates_writes_and_reads(pg_server, bouncer):
    db = pg_server.new_database("pgb")
    pooled, direct = bouncer(db), pg_server.url(db)
    write_runs(pooled, mixed_layout(), Shape(windows=3, metrics=70, duration_s=600.0))
    with StoreReader(pooled) as a, StoreReader(pooled) as b:  # two clients, one pool of 2
        assert a.version == b.version == 5
        for _ in range(8):  # the same statements, again and again, on either connection
            assert dumps(a.list_runs(status="failed")) == dumps(b.list_runs(status="failed"))
            assert a.get_run("G1")["nodes"] and b.get_run("c-one")["energy"]["cpu"]["split"]
    with StoreReader(direct, read_only=True) as st:
        assert dumps(st.list_runs()) == dumps(StoreReader(pooled, read_only=True).list_runs())


def test_greentrain_run_records_through_pgbouncer(pg_server, bouncer, tmp_path):
    pooled = bouncer(pg_server.new_database("pgbrun"))
    job = "from greentrain import client\nfor i in range(100): client.log(step=i, loss=1.0)\n"
    done = subprocess.run(
        [sys.executable, "-m", "greentrain", "run", "--store", pooled, "--meter", "fake",
         "--name", "pooled", "--", sys.executable, "-c", job],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Store(pooled, create=False) as st:
        (run,) = st.list_runs(name="pooled")
    assert run["status"] == "finished" and len(run["metrics"]) == 100
    assert run["energy_j"] is not None and run["energy_j"] > 0

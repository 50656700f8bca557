"""Through a real PgBouncer: transaction pooling swallows LISTEN, and self_check says so.

Skipped (with the reason) when the pgbouncer binary is not installed
(Debian: ``apt-get install pgbouncer``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import install

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pgbouncer(pg_server) -> Iterator[Callable[[str, str], str]]:
    """Factory: ``pgbouncer(pool_mode, dsn)`` starts one and returns the DSN through it."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(pool_mode: str, dsn: str) -> str:
        folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        folder.chmod(0o755)
        port = _free_port()
        ini = folder / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={pg_server.port} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = any\npool_mode = {pool_mode}\n"
            "ignore_startup_parameters = extra_float_digits\n"
        )
        ini.chmod(0o644)
        command = [PGBOUNCER, "-q", str(ini)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "postgres"]  # pgbouncer refuses to run as root
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append((proc, folder))
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "pgbouncer exited"
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        dbname = dsn.rsplit("/", 1)[1]
        return f"postgresql://postgres@127.0.0.1:{port}/{dbname}"

    yield start
    for proc, folder in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


async def test_self_check_fails_behind_transaction_pooling(dsn, pgbouncer):
    pooled = pgbouncer("transaction", dsn)
    async with PgmqNotifyListener(pooled, read_window=0.1) as listener:
        await listener.listen_queue_created()
        result = await listener.self_check(timeout=2)
    assert not result.ok
    assert "transaction mode" in result.detail


async def test_self_check_passes_behind_session_pooling(dsn, pgbouncer):
    pooled = pgbouncer("session", dsn)
    async with PgmqNotifyListener(pooled) as listener:
        result = await listener.self_check()
    assert result.ok, result.detail


async def test_poll_only_consumer_works_through_transaction_pooling(dsn, pgbouncer):
    config = PgmqNotifyConfig()
    install(dsn, config)
    pooled = pgbouncer("transaction", dsn)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pgmq.create('jobs_queue')")
    async with PgmqConsumer(pooled, "jobs_queue", config, poll_only=True, poll_interval=0.1, batch_size=5) as consumer:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[30]))")
        ids = []
        for _ in range(30):
            message = await asyncio.wait_for(anext(consumer), 60)
            ids.append(message.msg_id)
            assert await message.delete()
    assert sorted(ids) == list(range(1, 31))

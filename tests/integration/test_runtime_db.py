"""The connection layer (pgmq_runtime.db) against a real server: settings, hooks, typed errors, idle checks."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import pytest

from pgmq_runtime import db
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import APPLICATION_NAME, PgmqConsumer, queues_in_namespace
from pgmq_runtime.errors import (
    ConnectionLostError,
    ConsumerError,
    MigrationMissingError,
    PgmqNotInstalledError,
    QueueNotFoundError,
)
from pgmq_runtime.queries import QUERIES
from tests.conftest import install

WAIT_SECONDS = 60


async def scalar(dsn: str, query: str, params: tuple[object, ...] = ()) -> object:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(query, params)).fetchone()
        return row[0] if row else None


async def test_connections_carry_the_name_keepalives_and_the_configure_hook(dsn):
    configured = []

    async def configure(conn: psycopg.AsyncConnection[object]) -> None:
        configured.append(conn.info.backend_pid)
        await conn.execute("SET statement_timeout = '1234ms'")

    connector = db.Connector(dsn, application_name="pgmq-test-app", configure=configure)
    conn = await connector.connect()
    pid = conn.info.backend_pid
    try:
        rows = await db.run(conn, QUERIES["ping"], schema="pgmq_notify")
        settings = await (
            await conn.execute("SELECT current_setting('application_name'), current_setting('statement_timeout')")
        ).fetchone()
    finally:
        await conn.close()
    assert rows == [{"ok": 1}]
    assert settings == ("pgmq-test-app", "1234ms")
    assert configured == [pid]
    assert connector.kwargs()["keepalives"] == 1 and connector.kwargs()["autocommit"] is True


async def test_a_pool_uses_the_same_settings(dsn):
    connector = db.Connector(dsn, application_name="pgmq-test-pool")
    pool = connector.pool(min_size=1, max_size=2)
    await pool.open()
    try:
        executor = db.PoolExecutor(pool, "pgmq_notify")
        assert await executor.fetch(QUERIES["ping"]) == [{"ok": 1}]
        name = await scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmq-test-pool'")
    finally:
        await pool.close()
    assert name >= 1


async def test_errors_are_translated_once_into_typed_one_line_errors(dsn, bare_dsn):
    conn = await db.Connector(dsn).connect()
    try:
        with pytest.raises(QueueNotFoundError, match="queue 'nowhere' does not exist") as missing:
            await db.run(conn, QUERIES["read"], {"queue": "nowhere", "vt": 1, "qty": 1}, schema="x", queue="nowhere")
        with pytest.raises(MigrationMissingError, match=r"in schema 'not_here'.*Run the migration") as migration:
            await db.run(conn, QUERIES["extend_vt"], {"queue": "q", "msg_id": 1, "seconds": 1}, schema="not_here")
    finally:
        await conn.close()
    bare = await db.Connector(bare_dsn).connect()
    try:
        with pytest.raises(PgmqNotInstalledError, match="is PGMQ installed"):
            await db.run(bare, QUERIES["queue_names"], schema="pgmq_notify")
    finally:
        await bare.close()
    with pytest.raises(ConnectionLostError, match="connection lost"):
        await db.Connector("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2).connect()
    for err in (missing.value, migration.value):
        assert "\n" not in str(err) and isinstance(err.__cause__, psycopg.Error)


async def test_queues_in_namespace_raises_one_line_errors_caused_by_typed_ones(bare_dsn):
    with pytest.raises(ConsumerError, match="PGMQ is not installed") as caught:
        await queues_in_namespace(bare_dsn, PgmqNotifyConfig(), "orders")
    assert isinstance(caught.value.__cause__, PgmqNotInstalledError)


async def test_a_consumer_connection_killed_while_idle_is_noticed_and_replaced(dsn, caplog):
    config = PgmqNotifyConfig()
    install(dsn, config)
    await scalar(dsn, "SELECT pgmq.create('jobs_queue')")
    caplog.set_level(logging.INFO, logger="pgmq_runtime")
    consumer = PgmqConsumer(dsn, "jobs_queue", config, poll_interval=600, liveness_interval=0.2)
    async with consumer:
        waiting = asyncio.create_task(anext(consumer))
        deadline = time.monotonic() + WAIT_SECONDS
        while consumer.stats.catch_up_reads < 1:  # the start-up read is done: the consumer is idle
            assert time.monotonic() < deadline and not waiting.done()
            await asyncio.sleep(0.01)
        killed = 0
        while not killed:
            assert time.monotonic() < deadline and not waiting.done()
            killed = await scalar(
                dsn,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION_NAME,),
            )
        # Nothing is sent: only the idle check can notice the kill.
        while consumer.stats.reconnects < 1:
            assert time.monotonic() < deadline, "the idle check did not notice the kill"
            await asyncio.sleep(0.05)
        await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{\"n\": 1}')")
        message = await asyncio.wait_for(waiting, WAIT_SECONDS)
    assert message.message == {"n": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("consumer connection lost (idle check" in w for w in warnings), warnings
    assert any(w.startswith("consumer reconnected after") for w in warnings), warnings

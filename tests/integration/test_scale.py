"""Scale-out (issue 18): one LISTEN connection per process, and one listener on hundreds of namespaces.

Listeners, and the listeners of consumers given a DSN, share one LISTEN
connection per process and DSN (:mod:`pgmq_runtime.listen_hub`). These tests
count that connection in ``pg_stat_activity``, check that every subscriber
still gets every message once, and that after the shared backend is killed
each subscriber gets its own gap marker and catches up on what was sent while
no connection was listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgmq_runtime import listener as listener_mod
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.events import ListenerItem, ListenerReconnected, MessageEvent
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import install

WAIT_SECONDS = 90  # safety net so that a bug fails the test instead of hanging it
LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    f"AND backend_type = 'client backend' AND application_name = '{listener_mod.APPLICATION_NAME}'"
)


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def scalar(conn: psycopg.AsyncConnection[tuple[object, ...]], query: str, params: tuple[object, ...] = ()) -> int:
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return int(str(row[0]))


@contextlib.asynccontextmanager
async def admin(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        yield conn


async def drain(consumer: PgmqConsumer, got: list[int], want: int) -> None:
    """Claim and delete messages until ``want`` were handled."""
    while len(got) < want:
        message = await asyncio.wait_for(anext(consumer), WAIT_SECONDS)
        got.append(message.msg_id)
        await message.delete()


async def items_until_gap(listener: PgmqNotifyListener) -> list[ListenerItem]:
    items: list[ListenerItem] = []
    while not any(isinstance(i, ListenerReconnected) for i in items):
        item = await listener.next_event(timeout=WAIT_SECONDS)
        assert item is not None, "no gap marker"
        items.append(item)
    return items


@pytest.fixture
def two_queues(dsn: str) -> tuple[str, PgmqNotifyConfig]:
    config = PgmqNotifyConfig()
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue'), pgmq.create('billing_queue')")
    return dsn, config


async def test_two_consumers_and_a_listener_share_one_listen_connection_through_a_kill(two_queues):
    """One LISTEN connection for all three; each gets its messages once; a kill gives each a gap, nothing lost.

    While the shared backend is dead, the database refuses new connections
    (``ALLOW_CONNECTIONS false``), so the messages sent then are certainly
    announced to no one: only the catch-up after each subscriber's gap finds them.
    """
    dsn, config = two_queues
    per_phase = 40
    orders = PgmqConsumer(dsn, "orders_queue", config)
    billing = PgmqConsumer(dsn, "billing_queue", config)
    listener = PgmqNotifyListener(dsn, config)
    got_orders: list[int] = []
    got_billing: list[int] = []
    async with admin(dsn) as conn, listener, orders, billing:
        await listener.listen_many([config.message_ready_channel("orders"), config.message_ready_channel("billing")])
        pid = listener.backend_pid
        assert pid is not None and orders.listener is not None and billing.listener is not None
        assert orders.listener.backend_pid == billing.listener.backend_pid == pid
        assert await scalar(conn, LISTENERS) == 1
        send = (
            "SELECT count(*) FROM unnest(%s::text[]) q, generate_series(1, %s) n, "
            "LATERAL pgmq.send(q, jsonb_build_object('n', n))"
        )
        await conn.execute(send, (["orders_queue", "billing_queue"], per_phase))
        await asyncio.gather(drain(orders, got_orders, per_phase), drain(billing, got_billing, per_phase))
        heard = [await listener.next_event(timeout=WAIT_SECONDS) for _ in range(2 * per_phase)]
        assert all(isinstance(i, MessageEvent) for i in heard)

        # A database cannot shut its own door: ask from the server's postgres database.
        async with admin(make_conninfo(dsn, dbname="postgres")) as door:
            dbname = conn.info.dbname
            await door.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            try:
                await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                await until(lambda: not listener.stats.connected, "the hub to notice the kill")
                await conn.execute(send, (["orders_queue", "billing_queue"], per_phase))
            finally:
                await door.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        items = await items_until_gap(listener)
        await asyncio.gather(drain(orders, got_orders, 2 * per_phase), drain(billing, got_billing, 2 * per_phase))
        assert await scalar(conn, LISTENERS) == 1
        new_pid = listener.backend_pid
        assert new_pid not in (None, pid) and orders.listener.backend_pid == billing.listener.backend_pid == new_pid
        left = await scalar(
            conn, "SELECT (SELECT count(*) FROM pgmq.q_orders_queue) + (SELECT count(*) FROM pgmq.q_billing_queue)"
        )
    assert sorted(got_orders) == list(range(1, 2 * per_phase + 1))
    assert sorted(got_billing) == list(range(1, 2 * per_phase + 1))
    assert left == 0
    # Nothing of the outage was announced to the listener: only its gap marker.
    assert [type(i) for i in items] == [ListenerReconnected]
    assert listener.stats.reconnects == 1
    for consumer in (orders, billing):
        assert consumer.listener.stats.reconnects == 1
        assert consumer.stats.gaps >= 1
        assert consumer.stats.claimed_by_catch_up >= per_phase


async def test_opting_out_keeps_a_connection_of_ones_own(two_queues):
    dsn, config = two_queues
    private = [
        PgmqConsumer(dsn, "orders_queue", config, shared_listener=False),
        PgmqConsumer(dsn, "billing_queue", config, shared_listener=False),
    ]
    alone = PgmqNotifyListener(dsn, config, shared_listener=False)
    shared = [PgmqNotifyListener(dsn, config), PgmqNotifyListener(dsn, config)]
    async with admin(dsn) as conn, alone, shared[0], shared[1], private[0], private[1]:
        pids = {alone.backend_pid, *(c.listener.backend_pid for c in private if c.listener is not None)}
        counted = await scalar(conn, LISTENERS)
        await alone.listen_message_ready_for_namespace("orders")
        await conn.execute("SELECT pgmq.send('orders_queue', '{}'), pgmq.send('billing_queue', '{}')")
        claimed = [(await asyncio.wait_for(anext(c), WAIT_SECONDS)).queue_name for c in private]
        event = await alone.next_event(timeout=WAIT_SECONDS)
    assert len(pids) == 3 and shared[0].backend_pid is None  # closed
    assert counted == 4  # three private connections and the two shared listeners' one
    assert claimed == ["orders_queue", "billing_queue"]
    assert isinstance(event, MessageEvent) and event.queue_name == "orders_queue"


async def test_a_channel_is_unlistened_when_no_subscriber_wants_it_and_the_connection_closes_with_the_last(dsn):
    config = PgmqNotifyConfig()
    channel = "scale_test_channel"
    first, second = PgmqNotifyListener(dsn, config), PgmqNotifyListener(dsn, config)
    last_query = "SELECT query FROM pg_stat_activity WHERE pid = %s"
    async with admin(dsn) as conn:
        async with first, second:
            await first.listen(channel)
            await second.listen(channel)
            await first.unlisten(channel)
            row = await (await conn.execute(last_query, (first.backend_pid,))).fetchone()
            assert row is not None and str(row[0]).startswith("LISTEN")  # still wanted by the second
            await conn.execute("SELECT pg_notify(%s, '{}')", (channel,))
            heard = await second.next_event(timeout=WAIT_SECONDS)
            # The hub hands a notification to every subscriber of its channel at once.
            assert await first.next_event(timeout=0) is None
            await second.unlisten(channel)
            row = await (await conn.execute(last_query, (first.backend_pid,))).fetchone()
            assert row is not None and str(row[0]).startswith("UNLISTEN")
            await first.close()
            assert await scalar(conn, LISTENERS) == 1  # the second still holds it
        # A closed connection's backend exits on its own time: wait for it.
        deadline = time.monotonic() + WAIT_SECONDS
        while await scalar(conn, LISTENERS) != 0:
            assert time.monotonic() < deadline, "the shared connection outlived its last listener"
            await asyncio.sleep(0.02)
    assert heard is not None and heard.channel == channel  # an invalid event: the payload is no event


async def test_one_listener_follows_500_namespaces_and_listens_again_on_all_after_a_kill(dsn):
    namespaces = [f"ns{n:03d}" for n in range(500)]
    config = PgmqNotifyConfig(global_channel=False)
    install(dsn, config)
    queues = [f"{ns}_queue" for ns in namespaces]
    send = "SELECT count(*) FROM unnest(%s::text[]) q, LATERAL pgmq.send(q, '{}')"
    async with admin(dsn) as conn, PgmqNotifyListener(dsn, config, buffer_size=2000) as listener:
        await conn.execute("SELECT count(pgmq.create(q)) FROM unnest(%s::text[]) q", (queues,))
        await listener.listen_many(config.message_ready_channel(ns) for ns in namespaces)
        assert len(listener.channels) == 500
        await conn.execute(send, (queues,))
        before = [await listener.next_event(timeout=WAIT_SECONDS) for _ in namespaces]
        await conn.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        gap = await listener.next_event(timeout=WAIT_SECONDS)
        await conn.execute(send, (queues,))
        after = [await listener.next_event(timeout=WAIT_SECONDS) for _ in namespaces]
    assert isinstance(gap, ListenerReconnected)
    for items in (before, after):
        assert all(isinstance(i, MessageEvent) for i in items)
        assert sorted(i.namespace for i in items if isinstance(i, MessageEvent)) == namespaces

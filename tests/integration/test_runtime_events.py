"""The listener against a real server: events from the official pgmq client, gaps, self-check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pgmq
import psycopg
import pytest

from pgmq_codegen import listen
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ChannelNameError, ListenerError
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    ListenerItem,
    ListenerOverflow,
    ListenerReconnected,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    QueueCreatedEvent,
)
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import install


def client(dsn: str) -> pgmq.PGMQueue:
    """The official client; init_extension=False, as PGMQ is installed from SQL."""
    return pgmq.PGMQueue(conn_string=dsn, init_extension=False, pool_size=1)


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for ``condition``; fail (not hang) if it does not come true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def take(listener: PgmqNotifyListener, count: int, timeout: float = 10) -> list[ListenerItem]:
    """The next ``count`` items; fails (not hangs) if they do not come."""
    got: list[ListenerItem] = []
    while len(got) < count:
        item = await listener.next_event(timeout=timeout)
        assert item is not None, f"only {len(got)} of {count} items arrived: {got}"
        got.append(item)
    return got


@pytest.mark.parametrize("prefix", [None, "myapp.v2"])
async def test_every_event_type_from_the_official_client(dsn, prefix):
    config = PgmqNotifyConfig(channels_prefix=prefix, max_payload_size=2000)
    install(dsn, config)
    q = await asyncio.to_thread(client, dsn)
    try:
        async with PgmqNotifyListener(dsn, config) as listener:
            await listener.listen_queue_created()
            await listener.listen_message_ready_for_namespace("orders")
            before = datetime.now(UTC)
            await asyncio.to_thread(q.create_queue, "orders_queue")
            small = await asyncio.to_thread(q.send, "orders_queue", {"n": 1, "w": "caf\u00e9"}, {"h": "x"})
            large = await asyncio.to_thread(q.send, "orders_queue", {"blob": "\u00e9" * 1500})
            batch = await asyncio.to_thread(q.send_batch, "orders_queue", [{"i": i} for i in range(3)])
            delayed = await asyncio.to_thread(q.send, "orders_queue", {"later": 1}, None, 30)
            created, payload, signal, batch_event, later = await take(listener, 5)
    finally:
        await asyncio.to_thread(q.close)

    ns_channel = "myapp.v2.pgmq_message_ready.orders" if prefix else "pgmq_message_ready.orders"
    assert isinstance(created, QueueCreatedEvent)
    assert created.channel == ("myapp.v2.pgmq_queue_created" if prefix else "pgmq_queue_created")
    assert (created.queue_name, created.namespace) == ("orders_queue", "orders")
    assert created.created_at.tzinfo is not None and created.created_at >= before.replace(microsecond=0)
    assert created.metadata == {"source": "trigger"}

    assert isinstance(payload, MessageWithPayloadEvent)
    assert (payload.msg_id, payload.message, payload.headers) == (small, {"n": 1, "w": "caf\u00e9"}, {"h": "x"})
    assert (payload.channel, payload.namespace, payload.delay_seconds) == (ns_channel, "orders", 0)

    assert isinstance(signal, MessageReadyEvent)  # 3000 bytes of "é" > max_payload_size
    assert (signal.msg_id, signal.channel) == (large, ns_channel)

    assert isinstance(batch_event, BatchReadyEvent)
    assert list(batch_event.msg_ids) == batch and batch_event.message_count == 3

    assert isinstance(later, MessageWithPayloadEvent) and later.msg_id == delayed
    assert 29 <= later.delay_seconds <= 30
    assert later.ready_at > payload.ready_at
    assert listener.stats.events == 5 and listener.stats.invalid_events == 0


async def test_mixed_case_queue_and_global_channel(dsn):
    config = PgmqNotifyConfig(channels_prefix="app")
    install(dsn, config)
    async with PgmqNotifyListener(dsn, config) as listener:
        await listener.listen_message_ready_global()
        await listener.listen_default_namespaces()
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pgmq.create('Billing_queue')")
            await conn.execute("SELECT pgmq.create('misc')")
            await conn.execute("""SELECT pgmq.send('Billing_queue', '{"a": 1}')""")
            await conn.execute("""SELECT pgmq.send('misc', '{"b": 2}')""")
        items = await take(listener, 3)
    by_channel = sorted((i.channel, i.queue_name) for i in items)
    assert by_channel == [
        ("app.pgmq_message_ready", "Billing_queue"),
        ("app.pgmq_message_ready", "misc"),
        ("app.pgmq_message_ready.default", "misc"),
    ]


async def test_a_bad_payload_on_a_channel_is_an_invalid_event_not_a_crash(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    async with PgmqNotifyListener(dsn, config) as listener:
        await listener.listen_default_namespaces()
        channel = config.message_ready_channel("default")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, '{"event_type": "message_ready", "msg_id": 1'))
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, '{"event_type": "nope"}'))
            await conn.execute("SELECT pgmq.create('jobs')")
            await conn.execute("""SELECT pgmq.send('jobs', '{"ok": true}')""")
        bad_json, unknown, good = await take(listener, 3)
    assert isinstance(bad_json, InvalidEvent) and "not valid JSON" in bad_json.reason
    assert isinstance(unknown, InvalidEvent) and "unknown event_type 'nope'" in unknown.reason
    assert isinstance(good, MessageWithPayloadEvent) and good.message == {"ok": True}
    assert listener.stats.invalid_events == 2


async def test_channels_are_quoted_and_checked(dsn):
    async with PgmqNotifyListener(dsn) as listener:
        await listener.listen("Mixed.Case-Channel")
        with pytest.raises(ChannelNameError):
            await listener.listen("n" * 64)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pg_notify('mixed.case-channel', 'lower')")
            await conn.execute("SELECT pg_notify('Mixed.Case-Channel', 'exact')")
        (item,) = await take(listener, 1)
    assert isinstance(item, InvalidEvent) and item.channel == "Mixed.Case-Channel" and item.raw == "exact"


async def test_self_check_passes_on_a_direct_connection_and_the_probe_is_not_yielded(dsn):
    async with PgmqNotifyListener(dsn) as listener:
        result = await listener.self_check()
        assert result.ok, result.detail
        assert await listener.next_event(timeout=0.2) is None
        assert result.channel not in listener.channels


async def test_connecting_to_nothing_is_a_listener_error():
    listener = PgmqNotifyListener("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(ListenerError, match="cannot connect"):
        await listener.connect()


async def test_terminated_backend_gives_a_gap_then_events_flow_again(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    async with PgmqNotifyListener(dsn, config, backoff_initial=0.05) as listener:
        await listener.listen_default_namespaces()
        first_pid = listener.backend_pid
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pgmq.create('jobs')")
            await listener.self_check()  # starts the reader
            await conn.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
            (gap,) = await take(listener, 1)
            await conn.execute("""SELECT pgmq.send('jobs', '{"after": 1}')""")
            (event,) = await take(listener, 1)
    assert isinstance(gap, ListenerReconnected)
    assert gap.down_seconds >= 0 and gap.attempts >= 1 and gap.reason
    assert isinstance(event, MessageWithPayloadEvent) and event.message == {"after": 1}
    assert listener.stats.reconnects == 1
    assert listener.backend_pid is None  # closed


async def test_a_full_buffer_is_reported_as_one_overflow_marker_in_order(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    async with PgmqNotifyListener(dsn, config, buffer_size=5) as listener:
        await listener.listen_default_namespaces()
        assert await listener.next_event(timeout=0) is None  # starts the reader
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("SELECT pgmq.create('jobs')")
            for n in range(20):
                await conn.execute("SELECT pgmq.send('jobs', %s::jsonb)", (f'{{"n": {n}}}',))
            # The reader drains the socket whatever the buffer holds; wait for it.
            await until(lambda: listener.stats.events >= 20)
            items = await take(listener, 6)
            # Room again: the next notification is kept, after the marker.
            await conn.execute("""SELECT pgmq.send('jobs', '{"n": "after"}')""")
            items += await take(listener, 1)
    kept = [i.message["n"] for i in items[:5]]
    assert kept == [0, 1, 2, 3, 4]
    assert isinstance(items[5], ListenerOverflow) and items[5].dropped == 15
    assert items[6].message == {"n": "after"}
    assert listener.stats.dropped == 15


async def test_tail_reports_events_and_gaps(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    lines: list[str] = []
    notices: list[str] = []
    stop = asyncio.Event()
    listener = PgmqNotifyListener(dsn, config, backoff_initial=0.05)
    task = asyncio.create_task(
        listen.tail(
            dsn,
            config,
            ["orders"],
            lambda item: lines.append(listen.format_text(item)),
            on_notice=notices.append,
            stop=stop,
            source=listener,
        )
    )
    await until(lambda: any("self-check" in n for n in notices))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pgmq.create('orders_queue')")
        # Kill only once the event is in: a backend killed earlier may never pass it on.
        await until(lambda: len(lines) == 1)
        await conn.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        await until(lambda: listener.stats.reconnects >= 1)
        await conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 1}')""")
    await until(lambda: len(lines) >= 3)
    stop.set()
    summary = await task
    assert notices[0] == "listening on pgmq_queue_created, pgmq_message_ready.orders"
    assert "self-check passed" in notices[1]
    assert lines[0].startswith("queue_created  orders_queue")
    assert lines[1].startswith("GAP ")
    assert lines[2].startswith("message        orders_queue #1")
    assert (summary.items, summary.gaps) == (3, 1)
    assert listener.closed

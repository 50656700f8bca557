"""Rust's SQL produces, Python listens and consumes: our runtime reads what tasker-pgmq's migration emits.

The database gets only what ``tasker-pgmq-cli generate-migration`` writes (with
a config file whose ``[migration] include_rollback = false``; from CLI flags
the file always ends in a DOWN part that undoes the UP part). tasker-pgmq 0.1.3
ships no wrapper or fetch-by-id functions: its client calls
``pgmq_send_with_notify`` and ``pgmq_read_specific_message``, which its
migration does not create. So senders here use PGMQ's own ``pgmq.send`` and
``pgmq.send_batch``, which the migration's triggers announce.

Every notification is parsed by the crate's own listener and by our
:func:`parse_event`, and the two views must agree. Then our
:class:`PgmqConsumer` claims the announced messages: its claims go through our
``read_specific_batch_v1`` helper, so on a database with tasker's SQL alone it
can only poll, and with our helpers installed beside tasker's triggers
(``mode = "wrapper"``: helpers and wrappers, no triggers of ours on queue
tables) it claims every message from the events, each exactly once. Or switch
outright: tasker's DOWN part and our migration in one transaction, while the
Rust listeners keep listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter

import psycopg
import pytest

from pgmq_codegen import render
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import ConsumerError
from pgmq_runtime.events import MessageReadyEvent, QueueCreatedEvent, parse_event
from tests.conftest import apply_statements, install
from tests.interop.conftest import assert_same_event, tasker_config_toml, tasker_migration

DOWN_MARKER = "-- DOWN Migration"


def _apply_tasker(tasker, dsn: str, tmp_path, **config) -> str:
    sql = tasker_migration(tasker, tmp_path, tasker_config_toml(**config))
    assert DOWN_MARKER not in sql, "include_rollback = false must leave the DOWN part out"
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.encode())
    return sql


def _tasker_objects(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgmq\\_%\\_trigger%'),
                      (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgmq\\_notify\\_%')"""
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_tasker_sql_events_parse_in_our_runtime_as_the_crate_parses_them(
    dsn, tmp_path, subscribe, crate_listener, tasker
):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    sql = _apply_tasker(tasker, dsn, tmp_path, prefix="myapp")
    # Two trigger functions and nothing else: no pgmq_send_with_notify, no pgmq_read_specific_message,
    # although the crate's PgmqNotifyClient calls both.
    assert re.findall(r"CREATE OR REPLACE FUNCTION (\w+)", sql) == [
        "pgmq_notify_queue_created",
        "pgmq_notify_message_ready",
    ]
    # Triggers on pgmq.meta and on the one queue table that existed.
    assert _tasker_objects(dsn) == (2, 2)
    config = PgmqNotifyConfig(channels_prefix="myapp")
    crate = crate_listener(dsn, ["orders"], queue_created=True, prefix="myapp")
    assert crate.channels == sorted([config.queue_created_channel(), config.message_ready_channel("orders")])
    sub = subscribe(dsn, crate.channels)
    # tasker's SQL writes timestamps in the session time zone: parse them anywhere.
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=America/New_York") as conn:
        single = conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 1}'::jsonb)""").fetchone()
        delayed = conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 2}'::jsonb, 30)""").fetchone()
        batch = conn.execute(
            """SELECT * FROM pgmq.send_batch('orders_queue', ARRAY['{"n": 3}', '{"n": 4}']::jsonb[])"""
        ).fetchall()
        # Created after the migration: announced, but tasker's SQL attaches no trigger to it.
        conn.execute("SELECT pgmq.create('later_queue')")
        conn.execute("""SELECT pgmq.send('later_queue', '{"lost": true}'::jsonb)""")
    crate_lines = crate.collect(5)
    received = sub.drain()
    ours = [parse_event(r.channel, r.payload) for r in received]
    assert len(ours) == 5 and crate.quiet(0.2) == []
    for crate_line, event in zip(crate_lines, ours, strict=True):
        assert_same_event(crate_line, event)
    assert all("-05:00" in r.payload or "-04:00" in r.payload for r in received)

    *messages, created = ours
    assert all(isinstance(e, MessageReadyEvent) for e in messages)
    assert [e.msg_id for e in messages] == [single[0], delayed[0], *(row[0] for row in batch)]
    assert {(e.queue_name, e.namespace, e.channel) for e in messages} == {
        ("orders_queue", "orders", "myapp.pgmq_message_ready.orders")
    }
    # tasker's own fields: the delay as visibility_timeout_seconds, ready_at = the send time.
    assert [e.visibility_timeout_seconds for e in messages] == [0, 30, 0, 0]
    assert abs((messages[1].ready_at - messages[0].ready_at).total_seconds()) < 5
    # send_batch gives one message_ready per row, no batch_ready.
    assert isinstance(created, QueueCreatedEvent)
    assert (created.queue_name, created.namespace, created.channel) == (
        "later_queue",
        "later",
        "myapp.pgmq_queue_created",
    )


async def _claim_all(consumers: list[PgmqConsumer], count: int, timeout: float = 10.0) -> list[ClaimedMessage]:
    """Iterate every consumer at once until ``count`` messages were claimed in total."""
    claimed: list[ClaimedMessage] = []
    done = asyncio.Event()

    async def drain(consumer: PgmqConsumer) -> None:
        async for message in consumer:
            claimed.append(message)
            if len(claimed) >= count:
                done.set()

    tasks = [asyncio.create_task(drain(c)) for c in consumers]
    try:
        await asyncio.wait_for(done.wait(), timeout)
        await asyncio.sleep(0.3)  # room for a wrong second claim to show up
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return claimed


def _send(dsn: str, queue: str, count: int) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        half = count // 2
        ids = [
            int(conn.execute("SELECT pgmq.send(%s, %s::jsonb)", [queue, f'{{"i": {i}}}']).fetchone()[0])
            for i in range(half)
        ]
        rows = conn.execute(
            "SELECT * FROM pgmq.send_batch(%s, %s::jsonb[])", [queue, [f'{{"i": {i}}}' for i in range(half, count)]]
        ).fetchall()
    return ids + [int(r[0]) for r in rows]


async def test_without_our_helpers_the_consumer_can_only_poll(dsn, tmp_path, tasker):
    """Claiming an announced id needs ``<schema>.read_specific_batch_v1``, which tasker's SQL lacks."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    _apply_tasker(tasker, dsn, tmp_path)
    config = PgmqNotifyConfig()
    # Poll-only: PGMQ's own pgmq.read, no LISTEN, no helper: every message, once.
    async with PgmqConsumer(dsn, "orders_queue", config, poll_only=True, poll_interval=0.2) as poller:
        sent = _send(dsn, "orders_queue", 6)
        claimed = await _claim_all([poller], len(sent))
    assert sorted(m.msg_id for m in claimed) == sorted(sent)
    assert poller.stats.claimed_from_events == 0

    # Event-driven: the first announced id it tries to claim fails, and says what is missing.
    async with PgmqConsumer(dsn, "orders_queue", config) as consumer:
        waiting = asyncio.create_task(consumer.__anext__())
        await asyncio.sleep(0.5)  # its start-up catch-up read is done: the next messages come as events
        _send(dsn, "orders_queue", 2)
        with pytest.raises(ConsumerError, match=r"pgmq_notify.*is the pgmq-codegen SQL installed"):
            await asyncio.wait_for(waiting, 10)


async def test_with_our_helpers_beside_tasker_triggers_every_message_is_claimed_once(
    dsn, tmp_path, subscribe, crate_listener, tasker
):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    _apply_tasker(tasker, dsn, tmp_path)
    # Helpers (and wrappers) only: mode "wrapper" attaches no trigger of ours to queue tables,
    # so tasker's triggers stay the only announcers of pgmq.send.
    config = PgmqNotifyConfig(mode="wrapper")
    install(dsn, config)
    crate = crate_listener(dsn, ["orders"])
    sub = subscribe(dsn, [config.message_ready_channel("orders")])
    consumers = [PgmqConsumer(dsn, "orders_queue", config, visibility_timeout=60, poll_interval=30) for _ in range(2)]
    for consumer in consumers:
        await consumer.start()
    with contextlib.suppress(TimeoutError):
        await _claim_all(consumers, 1, timeout=0.5)  # the start-up catch-up reads find nothing
    assert all(c.stats.catch_up_reads >= 1 for c in consumers), "start-up catch-up not done yet"
    sent = _send(dsn, "orders_queue", 20)
    claimed = await _claim_all(consumers, len(sent))
    for consumer in consumers:
        await consumer.close()
    counts = Counter(m.msg_id for m in claimed)
    assert sorted(counts) == sorted(sent) and set(counts.values()) == {1}
    assert sum(c.stats.claimed_from_events for c in consumers) == len(sent)
    assert all(m.message == {"i": i} for i, m in enumerate(sorted(claimed, key=lambda m: m.msg_id)))
    # The events that drove the claims were tasker's, as both parsers read them.
    announced = [parse_event(r.channel, r.payload) for r in sub.drain(timeout=0.1)]
    for crate_line, event in zip(crate.collect(len(sent)), announced, strict=True):
        assert_same_event(crate_line, event)
        assert crate_line["variant"] == "MessageReady"


def test_switching_in_one_transaction_keeps_rust_listeners_fed(dsn, tmp_path, subscribe, crate_listener, tasker):
    """tasker's DOWN part and our migration in one transaction: no send goes unannounced, none twice."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    full = tasker_migration(tasker, tmp_path, tasker_config_toml(include_rollback=True))
    up, marker, down = full.partition(DOWN_MARKER)
    assert marker and "DROP FUNCTION" in down
    with psycopg.connect(dsn) as conn:
        conn.execute(up.encode())
    config = PgmqNotifyConfig()
    crate = crate_listener(dsn, ["orders"], queue_created=True)
    sub = subscribe(dsn, crate.channels)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = conn.execute("""SELECT pgmq.send('orders_queue', '{"era": "tasker"}'::jsonb)""").fetchone()
    # Ours first, then tasker's DOWN part: its DROPs leave our objects alone.
    apply_statements(dsn, [*render.install_statements(config), marker + down])
    assert _tasker_objects(dsn) == (0, 0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute("""SELECT pgmq.send('orders_queue', '{"era": "ours"}'::jsonb)""").fetchone()
        batch = conn.execute(
            """SELECT * FROM pgmq.send_batch('orders_queue', ARRAY['{"b": 1}', '{"b": 2}']::jsonb[])"""
        ).fetchall()
        conn.execute("SELECT pgmq.create('fresh_queue')")
    crate_lines = crate.collect(4)
    ours = [parse_event(r.channel, r.payload) for r in sub.drain()]
    assert crate.quiet(0.2) == []
    for crate_line, event in zip(crate_lines, ours, strict=True):
        assert_same_event(crate_line, event)
    assert [c["variant"] for c in crate_lines] == ["MessageReady", "MessageWithPayload", "BatchReady", "QueueCreated"]
    assert crate_lines[0]["event"]["msg_id"] == before[0]
    assert (crate_lines[1]["event"]["msg_id"], crate_lines[1]["event"]["message"]) == (after[0], {"era": "ours"})
    assert crate_lines[2]["event"]["msg_ids"] == [r[0] for r in batch]

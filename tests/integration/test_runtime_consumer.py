"""PgmqConsumer against a real server: claims, delays, poll-only, bursts, killed listeners.

The delivery path (claim by event and by catch-up, acknowledgements, exactly
once under killed listeners) also runs with PGMQ as an extension (``both_installs``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from datetime import timedelta

import pgmq
import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import ConsumerError
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import install

WAIT_SECONDS = 90  # safety net so that a bug fails the test instead of hanging it


async def next_message(consumer: PgmqConsumer) -> ClaimedMessage:
    return await asyncio.wait_for(anext(consumer), WAIT_SECONDS)


async def until(condition, what: str) -> None:
    """Wait for ``condition`` (plain or async); fail, not hang, if it does not come true."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await _value(condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _value(result: object) -> object:
    return await result if inspect.isawaitable(result) else result


async def scalar(dsn: str, query: str, params: tuple[object, ...] = ()) -> object:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(query, params)).fetchone()
        return row[0] if row else None


@pytest.fixture
async def jobs(dsn: str) -> tuple[str, PgmqNotifyConfig]:
    config = PgmqNotifyConfig()
    install(dsn, config)
    await scalar(dsn, "SELECT pgmq.create('jobs_queue')")
    return dsn, config


@pytest.mark.both_installs
async def test_messages_are_claimed_and_acted_on(jobs):
    dsn, config = jobs
    async with PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=30) as consumer:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for n in range(3):
                await conn.execute("SELECT pgmq.send('jobs_queue', %s::jsonb, '{\"h\": 1}'::jsonb)", (f'{{"n": {n}}}',))
        got = [await next_message(consumer) for _ in range(3)]
        assert [m.message for m in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert all(m.read_ct == 1 and m.headers == {"h": 1} for m in got)
        assert await got[0].delete() is True
        assert await got[0].delete() is False
        assert await got[1].archive() is True
        new_vt = await got[2].extend(120)
        assert new_vt is not None and new_vt >= got[2].vt + timedelta(seconds=100)
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 1
    assert await scalar(dsn, "SELECT msg_id FROM pgmq.a_jobs_queue") == got[1].msg_id


@pytest.mark.both_installs
async def test_messages_sent_before_start_are_caught_up(jobs):
    dsn, config = jobs
    await scalar(dsn, "SELECT count(*) FROM pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[250]))")
    async with PgmqConsumer(dsn, "jobs_queue", config, batch_size=100) as consumer:
        ids = [(await next_message(consumer)).msg_id for _ in range(250)]
        assert sorted(ids) == list(range(1, 251))
        assert consumer.stats.claimed_by_catch_up == 250


async def test_an_event_payload_never_skips_the_claim(jobs):
    dsn, config = jobs
    async with PgmqConsumer(dsn, "jobs_queue", config) as consumer:
        q = await asyncio.to_thread(pgmq.PGMQueue, conn_string=dsn, init_extension=False, pool_size=1)
        try:
            taken = await asyncio.to_thread(q.send, "jobs_queue", {"who": "other"})
            # Another consumer claims it before ours reads the (payload-carrying) event.
            assert (await asyncio.to_thread(q.read, "jobs_queue", 30)).msg_id == taken
            free = await asyncio.to_thread(q.send, "jobs_queue", {"who": "us"})
        finally:
            await asyncio.to_thread(q.close)
        message = await next_message(consumer)
    assert message.msg_id == free and message.message == {"who": "us"}


async def test_ids_that_other_consumers_took_make_the_consumer_read_the_queue_instead(jobs):
    """Many workers hear the same event: after a short claim by id, reads (SKIP LOCKED) spread the rest."""
    dsn, config = jobs
    async with PgmqConsumer(dsn, "jobs_queue", config, batch_size=5, poll_interval=60) as consumer:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            # One event announces 20 ids; "another worker" holds the first 10 when it arrives.
            await conn.execute("SELECT pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[20]))")
            await conn.execute("SELECT * FROM pgmq.read('jobs_queue', 60, 10)")
            await conn.commit()
        got = [(await next_message(consumer)).msg_id for _ in range(10)]
        stats = consumer.stats
    assert sorted(got) == list(range(11, 21))
    # Claiming ids 1-5 came back empty: the rest were read, not raced for id by id.
    assert stats.claimed_from_events == 0 and stats.claimed_by_catch_up == 10


async def test_a_delayed_message_is_claimed_once_visible_and_not_before(jobs):
    dsn, config = jobs
    # A slow timer far away: only the claim scheduled from the event can find it.
    async with PgmqConsumer(dsn, "jobs_queue", config, poll_interval=600) as consumer:
        await next_message_after_send(dsn, consumer, "SELECT pgmq.send('jobs_queue', '{\"warm\": 1}')")
        sent = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{\"late\": 1}', 2)")
        message = await next_message(consumer)
        claimed_at = await scalar(dsn, "SELECT clock_timestamp()")
    assert message.msg_id == sent and message.read_ct == 1
    assert claimed_at >= message.enqueued_at + timedelta(seconds=2)
    # The delayed one came from its event. The warm-up came from the start-up catch-up or, when the
    # (shared, always reading) LISTEN connection had its event buffered before the first claim, from that.
    stats = consumer.stats
    assert stats.claimed_from_events >= 1 and stats.claimed_by_catch_up + stats.claimed_from_events == 2


async def next_message_after_send(dsn: str, consumer: PgmqConsumer, query: str) -> ClaimedMessage:
    await scalar(dsn, query)
    return await next_message(consumer)


async def test_poll_only_mode_serves_the_same_messages_without_listen(jobs):
    dsn, config = jobs
    async with PgmqConsumer(dsn, "jobs_queue", config, poll_only=True, poll_interval=0.2) as consumer:
        assert consumer.listener is None
        await scalar(dsn, "SELECT count(*) FROM pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[150]))")
        await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{}')")
        ids = [(await next_message(consumer)).msg_id for _ in range(151)]
        listeners = await scalar(
            dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmq-runtime-listener'"
        )
    assert sorted(ids) == list(range(1, 152))
    assert consumer.stats.claimed_from_events == 0
    assert listeners == 0


async def test_a_burst_larger_than_the_buffer_loses_nothing(jobs):
    dsn, config = jobs
    listener = PgmqNotifyListener(dsn, config, buffer_size=16)
    async with listener, PgmqConsumer(listener, "jobs_queue", batch_size=10) as consumer:
        first = await next_message_after_send(dsn, consumer, "SELECT pgmq.send('jobs_queue', '{}')")
        await first.archive()
        # The consumer does not pull while 2000 single sends arrive.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for n in range(2000):
                await conn.execute("SELECT pgmq.send('jobs_queue', %s::jsonb)", (f'{{"n": {n}}}',))

        await until(lambda: listener.stats.events >= 2001, "the listener to read the burst")
        seen = Counter([first.msg_id])
        while len(seen) < 2001:
            message = await next_message(consumer)
            seen[message.msg_id] += 1
            await message.archive()
    assert listener.stats.dropped > 0
    assert consumer.stats.gaps >= 1
    assert set(seen) == set(range(1, 2002)) and max(seen.values()) == 1
    assert await scalar(dsn, "SELECT max(read_ct) FROM pgmq.a_jobs_queue") == 1


PRODUCERS = 4
PER_PRODUCER = 2500
PHASES = 6  # five kills, between and during six phases of sending
# Each producer repeats: one send_batch of 20, then five single sends (25 messages).
PATTERN = [20, 1, 1, 1, 1, 1]


def produce(client: pgmq.PGMQueue, patterns: int) -> list[int]:
    ids: list[int] = []
    for _ in range(patterns):
        for size in PATTERN:
            if size == 1:
                ids.append(client.send("jobs_queue", {"p": 1}))
            else:
                ids += client.send_batch("jobs_queue", [{"p": size}] * size)
    return ids


@pytest.mark.both_installs
async def test_two_consumers_get_every_message_once_while_listeners_are_killed(jobs):
    dsn, config = jobs
    clients = [
        await asyncio.to_thread(pgmq.PGMQueue, conn_string=dsn, init_extension=False, pool_size=1)
        for _ in range(PRODUCERS)
    ]
    consumers = [PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=60) for _ in range(2)]
    seen: Counter[int] = Counter()

    async def consume(consumer: PgmqConsumer) -> None:
        async for message in consumer:
            seen[message.msg_id] += 1
            await message.archive()

    for consumer in consumers:
        await consumer.start()
    workers = [asyncio.create_task(consume(c)) for c in consumers]
    listeners = [c.listener for c in consumers]
    patterns_total = PER_PRODUCER // sum(PATTERN)
    phase_sizes = [patterns_total // PHASES + (i < patterns_total % PHASES) for i in range(PHASES)]
    sent: list[int] = []
    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            for phase, patterns in enumerate(phase_sizes):
                batch = [asyncio.to_thread(produce, c, patterns) for c in clients]
                sending = asyncio.gather(*batch)
                if phase:
                    # Kill while the producers are sending.
                    for listener in listeners:
                        await until(lambda lst=listener: lst.backend_pid is not None, "a backend")
                        await admin.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
                for ids in await sending:
                    sent += ids
                for listener in listeners:
                    await until(lambda lst=listener, n=phase: lst.stats.reconnects >= n, "a reconnect")
        assert len(sent) == PRODUCERS * PER_PRODUCER

        async def all_archived() -> bool:
            return await scalar(dsn, "SELECT count(*) FROM pgmq.a_jobs_queue") == len(sent)

        await until(all_archived, "every message to be consumed")
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for consumer in consumers:
            await consumer.close()
        for c in clients:
            await asyncio.to_thread(c.close)

    assert set(seen) == set(sent)
    assert max(seen.values()) == 1, [i for i, n in seen.items() if n > 1][:10]
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0
    assert await scalar(dsn, "SELECT max(read_ct) FROM pgmq.a_jobs_queue") == 1
    for listener, consumer in zip(listeners, consumers, strict=True):
        assert listener.stats.reconnects >= PHASES - 1
        assert consumer.stats.gaps >= PHASES - 1
    assert sum(c.stats.claimed_from_events for c in consumers) > 0
    assert all(c.stats.claimed_from_events + c.stats.claimed_by_catch_up > 0 for c in consumers)


async def test_a_missing_queue_or_missing_install_is_a_consumer_error(dsn):
    async with PgmqConsumer(dsn, "nowhere_queue", PgmqNotifyConfig()) as consumer:
        with pytest.raises(ConsumerError, match="does every queue of \\['nowhere_queue'\\] exist"):
            await next_message(consumer)
    await scalar(dsn, "SELECT pgmq.create('jobs_queue')")
    async with PgmqConsumer(dsn, "jobs_queue", PgmqNotifyConfig(schema="not_installed")) as consumer:
        await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{}')")
        message = await next_message(consumer)  # the catch-up needs only PGMQ
        with pytest.raises(ConsumerError, match="is the pgmq-codegen SQL installed, in schema 'not_installed'"):
            await message.extend(10)

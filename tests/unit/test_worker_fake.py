"""The real PgmqConsumer.run (worker, acknowledgements, retries, heartbeat, hand-back) on FakePgmq, no PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import ConsumerError
from pgmq_runtime.retries import DEAD_LETTER_HEADER, RetryPolicy
from pgmq_runtime.testing import FakePgmq

FAST_RETRY = {"backoff_initial": 0.01, "backoff_max": 0.02}


def consumer_on(fake: FakePgmq, queue: str = "jobs_queue", **kwargs: object) -> PgmqConsumer:
    return PgmqConsumer("fake", queue, fake.config, poll_only=True, poll_interval=0.01, database=fake, **kwargs)  # type: ignore[arg-type]


async def run_until(consumer: PgmqConsumer, handler, done, **kwargs: object) -> None:
    """Run the worker until ``done()`` holds (checked every few milliseconds), then stop it."""

    async def watch() -> None:
        while not done():
            await asyncio.sleep(0.005)
        consumer.stop()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(consumer.run(handler, handle_signals=False, **kwargs), 10)  # type: ignore[arg-type]
    finally:
        watcher.cancel()


async def test_every_message_is_handled_once_and_deleted():
    fake = FakePgmq()
    ids = fake.send_batch("jobs_queue", [{"n": n} for n in range(50)])
    handled: Counter[int] = Counter()

    async def handler(message: ClaimedMessage) -> None:
        await asyncio.sleep(0.001)
        handled[message.msg_id] += 1

    async with consumer_on(fake) as consumer:
        await run_until(consumer, handler, lambda: not fake.queue("jobs_queue").messages, concurrency=8)
    assert sorted(handled) == ids and set(handled.values()) == {1}
    assert consumer.stats.deleted == 50 and consumer.stats.handled == 50
    assert "delete_many" in fake.queries


async def test_a_failing_handler_is_retried_then_dead_lettered():
    fake = FakePgmq()
    fake.create_queue("dlq")
    msg_id = fake.send("jobs_queue", {"n": 1}, {"h": 2})
    attempts: list[int] = []

    async def handler(message: ClaimedMessage) -> None:
        attempts.append(message.read_ct)
        raise RuntimeError("boom")

    retry = RetryPolicy(max_attempts=3, dead_letter_queue="dlq", **FAST_RETRY)
    async with consumer_on(fake) as consumer:
        await run_until(consumer, handler, lambda: bool(fake.queue("dlq").messages), retry=retry)
    assert attempts == [1, 2, 3]
    assert not fake.queue("jobs_queue").messages
    [moved] = fake.queue("dlq").messages.values()
    assert moved.message == {"n": 1}
    assert moved.headers == {
        "h": 2,
        DEAD_LETTER_HEADER: {"queue": "jobs_queue", "msg_id": msg_id, "read_ct": 3, "error": "RuntimeError: boom"},
    }
    assert (consumer.stats.retries, consumer.stats.dead_lettered, consumer.stats.failed) == (2, 1, 3)
    assert {"retry_later", "dead_letter"} <= set(fake.queries)


async def test_without_a_dead_letter_queue_a_failing_message_is_archived():
    fake = FakePgmq()
    msg_id = fake.send("jobs_queue", {"n": 1})

    def handler(message: ClaimedMessage) -> None:  # a plain function runs in a thread
        raise ValueError("bad")

    async with consumer_on(fake) as consumer:
        await run_until(
            consumer, handler, lambda: bool(fake.queue("jobs_queue").archived), retry=RetryPolicy(2, **FAST_RETRY)
        )
    assert set(fake.queue("jobs_queue").archived) == {msg_id} and not fake.queue("jobs_queue").messages
    assert (consumer.stats.retries, consumer.stats.dead_lettered) == (1, 1)


async def test_a_missing_dead_letter_queue_fails_early():
    fake = FakePgmq()
    fake.send("jobs_queue", {"n": 1})
    async with consumer_on(fake) as consumer:
        with pytest.raises(ConsumerError, match="dead-letter queue 'dlq' does not exist"):
            await consumer.run(print, retry=RetryPolicy(dead_letter_queue="dlq"), handle_signals=False)


async def test_delete_and_archive_by_hand():
    fake = FakePgmq()
    _first, second, third = fake.send_batch("jobs_queue", [1, 2, 3])
    async with consumer_on(fake) as consumer:
        one, two, three = [await anext(consumer) for _ in range(3)]
        assert await one.delete() is True
        assert await one.delete() is False  # already gone
        assert await two.archive() is True
        assert await three.extend(60) is not None
    queue = fake.queue("jobs_queue")
    assert set(queue.messages) == {third} and set(queue.archived) == {second}
    assert (consumer.stats.deleted, consumer.stats.archived) == (1, 1)


async def test_a_handler_that_settles_its_message_is_not_acknowledged_twice():
    fake = FakePgmq()
    ids = fake.send_batch("jobs_queue", [1, 2])

    async def handler(message: ClaimedMessage) -> None:
        await message.archive()

    async with consumer_on(fake) as consumer:
        await run_until(consumer, handler, lambda: not fake.queue("jobs_queue").messages, concurrency=2)
    assert set(fake.queue("jobs_queue").archived) == set(ids)
    assert (consumer.stats.archived, consumer.stats.deleted) == (2, 0)


async def test_the_heartbeat_extends_a_long_handler():
    fake = FakePgmq()
    msg_id = fake.send("jobs_queue", {"n": 1})

    async def handler(message: ClaimedMessage) -> None:
        await asyncio.sleep(1.3)

    async with consumer_on(fake, visibility_timeout=1) as consumer:
        await run_until(consumer, handler, lambda: not fake.queue("jobs_queue").messages)
    assert consumer.stats.heartbeats >= 1 and consumer.stats.handled == 1 and consumer.stats.deleted == 1
    assert "extend_many" in fake.queries and msg_id not in fake.queue("jobs_queue").messages


async def test_handlers_cut_short_at_stop_hand_their_messages_back():
    fake = FakePgmq()
    msg_id = fake.send("jobs_queue", {"n": 1})
    started = asyncio.Event()

    async def handler(message: ClaimedMessage) -> None:
        started.set()
        await asyncio.sleep(60)

    async with consumer_on(fake) as consumer:
        await run_until(consumer, handler, started.is_set, grace_period=0)
    stored = fake.queue("jobs_queue").messages[msg_id]
    assert consumer.stats.handed_back == 1 and stored.read_ct == 1
    assert fake.queue("jobs_queue").visible(stored.vt)  # visible again at once

"""The whole server restarts mid-stream: the listener comes back by itself, nothing is lost.

``pg_server.restart()`` drops every connection of the session's server, so
this test leaves the server ready again before it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import psycopg

from pgmq_codegen.throwaway_postgres import wait_until_ready
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from tests.conftest import install

WAIT_SECONDS = 120


async def scalar(dsn: str, query: str) -> object:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(query)).fetchone()
        return row[0] if row else None


class Producer:
    """Sends until told to stop, reconnecting through the restart; keeps the acknowledged ids."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.acked: list[int] = []
        self.failures = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    while not self.stop.is_set():
                        n += 1
                        if n % 10:
                            cur = await conn.execute("SELECT pgmq.send('jobs_queue', %s::jsonb)", (f'{{"n": {n}}}',))
                        else:
                            cur = await conn.execute(
                                "SELECT * FROM pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[10]))"
                            )
                        self.acked += [row[0] for row in await cur.fetchall()]
                        await asyncio.sleep(0.002)
            except psycopg.OperationalError:
                # Sent or not, we cannot know: the message is then not in `acked`,
                # but if it was committed the consumer must still get it.
                self.failures += 1
                await asyncio.sleep(0.1)


async def test_server_restart_mid_stream_loses_nothing(dsn, pg_server):
    config = PgmqNotifyConfig()
    install(dsn, config)
    await scalar(dsn, "SELECT pgmq.create('jobs_queue')")
    seen: Counter[int] = Counter()
    # A short visibility timeout: a claim whose answer died with the server
    # comes back soon (at-least-once), and the slow timer finds it.
    consumer = PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=5, poll_interval=1)
    producer = Producer(dsn)

    async def consume() -> None:
        async for message in consumer:
            seen[message.msg_id] += 1
            await message.archive()

    await consumer.start()
    listener = consumer.listener
    assert listener is not None
    worker = asyncio.create_task(consume())
    sending = asyncio.create_task(producer.run())
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(producer.acked) < 300:
            assert time.monotonic() < deadline, "the producer did not start"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(pg_server.restart)
        before = len(producer.acked)
        while len(producer.acked) < before + 300 or listener.stats.reconnects < 1:
            assert time.monotonic() < deadline, "producer or listener did not come back"
            await asyncio.sleep(0.05)
        producer.stop.set()
        await sending
        while await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") != 0:
            assert time.monotonic() < deadline, f"messages left behind: {len(seen)} consumed"
            await asyncio.sleep(0.1)
    finally:
        producer.stop.set()
        worker.cancel()
        await asyncio.gather(worker, sending, return_exceptions=True)
        await consumer.close()
        await asyncio.to_thread(wait_until_ready, pg_server.dsn)

    archived = await scalar(dsn, "SELECT array_agg(msg_id) FROM pgmq.a_jobs_queue")
    assert producer.failures >= 1  # the restart did cut the stream
    assert listener.stats.reconnects >= 1
    assert consumer.stats.gaps >= 1
    assert set(producer.acked) <= set(seen)
    assert set(seen) == set(archived)
    assert max(seen.values()) == 1

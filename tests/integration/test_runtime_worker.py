"""PgmqConsumer.run against a real server: concurrency, batched acks, retries, heartbeat, stop, FIFO.

The exactly-once backlog test also runs with PGMQ as an extension (``both_installs``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.errors import ConsumerError
from pgmq_runtime.retries import DEAD_LETTER_HEADER, RetryPolicy
from tests.conftest import install
from tests.integration.test_runtime_consumer import WAIT_SECONDS, scalar, until

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture
async def jobs(dsn: str) -> tuple[str, PgmqNotifyConfig]:
    config = PgmqNotifyConfig()
    install(dsn, config)
    await scalar(dsn, "SELECT pgmq.create('jobs_queue')")
    return dsn, config


async def send_many(dsn: str, count: int, queue: str = "jobs_queue") -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            await conn.execute(
                "SELECT count(*) FROM pgmq.send_batch(%s, array_fill('{}'::jsonb, ARRAY[%s]))", (queue, n)
            )


async def run_until_stopped(*runs: asyncio.Future[object]) -> None:
    await asyncio.wait_for(asyncio.gather(*runs), WAIT_SECONDS)


@pytest.mark.both_installs
async def test_a_backlog_is_handled_exactly_once_by_two_concurrent_workers(jobs):
    dsn, config = jobs
    await send_many(dsn, 10_000)
    seen: Counter[int] = Counter()
    running = peak = 0
    consumers = [PgmqConsumer(dsn, "jobs_queue", config) for _ in range(2)]

    async def handle(message: ClaimedMessage) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen[message.msg_id] += 1
        await asyncio.sleep(0)
        running -= 1
        if len(seen) == 10_000:
            for consumer in consumers:
                consumer.stop()

    async with consumers[0], consumers[1]:
        await run_until_stopped(*(c.run(handle, concurrency=16, archive=True, handle_signals=False) for c in consumers))
    assert len(seen) == 10_000 and max(seen.values()) == 1
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.a_jobs_queue") == 10_000
    assert await scalar(dsn, "SELECT max(read_ct) FROM pgmq.a_jobs_queue") == 1
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0
    assert 1 < peak <= 32
    stats = [c.stats for c in consumers]
    assert all(s.handled > 0 for s in stats)
    assert sum(s.archived for s in stats) == 10_000
    # Acknowledgements went out in batches, not one transaction each.
    assert sum(s.ack_batches for s in stats) < 10_000 / 4


async def test_a_handler_that_fails_twice_is_retried_after_a_backoff_not_the_timeout(jobs):
    dsn, config = jobs
    sent = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{\"n\": 1}')")
    deliveries: list[ClaimedMessage] = []
    consumer = PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=600)

    async def handle(message: ClaimedMessage) -> None:
        deliveries.append(message)
        if message.read_ct < 3:
            raise RuntimeError(f"flaky {message.read_ct}")
        consumer.stop()

    async with consumer:
        await run_until_stopped(consumer.run(handle, retry=FAST_RETRY, archive=True, handle_signals=False))
    assert [(m.msg_id, m.read_ct) for m in deliveries] == [(sent, 1), (sent, 2), (sent, 3)]
    # Each retry was claimed long before the previous claim's 600 s timeout would have ended.
    for before, after in itertools.pairwise(deliveries):
        claimed_again_at = after.vt - timedelta(seconds=600)
        assert claimed_again_at < before.vt - timedelta(seconds=500)
    stats = consumer.stats
    assert (stats.failed, stats.retries, stats.handled, stats.dead_lettered) == (2, 2, 1, 0)
    assert await scalar(dsn, "SELECT read_ct FROM pgmq.a_jobs_queue WHERE msg_id = %s", (sent,)) == 3


async def test_a_poison_message_goes_to_the_dead_letter_queue_after_max_attempts(jobs):
    dsn, config = jobs
    await scalar(dsn, "SELECT pgmq.create('jobs_dlq')")
    sent = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{\"bad\": true}'::jsonb, '{\"h\": 1}'::jsonb)")
    good = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{\"bad\": false}')")
    calls: Counter[int] = Counter()
    consumer = PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=600)
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.05, backoff_max=0.2, dead_letter_queue="jobs_dlq")

    async def handle(message: ClaimedMessage) -> None:
        calls[message.msg_id] += 1
        if message.message == {"bad": True}:
            raise ValueError("cannot parse this")

    async with consumer:
        task = asyncio.ensure_future(consumer.run(handle, retry=policy, handle_signals=False))
        await until(lambda: consumer.stats.dead_lettered == 1, "the poison message to be given up on")
        consumer.stop()
        await run_until_stopped(task)
    assert calls == {sent: 3, good: 1}
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0
    assert await scalar(dsn, "SELECT array_agg(message) FROM pgmq.q_jobs_dlq") == [{"bad": True}]
    moved = await scalar(dsn, "SELECT headers FROM pgmq.q_jobs_dlq")
    assert moved["h"] == 1
    assert moved[DEAD_LETTER_HEADER] == {
        "queue": "jobs_queue",
        "msg_id": sent,
        "read_ct": 3,
        "error": "ValueError: cannot parse this",
    }


async def test_a_poison_message_is_archived_after_max_attempts_without_a_dead_letter_queue(jobs):
    dsn, config = jobs
    sent = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{}')")
    consumer = PgmqConsumer(dsn, "jobs_queue", config)

    async def handle(message: ClaimedMessage) -> None:
        raise RuntimeError("always")

    async with consumer:
        task = asyncio.ensure_future(consumer.run(handle, retry=FAST_RETRY, handle_signals=False))
        await until(lambda: consumer.stats.dead_lettered == 1, "the poison message to be archived")
        consumer.stop()
        await run_until_stopped(task)
    assert await scalar(dsn, "SELECT read_ct FROM pgmq.a_jobs_queue WHERE msg_id = %s", (sent,)) == 3
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0


async def test_a_missing_dead_letter_queue_is_one_clear_error(jobs):
    dsn, config = jobs
    policy = RetryPolicy(dead_letter_queue="nowhere_dlq")
    async with PgmqConsumer(dsn, "jobs_queue", config) as consumer:
        with pytest.raises(ConsumerError, match="dead-letter queue 'nowhere_dlq' does not exist"):
            await consumer.run(lambda m: None, retry=policy, handle_signals=False)


async def test_a_handler_longer_than_the_visibility_timeout_is_not_delivered_twice(jobs):
    dsn, config = jobs
    sent = await scalar(dsn, "SELECT pgmq.send('jobs_queue', '{}')")
    calls: Counter[int] = Counter()
    # A slow worker holds the message; an eager poller tries to take it all the time.
    slow = PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=1)
    eager = PgmqConsumer(dsn, "jobs_queue", config, visibility_timeout=1, poll_only=True, poll_interval=0.05)

    async def handle(message: ClaimedMessage) -> None:
        calls[message.msg_id] += 1
        if message.read_ct == 1:
            await asyncio.sleep(3.5)  # three and a half visibility timeouts
        for consumer in (slow, eager):
            consumer.stop()

    async with slow, eager:
        first = asyncio.ensure_future(slow.run(handle, archive=True, handle_signals=False))
        await until(lambda: calls[sent] == 1, "the slow handler to start")
        second = asyncio.ensure_future(eager.run(handle, archive=True, handle_signals=False))
        await run_until_stopped(first, second)
    assert calls == {sent: 1}
    assert await scalar(dsn, "SELECT read_ct FROM pgmq.a_jobs_queue WHERE msg_id = %s", (sent,)) == 1
    assert slow.stats.heartbeats >= 3


async def test_delete_called_by_hand_joins_the_batches_and_returns_once_committed(jobs):
    dsn, config = jobs
    await send_many(dsn, 200)
    async with PgmqConsumer(dsn, "jobs_queue", config, batch_size=200) as consumer:
        messages = [await asyncio.wait_for(anext(consumer), WAIT_SECONDS) for _ in range(200)]
        results = await asyncio.gather(*(m.delete() for m in messages))
        # Committed: another connection sees the queue empty as soon as the calls return.
        assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0
        assert await messages[0].delete() is False
    assert results == [True] * 200
    assert consumer.stats.deleted == 200
    assert consumer.stats.ack_batches < 20


async def test_closing_a_consumer_hands_back_the_messages_it_claimed_ahead(jobs):
    dsn, config = jobs
    await send_many(dsn, 10)
    async with PgmqConsumer(dsn, "jobs_queue", config, batch_size=10, visibility_timeout=600) as consumer:
        taken = await asyncio.wait_for(anext(consumer), WAIT_SECONDS)
        assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue WHERE vt > clock_timestamp()") == 10
    invisible = await scalar(dsn, "SELECT array_agg(msg_id) FROM pgmq.q_jobs_queue WHERE vt > clock_timestamp()")
    assert invisible == [taken.msg_id]
    assert consumer.stats.handed_back == 9


async def test_fifo_groups_are_handled_in_order_one_at_a_time_by_two_workers(jobs):
    dsn, config = jobs
    groups = ("a", "b", "c")
    order: dict[str, list[int]] = defaultdict(list)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for n in range(30):
            for group in groups:
                await conn.execute(
                    "SELECT pgmq.send('jobs_queue', %s::jsonb, %s::jsonb)",
                    (f'{{"group": "{group}", "n": {n}}}', f'{{"x-pgmq-group": "{group}"}}'),
                )
    active: Counter[str] = Counter()
    overlaps: list[tuple[str, int]] = []
    consumers = [PgmqConsumer(dsn, "jobs_queue", config, fifo=True, poll_interval=0.05) for _ in range(2)]
    rng = random.Random(16)

    async def handle(message: ClaimedMessage) -> None:
        assert isinstance(message.message, dict)
        group, n = str(message.message["group"]), int(str(message.message["n"]))
        active[group] += 1
        if active[group] > 1:
            overlaps.append((group, n))
        await asyncio.sleep(rng.random() * 0.004)
        order[group].append(n)
        active[group] -= 1
        if sum(len(v) for v in order.values()) == 90:
            for consumer in consumers:
                consumer.stop()

    # Two slots each for three groups: one worker can never hold every group's head, so the
    # other always finds a group to take (with four slots, the first worker to read took all
    # three heads and re-read after each acknowledgement before the other's next poll).
    async with consumers[0], consumers[1]:
        await run_until_stopped(*(c.run(handle, concurrency=2, handle_signals=False) for c in consumers))
    assert overlaps == []
    assert {g: order[g] for g in groups} == {g: list(range(30)) for g in groups}
    assert all(c.stats.handled > 0 for c in consumers)
    assert await scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue") == 0


def test_sigterm_stops_the_cli_worker_cleanly_without_losing_or_hiding_messages(jobs, tmp_path):
    dsn, _config = jobs
    asyncio.run(send_many(dsn, 400))
    log = tmp_path / "handled.txt"
    log.touch()
    env = {**os.environ, "WORKER_LOG": str(log), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pgmq_codegen.cli", "worker", "tests.integration.worker_handlers:record_slowly"]
    command += ["--dsn", dsn, "--queue", "jobs_queue", "--concurrency", "8"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        asyncio.run(until(lambda: len(log.read_text().split()) >= 40, "the worker to handle some messages"))
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=WAIT_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert "stopped" in out
    handled = [int(line) for line in log.read_text().split()]
    left = asyncio.run(scalar(dsn, "SELECT coalesce(array_agg(msg_id), '{}') FROM pgmq.q_jobs_queue"))
    invisible = asyncio.run(scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue WHERE vt > clock_timestamp()"))
    assert len(handled) == len(set(handled)) and 40 <= len(handled) < 400
    assert sorted(handled + list(left)) == list(range(1, 401))
    assert invisible == 0


def test_sigterm_while_the_cli_worker_starts_is_a_clean_stop(jobs):
    """docker stop right after start: the signal comes before the run loop takes the signals."""
    dsn, _config = jobs
    asyncio.run(send_many(dsn, 5))
    command = [sys.executable, "-m", "pgmq_codegen.cli", "worker", "tests.integration.worker_handlers:record_slowly"]
    command += ["--dsn", dsn, "--queue", "jobs_queue", "--metrics-port", "0", "--metrics-host", "127.0.0.1"]
    env = {**os.environ, "WORKER_LOG": os.devnull, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert worker.stderr is not None
        seen = []
        for line in worker.stderr:  # "metrics on ..." comes before the consumer connects
            seen.append(line)
            if "metrics on" in line:
                worker.send_signal(signal.SIGTERM)
                break
        out, err = worker.communicate(timeout=WAIT_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, "".join(seen) + err
    assert "stopped" in out + err
    # Nothing was claimed and kept: every message is still there, visible.
    assert asyncio.run(scalar(dsn, "SELECT count(*) FROM pgmq.q_jobs_queue WHERE vt <= clock_timestamp()")) == 5


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pgmq_codegen.cli", "worker", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT_SECONDS)


def test_cli_worker_errors_are_one_line_and_exit_2(jobs, bare_dsn):
    dsn, _config = jobs
    handler = "tests.integration.worker_handlers:record_slowly"
    cases = {
        "PGMQ is not installed in this database": (handler, "--dsn", bare_dsn, "--queue", "jobs_queue"),
        "queue 'nowhere_queue' does not exist": (handler, "--dsn", dsn, "--queue", "nowhere_queue"),
        "no queue to consume: none in namespace 'nothing'": (handler, "--dsn", dsn, "--namespace", "nothing"),
        "cannot import 'tests.integration.nowhere'": ("tests.integration.nowhere:f", "--dsn", dsn, "-q", "jobs_queue"),
        "must be MODULE:FUNCTION": ("no_colon", "--dsn", dsn, "--queue", "jobs_queue"),
    }
    for expected, args in cases.items():
        result = run_cli(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (expected, result.stderr)
        assert len(lines) == 1 and expected in lines[0], (expected, result.stderr)

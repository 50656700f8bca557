"""Consumer throughput: messages claimed and deleted per second, 1 and 2 consumers.

The queue is filled with a backlog, then 1 or 2 worker processes drain it,
each message claimed and then deleted on its own (what a handler does). Kinds:

- ``plain``: ``pgmq.read`` 100 at a time, then ``pgmq.delete`` each (the baseline);
- ``runtime``: :class:`PgmqConsumer` with ``ClaimedMessage.delete()``;
- ``runtime-async``: the same with ``synchronous_commit=off`` on the consumer's
  connection (safe for claims and deletes, see ``server.with_async_commit``).

Worker processes live for the whole phase; each cell sends them a command,
waits until every worker is connected, then says go, so start-up never counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import QUEUE, Progress, Sizes, median
from benchmarks.server import BenchServer
from pgmq_runtime.consumer import PgmqConsumer

KINDS = (
    ("plain", "pgmq.read + pgmq.delete"),
    ("runtime", "PgmqConsumer + delete()"),
    ("runtime-async", "PgmqConsumer + delete(), synchronous_commit=off"),
)
CONSUMER_COUNTS = (1, 2)


@dataclass
class Drained:
    """What one worker did: claimed and deleted counts, go and last-delete times (monotonic ns)."""

    claimed: int
    deleted: int
    started_ns: int
    last_ns: int


async def _drain_plain(dsn: str, go: Connection) -> Drained:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await asyncio.to_thread(_ready_then_wait, go)
        started = last = time.monotonic_ns()
        claimed = deleted = 0
        while True:
            cursor = await conn.execute("SELECT msg_id FROM pgmq.read(%s, 30, 100)", (QUEUE,), prepare=True)
            rows = await cursor.fetchall()
            if not rows:
                if await _queue_empty(conn):
                    break
                await asyncio.sleep(0.01)
                continue
            claimed += len(rows)
            for (msg_id,) in rows:
                cursor = await conn.execute("SELECT pgmq.delete(%s, %s::bigint)", (QUEUE, msg_id), prepare=True)
                row = await cursor.fetchone()
                deleted += bool(row and row[0])
                last = time.monotonic_ns()
    return Drained(claimed, deleted, started, last)


async def _drain_runtime(dsn: str, go: Connection, async_commit: bool) -> Drained:
    consumer_dsn = server.with_async_commit(dsn) if async_commit else dsn
    consumer = PgmqConsumer(consumer_dsn, QUEUE, server.TRIGGER_CONFIG, batch_size=100)
    await consumer.start()
    counts = {"claimed": 0, "deleted": 0}
    last = [0]

    async def work() -> None:
        async for message in consumer:
            counts["claimed"] += 1
            counts["deleted"] += await message.delete()
            last[0] = time.monotonic_ns()

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as check:
        await asyncio.to_thread(_ready_then_wait, go)
        started = last[0] = time.monotonic_ns()
        task = asyncio.create_task(work())
        while not task.done():
            await asyncio.sleep(0.05)
            idle = (time.monotonic_ns() - last[0]) / 1e9
            if idle > 0.2 and await _queue_empty(check):
                break
        await consumer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
    return Drained(counts["claimed"], counts["deleted"], started, last[0])


async def _queue_empty(conn: psycopg.AsyncConnection[Any]) -> bool:
    query = sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM pgmq.{})").format(sql.Identifier(f"q_{QUEUE}"))
    cursor = await conn.execute(query)
    row = await cursor.fetchone()
    return bool(row and row[0])


def _ready_then_wait(pipe: Connection) -> None:
    pipe.send("ready")
    pipe.recv()


def _worker_main(pipe: Connection) -> None:
    """Drain on command until told to stop."""
    while (command := pipe.recv()) is not None:
        kind, dsn = command
        if kind == "plain":
            result = asyncio.run(_drain_plain(dsn, pipe))
        else:
            result = asyncio.run(_drain_runtime(dsn, pipe, async_commit=kind == "runtime-async"))
        pipe.send(result)


@dataclass
class ConsumerRun:
    """One drain of the backlog."""

    kind: str
    consumers: int
    round: int
    messages: int
    claimed: int
    deleted: int
    seconds: float
    msgs_per_s: float

    @property
    def missing(self) -> int:
        """Messages of the backlog never deleted."""
        return self.messages - self.deleted


def prefill(dsn: str, count: int) -> None:
    """Empty the queue and put ``count`` messages in it."""
    server.reset_queue(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, count, 1000):
            n = min(1000, count - start)
            conn.execute(
                "SELECT count(*) FROM pgmq.send_batch(%s, array_fill('{\"order_id\": 1}'::jsonb, ARRAY[%s]))",
                (QUEUE, n),
            )


def run_count(sizes: Sizes) -> int:
    """How many drains :func:`run` makes."""
    return sizes.consumer_rounds * len(KINDS) * len(CONSUMER_COUNTS)


def run(bench: BenchServer, sizes: Sizes, progress: Progress) -> list[ConsumerRun]:
    """Every kind with 1 and 2 consumers, interleaved, ``sizes.consumer_rounds`` times."""
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[Connection, Any]] = []
    for _ in range(max(CONSUMER_COUNTS)):
        parent, child = context.Pipe()
        process = context.Process(target=_worker_main, args=(child,), daemon=True)
        process.start()
        workers.append((parent, process))
    dsn = bench.dsn(server.TRIGGER)
    runs: list[ConsumerRun] = []
    try:
        for round_no in range(sizes.consumer_rounds):
            for count in CONSUMER_COUNTS:
                for kind, label in KINDS:
                    progress.step(f"consumers round {round_no + 1}/{sizes.consumer_rounds}: {count} of {label}")
                    prefill(dsn, sizes.consumer_messages)
                    active = [pipe for pipe, _ in workers[:count]]
                    for pipe in active:
                        pipe.send((kind, dsn))
                    for pipe in active:
                        pipe.recv()  # "ready"
                    for pipe in active:
                        pipe.send("go")
                    results: list[Drained] = [pipe.recv() for pipe in active]
                    seconds = (max(r.last_ns for r in results) - min(r.started_ns for r in results)) / 1e9
                    deleted = sum(r.deleted for r in results)
                    runs.append(
                        ConsumerRun(
                            kind=kind,
                            consumers=count,
                            round=round_no,
                            messages=sizes.consumer_messages,
                            claimed=sum(r.claimed for r in results),
                            deleted=deleted,
                            seconds=seconds,
                            msgs_per_s=deleted / seconds if seconds > 0 else 0.0,
                        )
                    )
    finally:
        for pipe, process in workers:
            with contextlib.suppress(OSError):
                pipe.send(None)
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return runs


@dataclass
class ConsumerSummary:
    """Median throughput of one kind with one consumer count, and its ratio to the plain loop."""

    kind: str
    label: str
    consumers: int
    msgs_per_s: float
    ratio: float
    messages: int
    deleted: int
    missing: int
    duplicates: int


def summarize(runs: list[ConsumerRun]) -> list[ConsumerSummary]:
    """Median over rounds; the ratio is the median of per-round ratios to ``plain``."""
    out: list[ConsumerSummary] = []
    by_key = {(r.kind, r.consumers, r.round): r for r in runs}
    for count in CONSUMER_COUNTS:
        for kind, label in KINDS:
            own = [r for r in runs if r.kind == kind and r.consumers == count]
            if not own:
                continue
            ratios = [
                r.msgs_per_s / base.msgs_per_s
                for r in own
                if (base := by_key.get(("plain", count, r.round))) is not None and base.msgs_per_s > 0
            ]
            out.append(
                ConsumerSummary(
                    kind=kind,
                    label=label,
                    consumers=count,
                    msgs_per_s=median([r.msgs_per_s for r in own]),
                    ratio=median(ratios),
                    messages=sum(r.messages for r in own),
                    deleted=sum(r.deleted for r in own),
                    missing=sum(r.missing for r in own),
                    duplicates=sum(r.claimed - r.deleted for r in own),
                )
            )
    return out


def to_json(runs: list[ConsumerRun], summaries: list[ConsumerSummary]) -> dict[str, Any]:
    """Raw runs and summaries, for latest.json."""
    return {"runs": [asdict(r) for r in runs], "summary": [asdict(s) for s in summaries]}

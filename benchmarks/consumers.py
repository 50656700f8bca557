"""Consumer throughput: a backlog drained by 1 and 4 worker processes, claim then acknowledge, no work.

Kinds, each with 1 and 4 workers, interleaved in every round:

- ``batched``: ``pgmq.read(queue, 30, 100)`` then one ``pgmq.delete(queue, ids[])``
  per batch, in a loop: the floor for one connection (no notifications, no
  handler, nothing else);
- ``run16`` / ``run100``: ``PgmqConsumer.run`` with a no-op async handler,
  ``concurrency`` 16 (the README's example) and 100 (the batch size of the floor);
  its claims do not wait for the WAL flush (``synchronous_commit = off`` on the
  claiming connection), its acknowledgements do;
- ``run16-durable``: the same with ``durable_claims=True`` (every claim waits
  for the flush, as the floor's reads do), to show what that costs;
- ``per-message``: ``PgmqConsumer`` iterated with ``await message.delete()``
  after each message (the path every handler had before ``run``);
- ``pgqueuer``: PgQueuer (from PyPI), psycopg driver, ``QueueManager.run`` in
  drain mode, a no-op entrypoint, ``batch_size`` 100.

msgs/s = messages acknowledged / (last acknowledgement committed - go), the
ratio is to ``batched`` with as many workers in the same round. Worker
processes live for the whole phase; each cell waits until every worker is
connected, then says go, so start-up never counts.
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
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer

KINDS = (
    ("batched", "pgmq.read(100) + pgmq.delete(ids[]) loop (the floor)"),
    ("run16", "PgmqConsumer.run, no-op handler, concurrency 16"),
    ("run100", "PgmqConsumer.run, no-op handler, concurrency 100"),
    ("run16-durable", "PgmqConsumer.run, concurrency 16, durable_claims=True"),
    ("per-message", "PgmqConsumer + delete() per message (before run)"),
    ("pgqueuer", "PgQueuer, psycopg driver, drain mode, no-op entrypoint"),
)
CONSUMER_COUNTS = (1, 4)
RUN_CONCURRENCY = {"run16": 16, "run100": 100, "run16-durable": 16}
PGQUEUER_DB = "bench_pgqueuer"
PGQUEUER_BATCH = 100
# The target: run with 1 worker at least this share of the batched floor.
TARGET_KIND = "run16"
TARGET_RATIO = 0.6


@dataclass
class Drained:
    """What one worker did: claimed and acknowledged counts, go and last-acknowledgement times (monotonic ns)."""

    claimed: int
    deleted: int
    started_ns: int
    last_ns: int


async def _drain_batched(dsn: str, go: Connection) -> Drained:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await asyncio.to_thread(_ready_then_wait, go)
        started = last = time.monotonic_ns()
        claimed = deleted = 0
        while True:
            cursor = await conn.execute("SELECT msg_id FROM pgmq.read(%s, 30, 100)", (QUEUE,), prepare=True)
            ids = [row[0] for row in await cursor.fetchall()]
            if not ids:
                if await _queue_empty(conn):
                    break
                await asyncio.sleep(0.01)
                continue
            claimed += len(ids)
            cursor = await conn.execute("SELECT pgmq.delete(%s, %s::bigint[])", (QUEUE, ids), prepare=True)
            deleted += len(await cursor.fetchall())
            last = time.monotonic_ns()
    return Drained(claimed, deleted, started, last)


async def _drain_per_message(dsn: str, go: Connection) -> Drained:
    consumer = PgmqConsumer(dsn, QUEUE, server.TRIGGER_CONFIG, batch_size=100)
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
        await _until_drained(check, task, last)
        consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await consumer.close()
    return Drained(counts["claimed"], counts["deleted"], started, last[0])


async def _drain_run(dsn: str, go: Connection, concurrency: int, durable_claims: bool) -> Drained:
    consumer = PgmqConsumer(dsn, QUEUE, server.TRIGGER_CONFIG, batch_size=100, durable_claims=durable_claims)
    await consumer.start()
    claimed = [0]
    last = [0]

    async def handle(message: ClaimedMessage) -> None:
        claimed[0] += 1

    acked = consumer.acks.on_commit

    def committed(queue_name: str) -> None:
        last[0] = time.monotonic_ns()
        if acked is not None:
            acked(queue_name)

    consumer.acks.on_commit = committed
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as check:
        await asyncio.to_thread(_ready_then_wait, go)
        started = last[0] = time.monotonic_ns()
        task = asyncio.create_task(consumer.run(handle, concurrency=concurrency, handle_signals=False))
        await _until_drained(check, task, last)
        consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await consumer.close()
    return Drained(claimed[0], consumer.stats.deleted, started, last[0])


async def _drain_pgqueuer(dsn: str, go: Connection) -> Drained:
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.adapters.persistence.queries import Queries
    from pgqueuer.core.qm import QueueManager
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    counts = [0]
    last = [0]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint("noop")
        async def noop(job: Job) -> None:
            counts[0] += 1

        await asyncio.to_thread(_ready_then_wait, go)
        started = time.monotonic_ns()
        await manager.run(batch_size=PGQUEUER_BATCH, mode=QueueExecutionMode.drain)
        last[0] = time.monotonic_ns()
    return Drained(counts[0], counts[0], started, last[0])


async def _until_drained(check: psycopg.AsyncConnection[Any], task: asyncio.Task[Any], last: list[int]) -> None:
    while not task.done():
        await asyncio.sleep(0.05)
        idle = (time.monotonic_ns() - last[0]) / 1e9
        if idle > 0.2 and await _queue_empty(check):
            return


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
        if kind == "batched":
            result = asyncio.run(_drain_batched(dsn, pipe))
        elif kind == "per-message":
            result = asyncio.run(_drain_per_message(dsn, pipe))
        elif kind == "pgqueuer":
            result = asyncio.run(_drain_pgqueuer(dsn, pipe))
        else:
            result = asyncio.run(_drain_run(dsn, pipe, RUN_CONCURRENCY[kind], kind.endswith("-durable")))
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
        """Messages of the backlog never acknowledged."""
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


def install_pgqueuer(bench: BenchServer) -> str:
    """A database of its own with PgQueuer's schema; returns its DSN."""
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.adapters.persistence.queries import Queries

    with psycopg.connect(bench.server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(PGQUEUER_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PGQUEUER_DB)))
    dsn = bench.server.dsn_for(PGQUEUER_DB)

    async def install() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await Queries(PsycopgDriver(conn)).install()

    asyncio.run(install())
    return dsn


def prefill_pgqueuer(dsn: str, count: int) -> None:
    """Empty PgQueuer's queue and log, and enqueue ``count`` jobs for the no-op entrypoint."""
    from pgqueuer.adapters.drivers.psycopg import PsycopgDriver
    from pgqueuer.adapters.persistence.queries import Queries

    async def fill() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            queries = Queries(PsycopgDriver(conn))
            await queries.clear_queue()
            await queries.clear_queue_log()
            for start in range(0, count, 1000):
                n = min(1000, count - start)
                await queries.enqueue(["noop"] * n, [None] * n, [0] * n)

    asyncio.run(fill())


def run_count(sizes: Sizes) -> int:
    """How many drains :func:`run` makes."""
    return sizes.consumer_rounds * len(KINDS) * len(CONSUMER_COUNTS)


def run(bench: BenchServer, sizes: Sizes, progress: Progress) -> list[ConsumerRun]:
    """Every kind with 1 and 4 workers, interleaved, ``sizes.consumer_rounds`` times."""
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[Connection, Any]] = []
    for _ in range(max(CONSUMER_COUNTS)):
        parent, child = context.Pipe()
        process = context.Process(target=_worker_main, args=(child,), daemon=True)
        process.start()
        workers.append((parent, process))
    dsn = bench.dsn(server.TRIGGER)
    pgqueuer_dsn = install_pgqueuer(bench)
    runs: list[ConsumerRun] = []
    try:
        for round_no in range(sizes.consumer_rounds):
            for count in CONSUMER_COUNTS:
                for kind, label in KINDS:
                    progress.step(f"consumers round {round_no + 1}/{sizes.consumer_rounds}: {count} x {label}")
                    target = pgqueuer_dsn if kind == "pgqueuer" else dsn
                    if kind == "pgqueuer":
                        prefill_pgqueuer(target, sizes.consumer_messages)
                    else:
                        prefill(target, sizes.consumer_messages)
                    active = [pipe for pipe, _ in workers[:count]]
                    for pipe in active:
                        pipe.send((kind, target))
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
    """Median throughput of one kind with one worker count, and its ratio to the batched floor."""

    kind: str
    label: str
    consumers: int
    msgs_per_s: float
    ratio: float
    ratio_min: float
    ratio_max: float
    messages: int
    deleted: int
    missing: int
    duplicates: int


def summarize(runs: list[ConsumerRun]) -> list[ConsumerSummary]:
    """Median over rounds; the ratio is the median of per-round ratios to ``batched``."""
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
                if (base := by_key.get(("batched", count, r.round))) is not None and base.msgs_per_s > 0
            ]
            out.append(
                ConsumerSummary(
                    kind=kind,
                    label=label,
                    consumers=count,
                    msgs_per_s=median([r.msgs_per_s for r in own]),
                    ratio=median(ratios),
                    ratio_min=min(ratios, default=float("nan")),
                    ratio_max=max(ratios, default=float("nan")),
                    messages=sum(r.messages for r in own),
                    deleted=sum(r.deleted for r in own),
                    missing=sum(r.missing for r in own),
                    duplicates=sum(max(r.claimed - r.deleted, 0) for r in own),
                )
            )
    return out


def to_json(runs: list[ConsumerRun], summaries: list[ConsumerSummary]) -> dict[str, Any]:
    """Raw runs and summaries, for latest.json."""
    return {"runs": [asdict(r) for r in runs], "summary": [asdict(s) for s in summaries]}

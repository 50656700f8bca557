"""Section "scale" (issue 18): connections per process, 500 channels, and the cost of many listening sessions.

Four measurements, all in one run on the benchmark's server (database of the
trigger variant):

1. **Connections per process**: 10 :class:`PgmqConsumer` on one queue in
   this process, counted in ``pg_stat_activity`` once with
   ``shared_listener=False`` (each its own LISTEN connection, as before the
   shared hub) and once shared (the default).
2. **LISTEN set-up and re-LISTEN**: a listener LISTENs on 1 or 500 channels
   (``listen_many``, and 500 single ``listen()`` calls); then its backend is
   killed and the gap marker's ``down_seconds`` (connect + LISTEN on every
   channel again) is read, per round.
3. **Event throughput, 500 channels against 1**: a burst of notifications
   spread over 500 channels (the listener on all of them) against the same
   burst on one channel.
4. **Cost per notification against listening sessions**: a sender commits one
   ``pg_notify`` per transaction (``synchronous_commit = off``, so the disk
   flush does not hide it) while 0, 1, 10 or 50 other sessions LISTEN on an
   unrelated channel and idle. Before PostgreSQL 19 every NOTIFY signals every
   listening backend of the database, which wakes, reads the queue and finds
   nothing for itself: the sender's rate and the CPU those backends burn
   (``/proc/<pid>/stat``, the server runs on this machine) per notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import QUEUE, Progress, Sizes, median
from benchmarks.runtime_bench import Tally, _with_payload
from benchmarks.server import BenchServer
from pgmq_runtime import consumer as consumer_mod
from pgmq_runtime import listener as listener_mod
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.events import ListenerReconnected
from pgmq_runtime.listener import PgmqNotifyListener

_CONFIG = server.TRIGGER_CONFIG
CONSUMERS = 10
CHANNEL_COUNTS = (1, 500)
LISTENING = (0, 1, 10, 50)
_UNRELATED = "scale_bench_unrelated"


@dataclass(frozen=True)
class ScaleSizes:
    """Rounds and sizes of this section, per preset."""

    rounds: int
    burst: int
    notifies: int


SIZES = {
    "full": ScaleSizes(rounds=5, burst=20_000, notifies=4000),
    "quick": ScaleSizes(rounds=2, burst=10_000, notifies=2000),
    "tiny": ScaleSizes(rounds=1, burst=500, notifies=100),
}


def run_count(sizes: Sizes) -> int:
    """How many progress steps :func:`run` takes."""
    s = SIZES[sizes.name]
    return 2 + s.rounds * (len(CHANNEL_COUNTS) + 1 + len(CHANNEL_COUNTS) + len(LISTENING))


@dataclass
class ScaleResults:
    """Every figure of the section (medians over rounds where there are rounds)."""

    connections: dict[str, dict[str, int]] = field(default_factory=dict)
    setup_seconds: dict[str, float] = field(default_factory=dict)
    relisten_seconds: dict[str, float] = field(default_factory=dict)
    events_per_s: dict[str, float] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    notify_per_s: dict[str, float] = field(default_factory=dict)
    listener_cpu_us: dict[str, float] = field(default_factory=dict)
    sender_cpu_us: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def run(bench: BenchServer, sizes: Sizes, progress: Progress) -> ScaleResults:
    """Measure the whole section."""
    s = SIZES[sizes.name]
    dsn = bench.dsn(server.TRIGGER)
    results = ScaleResults()
    for shared in (False, True):
        label = "shared" if shared else "opt-out"
        progress.step(f"scale: connections of {CONSUMERS} consumers ({label})")
        results.connections[label] = asyncio.run(_connections(dsn, shared))
    samples: dict[str, list[dict[str, float]]] = {}
    for round_no in range(s.rounds):
        for n in CHANNEL_COUNTS:
            progress.step(f"scale: LISTEN and re-LISTEN on {n} channel(s), round {round_no + 1}")
            samples.setdefault(f"listen-{n}", []).append(asyncio.run(_listen_and_relisten(dsn, n, many=True)))
        progress.step(f"scale: 500 single listen() calls, round {round_no + 1}")
        samples.setdefault("listen-500-single", []).append(asyncio.run(_listen_and_relisten(dsn, 500, many=False)))
        for n in CHANNEL_COUNTS:
            progress.step(f"scale: drain a burst of {s.burst} over {n} channel(s), round {round_no + 1}")
            samples.setdefault(f"burst-{n}", []).append(asyncio.run(_drain(dsn, n, s.burst)))
        # Interleaved and rotated, so none is always first after a pause.
        shift = round_no % len(LISTENING)
        for n in LISTENING[shift:] + LISTENING[:shift]:
            progress.step(f"scale: {s.notifies} NOTIFY commits with {n} idle listening session(s)")
            samples.setdefault(f"notify-{n}", []).append(_notify_cost(dsn, n, s.notifies))
    results.rounds = samples
    for n in CHANNEL_COUNTS:
        for key, setup in ((f"{n}", f"listen-{n}"), *((("500 single", "listen-500-single"),) if n == 500 else ())):
            results.setup_seconds[key] = median([r["setup"] for r in samples[setup]])
            results.relisten_seconds[key] = median([r["relisten"] for r in samples[setup]])
        burst = samples[f"burst-{n}"]
        results.events_per_s[str(n)] = median([r["events_per_s"] for r in burst])
        results.received[str(n)] = int(sum(r["received"] for r in burst))
        results.sent[str(n)] = int(sum(r["sent"] for r in burst))
    for n in LISTENING:
        cells = samples[f"notify-{n}"]
        results.notify_per_s[str(n)] = median([c["per_s"] for c in cells])
        results.listener_cpu_us[str(n)] = median([c["listener_cpu_us"] for c in cells])
        results.sender_cpu_us[str(n)] = median([c["sender_cpu_us"] for c in cells])
    return results


# -- 1. connections per process ----------------------------------------------


async def _connections(dsn: str, shared: bool) -> dict[str, int]:
    # batch_size=1: each claims one message, so that each opens its acknowledgement connection.
    consumers = [PgmqConsumer(dsn, QUEUE, _CONFIG, batch_size=1, shared_listener=shared) for _ in range(CONSUMERS)]
    async with contextlib.AsyncExitStack() as stack:
        for consumer in consumers:
            await stack.enter_async_context(consumer)
        # Acknowledgements go through a connection of each consumer's own, opened at the first one.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(
                "SELECT count(*) FROM generate_series(1, %s) n, LATERAL pgmq.send(%s, jsonb_build_object('n', n))",
                (CONSUMERS, QUEUE),
            )
            for consumer in consumers:
                message = await asyncio.wait_for(anext(consumer), 60)
                await message.delete()
            cursor = await conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = ANY(%s) GROUP BY 1",
                ([listener_mod.APPLICATION_NAME, consumer_mod.APPLICATION_NAME],),
            )
            counts = {str(name): int(n) for name, n in await cursor.fetchall()}
    listening = counts.get(listener_mod.APPLICATION_NAME, 0)
    other = counts.get(consumer_mod.APPLICATION_NAME, 0)
    return {"listen": listening, "claim_and_ack": other, "total": listening + other}


# -- 2. LISTEN set-up and re-LISTEN --------------------------------------------


def _channels(n: int) -> list[str]:
    return [_CONFIG.message_ready_channel(f"ns{i:03d}") for i in range(n)]


async def _listen_and_relisten(dsn: str, n: int, many: bool) -> dict[str, float]:
    channels = _channels(n)
    # A private connection: other listeners of this process must not share the kill.
    async with PgmqNotifyListener(dsn, _CONFIG, shared_listener=False, backoff_initial=0.01) as listener:
        started = time.perf_counter()
        if many:
            await listener.listen_many(channels)
        else:
            for channel in channels:
                await listener.listen(channel)
        setup = time.perf_counter() - started
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (listener.backend_pid,))
        item = await listener.next_event(timeout=60)
        assert isinstance(item, ListenerReconnected), item
    return {"setup": setup, "relisten": item.down_seconds}


# -- 3. event throughput over 500 channels -------------------------------------


async def _drain(dsn: str, n: int, count: int) -> dict[str, float]:
    channels = _channels(n)
    tally = Tally()
    async with PgmqNotifyListener(dsn, _CONFIG, shared_listener=False, buffer_size=count + 16) as listener:
        await listener.listen_many(channels)
        reading = asyncio.create_task(tally.read(listener, count, timeout=10))
        await asyncio.sleep(0.05)
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await conn.execute(
                "SELECT count(pg_notify(c, p)) FROM unnest(%s::text[], %s::text[]) AS t(c, p)",
                ([channels[i % n] for i in range(count)], [_with_payload(i + 1) for i in range(count)]),
            )
            started = time.monotonic()
            await conn.commit()
        await reading
    seconds = tally.last - started
    return {"events_per_s": tally.received / seconds if seconds > 0 else 0.0, "received": tally.received, "sent": count}


# -- 4. cost per notification against listening sessions ------------------------


def _cpu_ticks(pids: list[int]) -> int:
    """utime + stime of server processes ``pids``, in clock ticks."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


@contextlib.contextmanager
def _idle_listeners(dsn: str, n: int) -> Iterator[list[int]]:
    conns = [psycopg.connect(dsn, autocommit=True, application_name="scale-bench-idle") for _ in range(n)]
    try:
        for conn in conns:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(_UNRELATED)))
        yield [conn.info.backend_pid for conn in conns]
    finally:
        for conn in conns:
            conn.close()


def _notify_cost(dsn: str, listening: int, count: int) -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    with (
        _idle_listeners(dsn, listening) as pids,
        psycopg.connect(server.with_async_commit(dsn), autocommit=True) as sender,
    ):
        sender_pid = sender.info.backend_pid
        channel = _CONFIG.message_ready_channel("scale")
        for _ in range(50):  # warm-up
            sender.execute("SELECT pg_notify(%s, 'x')", (channel,))
        before, sender_before = _cpu_ticks(pids), _cpu_ticks([sender_pid])
        started = time.perf_counter()
        for _ in range(count):
            sender.execute("SELECT pg_notify(%s, 'x')", (channel,))
        seconds = time.perf_counter() - started
        # Let the woken backends finish reading the queue before their CPU is read.
        time.sleep(0.2)
        spent, sender_spent = _cpu_ticks(pids) - before, _cpu_ticks([sender_pid]) - sender_before
    return {
        "per_s": count / seconds,
        "listener_cpu_us": spent / tick / count * 1e6,
        "sender_cpu_us": sender_spent / tick / count * 1e6,
    }


# -- report ------------------------------------------------------------------------


def markdown_lines(r: ScaleResults, sizes: Sizes) -> list[str]:
    """The section's tables."""
    s = SIZES[sizes.name]
    opt, shared = r.connections.get("opt-out", {}), r.connections.get("shared", {})
    lines = [
        "",
        "## Scale: connections per process, 500 channels, many listening sessions",
        "",
        f"| {CONSUMERS} consumers in one process | LISTEN connections | claim + ack connections | total |",
        "|---|---:|---:|---:|",
        _connection_row("`shared_listener=False` (as before)", opt),
        _connection_row("shared (default)", shared),
        "",
        f"| channels | LISTEN set-up | re-LISTEN after a kill (connect + LISTEN all) | burst of {s.burst:,}: events/s "
        "| received / sent |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in CHANNEL_COUNTS:
        key = str(n)
        lines.append(
            f"| {n} (`listen_many`) | {_ms(r.setup_seconds[key])} | {_ms(r.relisten_seconds[key])} "
            f"| {r.events_per_s[key]:,.0f} | {r.received[key]:,} / {r.sent[key]:,} |"
        )
    lines.append(
        f"| 500 (one `listen()` each) | {_ms(r.setup_seconds['500 single'])} "
        f"| {_ms(r.relisten_seconds['500 single'])} | | |"
    )
    lines += [
        "",
        "| idle listening sessions | NOTIFY commits/s (one sender) | their backends' CPU per notification "
        "| sender's backend CPU per notification |",
        "|---:|---:|---:|---:|",
    ]
    for n in LISTENING:
        key = str(n)
        lines.append(
            f"| {n} | {r.notify_per_s[key]:,.0f} | {r.listener_cpu_us[key]:,.1f} µs | {r.sender_cpu_us[key]:,.1f} µs |"
        )
    lines += [
        "",
        f"Medians of {s.rounds} round(s). The idle sessions LISTEN on a channel nobody notifies: what they cost is "
        "being woken for every notification of the database (PostgreSQL before 19). CPU from `/proc/<pid>/stat` "
        "(clock ticks, so small figures are coarse).",
    ]
    return lines


def _connection_row(label: str, counts: dict[str, int]) -> str:
    return f"| {label} | {counts.get('listen')} | {counts.get('claim_and_ack')} | {counts.get('total')} |"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def to_json(r: ScaleResults) -> dict[str, Any]:
    """Everything for latest.json."""
    return asdict(r)

"""Latency from the start of the send call to the event, the claim, or the read.

A separate producer process sends at a steady rate, one ``send`` per message,
and writes the send-start time (``CLOCK_MONOTONIC``, shared by every process
of the machine) into the message itself. The receiver in this process notes
when each message reaches it, so a latency is ``received - message["t"]``.

Receivers: the runtime's :class:`PgmqNotifyListener` (event) and
:class:`PgmqConsumer` (claim) against pgmq-codegen's trigger and wrapper
modes, and the consumer again against the trigger mode with ``coalesce_ms``
(most messages are sent silently there: the consumer must find them by
re-reading the queue, each claimed exactly once); PGMQ's own
``enable_notify_insert`` (0 and 250 ms throttle) followed by a ``pgmq.read``;
and a polling consumer (the runtime's ``poll_only`` mode) at 100 ms and 1 s.
Each run also counts the messages sent but never received, or received twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import QUEUE, Progress, Sizes, median, percentile
from benchmarks.receivers import ClaimReceiver, EventReceiver, NativeReceiver, Receiver
from benchmarks.server import BenchServer, Variant

_PAD = "x" * 64
# The steady rate is spread over this many connections, as an application's pool would:
# one connection cannot commit 500 times a second when each commit waits for a disk flush.
PRODUCER_CONNECTIONS = 4

# -- the producer process ------------------------------------------------------


def _send_share(
    conn: psycopg.Connection[Any], send_fn: str, rate: float, count: int, share: int, shares: int, start: float
) -> list[tuple[int, int, int]]:
    """Send messages ``share, share + shares, ...`` of ``count``, each at ``start + seq / rate``."""
    query = sql.SQL("SELECT * FROM {}(%s, %s::jsonb)").format(sql.SQL(send_fn))
    sent: list[tuple[int, int, int]] = []
    for seq in range(share, count, shares):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        started = time.monotonic_ns()
        body = json.dumps({"t": started, "seq": seq, "pad": _PAD})
        row = conn.execute(query, (QUEUE, body), prepare=True).fetchone()
        sent.append((int(row[0]) if row else -1, started, time.monotonic_ns()))
    return sent


def _producer_main(pipe: Connection) -> None:
    """Serve send commands until told to stop; answers ``[(msg_id, start_ns, end_ns), ...]``."""
    conns: dict[tuple[str, int], psycopg.Connection[Any]] = {}
    with ThreadPoolExecutor(max_workers=PRODUCER_CONNECTIONS) as pool:
        while (command := pipe.recv()) is not None:
            dsn, send_fn, rate, seconds = command
            for k in range(PRODUCER_CONNECTIONS):
                if (dsn, k) not in conns:
                    conns[(dsn, k)] = psycopg.connect(dsn, autocommit=True)
            count = max(int(rate * seconds), 1)
            start = time.monotonic() + 0.01
            futures = [
                pool.submit(_send_share, conns[(dsn, k)], send_fn, rate, count, k, PRODUCER_CONNECTIONS, start)
                for k in range(PRODUCER_CONNECTIONS)
            ]
            pipe.send(sorted(item for future in futures for item in future.result()))
    for conn in conns.values():
        conn.close()


class Producer:
    """A long-lived producer process (spawned once, reused by every run)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_producer_main, args=(child,), daemon=True)
        self._process.start()

    async def send(self, dsn: str, send_fn: str, rate: float, seconds: float) -> list[tuple[int, int, int]]:
        """Send ``rate * seconds`` messages at a steady rate; returns (msg_id, start_ns, end_ns) each."""
        self._pipe.send((dsn, send_fn, rate, seconds))
        result: list[tuple[int, int, int]] = await asyncio.to_thread(self._pipe.recv)
        return result

    def close(self) -> None:
        """Stop the process."""
        with contextlib.suppress(OSError):
            self._pipe.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


@dataclass(frozen=True)
class LatencyVariant:
    """One way of getting a message to a receiver."""

    key: str
    label: str
    variant: Variant
    make: Callable[[str], Receiver]
    # How long to wait after the last send for stragglers (s). Generous: the wait ends as
    # soon as every message is in, so only a real loss (or PGMQ's throttle) waits it out.
    settle: float = 2.0
    # How long to keep receiving once every message is in, so that a late second claim is counted.
    linger: float = 0.0

    @property
    def must_receive_all(self) -> bool:
        """Whether a message not received counts as lost (PGMQ's throttled notify may skip some)."""
        return self.key != "native250-read"


def latency_variants() -> tuple[LatencyVariant, ...]:
    """Every receiver measured, in run order."""
    t, w, p, c = server.TRIGGER, server.WRAPPER, server.PLAIN, server.COALESCE
    n0, n250 = server.NATIVE0, server.NATIVE250
    # Past the window and the consumer's re-reads of it.
    window = server.COALESCE_MS / 1000
    return (
        LatencyVariant("trigger-event", "codegen trigger → listener event", t, lambda d: EventReceiver(d, t)),
        LatencyVariant("trigger-claim", "codegen trigger → consumer claim", t, lambda d: ClaimReceiver(d, t)),
        LatencyVariant(
            "trigger-claim-async",
            "codegen trigger → consumer claim, consumer synchronous_commit=off",
            t,
            lambda d: ClaimReceiver(d, t, async_commit=True),
        ),
        LatencyVariant(
            "coalesce20-claim",
            f"codegen trigger coalesce_ms={server.COALESCE_MS} → consumer claim",
            c,
            lambda d: ClaimReceiver(d, c),
            linger=5 * window,
        ),
        LatencyVariant("wrapper-event", "codegen wrapper → listener event", w, lambda d: EventReceiver(d, w)),
        LatencyVariant("wrapper-claim", "codegen wrapper → consumer claim", w, lambda d: ClaimReceiver(d, w)),
        LatencyVariant("native0-read", "PGMQ notify 0 ms → read", n0, lambda d: NativeReceiver(d, n0)),
        LatencyVariant("native250-read", "PGMQ notify 250 ms → read", n250, lambda d: NativeReceiver(d, n250), 0.8),
        LatencyVariant("poll100", "polling every 100 ms", p, lambda d: ClaimReceiver(d, p, 0.1)),
        LatencyVariant("poll1000", "polling every 1 s", p, lambda d: ClaimReceiver(d, p, 1.0), 3.0),
    )


# -- runs and summaries --------------------------------------------------------


@dataclass
class LatencyRun:
    """One variant at one rate for one round."""

    key: str
    rate: int
    round: int
    sent: int
    received: int
    duplicates: int
    gaps: int
    latencies_ms: list[float]
    send_ms: list[float]
    after_return_ms: list[float]
    extra: dict[str, int]

    @property
    def missing(self) -> int:
        """Messages sent but never received."""
        return self.sent - self.received


async def measure(
    bench: BenchServer, producer: Producer, lv: LatencyVariant, rate: int, seconds: float, round_no: int
) -> LatencyRun:
    """Empty the queue, start the receiver, send at ``rate`` for ``seconds``, wait for stragglers."""
    dsn = bench.dsn(lv.variant)
    server.reset_queue(dsn)
    receiver = lv.make(dsn)
    await receiver.start()
    try:
        sent = await producer.send(dsn, lv.variant.send_fn, rate, seconds)
        ids = {msg_id for msg_id, _, _ in sent}
        deadline = time.monotonic() + lv.settle
        while time.monotonic() < deadline and not ids <= receiver.receipts.arrived.keys():
            await asyncio.sleep(0.01)
        await asyncio.sleep(lv.linger)
    finally:
        await receiver.stop()
    got = receiver.receipts
    starts = {msg_id: begun for msg_id, begun, _ in sent}
    latencies = sorted(
        (arrived - got.started.get(msg_id, starts.get(msg_id, arrived))) / 1e6
        for msg_id, arrived in got.arrived.items()
        if msg_id in starts
    )
    return LatencyRun(
        key=lv.key,
        rate=rate,
        round=round_no,
        sent=len(ids),
        received=len(ids & got.arrived.keys()),
        duplicates=got.duplicates,
        gaps=got.gaps,
        latencies_ms=latencies,
        send_ms=sorted((end - begun) / 1e6 for _, begun, end in sent),
        after_return_ms=sorted((got.arrived[i] - end) / 1e6 for i, _, end in sent if i in got.arrived),
        extra=dict(got.extra),
    )


def run_count(sizes: Sizes) -> int:
    """How many latency runs :func:`run` makes (for the progress bar)."""
    return sizes.latency_rounds * len(sizes.latency_rates) * len(latency_variants())


async def run_async(bench: BenchServer, sizes: Sizes, progress: Progress) -> list[LatencyRun]:
    """Every receiver at every rate, rounds interleaved (A B C ..., A B C ...)."""
    producer = Producer()
    runs: list[LatencyRun] = []
    try:
        for rate, seconds in sizes.latency_rates:
            for round_no in range(sizes.latency_rounds):
                for lv in latency_variants():
                    progress.step(f"latency {rate} msg/s round {round_no + 1}/{sizes.latency_rounds}: {lv.key}")
                    runs.append(await measure(bench, producer, lv, rate, seconds, round_no))
    finally:
        producer.close()
    return runs


def run(bench: BenchServer, sizes: Sizes, progress: Progress) -> list[LatencyRun]:
    """Synchronous entry: see :func:`run_async`."""
    return asyncio.run(run_async(bench, sizes, progress))


@dataclass
class LatencySummary:
    """Pooled over rounds: percentiles of one receiver at one rate."""

    key: str
    label: str
    rate: int
    samples: int
    p50: float
    p95: float
    p99: float
    max: float
    send_p50: float
    after_return_p50: float
    sent: int
    received: int
    missing: int
    duplicates: int
    gaps: int
    must_receive_all: bool
    extra: dict[str, int]
    cdf: list[tuple[float, float]]


def summarize(runs: list[LatencyRun]) -> list[LatencySummary]:
    """Pool every round of each (receiver, rate) and take percentiles."""
    out: list[LatencySummary] = []
    rates = list(dict.fromkeys(r.rate for r in runs))
    for rate in rates:
        for lv in latency_variants():
            own = [r for r in runs if r.key == lv.key and r.rate == rate]
            if not own:
                continue
            values = sorted(v for r in own for v in r.latencies_ms)
            extra: dict[str, int] = {}
            for r in own:
                for name, count in r.extra.items():
                    extra[name] = extra.get(name, 0) + count
            out.append(
                LatencySummary(
                    key=lv.key,
                    label=lv.label,
                    rate=rate,
                    samples=len(values),
                    p50=percentile(values, 50),
                    p95=percentile(values, 95),
                    p99=percentile(values, 99),
                    max=values[-1] if values else float("nan"),
                    send_p50=median([v for r in own for v in r.send_ms]),
                    after_return_p50=median([v for r in own for v in r.after_return_ms]),
                    sent=sum(r.sent for r in own),
                    received=sum(r.received for r in own),
                    missing=sum(r.missing for r in own),
                    duplicates=sum(r.duplicates for r in own),
                    gaps=sum(r.gaps for r in own),
                    must_receive_all=lv.must_receive_all,
                    extra=extra,
                    cdf=_cdf(values),
                )
            )
    return out


def _cdf(values: list[float], points: int = 200) -> list[tuple[float, float]]:
    """A compact CDF: (latency ms, fraction) at up to ``points`` evenly spaced ranks."""
    if not values:
        return []
    n = len(values)
    ranks = sorted({min(round(i * (n - 1) / (points - 1)), n - 1) for i in range(points)})
    return [(round(values[i], 4), round((i + 1) / n, 5)) for i in ranks]


def to_json(runs: list[LatencyRun], summaries: list[LatencySummary]) -> dict[str, Any]:
    """Per-run counts and per-summary percentiles and CDF (not the raw samples), for latest.json."""
    return {
        "runs": [
            {k: v for k, v in asdict(r).items() if k not in ("latencies_ms", "send_ms", "after_return_ms")}
            for r in runs
        ],
        "summary": [asdict(s) for s in summaries],
    }

"""The runtime's own speed: parsing events, and how fast a listener drains a burst.

Parse: :func:`pgmq_runtime.events.parse_event` on each kind of payload, in a
tight loop, beside ``json.loads`` alone on the same payloads (the floor it had
when it decoded with the json module), pass by pass.

Drain: one transaction sends a burst of distinct ``message_with_payload``
notifications; the rate is the burst size over the time from its commit to the
last event out of the listener's iterator. :class:`PgmqNotifyListener` is
measured with its default buffer (so a burst larger than the buffer shows up as
dropped notifications and an overflow marker) and with a buffer as large as the
burst, beside a bare psycopg ``notifies()`` loop that does not parse.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import NAMESPACE, QUEUE, Progress, Sizes, median
from benchmarks.server import BenchServer
from pgmq_runtime.events import ListenerOverflow, parse_event
from pgmq_runtime.listener import PgmqNotifyListener

_CONFIG = server.TRIGGER_CONFIG
_CHANNEL = _CONFIG.message_ready_channel(NAMESPACE)
_READY_AT = "2026-01-01T00:00:00.000000Z"


def _with_payload(msg_id: int) -> str:
    return json.dumps(
        {
            "event_type": "message_with_payload",
            "msg_id": msg_id,
            "queue_name": QUEUE,
            "namespace": NAMESPACE,
            "message": {"order_id": msg_id, "customer": "benchmark", "amount": 99.5, "items": ["a", "b", "c"]},
            "headers": None,
            "ready_at": _READY_AT,
            "delay_seconds": 0,
            "metadata": {"source": "trigger"},
        }
    )


def _signal(msg_id: int) -> str:
    return json.dumps(
        {
            "event_type": "message_ready",
            "msg_id": msg_id,
            "queue_name": QUEUE,
            "namespace": NAMESPACE,
            "ready_at": _READY_AT,
            "delay_seconds": 0,
            "payload_omitted": True,
            "metadata": {"source": "trigger"},
        }
    )


def _batch(msg_id: int) -> str:
    return json.dumps(
        {
            "event_type": "batch_ready",
            "msg_ids": list(range(msg_id, msg_id + 100)),
            "queue_name": QUEUE,
            "namespace": NAMESPACE,
            "message_count": 100,
            "ready_at": _READY_AT,
            "delay_seconds": 0,
            "metadata": {"source": "trigger"},
        }
    )


PAYLOADS: tuple[tuple[str, str, Callable[[int], str]], ...] = (
    ("message_with_payload", "message_with_payload (1 message, ~300 B)", _with_payload),
    ("message_ready", "message_ready (signal)", _signal),
    ("batch_ready", "batch_ready (100 ids)", _batch),
)


PARSE_PASSES = 5


@dataclass
class ParseResult:
    """Events parsed per second for one payload kind (median of the passes).

    ``ratio`` is the median of the per-pass ratios parse_event / json.loads:
    each pass times both on the same payloads back to back, so a slow moment
    of the machine affects both sides of a ratio.
    """

    kind: str
    label: str
    events_per_s: float
    json_only_per_s: float
    invalid: int
    ratio: float = 0.0
    payload_bytes: int = 0


def parse_throughput(sizes: Sizes, progress: Progress) -> list[ParseResult]:
    """parse_event over ``sizes.parse_events`` distinct payloads of each kind."""
    out: list[ParseResult] = []
    for kind, label, build in PAYLOADS:
        progress.step(f"runtime: parse {kind}")
        payloads = [build(i + 1) for i in range(sizes.parse_events)]
        parse_rates: list[float] = []
        json_rates: list[float] = []
        for _ in range(PARSE_PASSES):
            started = time.perf_counter()
            for payload in payloads:
                json.loads(payload)
            json_rates.append(len(payloads) / (time.perf_counter() - started))
            # Both loops drop each result at once: keeping 30,000 results alive would
            # time the garbage collector walking them, not the parser.
            started = time.perf_counter()
            for payload in payloads:
                parse_event(_CHANNEL, payload)
            parse_rates.append(len(payloads) / (time.perf_counter() - started))
        invalid = sum(1 for payload in payloads if parse_event(_CHANNEL, payload).event_type == "invalid")
        ratios = [p / j for p, j in zip(parse_rates, json_rates, strict=True)]
        size = len(payloads[0].encode())
        out.append(ParseResult(kind, label, median(parse_rates), median(json_rates), invalid, median(ratios), size))
    return out


@dataclass
class DrainResult:
    """One burst drained by one reader."""

    reader: str
    round: int
    sent: int
    received: int
    dropped: int
    seconds: float
    events_per_s: float


async def _burst(dsn: str, count: int) -> float:
    """Send ``count`` distinct notifications in one transaction; returns the monotonic time of COMMIT."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        query = sql.SQL("SELECT count(pg_notify({}, p)) FROM unnest(%s::text[]) AS p").format(sql.Literal(_CHANNEL))
        await conn.execute(query, ([_with_payload(i + 1) for i in range(count)],))
        started = time.monotonic()
        await conn.commit()
    return started


@dataclass
class Tally:
    """What a listener delivered in a burst: events, notifications dropped on overflow, when the last came."""

    received: int = 0
    dropped: int = 0
    last: float = 0.0

    async def read(self, listener: PgmqNotifyListener, count: int, timeout: float) -> None:
        """Read until ``count`` notifications are accounted for, or none came for ``timeout`` seconds."""
        while self.received + self.dropped < count:
            item = await listener.next_event(timeout=timeout)
            if item is None:
                return
            if isinstance(item, ListenerOverflow):
                self.dropped += item.dropped
            else:
                self.received += 1
            self.last = time.monotonic()


async def _drain_listener(dsn: str, count: int, buffer_size: int | None, reader: str, round_no: int) -> DrainResult:
    options: dict[str, Any] = {} if buffer_size is None else {"buffer_size": buffer_size}
    tally = Tally()
    async with PgmqNotifyListener(dsn, _CONFIG, **options) as listener:
        await listener.listen(_CHANNEL)
        reading = asyncio.create_task(tally.read(listener, count, timeout=5))
        await asyncio.sleep(0.05)
        started = await _burst(dsn, count)
        await reading
    seconds = tally.last - started
    rate = tally.received / seconds if seconds > 0 else 0.0
    return DrainResult(reader, round_no, count, tally.received, tally.dropped, seconds, rate)


async def _drain_raw(dsn: str, count: int, round_no: int) -> DrainResult:
    received = 0
    last = 0.0
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(_CHANNEL)))

        async def read() -> None:
            nonlocal received, last
            async for _ in conn.notifies(timeout=5, stop_after=count):
                received += 1
                last = time.monotonic()

        reading = asyncio.create_task(read())
        await asyncio.sleep(0.05)
        started = await _burst(dsn, count)
        await reading
    seconds = last - started
    return DrainResult("raw", round_no, count, received, 0, seconds, received / seconds if seconds > 0 else 0.0)


DRAIN_READERS = (
    ("raw", "psycopg notifies(), no parsing"),
    ("listener-default", "PgmqNotifyListener, default buffer"),
    ("listener-large", "PgmqNotifyListener, buffer = burst"),
)


def drain_count(sizes: Sizes) -> int:
    """How many bursts :func:`drain_rate` sends."""
    return sizes.drain_rounds * len(DRAIN_READERS)


def drain_rate(bench: BenchServer, sizes: Sizes, progress: Progress) -> list[DrainResult]:
    """Each reader drains ``sizes.drain_notifications`` notifications, ``sizes.drain_rounds`` times."""
    dsn = bench.dsn(server.TRIGGER)
    n = sizes.drain_notifications
    results: list[DrainResult] = []
    for round_no in range(sizes.drain_rounds):
        # Each round starts with another reader, so none is always first after a pause.
        shift = round_no % len(DRAIN_READERS)
        for reader, _ in DRAIN_READERS[shift:] + DRAIN_READERS[:shift]:
            progress.step(f"runtime: drain a burst of {n} ({reader})")
            if reader == "raw":
                results.append(asyncio.run(_drain_raw(dsn, n, round_no)))
            elif reader == "listener-default":
                results.append(asyncio.run(_drain_listener(dsn, n, None, reader, round_no)))
            else:
                results.append(asyncio.run(_drain_listener(dsn, n, n + 16, reader, round_no)))
    return results


@dataclass
class DrainSummary:
    """Median drain rate of one reader.

    ``ratio`` is the median over rounds of this reader's rate over the bare
    ``notifies()`` rate of the same round (1.0 for that reader itself).
    """

    reader: str
    label: str
    events_per_s: float
    sent: int
    received: int
    dropped: int
    ratio: float = math.nan


def summarize_drain(results: list[DrainResult]) -> list[DrainSummary]:
    """Median over rounds per reader."""
    out: list[DrainSummary] = []
    raw = {r.round: r.events_per_s for r in results if r.reader == "raw"}
    for reader, label in DRAIN_READERS:
        own = [r for r in results if r.reader == reader]
        if own:
            ratios = [r.events_per_s / raw[r.round] for r in own if raw.get(r.round)]
            out.append(
                DrainSummary(
                    reader,
                    label,
                    median([r.events_per_s for r in own]),
                    sum(r.sent for r in own),
                    sum(r.received for r in own),
                    sum(r.dropped for r in own),
                    median(ratios),
                )
            )
    return out


def to_json(parse: list[ParseResult], drains: list[DrainResult], summary: list[DrainSummary]) -> dict[str, Any]:
    """Everything for latest.json."""
    return {
        "parse": [asdict(p) for p in parse],
        "drain": [asdict(d) for d in drains],
        "drain_summary": [asdict(s) for s in summary],
    }

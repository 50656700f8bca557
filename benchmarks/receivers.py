"""Receivers for the latency phase: each notes when every message reaches it.

A receiver is started before the producer and stopped after it; it fills a
:class:`Receipts` with the arrival time of each msg_id and the send-start time
the message carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import NAMESPACE, QUEUE
from benchmarks.server import Variant
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.events import BatchReadyEvent, ListenerGap, MessageReadyEvent, MessageWithPayloadEvent
from pgmq_runtime.listener import PgmqNotifyListener

# Messages stay claimed for the whole run: nothing is redelivered while we measure.
VT = 600


@dataclass
class Receipts:
    """What a receiver got: arrival time by msg_id, and the send start carried by the message."""

    arrived: dict[int, int] = field(default_factory=dict)
    started: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    gaps: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def note(self, msg_id: int, message: Any, now: int | None = None) -> None:
        """Record one message (the first arrival counts)."""
        now = time.monotonic_ns() if now is None else now
        if msg_id in self.arrived:
            self.duplicates += 1
            return
        self.arrived[msg_id] = now
        if isinstance(message, dict) and isinstance(message.get("t"), int):
            self.started[msg_id] = message["t"]


class Receiver(Protocol):
    """Started before the producer, stopped after it; fills ``receipts``."""

    receipts: Receipts

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EventReceiver:
    """The runtime's listener: latency to a ``message_with_payload`` event."""

    def __init__(self, dsn: str, variant: Variant) -> None:
        assert variant.config is not None
        self.listener = PgmqNotifyListener(dsn, variant.config, buffer_size=100_000)
        self.receipts = Receipts()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.listener.connect()
        await self.listener.listen_message_ready_for_namespace(NAMESPACE)
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        async for item in self.listener:
            now = time.monotonic_ns()
            if isinstance(item, MessageWithPayloadEvent):
                self.receipts.note(item.msg_id, item.message, now)
            elif isinstance(item, ListenerGap):
                self.receipts.gaps += 1
            elif isinstance(item, (MessageReadyEvent, BatchReadyEvent)):
                for msg_id in item.msg_ids:
                    self.receipts.note(msg_id, None, now)

    async def stop(self) -> None:
        await self.listener.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)


class ClaimReceiver:
    """The runtime's consumer: latency to the message being claimed (LISTEN, or polling only)."""

    def __init__(
        self, dsn: str, variant: Variant, poll_interval: float | None = None, async_commit: bool = False
    ) -> None:
        poll_only = poll_interval is not None
        self.consumer = PgmqConsumer(
            server.with_async_commit(dsn) if async_commit else dsn,
            QUEUE,
            variant.config or server.TRIGGER_CONFIG,
            visibility_timeout=VT,
            poll_only=poll_only,
            poll_interval=poll_interval,
        )
        self.receipts = Receipts()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        async for message in self.consumer:
            self.receipts.note(message.msg_id, message.message)

    async def stop(self) -> None:
        await self.consumer.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        stats = self.consumer.stats
        # Every counter (claimed from events, by catch-up, by re-checks after coalesced events, ...).
        self.receipts.extra = {name: value for name, value in asdict(stats).items() if isinstance(value, int)}
        self.receipts.gaps = stats.gaps


class NativeReceiver:
    """PGMQ's ``enable_notify_insert``: on each (payload-less) notification, read until empty."""

    def __init__(self, dsn: str, variant: Variant) -> None:
        self.dsn = dsn
        self.channel = variant.native_channel
        self.receipts = Receipts()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._listen: psycopg.AsyncConnection[Any] | None = None
        self._read: psycopg.AsyncConnection[Any] | None = None

    async def start(self) -> None:
        self._listen = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self._read = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        await self._listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        assert self._listen is not None and self._read is not None
        notified = 0
        while not self._stopping:
            woke = False
            async for _ in self._listen.notifies(timeout=0.1):
                notified += 1
                woke = True
                break
            if woke:
                await self._drain(self._read)
        self.receipts.extra = {"notifications": notified}

    async def _drain(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            cursor = await conn.execute(
                "SELECT msg_id, message FROM pgmq.read(%s, %s, %s)", (QUEUE, VT, 1000), prepare=True
            )
            rows = await cursor.fetchall()
            now = time.monotonic_ns()
            for msg_id, message in rows:
                self.receipts.note(int(msg_id), message, now)
            if len(rows) < 1000:
                return

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        for conn in (self._listen, self._read):
            if conn is not None:
                await conn.close()

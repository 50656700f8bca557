"""An async LISTEN connection that survives drops and says when it may have missed events.

One dedicated autocommit psycopg connection carries every channel. A
background task reads ``(channel, payload)`` notifications, hands them to
:func:`~pgmq_runtime.events.parse_event` and puts the result in a bounded
buffer. When the connection is lost (or a liveness query finds it half-open),
the task reconnects with capped, jittered exponential backoff, LISTENs on every
channel again and queues a :class:`~pgmq_runtime.events.ListenerReconnected`
marker. When the buffer is full, new notifications are dropped and a
:class:`~pgmq_runtime.events.ListenerOverflow` marker takes their place, so the
socket is always drained and PostgreSQL's notification queue never backs up
behind a slow reader. Either marker means: read the queues to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from pgmq_runtime import db, notify_reader
from pgmq_runtime.config import CHANNEL_MAX_BYTES, PgmqNotifyConfig

# Re-exported: they lived here before the connection layer.
from pgmq_runtime.db import backoff_delay as backoff_delay
from pgmq_runtime.db import connect_kwargs as connect_kwargs
from pgmq_runtime.errors import ChannelNameError, ConnectionLostError, ListenerError, PgmqNotifyError, describe_error
from pgmq_runtime.events import (
    InvalidEvent,
    ListenerItem,
    ListenerOverflow,
    ListenerReconnected,
    parse_event,
)
from pgmq_runtime.install_check import check_and_log_async
from pgmq_runtime.queries import QUERIES

if TYPE_CHECKING:
    from pgmq_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

APPLICATION_NAME = "pgmq-runtime-listener"
# Seconds between two warnings about invalid notifications (the first is logged at once).
INVALID_WARNING_INTERVAL = 60.0


def validate_channel(channel: str) -> str:
    """Return ``channel`` if PostgreSQL can LISTEN on it unchanged, else raise.

    LISTEN truncates a name over 63 bytes with only a NOTICE and then listens
    on a different channel, so the length is checked here, in bytes.
    """
    if not channel:
        raise ChannelNameError("a channel name must not be empty")
    if "\x00" in channel:
        raise ChannelNameError(f"channel name {channel!r} holds a NUL character")
    size = len(channel.encode())
    if size > CHANNEL_MAX_BYTES:
        raise ChannelNameError(
            f"channel name {channel!r} is {size} bytes; PostgreSQL takes at most {CHANNEL_MAX_BYTES}"
        )
    return channel


@dataclass(frozen=True, slots=True)
class ListenerStats:
    """A snapshot of a listener's counters.

    ``events`` and ``invalid_events`` count every notification received,
    ``dropped`` those of them discarded because the buffer was full.
    """

    events: int
    invalid_events: int
    reconnects: int
    dropped: int
    last_event_at: datetime | None
    connected: bool
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SelfCheckResult:
    """Outcome of :meth:`PgmqNotifyListener.self_check`."""

    ok: bool
    channel: str
    waited_seconds: float
    detail: str


class EventSource(Protocol):
    """What :class:`PgmqNotifyListener` and :class:`pgmq_runtime.testing.FakeListener` share.

    Type your event-handling code against this protocol to run it on either.
    """

    @property
    def config(self) -> PgmqNotifyConfig: ...

    @property
    def closed(self) -> bool: ...

    async def listen(self, channel: str) -> None: ...

    async def next_event(self, timeout: float | None = None) -> ListenerItem | None: ...

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult: ...

    async def close(self) -> None: ...


class _Dropped:
    """Buffer placeholder counting dropped notifications; becomes a ListenerOverflow."""

    def __init__(self) -> None:
        self.count = 1
        self.since = datetime.now(UTC)


class PgmqNotifyListener:
    """LISTEN on pgmq-codegen channels and iterate over typed events and gap markers.

    Use as ``async with PgmqNotifyListener(dsn, config) as listener:``, call the
    ``listen_*`` methods, then ``async for item in listener``. Items are
    events, :class:`~pgmq_runtime.events.InvalidEvent` values and
    :class:`~pgmq_runtime.events.ListenerGap` markers.

    Options: ``buffer_size`` items are buffered before notifications are
    dropped (and a ListenerOverflow marker queued); after ``liveness_interval``
    seconds without a notification a ``SELECT 1`` must answer within
    ``liveness_timeout`` seconds or the connection is replaced; reconnect
    attempts wait ``backoff_initial`` seconds, doubling up to ``backoff_max``,
    jittered; ``read_window`` bounds how long a ``listen()`` call made while
    iterating waits for the connection; ``configure`` is awaited on every new
    connection (see :class:`pgmq_runtime.db.Connector`); ``metrics`` (a
    :class:`pgmq_runtime.metrics.RuntimeMetrics`) counts this listener.
    """

    def __init__(
        self,
        dsn: str,
        config: PgmqNotifyConfig | None = None,
        *,
        buffer_size: int = 1000,
        liveness_interval: float = 5.0,
        liveness_timeout: float = 5.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        connect_timeout: float = 10.0,
        read_window: float = 0.25,
        configure: db.Configure | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self.dsn = dsn
        self.config = config or PgmqNotifyConfig()
        self.buffer_size = buffer_size
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._connector = db.Connector(
            dsn, application_name=APPLICATION_NAME, connect_timeout=connect_timeout, configure=configure
        )
        self._window = min(read_window, liveness_interval)
        self._channels: set[str] = set()
        self._probes: dict[str, asyncio.Future[None]] = {}
        self._buffer: deque[ListenerItem | _Dropped] = deque()
        self._ready = asyncio.Event()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self._started = False
        self._last_alive = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()
        self._events = self._invalid = self._reconnects = self._dropped = 0
        self._last_event_time: float | None = None
        self._invalid_warn_at = 0.0
        self._invalid_unlogged = 0
        self._down_reason = ""
        self._last_error = ""
        self._down_since = 0.0
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_listener(self)

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> PgmqNotifyListener:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and LISTEN on the channels added so far.

        Raises :class:`~pgmq_runtime.errors.ListenerError` if the server cannot
        be reached; later drops are handled by reconnecting.
        """
        if self._conn is not None or self._started:
            return
        try:
            conn = await self._open()
            await check_and_log_async(conn, self.config, "listener")
            await self._listen_all(conn)
        except PgmqNotifyError as exc:
            raise ListenerError(f"cannot connect the listener: {describe_error(exc)}") from exc
        self._conn = conn
        self._last_alive = time.monotonic()
        log.info("listener connected (backend pid %s, %d channel(s))", conn.info.backend_pid, len(self._channels))

    async def close(self) -> None:
        """Stop reading and close the connection; iteration then ends."""
        self._closed = True
        self._ready.set()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        conn, self._conn = self._conn, None
        if conn is not None:
            await db.close_quietly(conn)
        if self._started:
            log.info("listener stopped after %d event(s), %d reconnect(s)", self._events, self._reconnects)
        if self.metrics is not None:
            self.metrics.retire(self)
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # -- channels ----------------------------------------------------------

    @property
    def channels(self) -> frozenset[str]:
        """The channels listened to (and listened to again after each reconnect)."""
        return frozenset(self._channels)

    async def listen(self, channel: str) -> None:
        """LISTEN on ``channel`` (quoted, case kept) now and after every reconnect."""
        validate_channel(channel)
        if channel in self._channels:
            return
        self._channels.add(channel)
        conn = self._conn
        if conn is not None:
            # A failure here is a dropped connection: the reader reconnects and
            # LISTENs on every channel in the set, this one included.
            with contextlib.suppress(ConnectionLostError):
                await self._run_on(conn, "listen", channel=channel)

    async def unlisten(self, channel: str) -> None:
        """Stop listening on ``channel``."""
        self._channels.discard(channel)
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(ConnectionLostError):
                await self._run_on(conn, "unlisten", channel=channel)

    async def listen_queue_created(self) -> None:
        """Listen for ``queue_created`` events."""
        await self.listen(self.config.queue_created_channel())

    async def listen_message_ready_for_namespace(self, namespace: str) -> None:
        """Listen for the message events of the queues in ``namespace``."""
        await self.listen(self.config.message_ready_channel(namespace))

    async def listen_message_ready_global(self) -> None:
        """Listen on the global channel, which carries every queue's message events.

        It only carries events when the config's ``global_channel`` is true.
        """
        await self.listen(self.config.global_message_ready_channel())

    async def listen_default_namespaces(self) -> None:
        """Listen for the message events of the config's ``default_namespace``."""
        await self.listen_message_ready_for_namespace(self.config.default_namespace)

    # -- reading -----------------------------------------------------------

    def __aiter__(self) -> PgmqNotifyListener:
        return self

    async def __anext__(self) -> ListenerItem:
        while True:
            item = await self.next_event()
            if item is not None:
                return item
            if self._closed:
                raise StopAsyncIteration

    async def next_event(self, timeout: float | None = None) -> ListenerItem | None:
        """The next event or gap marker; None if ``timeout`` seconds pass or the listener closes."""
        if self._buffer:  # the hot path: something is buffered, so the reader already runs
            return _materialize(self._buffer.popleft())
        self._start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._buffer:
                return _materialize(self._buffer.popleft())
            if self._failure is not None:
                raise ListenerError(f"the listener stopped: {describe_error(self._failure)}") from self._failure
            if self._closed:
                return None
            self._ready.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                return None

    @property
    def stats(self) -> ListenerStats:
        """Counters: events, invalid events, reconnects, dropped notifications, last event time."""
        return ListenerStats(
            events=self._events,
            invalid_events=self._invalid,
            reconnects=self._reconnects,
            dropped=self._dropped,
            last_event_at=None if self._last_event_time is None else datetime.fromtimestamp(self._last_event_time, UTC),
            connected=self._conn is not None,
            channels=tuple(sorted(self._channels)),
        )

    @property
    def last_error(self) -> str:
        """Why the latest reconnect attempt failed (empty if none has failed)."""
        return self._last_error

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection, when connected."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """Send a probe NOTIFY from a second connection and report whether it arrived.

        A connection pooler in transaction mode (PgBouncer) or a read replica
        accepts LISTEN but never delivers: call this at start-up to find out.
        The probe is never yielded as an event.
        """
        self._start()
        channel = f"pgmq_runtime_probe_{os.getpid()}_{secrets.token_hex(6)}"
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes[channel] = arrived
        started = time.monotonic()
        try:
            conn = self._conn
            if conn is None:
                return SelfCheckResult(False, channel, 0.0, "the listener is not connected")
            await self._run_on(conn, "listen", channel=channel)
            sender = await self._open(listening=False)
            try:
                await db.run(sender, QUERIES["notify"], {"channel": channel, "payload": "probe"}, schema="")
            finally:
                await db.close_quietly(sender)
            await asyncio.wait_for(asyncio.shield(arrived), timeout)
            waited = time.monotonic() - started
            return SelfCheckResult(True, channel, waited, "the probe notification arrived")
        except TimeoutError:
            return SelfCheckResult(
                False,
                channel,
                time.monotonic() - started,
                f"no probe notification within {timeout:g} s: LISTEN/NOTIFY does not reach this "
                "connection (a pooler in transaction mode, or a read replica?)",
            )
        except ConnectionLostError as exc:
            return SelfCheckResult(False, channel, time.monotonic() - started, describe_error(exc))
        finally:
            self._probes.pop(channel, None)
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(ConnectionLostError):
                    await self._run_on(conn, "unlisten", channel=channel)

    # -- internals ---------------------------------------------------------

    def _start(self) -> None:
        if self._started or self._closed:
            return
        if self._conn is None:
            raise ListenerError("the listener is not connected: use 'async with' or call connect() first")
        self._started = True
        self._reader = asyncio.get_running_loop().create_task(self._run(), name="pgmq-listener")

    async def _open(self, listening: bool = True) -> psycopg.AsyncConnection[Any]:
        conn = await self._connector.connect()
        if listening:
            # Only on the LISTEN connection: the probe's sender may share a server session (PgBouncer).
            notify_reader.attach(conn, self._on_notify)
        return conn

    async def _run_on(self, conn: psycopg.AsyncConnection[Any], name: str, **identifiers: str) -> None:
        await db.run(conn, QUERIES[name], schema=self.config.schema, identifiers=identifiers)

    async def _listen_all(self, conn: psycopg.AsyncConnection[Any]) -> None:
        done: set[str] = set()
        # Channels added while we await are picked up by the next round.
        while todo := (self._channels | set(self._probes)) - done:
            for channel in sorted(todo):
                await self._run_on(conn, "listen", channel=channel)
                done.add(channel)

    async def _run(self) -> None:
        try:
            conn = self._conn
            while not self._closed:
                if conn is None:
                    conn = await self._reconnect()
                    if conn is None:
                        return
                try:
                    with db.translating():
                        await self._pump(conn)
                except ConnectionLostError as exc:
                    self._conn = None
                    self._abandon(conn)
                    conn = None
                    self._down_reason = describe_error(exc)
                    self._down_since = time.monotonic()
                    log.warning("listener connection lost (%s); reconnecting", self._down_reason)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _pump(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while not self._closed:
            received = await notify_reader.read_notifications(conn, self._window, self._on_notify)
            now = time.monotonic()
            if received:
                self._last_alive = now
            elif now - self._last_alive >= self.liveness_interval:
                await self._ping(conn)
                self._last_alive = time.monotonic()

    async def _ping(self, conn: psycopg.AsyncConnection[Any]) -> None:
        probe = asyncio.ensure_future(db.run(conn, QUERIES["ping"], schema=self.config.schema))
        done, _ = await asyncio.wait({probe}, timeout=self.liveness_timeout)
        if not done:
            # A half-open connection: don't wait for psycopg's cancel dance here.
            probe.cancel()
            self._background_task(_reap(probe))
            raise ConnectionLostError(f"liveness query got no answer within {self.liveness_timeout:g} s")
        probe.result()

    async def _reconnect(self) -> psycopg.AsyncConnection[Any] | None:
        attempt = 0
        while not self._closed:
            attempt += 1
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._open()
                await self._listen_all(conn)
            except ConnectionLostError as exc:
                if conn is not None:
                    self._abandon(conn)
                self._last_error = describe_error(exc)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("listener reconnect attempt %d failed: %s", attempt, self._last_error)
                await asyncio.sleep(backoff_delay(attempt, self.backoff_initial, self.backoff_max))
                continue
            self._conn = conn
            self._last_alive = time.monotonic()
            self._reconnects += 1
            gap = ListenerReconnected(
                at=datetime.now(UTC),
                reason=self._down_reason,
                down_seconds=time.monotonic() - self._down_since,
                attempts=attempt,
            )
            log.warning(
                "listener reconnected after %.1f s and %d attempt(s) (was: %s); events in between may be lost",
                gap.down_seconds,
                attempt,
                gap.reason,
            )
            self._buffer.append(gap)
            self._ready.set()
            return conn
        return None

    def _on_notify(self, channel: str, payload: str) -> None:
        # Once per notification: keep it lean (plain checks, a float for the time).
        if self._probes:
            probe = self._probes.get(channel)
            if probe is not None:
                if not probe.done():
                    probe.set_result(None)
                return
        event = parse_event(channel, payload)
        if type(event) is InvalidEvent:
            self._invalid += 1
            self._warn_invalid(event)
        else:
            self._events += 1
        self._last_event_time = time.time()
        buffer = self._buffer
        if len(buffer) < self.buffer_size:
            buffer.append(event)
        else:
            self._dropped += 1
            tail = buffer[-1] if buffer else None
            if type(tail) is _Dropped:
                tail.count += 1
            else:
                log.warning("listener buffer full (%d items): dropping notifications until read", self.buffer_size)
                buffer.append(_Dropped())
        self._ready.set()

    def _warn_invalid(self, event: InvalidEvent) -> None:
        """A WARNING for the first invalid notification, then at most one a minute, with the count since."""
        now = time.monotonic()
        if now < self._invalid_warn_at:
            self._invalid_unlogged += 1
            return
        since = f" ({self._invalid_unlogged} more since the last warning)" if self._invalid_unlogged else ""
        log.warning("invalid notification on %s: %s%s; raw: %.200r", event.channel, event.reason, since, event.raw)
        self._invalid_warn_at = now + INVALID_WARNING_INTERVAL
        self._invalid_unlogged = 0

    def _abandon(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._background_task(db.close_quietly(conn))

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _materialize(item: ListenerItem | _Dropped) -> ListenerItem:
    if isinstance(item, _Dropped):
        return ListenerOverflow(
            at=item.since,
            reason=f"buffer full: {item.count} notification(s) dropped",
            dropped=item.count,
        )
    return item


async def _reap(task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 15)

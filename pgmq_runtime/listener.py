"""An async LISTEN subscription that survives drops and says when it may have missed events.

One dedicated autocommit psycopg connection, shared by default by every
listener of the process (:mod:`pgmq_runtime.listen_hub`), carries every
channel. A background task reads ``(channel, payload)`` notifications, hands
them to :func:`~pgmq_runtime.events.parse_event` and puts the result in each
interested listener's bounded buffer. When the connection is lost (or a
liveness query finds it half-open), the task reconnects with capped, jittered
exponential backoff, LISTENs on every channel again and queues a
:class:`~pgmq_runtime.events.ListenerReconnected` marker for every listener.
When a listener's buffer is full, its new notifications are dropped and a
:class:`~pgmq_runtime.events.ListenerOverflow` marker takes their place, so
the socket is always drained and PostgreSQL's notification queue never backs
up behind a slow reader. Either marker means: read the queues to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from pgmq_runtime import db, listen_hub
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
    PgmqEvent,
)
from pgmq_runtime.queries import QUERIES

if TYPE_CHECKING:
    from pgmq_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

APPLICATION_NAME = "pgmq-runtime-listener"


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

    By default every listener of a process (of one event loop) with the same
    DSN and connection options shares one LISTEN connection
    (:mod:`pgmq_runtime.listen_hub`): each still gets every event of its
    channels, its own overflow markers and its own gap marker after each
    reconnect. ``shared_listener=False`` gives this listener a connection of
    its own.

    Options: ``buffer_size`` items are buffered before notifications are
    dropped (and a ListenerOverflow marker queued); after ``liveness_interval``
    seconds without a notification a ``SELECT 1`` must answer within
    ``liveness_timeout`` seconds or the connection is replaced; reconnect
    attempts wait ``backoff_initial`` seconds, doubling up to ``backoff_max``,
    jittered; ``read_window`` bounds how long the reader holds the connection
    between two looks at it; ``configure`` is awaited on every new connection
    (see :class:`pgmq_runtime.db.Connector`); ``metrics`` (a
    :class:`pgmq_runtime.metrics.RuntimeMetrics`) counts this listener.
    Listeners share a connection only when all these connection options are
    equal (``buffer_size`` and ``metrics`` are each listener's own).
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
        shared_listener: bool = True,
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
        self.shared_listener = shared_listener
        self._settings = listen_hub.HubSettings(
            dsn,
            APPLICATION_NAME,
            connect_timeout=connect_timeout,
            liveness_interval=liveness_interval,
            liveness_timeout=liveness_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            read_window=read_window,
            configure=configure,
        )
        self._hub: listen_hub.ListenHub | None = None
        self._channels: set[str] = set()
        self._buffer: deque[ListenerItem | _Dropped] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._events = self._invalid = self._reconnects = self._dropped = 0
        self._last_event_time: float | None = None
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
        """Join (or open) the LISTEN connection and LISTEN on the channels added so far.

        Raises :class:`~pgmq_runtime.errors.ListenerError` if the server cannot
        be reached; later drops are handled by reconnecting.
        """
        if self._hub is not None or self._closed:
            return
        settings = self._settings
        hub = listen_hub.shared_hub(settings) if self.shared_listener else listen_hub.ListenHub(settings)
        try:
            await hub.attach(self, self._channels, self.config)
        except PgmqNotifyError as exc:
            raise ListenerError(f"cannot connect the listener: {describe_error(exc)}") from exc
        self._hub = hub
        log.debug("listener joined connection (backend pid %s, %d subscriber(s))", hub.backend_pid, hub.subscribers)

    async def close(self) -> None:
        """Stop reading and leave the connection (closed once no listener uses it); iteration then ends."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        hub, self._hub = self._hub, None
        if hub is not None:
            with contextlib.suppress(PgmqNotifyError):
                await hub.detach(self)
            log.info("listener stopped after %d event(s), %d reconnect(s)", self._events, self._reconnects)
        if self.metrics is not None:
            self.metrics.retire(self)

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
        await self.listen_many([channel])

    async def listen_many(self, channels: Iterable[str]) -> None:
        """LISTEN on every channel of ``channels``, many per round trip (for hundreds of namespaces)."""
        todo = [validate_channel(c) for c in channels]
        todo = [c for c in dict.fromkeys(todo) if c not in self._channels]
        self._channels.update(todo)
        if self._hub is not None and todo:
            await self._hub.subscribe(self, todo)

    async def unlisten(self, channel: str) -> None:
        """Stop listening on ``channel`` (UNLISTENed once no listener sharing the connection wants it)."""
        self._channels.discard(channel)
        if self._hub is not None:
            await self._hub.unsubscribe(self, [channel])

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
        if self._buffer:  # the hot path
            return _materialize(self._buffer.popleft())
        hub = self._hub
        if hub is None and not self._closed:
            raise ListenerError("the listener is not connected: use 'async with' or call connect() first")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._buffer:
                return _materialize(self._buffer.popleft())
            if hub is not None and hub.failure is not None:
                raise ListenerError(f"the listener stopped: {describe_error(hub.failure)}") from hub.failure
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
            connected=self._hub is not None and self._hub.connected,
            channels=tuple(sorted(self._channels)),
        )

    @property
    def last_error(self) -> str:
        """Why the latest reconnect attempt failed (empty if none has failed)."""
        return "" if self._hub is None else self._hub.last_error

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection, when connected."""
        return None if self._hub is None else self._hub.backend_pid

    @property
    def shared(self) -> bool:
        """Whether this listener shares its connection with other listeners of the process."""
        return self.shared_listener

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """Send a probe NOTIFY from a second connection and report whether it arrived.

        A connection pooler in transaction mode (PgBouncer) or a read replica
        accepts LISTEN but never delivers: call this at start-up to find out.
        The probe is never yielded as an event.
        """
        hub = self._hub
        if hub is None:
            raise ListenerError("the listener is not connected: use 'async with' or call connect() first")
        channel = f"pgmq_runtime_probe_{os.getpid()}_{secrets.token_hex(6)}"
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        hub.probes[channel] = arrived
        started = time.monotonic()
        try:
            if not hub.connected:
                return SelfCheckResult(False, channel, 0.0, "the listener is not connected")
            await hub.run_statement("listen", channel=channel)
            sender = await hub.connect_sender()
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
            hub.probes.pop(channel, None)
            with contextlib.suppress(ConnectionLostError):
                await hub.run_statement("unlisten", channel=channel)

    # -- what the hub calls (listen_hub.Subscriber) --------------------------

    def deliver(self, event: PgmqEvent | InvalidEvent) -> None:
        """Buffer one parsed notification (called by the hub, once per notification: keep it lean)."""
        if type(event) is InvalidEvent:
            self._invalid += 1
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

    def gap(self, marker: ListenerReconnected) -> None:
        """Queue a reconnect marker: events in between may be lost (called by the hub)."""
        self._reconnects += 1
        self._buffer.append(marker)
        self._ready.set()

    def wake(self) -> None:
        """Wake a waiting reader: the hub failed (called by the hub)."""
        self._ready.set()


def _materialize(item: ListenerItem | _Dropped) -> ListenerItem:
    if isinstance(item, _Dropped):
        return ListenerOverflow(
            at=item.since,
            reason=f"buffer full: {item.count} notification(s) dropped",
            dropped=item.count,
        )
    return item

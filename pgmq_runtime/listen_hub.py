"""One LISTEN connection per process, shared by every listener that asks for the same server.

A :class:`ListenHub` owns one dedicated autocommit connection and the task
that reads it. Each :class:`~pgmq_runtime.listener.PgmqNotifyListener` (and
so each :class:`~pgmq_runtime.consumer.PgmqConsumer` and ``pgmq-codegen
listen``) is a :class:`Subscriber` of a hub: it names the channels it wants,
and the hub LISTENs on a channel while any subscriber wants it and UNLISTENs
it when none does. Each notification is parsed once and handed to the
subscribers of its channel; each subscriber keeps its own buffer, overflow
marker and counters, so a slow one never holds the others up.

The guarantees of a private connection hold for every subscriber: after a
drop the hub reconnects with jittered backoff, LISTENs on every wanted
channel again and gives *each* subscriber its own
:class:`~pgmq_runtime.events.ListenerReconnected` marker; a ``listen()``
returns once the channel is LISTENed on the live connection (or, while the
connection is down, once the reconnect is sure to LISTEN on it and report a
gap), so "LISTEN first, read second" still loses nothing.

:func:`shared_hub` returns the hub of the running event loop for a DSN and
connection settings, creating it on first use; it is forgotten (and its
connection closed) when its last subscriber leaves. Listeners made with
``shared_listener=False`` get a hub of their own through :class:`ListenHub`
directly: the same code, one subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import sql

from pgmq_runtime import aio, db, notify_reader
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ConnectionLostError, describe_error
from pgmq_runtime.events import InvalidEvent, ListenerReconnected, PgmqEvent, parse_event
from pgmq_runtime.install_check import check_and_log_async
from pgmq_runtime.queries import QUERIES

# The connection's state changes are the listener's: logged under its name, which users already filter on.
log = logging.getLogger("pgmq_runtime.listener")

# Seconds between two warnings about invalid notifications (the first is logged at once).
INVALID_WARNING_INTERVAL = 60.0
# LISTENs sent in one round trip when many channels are (re-)LISTENed at once.
LISTEN_CHUNK = 200


class Subscriber(Protocol):
    """What a hub hands notifications, gaps and failures to (a listener)."""

    def deliver(self, event: PgmqEvent | InvalidEvent) -> None: ...

    def gap(self, marker: ListenerReconnected) -> None: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HubSettings:
    """How a hub connects and watches its connection; listeners share a hub only when these are equal."""

    dsn: str
    application_name: str
    connect_timeout: float = 10.0
    liveness_interval: float = 5.0
    liveness_timeout: float = 5.0
    backoff_initial: float = 0.1
    backoff_max: float = 10.0
    read_window: float = 0.25
    configure: db.Configure | None = None


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[HubSettings, ListenHub]] = weakref.WeakKeyDictionary()


def shared_hub(settings: HubSettings) -> ListenHub:
    """The running loop's hub for ``settings``, made on first use (asyncio objects belong to one loop)."""
    hubs = _hubs.setdefault(asyncio.get_running_loop(), {})
    hub = hubs.get(settings)
    if hub is None or hub.failure is not None or hub.closed:
        hub = hubs[settings] = ListenHub(settings, on_empty=lambda h: _forget(h, hubs))
    return hub


def _forget(hub: ListenHub, hubs: dict[HubSettings, ListenHub]) -> None:
    if hubs.get(hub.settings) is hub:
        del hubs[hub.settings]


def shared_connections() -> int:
    """How many shared hubs (so LISTEN connections) the running loop holds."""
    return len(_hubs.get(asyncio.get_running_loop(), {}))


class ListenHub:
    """One LISTEN connection, its reader task, and the subscribers it serves (see the module's text)."""

    def __init__(self, settings: HubSettings, on_empty: Callable[[ListenHub], None] | None = None) -> None:
        self.settings = settings
        self._connector = db.Connector(
            settings.dsn,
            application_name=settings.application_name,
            connect_timeout=settings.connect_timeout,
            configure=settings.configure,
        )
        self._on_empty = on_empty
        self._window = min(settings.read_window, settings.liveness_interval)
        self._members: set[Subscriber] = set()
        self._wanted: dict[str, set[Subscriber]] = {}
        self._listened: set[str] = set()
        self.probes: dict[str, asyncio.Future[None]] = {}
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        # Whoever runs a statement on the connection holds this; the reader takes it per read window.
        self._exclusive = asyncio.Lock()
        self._interrupt = notify_reader.Interrupt()
        self._waiting = 0
        self._checked: list[PgmqNotifyConfig] = []
        self.failure: BaseException | None = None
        self.closed = False
        self.reconnects = 0
        self.last_error = ""
        self._down_reason = ""
        self._down_since = 0.0
        self._last_alive = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()
        self._invalid_warn_at = 0.0
        self._invalid_unlogged = 0

    # -- subscribers -------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._conn is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection, when connected."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    @property
    def subscribers(self) -> int:
        """How many subscribers are attached."""
        return len(self._members)

    async def attach(self, subscriber: Subscriber, channels: Iterable[str], config: PgmqNotifyConfig) -> None:
        """Add ``subscriber`` wanting ``channels``; connect first if nobody has yet.

        Raises our typed error (ConnectionLostError, ...) if this first connect
        fails; the subscriber is then not attached.
        """
        self._members.add(subscriber)
        wanted = list(channels)
        for channel in wanted:
            self._wanted.setdefault(channel, set()).add(subscriber)
        try:
            async with self._connecting:
                if self._conn is None and self._reader is None:
                    conn = await self._open()
                    async with self._use():
                        await self._listen_all(conn)
                        self._conn = conn
                    self._last_alive = time.monotonic()
                    self._reader = asyncio.get_running_loop().create_task(self._run(), name="pgmq-listen-hub")
                    log.info("listener connected (backend pid %s, %d channel(s))", self.backend_pid, len(self._wanted))
        except BaseException:
            await self.detach(subscriber)
            raise
        await self._check(config)
        await self._sync(wanted)

    async def detach(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber``; UNLISTEN what nobody wants any more, close the connection if nobody is left."""
        self._members.discard(subscriber)
        dropped = []
        for channel, subs in list(self._wanted.items()):
            if subscriber in subs:
                subs.discard(subscriber)
                if not subs:
                    del self._wanted[channel]
                    dropped.append(channel)
        if self._members:
            await self._sync(dropped)
            return
        if self._on_empty is not None:
            self._on_empty(self)
        await self.close()

    async def subscribe(self, subscriber: Subscriber, channels: Iterable[str]) -> None:
        """``subscriber`` wants ``channels`` too; returns once they are LISTENed (or a gap is sure to follow)."""
        todo = list(channels)
        for channel in todo:
            self._wanted.setdefault(channel, set()).add(subscriber)
        await self._sync(todo)

    async def unsubscribe(self, subscriber: Subscriber, channels: Iterable[str]) -> None:
        """``subscriber`` no longer wants ``channels``; UNLISTEN those nobody else wants."""
        todo = list(channels)
        for channel in todo:
            subs = self._wanted.get(channel)
            if subs is not None:
                subs.discard(subscriber)
                if not subs:
                    del self._wanted[channel]
        await self._sync(todo)

    async def close(self) -> None:
        """Stop reading and close the connection."""
        self.closed = True
        if self._reader is not None:
            await aio.cancel_and_wait(self._reader)
        conn, self._conn = self._conn, None
        if conn is not None:
            await db.close_quietly(conn)
        for task in list(self._background):
            await aio.cancel_and_wait(task)

    # -- statements on the shared connection ---------------------------------

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[None]:
        """Exclusive use of the connection: the reader ends its read window early and waits."""
        self._waiting += 1
        self._interrupt.request()
        try:
            await self._exclusive.acquire()
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._interrupt.clear()
        try:
            yield
        finally:
            self._exclusive.release()

    async def run_statement(self, name: str, **identifiers: str) -> None:
        """Run catalogued statement ``name`` on the live connection (ConnectionLostError if down)."""
        async with self._use():
            conn = self._conn
            if conn is None:
                raise ConnectionLostError("the listener is not connected")
            await db.run(conn, QUERIES[name], schema="", identifiers=identifiers)

    async def connect_sender(self) -> psycopg.AsyncConnection[Any]:
        """A new connection with the hub's settings that does not LISTEN (the self-check's sender)."""
        return await self._connector.connect()

    async def _check(self, config: PgmqNotifyConfig) -> None:
        """The install check, once per distinct config (the first subscriber's connect ran it on ``conn``)."""
        if config in self._checked:
            return
        self._checked.append(config)
        async with self._use():
            conn = self._conn
            if conn is not None:
                await check_and_log_async(conn, config, "listener")

    async def _sync(self, channels: list[str]) -> None:
        """Make the connection LISTEN on exactly the wanted ones among ``channels``."""
        if not channels or self._conn is None:
            return  # the (re)connect LISTENs on every wanted channel, then reports a gap
        async with self._use():
            conn = self._conn
            if conn is None:
                return
            add = [c for c in channels if c in self._wanted and c not in self._listened]
            drop = [c for c in channels if c not in self._wanted and c in self._listened and c not in self.probes]
            # A failure here is a dropped connection: the reader reconnects and LISTENs on every wanted channel.
            with contextlib.suppress(ConnectionLostError):
                await _batch(conn, "LISTEN", add)
                self._listened.update(add)
                await _batch(conn, "UNLISTEN", drop)
                self._listened.difference_update(drop)

    async def _listen_all(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """LISTEN on every wanted channel (and probe) on a new connection; caller holds ``_use()``."""
        done: set[str] = set()
        # Channels added while we await are picked up by the next round.
        while todo := (set(self._wanted) | set(self.probes)) - done:
            await _batch(conn, "LISTEN", sorted(todo))
            done |= todo
        self._listened = done

    # -- the reader ----------------------------------------------------------

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        conn = await self._connector.connect()
        # Notifications psycopg reads along with a statement's results come this way.
        notify_reader.attach(conn, self._on_notify)
        return conn

    async def _run(self) -> None:
        try:
            conn = self._conn
            while not self.closed:
                if conn is None:
                    conn = await self._reconnect()
                    if conn is None:
                        return
                try:
                    with db.translating():
                        await self._pump(conn)
                except ConnectionLostError as exc:
                    self._conn = None
                    self._background_task(db.close_quietly(conn))
                    conn = None
                    self._down_reason = describe_error(exc)
                    self._down_since = time.monotonic()
                    log.warning("listener connection lost (%s); reconnecting", self._down_reason)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failure = exc
            for subscriber in list(self._members):
                subscriber.wake()

    async def _pump(self, conn: psycopg.AsyncConnection[Any]) -> None:
        settings = self.settings
        while not self.closed:
            async with self._exclusive:
                received = await notify_reader.read_notifications(conn, self._window, self._on_notify, self._interrupt)
                now = time.monotonic()
                if received:
                    self._last_alive = now
                elif now - self._last_alive >= settings.liveness_interval:
                    await self._ping(conn)
                    self._last_alive = time.monotonic()

    async def _ping(self, conn: psycopg.AsyncConnection[Any]) -> None:
        timeout = self.settings.liveness_timeout
        probe = asyncio.ensure_future(db.run(conn, QUERIES["ping"], schema=""))
        done, _ = await asyncio.wait({probe}, timeout=timeout)
        if not done:
            # A half-open connection: don't wait for psycopg's cancel dance here.
            probe.cancel()
            self._background_task(_reap(probe))
            raise ConnectionLostError(f"liveness query got no answer within {timeout:g} s")
        probe.result()

    async def _reconnect(self) -> psycopg.AsyncConnection[Any] | None:
        settings = self.settings
        attempt = 0
        while not self.closed:
            attempt += 1
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._open()
                async with self._use():
                    await self._listen_all(conn)
                    self._conn = conn
            except ConnectionLostError as exc:
                if conn is not None:
                    self._background_task(db.close_quietly(conn))
                self.last_error = describe_error(exc)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("listener reconnect attempt %d failed: %s", attempt, self.last_error)
                await asyncio.sleep(db.backoff_delay(attempt, settings.backoff_initial, settings.backoff_max))
                continue
            self._last_alive = time.monotonic()
            self.reconnects += 1
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
            for subscriber in list(self._members):
                subscriber.gap(gap)
            return conn
        return None

    def _on_notify(self, channel: str, payload: str) -> None:
        # Once per notification: keep it lean.
        if self.probes:
            probe = self.probes.get(channel)
            if probe is not None:
                if not probe.done():
                    probe.set_result(None)
                return
        subscribers = self._wanted.get(channel)
        if not subscribers:
            return  # UNLISTENed since it was sent
        event = parse_event(channel, payload)
        if type(event) is InvalidEvent:
            self._warn_invalid(event)
        for subscriber in subscribers:
            subscriber.deliver(event)

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

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _batch(conn: psycopg.AsyncConnection[Any], verb: str, channels: list[str]) -> None:
    """``LISTEN`` (or ``UNLISTEN``) on ``channels``, up to :data:`LISTEN_CHUNK` per round trip."""
    template = QUERIES["listen" if verb == "LISTEN" else "unlisten"]
    for start in range(0, len(channels), LISTEN_CHUNK):
        chunk = channels[start : start + LISTEN_CHUNK]
        statement = sql.SQL("; ").join(template.compose("", channel=c) for c in chunk)
        with db.translating():
            if conn.closed:
                raise ConnectionLostError("connection lost: the connection is closed")
            await conn.execute(statement)


async def _reap(task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(task, 15)

"""An in-memory fake of PGMQ plus notifications, to test event handlers without PostgreSQL.

``FakePgmq`` keeps queues in memory and, on every send, builds the event the
generated SQL would send (payload or signal by byte size, batch events,
channels from the config) and hands it to every :class:`FakeListener` that
listens on the channel.

It fakes the runtime's lowest layer, :mod:`pgmq_runtime.db`: it answers the
named queries of :mod:`pgmq_runtime.queries` in memory. So the real
:class:`~pgmq_runtime.consumer.PgmqConsumer` and
:class:`~pgmq_runtime.client.PgmqNotifyClient` run on it unchanged:
``PgmqConsumer("fake", queues, poll_only=True, database=fake)`` and
``PgmqNotifyClient(fake)``. :meth:`FakePgmq.consumer` wraps such a consumer and
stops once nothing visible is left; its messages are real
:class:`~pgmq_runtime.consumer.ClaimedMessage` objects whose ``delete``,
``archive`` and ``extend`` act on the fake queues::

    fake = FakePgmq()
    listener = fake.listener()
    await listener.listen_message_ready_for_namespace("orders")
    fake.send("orders_queue", {"id": 1})
    listener.end()                      # iteration stops once the buffer is empty
    async for item in listener:
        await my_handler(item)

Differences from the real thing, on purpose: nothing is lost unless you call
:meth:`FakeListener.disconnect` (which yields a gap marker), visibility
timeouts, delays and retry backoffs run on the real clock (a test that retries
waits the backoff: give :class:`~pgmq_runtime.retries.RetryPolicy` small ones), :meth:`FakeListener.end`
lets iteration finish so that tests terminate, a transaction's rollback only
takes back its sends (not its reads or deletes), and arbitrary SQL
(``transaction().execute``) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.db import Params, Row, Step
from pgmq_runtime.errors import DatabaseError, QueueNotFoundError
from pgmq_runtime.events import JsonValue, ListenerItem, ListenerReconnected, parse_event
from pgmq_runtime.listener import ListenerStats, SelfCheckResult, validate_channel
from pgmq_runtime.queries import Query
from pgmq_runtime.testing_queries import HANDLERS


def _sql_json(obj: Mapping[str, Any]) -> str:
    """JSON text spaced like PostgreSQL's json_build_object, so byte sizes match closely."""
    parts = [f"{json.dumps(k)} : {json.dumps(v, ensure_ascii=False)}" for k, v in obj.items()]
    return "{" + ", ".join(parts) + "}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Stored:
    msg_id: int
    message: JsonValue
    headers: JsonValue
    enqueued_at: datetime
    vt: datetime
    read_ct: int = 0


@dataclass
class FakeQueue:
    """One in-memory queue: live messages and the archive."""

    name: str
    messages: dict[int, _Stored] = field(default_factory=dict)
    archived: dict[int, _Stored] = field(default_factory=dict)
    unlogged: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent: int = 0

    def visible(self, now: datetime) -> list[_Stored]:
        """Messages visible at ``now``, oldest first."""
        return sorted((m for m in self.messages.values() if m.vt <= now), key=lambda m: m.msg_id)


class FakePgmq:
    """In-memory queues that notify fake listeners the way the generated SQL does."""

    def __init__(self, config: PgmqNotifyConfig | None = None) -> None:
        self.config = config or PgmqNotifyConfig()
        self.queues: dict[str, FakeQueue] = {}
        self._listeners: list[FakeListener] = []
        self._next_id = 0
        # While a fake transaction is open: its sends and their events, released at commit.
        self._staged: list[tuple[str, int]] | None = None
        self._held: list[tuple[list[str], dict[str, Any], str]] = []
        self.queries: list[str] = []  # names of the queries answered, in order (for assertions)

    def listener(self, buffer_size: int = 1000) -> FakeListener:
        """A new fake listener attached to these queues."""
        listener = FakeListener(self.config, buffer_size=buffer_size)
        self._listeners.append(listener)
        return listener

    def consumer(self, queues: str | Sequence[str], visibility_timeout: int = 30) -> FakeConsumer:
        """A real :class:`PgmqConsumer` of ``queues`` on this fake; it stops when nothing visible is left."""
        return FakeConsumer(self, [queues] if isinstance(queues, str) else list(queues), visibility_timeout)

    def queue(self, name: str) -> FakeQueue:
        """The queue called ``name`` (PGMQ names are case-insensitive), created if new."""
        return self.queues.setdefault(name.lower(), FakeQueue(name))

    def create_queue(self, name: str) -> None:
        """Create a queue and announce it with a ``queue_created`` event."""
        self.queue(name)
        event = {
            "event_type": "queue_created",
            "queue_name": name,
            "namespace": self.config.extract_namespace(name),
            "created_at": _stamp(datetime.now(UTC)),
        }
        self._publish([self.config.queue_created_channel()], event)

    def send(
        self,
        queue_name: str,
        message: JsonValue,
        headers: JsonValue = None,
        delay_seconds: int = 0,
        *,
        source: str = "trigger",
    ) -> int:
        """Store one message and announce it (``message_with_payload`` or ``message_ready``)."""
        stored = self._store(queue_name, message, headers, delay_seconds)
        base = self._base(queue_name, stored.msg_id)
        tail = {
            "ready_at": _stamp(stored.vt),
            "enqueued_at": _stamp(stored.enqueued_at),
            "delay_seconds": delay_seconds,
        }
        event: dict[str, Any] = {
            "event_type": "message_with_payload",
            **base,
            "message": message,
            "headers": headers,
            **tail,
        }
        if self.config.include_payload == "never" or len(self._text(event, source).encode()) > (
            self.config.max_payload_size
        ):
            event = {"event_type": "message_ready", **base, **tail, "payload_omitted": True}
        self._publish(self.config.channels_for_queue(queue_name), event, source)
        return stored.msg_id

    def send_batch(
        self,
        queue_name: str,
        messages: Sequence[JsonValue],
        delay_seconds: int = 0,
        *,
        headers: Sequence[JsonValue] | None = None,
        source: str = "trigger",
    ) -> list[int]:
        """Store several messages and announce them with one ``batch_ready`` event."""
        heads = list(headers) if headers is not None else [None] * len(messages)
        ids = [self._store(queue_name, m, h, delay_seconds).msg_id for m, h in zip(messages, heads, strict=True)]
        first = self.queue(queue_name).messages[ids[0]] if ids else None
        ready_at = first.vt if first else datetime.now(UTC)
        event = {
            "event_type": "batch_ready",
            "msg_ids": ids,
            "queue_name": queue_name,
            "namespace": self.config.extract_namespace(queue_name),
            "message_count": len(ids),
            "ready_at": _stamp(ready_at),
            "enqueued_at": _stamp(first.enqueued_at if first else ready_at),
            "delay_seconds": delay_seconds,
        }
        if ids:
            self._publish(self.config.channels_for_queue(queue_name), event, source)
        return ids

    def _store(self, queue_name: str, message: JsonValue, headers: JsonValue, delay: int) -> _Stored:
        self._next_id += 1
        now = datetime.now(UTC)
        stored = _Stored(self._next_id, message, headers, now, now + timedelta(seconds=delay))
        queue = self.queue(queue_name)
        queue.messages[stored.msg_id] = stored
        queue.sent += 1
        if self._staged is not None:
            self._staged.append((queue_name, stored.msg_id))
        return stored

    def _base(self, queue_name: str, msg_id: int) -> dict[str, Any]:
        return {
            "msg_id": msg_id,
            "queue_name": queue_name,
            "namespace": self.config.extract_namespace(queue_name),
        }

    def _text(self, event: dict[str, Any], source: str = "trigger") -> str:
        if self.config.include_metadata:
            event = {**event, "metadata": {"source": source}}
        return _sql_json(event)

    def _publish(self, channels: list[str], event: dict[str, Any], source: str = "trigger") -> None:
        if self._staged is not None:
            self._held.append((channels, event, source))  # NOTIFY is delivered at commit
            return
        text = self._text(event, source)
        for listener in self._listeners:
            for channel in channels:
                listener.notify(channel, text)

    # -- the connection layer (pgmq_runtime.db) ----------------------------

    async def session(self, application_name: str, schema: str, queues: Sequence[str] = ()) -> FakePgmq:
        """:class:`pgmq_runtime.db.Database`: a "connection" is this fake itself."""
        return self

    @property
    def closed(self) -> bool:
        """A fake connection never drops."""
        return False

    async def close(self) -> None:
        """Nothing to close."""

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]:
        """:class:`pgmq_runtime.db.Executor`: answer a catalogued query from the in-memory queues."""
        handler = HANDLERS.get(query.name)
        if handler is None:
            raise DatabaseError(f"FakePgmq does not implement query {query.name!r}")
        self.queries.append(query.name)
        return handler(self, dict(params or {}))

    async def fetch_many(self, steps: Sequence[Step]) -> list[list[Row]]:
        """:class:`pgmq_runtime.db.Session`: answer several queries with nothing in between.

        Unlike a transaction, a step that fails does not take back the steps before it.
        """
        for query, _ in steps:
            if query.name not in HANDLERS:
                raise DatabaseError(f"FakePgmq does not implement query {query.name!r}")
        return [await self.fetch(query, params) for query, params in steps]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakePgmq]:
        """A fake transaction: its sends are taken back on rollback, their events held until commit."""
        if self._staged is not None:
            raise DatabaseError("FakePgmq does not nest transactions")
        staged: list[tuple[str, int]] = []
        self._staged, self._held = staged, []
        try:
            yield self
        except BaseException:
            for name, msg_id in staged:
                self.queue(name).messages.pop(msg_id, None)
            raise
        else:
            held = self._held
            self._staged = None
            for channels, event, source in held:
                self._publish(channels, event, source)
        finally:
            self._staged, self._held = None, []

    async def execute(self, statement: str, params: Any = None) -> None:
        """Arbitrary SQL cannot be faked."""
        raise DatabaseError("FakePgmq cannot run arbitrary SQL; test that part against PostgreSQL")

    def _existing(self, name: str) -> FakeQueue:
        queue = self.queues.get(name.lower())
        if queue is None:
            raise QueueNotFoundError(f"queue {name!r} does not exist (FakePgmq)")
        return queue

    # -- MessageActions ----------------------------------------------------

    async def delete(self, queue_name: str, msg_id: int) -> bool:
        """Remove a message; False if it is gone."""
        return self.queue(queue_name).messages.pop(msg_id, None) is not None

    async def archive(self, queue_name: str, msg_id: int) -> bool:
        """Move a message to the queue's archive; False if it is gone."""
        queue = self.queue(queue_name)
        stored = queue.messages.pop(msg_id, None)
        if stored is None:
            return False
        queue.archived[msg_id] = stored
        return True

    async def extend(self, queue_name: str, msg_id: int, seconds: int) -> datetime | None:
        """Push a message's visibility timeout out; None if it is gone."""
        stored = self.queue(queue_name).messages.get(msg_id)
        if stored is None:
            return None
        stored.vt = max(stored.vt, datetime.now(UTC)) + timedelta(seconds=seconds)
        return stored.vt


class FakeListener:
    """Stands in for :class:`~pgmq_runtime.listener.PgmqNotifyListener` (same methods)."""

    def __init__(self, config: PgmqNotifyConfig | None = None, *, buffer_size: int = 1000) -> None:
        self.config = config or PgmqNotifyConfig()
        self.buffer_size = buffer_size
        self._channels: set[str] = set()
        self._buffer: deque[ListenerItem] = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self._closed = False
        self._events = self._invalid = self._reconnects = self._dropped = 0
        self._last_event_at: datetime | None = None

    async def __aenter__(self) -> FakeListener:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """End iteration at once and drop what is buffered."""
        self._closed = True
        self._buffer.clear()
        self._ready.set()

    def end(self) -> None:
        """End iteration once the buffered items have been yielded."""
        self._ended = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        """True once closed, or ended with nothing left to yield."""
        return self._closed or (self._ended and not self._buffer)

    @property
    def channels(self) -> frozenset[str]:
        """The channels listened to."""
        return frozenset(self._channels)

    async def listen(self, channel: str) -> None:
        """Listen on ``channel`` (validated like the real listener)."""
        self._channels.add(validate_channel(channel))

    async def unlisten(self, channel: str) -> None:
        """Stop listening on ``channel``."""
        self._channels.discard(channel)

    async def listen_queue_created(self) -> None:
        """Listen for ``queue_created`` events."""
        await self.listen(self.config.queue_created_channel())

    async def listen_message_ready_for_namespace(self, namespace: str) -> None:
        """Listen for one namespace's message events."""
        await self.listen(self.config.message_ready_channel(namespace))

    async def listen_message_ready_global(self) -> None:
        """Listen on the global message channel."""
        await self.listen(self.config.global_message_ready_channel())

    async def listen_default_namespaces(self) -> None:
        """Listen for the default namespace's message events."""
        await self.listen_message_ready_for_namespace(self.config.default_namespace)

    def notify(self, channel: str, payload: str) -> None:
        """Deliver a raw notification, as PostgreSQL would, if ``channel`` is listened to."""
        if channel not in self._channels or self._closed:
            return
        item = parse_event(channel, payload)
        if item.event_type == "invalid":
            self._invalid += 1
        else:
            self._events += 1
        self._last_event_at = datetime.now(UTC)
        if len(self._buffer) >= self.buffer_size:
            self._dropped += 1
            return
        self._buffer.append(item)
        self._ready.set()

    def disconnect(self, down_seconds: float = 1.0, reason: str = "simulated disconnect") -> None:
        """Simulate a dropped and restored connection: yields a ListenerReconnected marker."""
        self._reconnects += 1
        self._buffer.append(ListenerReconnected(at=datetime.now(UTC), reason=reason, down_seconds=down_seconds))
        self._ready.set()

    def __aiter__(self) -> FakeListener:
        return self

    async def __anext__(self) -> ListenerItem:
        item = await self.next_event()
        if item is None:
            raise StopAsyncIteration
        return item

    async def next_event(self, timeout: float | None = None) -> ListenerItem | None:
        """The next item; None on timeout or once closed/ended and drained."""
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """Always succeeds: the fake delivers everything."""
        return SelfCheckResult(True, "fake", 0.0, "in-memory fake")

    @property
    def stats(self) -> ListenerStats:
        """Counters, as the real listener reports them."""
        return ListenerStats(
            self._events,
            self._invalid,
            self._reconnects,
            self._dropped,
            self._last_event_at,
            not self._closed,
            tuple(sorted(self._channels)),
        )


class FakeConsumer:
    """A real :class:`PgmqConsumer` (poll-only, one message per read) on a fake; stops when none is visible."""

    def __init__(self, fake: FakePgmq, queues: list[str], visibility_timeout: int = 30) -> None:
        self.fake = fake
        self.queues = queues
        self.visibility_timeout = visibility_timeout
        self.consumer = PgmqConsumer(
            "fake",
            queues,
            fake.config,
            visibility_timeout=visibility_timeout,
            batch_size=1,
            poll_only=True,
            poll_interval=0.001,
            database=fake,
        )

    def __aiter__(self) -> FakeConsumer:
        return self

    async def __anext__(self) -> ClaimedMessage:
        now = datetime.now(UTC)
        if not any(self.fake.queue(name).visible(now) for name in self.queues):
            await self.consumer.close()
            raise StopAsyncIteration
        # delete/archive/extend go through the consumer's own acknowledgement path, on this fake.
        return await self.consumer.__anext__()

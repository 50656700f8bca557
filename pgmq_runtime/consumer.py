"""A consumer that turns notifications into claimed messages without ever leaving one behind.

Events only say *which* messages to claim; the claim itself always goes
through the database (``<schema>.read_specific_batch_v1``, which sets the
visibility timeout of visible, unlocked messages), so two consumers never both
receive a message. Notifications can be lost (a dropped connection, a full
buffer, a pooler that does not carry them), so the consumer also catches up
with a batched ``pgmq.read`` at start-up, after every gap marker and on a slow
timer. After a coalesced event (``coalesce_ms``) it re-reads that queue every
few milliseconds until the window is over and the queue is quiet, so the
window's silent messages are claimed too (see :mod:`pgmq_runtime.rechecks`).
Delivery is at least once: a message whose visibility timeout runs out
before it is deleted or archived is delivered again.

Claims are made on demand, one batch at a time, when the caller asks for the
next message: a burst never claims more than ``batch_size`` messages ahead of
the caller, and ids announced faster than they are consumed are forgotten in
favour of a catch-up read once ``max_pending`` is reached. Acknowledgements
(``delete``/``archive``) go through :mod:`pgmq_runtime.acks` in batches, on a
connection of their own; :meth:`PgmqConsumer.run` runs a handler concurrently
(:mod:`pgmq_runtime.worker`). With ``fifo=True`` every claim is a
``pgmq.read_grouped_head``: at most one message per ``x-pgmq-group`` in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from pgmq_runtime import aio, db
from pgmq_runtime.acks import AckBatcher, ControlSession
from pgmq_runtime.claim_plan import ClaimPlan
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer_connection import APPLICATION_NAME, ClaimConnection, queues_in_namespace
from pgmq_runtime.errors import (
    ConnectionLostError,
    ConsumerError,
    DatabaseError,
    describe_error,
)
from pgmq_runtime.events import (
    InvalidEvent,
    JsonValue,
    ListenerGap,
    ListenerItem,
    MessageEvent,
    QueueCreatedEvent,
)
from pgmq_runtime.install_check import check_and_log_async
from pgmq_runtime.listener import PgmqNotifyListener
from pgmq_runtime.messages import ClaimedMessage, InFlight, MessageActions
from pgmq_runtime.queries import QUERIES
from pgmq_runtime.stats import ConsumerStats, Counters

if TYPE_CHECKING:
    from pgmq_runtime.metrics import RuntimeMetrics
    from pgmq_runtime.retries import RetryPolicy

__all__ = [
    "APPLICATION_NAME",
    "ClaimedMessage",
    "InFlight",
    "MessageActions",
    "PgmqConsumer",
    "queues_in_namespace",
]

log = logging.getLogger(__name__)


class PgmqConsumer:
    """Claim and yield the messages of one or more queues: ``async for message in consumer``.

    ``source`` is a DSN (its listener then shares the process's LISTEN
    connection unless ``shared_listener=False``) or a :class:`PgmqNotifyListener`
    (do not iterate it elsewhere). With ``poll_only=True`` no LISTEN is used at
    all, for PgBouncer in transaction mode or read replicas: the same messages
    come with polling latency (``poll_interval``).

    Options: ``visibility_timeout`` seconds a claim lasts; ``batch_size``
    messages claimed per round trip (and at most that many held ahead of the
    caller); ``poll_interval`` seconds between catch-up reads (10, or 1 in
    poll-only mode); ``max_pending`` announced ids remembered before they are
    forgotten in favour of a catch-up read; ``reconnect_timeout`` seconds that
    ``delete``/``archive``/``extend`` wait for a lost connection to come back;
    ``fifo`` claims through ``pgmq.read_grouped_head`` (PGMQ 1.12+), so that at
    most one message of each ``x-pgmq-group`` header value is in flight and
    each group is handled in send order (messages without the header form one
    group); claims run with ``synchronous_commit = off`` (a claim lost in a
    server crash only makes its message visible again, which at-least-once
    delivery allows) unless ``durable_claims``, while acknowledgements always
    wait for the disk. :meth:`stop` ends iteration and :meth:`run`; :meth:`close` hands
    messages claimed but not yet yielded back at once.

    After ``liveness_interval`` idle seconds the claiming connection is checked
    with a cheap query (answer within ``liveness_timeout``), so a connection
    killed while idle is replaced before it is needed. ``database`` replaces
    how the consumer's connections are made, the claiming one and the one of
    acknowledgements (a :class:`pgmq_runtime.db.Connector`, or
    :class:`pgmq_runtime.testing.FakePgmq`); ``configure`` is awaited on
    each new connection of the default connector. ``metrics`` (a
    :class:`pgmq_runtime.metrics.RuntimeMetrics`) then counts this consumer and
    its listener, and records handler durations and each event's delay.
    """

    def __init__(
        self,
        source: str | PgmqNotifyListener,
        queues: str | Sequence[str],
        config: PgmqNotifyConfig | None = None,
        *,
        visibility_timeout: int = 30,
        batch_size: int = 100,
        poll_interval: float | None = None,
        poll_only: bool = False,
        max_pending: int = 10_000,
        reconnect_timeout: float = 60.0,
        fifo: bool = False,
        durable_claims: bool = False,
        liveness_interval: float = 5.0,
        liveness_timeout: float = 5.0,
        database: db.Database | None = None,
        configure: db.Configure | None = None,
        metrics: RuntimeMetrics | None = None,
        shared_listener: bool = True,
    ) -> None:
        names = [queues] if isinstance(queues, str) else list(queues)
        if not names:
            raise ValueError("give at least one queue")
        if batch_size < 1 or visibility_timeout < 1:
            raise ValueError("batch_size and visibility_timeout must be at least 1")
        if isinstance(source, PgmqNotifyListener):
            self.dsn = source.dsn
            self.config = config or source.config
            self._listener: PgmqNotifyListener | None = None if poll_only else source
            self._owns_listener = False
        else:
            self.dsn = source
            self.config = config or PgmqNotifyConfig()
            self._listener = None if poll_only else PgmqNotifyListener(source, config, shared_listener=shared_listener)
            self._owns_listener = True
        # PGMQ lowercases table names, so queue names that differ in case are one queue.
        self.queues = {name.lower(): name for name in names}
        self.visibility_timeout = visibility_timeout
        self.batch_size = batch_size
        self.poll_interval = poll_interval or (1.0 if poll_only else 10.0)
        self.max_pending = max_pending
        self.reconnect_timeout = reconnect_timeout
        self.fifo = fifo
        self.durable_claims = durable_claims
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        # No server-side prepared statements: they break behind transaction poolers.
        self._connector = db.Connector(self.dsn, application_name=APPLICATION_NAME, prepare=False, configure=configure)
        self._database: db.Database = database or self._connector
        self._claims = ClaimConnection(
            self._database,
            self.config.schema,
            sorted(self.queues.values()),
            durable_claims=durable_claims,
            keep_trying=lambda deadline: not self._closed and not (self._stopping and deadline is None),
        )
        self.counters = Counters()
        control = ControlSession(self._open_control, reconnect_timeout)
        self._acks = AckBatcher(control, self.counters, on_commit=self._acked)
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Messages a worker's handlers hold, by (queue name, msg_id).
        self.in_flight: dict[tuple[str, int], InFlight] = {}
        self._ready: deque[ClaimedMessage] = deque()
        self._plan = ClaimPlan(self.queues, coalesce_ms=self.config.coalesce_ms, max_pending=max_pending, fifo=fifo)
        self._next_poll = 0.0
        self._closed = False
        self._started = False
        self._from_events = self._from_catch_up = self._catch_up_reads = 0
        self._gaps = 0
        self._recheck_reads = self._from_rechecks = 0
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_consumer(self)

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> PgmqConsumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, LISTEN on the queues' namespace channels and schedule a catch-up."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        try:
            session = await self._claims.open()
        except DatabaseError as exc:
            raise ConsumerError(f"cannot connect the consumer: {describe_error(exc)}") from exc
        if isinstance(session, db.PsycopgSession):
            await check_and_log_async(session.conn, self.config, "consumer", pgmq_calls_follow=True)
        log.info("consumer started on %s (%s)", sorted(self.queues.values()), self._mode())
        if self._listener is not None:
            try:
                await self._listener.connect()
                for name in self.queues.values():
                    namespace = self.config.extract_namespace(name)
                    await self._listener.listen_message_ready_for_namespace(namespace)
            except BaseException:
                await self.close()
                raise
        # LISTEN first, read second: a message sent in between is seen by both.
        self._plan.read_all()
        self._next_poll = time.monotonic() + self.poll_interval
        self._started = True

    def _mode(self) -> str:
        if self._listener is None:
            return f"polling every {self.poll_interval:g} s"
        return f"events, catch-up every {self.poll_interval:g} s"

    async def close(self) -> None:
        """Hand back unyielded messages, flush acknowledgements, close the connections (and own listener)."""
        if self._closed:
            return
        if self._started:
            log.info("consumer stopped: %s", self.stats)
        self._closed = True
        with contextlib.suppress(ConsumerError):
            await self.release(self.take_unstarted())
        await self._acks.close()
        await self._acks.session.close()
        if self._listener is not None and self._owns_listener:
            await self._listener.close()
            if self.metrics is not None:
                self.metrics.retire(self._listener)
        if self.metrics is not None:
            self.metrics.retire(self)
        await self._claims.close()

    @property
    def stats(self) -> ConsumerStats:
        """Counters: messages claimed from events and by catch-up, catch-up reads, gaps, re-checks."""
        c = self.counters
        return ConsumerStats(
            self._from_events,
            self._from_catch_up,
            self._catch_up_reads,
            self._gaps,
            self._claims.reconnects,
            self._recheck_reads,
            self._from_rechecks,
            deleted=c.deleted,
            archived=c.archived,
            ack_batches=c.ack_batches,
            handled=c.handled,
            failed=c.failed,
            handler_seconds=c.handler_seconds,
            handler_seconds_max=c.handler_seconds_max,
            retries=c.retries,
            dead_lettered=c.dead_lettered,
            heartbeats=c.heartbeats,
            handed_back=c.handed_back,
        )

    @property
    def listener(self) -> PgmqNotifyListener | None:
        """The listener this consumer reads (None in poll-only mode)."""
        return self._listener

    # -- iteration ---------------------------------------------------------

    def __aiter__(self) -> PgmqConsumer:
        return self

    async def __anext__(self) -> ClaimedMessage:
        if not await self._await_ready(self.batch_size):
            raise StopAsyncIteration
        return self._ready.popleft()

    async def claim(self, limit: int) -> list[ClaimedMessage]:
        """Wait for messages and return up to ``limit`` of them, claiming no more than ``limit`` ahead.

        Returns an empty list once :meth:`stop` or :meth:`close` was called.
        """
        if not await self._await_ready(limit):
            return []
        return [self._ready.popleft() for _ in range(min(limit, len(self._ready)))]

    # -- stopping and the worker's hooks -------------------------------------

    def stop(self) -> None:
        """Stop claiming: iteration and :meth:`run` end. A plain call, safe from a handler, thread or signal."""
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # Thread-safe, and re-entrant from a signal handler that interrupted the loop.
            loop.call_soon_threadsafe(self._wakeup.set)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    async def run(
        self,
        handler: Callable[[ClaimedMessage], Awaitable[object]] | Callable[[ClaimedMessage], object],
        *,
        concurrency: int = 1,
        retry: RetryPolicy | None = None,
        archive: bool = False,
        grace_period: float = 30.0,
        handle_signals: bool = True,
    ) -> ConsumerStats:
        """Run ``handler`` on every message, ``concurrency`` at a time, until :meth:`stop`, SIGINT or SIGTERM.

        A handler that returns acknowledges its message (delete, or archive with
        ``archive=True``); one that raises has it retried per ``retry``. See
        :func:`pgmq_runtime.worker.run`. Returns the final stats.
        """
        from pgmq_runtime import worker

        await worker.run(
            self,
            handler,
            concurrency=concurrency,
            retry=retry,
            archive=archive,
            grace_period=grace_period,
            handle_signals=handle_signals,
        )
        return self.stats

    def wake(self, queue_name: str | None = None) -> None:
        """Re-read ``queue_name`` (all queues if None) at the next claim."""
        if queue_name is None:
            self._plan.read_all()
        elif (key := queue_name.lower()) in self.queues:
            self._plan.read(key)
        self._poke()

    def schedule(self, queue_name: str, msg_id: int, delay: float) -> None:
        """Claim message ``msg_id`` once it is visible again, in ``delay`` seconds (after a retry)."""
        self._plan.schedule(queue_name.lower(), msg_id, delay, time.monotonic())
        self._poke()

    def server_seconds_until(self, moment: datetime) -> float:
        """Seconds from now until ``moment`` on the server's clock (negative if past)."""
        return (moment - self._claims.server_now()).total_seconds()

    @property
    def session(self) -> ControlSession:
        """The connection acknowledgements, retries, heartbeats and hand-backs go through."""
        return self._acks.session

    @property
    def acks(self) -> AckBatcher:
        """The acknowledgement batcher."""
        return self._acks

    async def release(self, messages: Sequence[ClaimedMessage]) -> int:
        """Make ``messages`` visible again at once (a claim not worked on); returns how many were."""
        by_queue: dict[str, list[int]] = {}
        for m in messages:
            by_queue.setdefault(m.queue_name, []).append(m.msg_id)
        if not by_queue:
            return 0
        hand_back = QUERIES["hand_back"]
        results = await self._acks.session.run([(hand_back, {"queue": q, "ids": ids}) for q, ids in by_queue.items()])
        count = sum(len(rows) for rows in results)
        self.counters.handed_back += count
        return count

    def nudge(self) -> None:
        """Wake whoever waits in :meth:`claim` or :meth:`wait_for_wakeup` (the worker: a slot is free)."""
        self._poke()

    async def wait_for_wakeup(self) -> None:
        """Return once :meth:`stop`, :meth:`wake`, :meth:`nudge` or :meth:`schedule` was called."""
        await self._wakeup.wait()
        self._wakeup.clear()

    def take_unstarted(self) -> list[ClaimedMessage]:
        """Remove and return the messages claimed but not yet handed out."""
        unstarted = list(self._ready)
        self._ready.clear()
        return unstarted

    def _poke(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    def _acked(self, queue_name: str) -> None:
        if self.fifo:
            # The group's next message may be its head now.
            self.wake(queue_name)

    # -- claiming loop -------------------------------------------------------

    async def _await_ready(self, limit: int) -> bool:
        """Claim until ``_ready`` holds a message (True) or the consumer stops (False)."""
        if self._closed or self._stopping:
            return False
        await self.start()
        while not self._closed and not self._stopping:
            if self._ready:
                return True
            await self._absorb_buffered()
            self._plan.promote_due(time.monotonic())
            try:
                if await self._fill(limit):
                    continue
            except ConnectionLostError as exc:
                if self._closed or self._stopping:
                    break
                # A claim may have been lost in flight: its message comes back
                # when its visibility timeout ends, and a catch-up finds it.
                try:
                    await self._claims.reconnect(deadline=None, reason=describe_error(exc))
                except ConsumerError:
                    if self._closed or self._stopping:
                        break
                    raise
                self._plan.read_all()
                continue
            await self._wait()
        return False

    async def _absorb_buffered(self) -> None:
        if self._listener is None:
            return
        while (item := await self._listener.next_event(timeout=0)) is not None:
            self._handle(item)

    async def _wait(self) -> None:
        now = time.monotonic()
        if now - self._claims.last_used >= self.liveness_interval:
            await self._check_alive()
            return
        if now >= self._next_poll:
            self._plan.read_all()
            self._next_poll = now + self.poll_interval
            return
        if self._plan.start_due_rechecks(now):
            return
        timeout = self._plan.timeout(now, self._next_poll - now)
        timeout = max(min(timeout, self._claims.last_used + self.liveness_interval - now), 0.0)
        if self._wakeup.is_set():
            self._wakeup.clear()
            return
        if self._listener is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            return
        # Wait for an event, or for stop()/wake(); cancelling next_event() loses no item.
        waiting = asyncio.ensure_future(self._listener.next_event(timeout=timeout))
        woken = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({waiting, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not waiting.done():
                await aio.cancel_and_wait(waiting)
        self._wakeup.clear()
        item = waiting.result() if not waiting.cancelled() else None
        if item is not None:
            self._handle(item)

    def _handle(self, item: ListenerItem) -> None:
        if isinstance(item, (ListenerGap, InvalidEvent)):
            # A gap, or a notification we cannot read, may hide messages.
            log.info("gap (%s): catching up on %s", item.reason, sorted(self.queues.values()))
            self._gaps += 1
            self._plan.read_all()
            return
        if isinstance(item, QueueCreatedEvent):
            return
        self._note_event(item)

    def _note_event(self, event: MessageEvent) -> None:
        key = event.queue_name.lower()
        if key not in self.queues:
            return
        if self.fifo:
            # Claiming by id would ignore the groups: read the queue (grouped) instead.
            self._plan.read(key)
            return
        server_now = self._claims.server_now()
        if self.metrics is not None and event.enqueued_at is not None:
            self.metrics.event_delay((server_now - event.enqueued_at).total_seconds())
        if self._plan.note(key, event, server_now, time.monotonic()):
            log.info("%s: over %d announced ids pending; falling back to reading the queue", key, self.max_pending)

    # -- claiming ----------------------------------------------------------

    async def _fill(self, limit: int) -> bool:
        """Claim one batch of at most ``limit``: announced ids first, else a catch-up read. False if idle."""
        size = max(min(limit, self.batch_size), 1)
        plan = self._plan
        if (announced := plan.take_ids(size)) is not None:
            key, ids = announced
            got = await self._claim_ids(key, ids)
            if len(got) < len(ids):
                plan.read_instead(key)  # others took some: stop racing them id by id
            self._from_events += len(got)
            self._ready.extend(got)
            return True
        queue = plan.next_read()
        if queue is None:
            return False
        read = "read_grouped_head" if self.fifo else "read"
        rows = await self._claims.rows(read, {"queue": self.queues[queue], "vt": self.visibility_timeout, "qty": size})
        if plan.read_done(queue, len(rows), time.monotonic()):
            self._recheck_reads += 1
            self._from_rechecks += len(rows)
        self._catch_up_reads += 1
        self._from_catch_up += len(rows)
        self._ready.extend(self._message(queue, row) for row in rows)
        return True

    async def _claim_ids(self, key: str, ids: list[int]) -> list[ClaimedMessage]:
        args = {"queue": self.queues[key], "ids": ids, "vt": self.visibility_timeout}
        bodies = self._plan.take_bodies(key, ids)
        if bodies is not None:
            # Every message came in its event: claim without fetching the bodies again.
            rows = await self._claims.rows("claim_ids_without_body", args)
            return [self._message(key, row, bodies[row["msg_id"]]) for row in rows]
        return [self._message(key, row) for row in await self._claims.rows("claim_ids", args)]

    def _message(self, key: str, row: db.Row, body: tuple[JsonValue, JsonValue] | None = None) -> ClaimedMessage:
        message, headers = body if body is not None else (row["message"], row["headers"])
        return ClaimedMessage(
            self.queues[key], row["msg_id"], row["read_ct"], row["enqueued_at"], row["vt"], message, headers, self
        )

    # -- message actions (MessageActions) ---------------------------------

    async def delete(self, queue_name: str, msg_id: int) -> bool:
        """Delete a message by id (``pgmq.delete``, batched with other acknowledgements); True once committed."""
        self._settle(queue_name, msg_id)
        return await self._acks.delete(queue_name, msg_id)

    async def archive(self, queue_name: str, msg_id: int) -> bool:
        """Archive a message by id (``pgmq.archive``, batched with other acknowledgements); True once committed."""
        self._settle(queue_name, msg_id)
        return await self._acks.archive(queue_name, msg_id)

    def _settle(self, queue_name: str, msg_id: int) -> None:
        hold = self.in_flight.get((queue_name, msg_id))
        if hold is not None:
            hold.settled = True

    async def extend(self, queue_name: str, msg_id: int, seconds: int) -> datetime | None:
        """Push a message's visibility timeout ``seconds`` further out."""
        params = {"queue": queue_name, "msg_id": msg_id, "seconds": seconds}
        value = await self._claims.scalar("extend_vt", "vt", params, self.reconnect_timeout)
        if not isinstance(value, datetime):
            return None
        hold = self.in_flight.get((queue_name, msg_id))
        if hold is not None:
            hold.vt = max(hold.vt, value)
        return value

    # -- connection --------------------------------------------------------

    async def _check_alive(self) -> None:
        if await self._claims.check_alive(self.liveness_timeout):
            self._plan.read_all()

    async def _open_control(self) -> db.Session:
        # The same layer as claims (a real connection, or the fake), without claims_without_flush:
        # acknowledgements wait for the disk.
        return await self._database.session(APPLICATION_NAME, self.config.schema, sorted(self.queues.values()))

"""The run loop behind ``PgmqConsumer.run(handler, concurrency=N)``.

- **Slots.** At most ``concurrency`` handlers run at once; each claim asks for
  no more messages than there are free slots, so a slow handler never hoards
  messages that another worker could take. A slot is a long-lived task that
  takes claimed messages one after another (no task per message): a handler
  that returns without waiting lets its slot take the next message at once,
  and an idle slot is woken only when no other woken slot is about to take
  the waiting messages.
- **Acknowledgements.** A handler that returns acknowledges its message
  (delete, or archive) through the consumer's :class:`~pgmq_runtime.acks.AckBatcher`;
  its slot is free at once, the acknowledgement commits with the others.
  A handler that settled its message itself (``delete()``/``archive()``) is
  not acknowledged twice.
- **Retries.** A handler that raises: :class:`~pgmq_runtime.retries.RetryPolicy`
  gives the message back after a backoff, or gives up on it.
- **Heartbeat.** While a handler runs, its message's visibility timeout is
  pushed out (by ``visibility_timeout``) whenever less than half of it is left.
- **Stop.** On ``consumer.stop()``, SIGINT or SIGTERM: no more claims;
  messages claimed but not started are handed back at once (visible now);
  running handlers get ``grace_period`` seconds (a second signal cuts it
  short), then are cancelled and their messages handed back; acknowledgements
  are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from pgmq_runtime import aio
from pgmq_runtime.consumer import ClaimedMessage, InFlight, PgmqConsumer
from pgmq_runtime.errors import ConsumerError, describe_error
from pgmq_runtime.queries import QUERIES
from pgmq_runtime.retries import RetryPolicy

log = logging.getLogger(__name__)

Handler = Callable[[ClaimedMessage], Awaitable[object]] | Callable[[ClaimedMessage], object]
PGMQ_INSTALLED = QUERIES["pgmq_installed"]
EXTEND_MANY = QUERIES["extend_many"]
QUEUE_EXISTS = QUERIES["queue_exists"]
# Acknowledgements queued but not committed before claims wait for them, per slot.
_ACKS_PER_SLOT = 8


async def run(
    consumer: PgmqConsumer,
    handler: Handler,
    *,
    concurrency: int = 1,
    retry: RetryPolicy | None = None,
    archive: bool = False,
    grace_period: float = 30.0,
    handle_signals: bool = True,
) -> None:
    """Claim and handle messages until ``consumer.stop()`` (or SIGINT/SIGTERM with ``handle_signals``).

    ``handler`` is an async function of a :class:`ClaimedMessage` (a plain
    function runs in a thread). Raises :class:`ConsumerError` if the queues
    cannot be read (after stopping cleanly).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if grace_period < 0:
        raise ValueError("grace_period must be >= 0")
    await _Worker(consumer, handler, concurrency, retry or RetryPolicy(), archive, grace_period).run(handle_signals)


async def check_queues(consumer: PgmqConsumer, retry: RetryPolicy | None = None) -> None:
    """Fail early, in one line, on a database without PGMQ or a queue (or dead-letter queue) that does not exist."""
    [rows] = await consumer.session.run([(PGMQ_INSTALLED, None)])
    if not rows[0]["installed"]:
        raise ConsumerError("PGMQ is not installed in this database (no table pgmq.meta)")
    dead_letter_queue = retry.dead_letter_queue if retry is not None else None
    wanted = [*consumer.queues.values()]
    if dead_letter_queue is not None:
        wanted.append(dead_letter_queue)
    for name in wanted:
        [rows] = await consumer.session.run([(QUEUE_EXISTS, {"queue": name})])
        if not rows[0]["present"]:
            what = "dead-letter queue" if name == dead_letter_queue else "queue"
            raise ConsumerError(f"{what} {name!r} does not exist (create it with pgmq.create)")


class _Worker:
    def __init__(
        self,
        consumer: PgmqConsumer,
        handler: Handler,
        concurrency: int,
        retry: RetryPolicy,
        archive: bool,
        grace_period: float,
    ) -> None:
        self.consumer = consumer
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.concurrency = concurrency
        self.retry = retry
        self.archive = archive
        self.grace_period = grace_period
        # Claimed messages no slot has taken yet, in claim order.
        self.waiting: deque[ClaimedMessage] = deque()
        # Slot tasks, and the message each busy one is handling.
        self.slots: set[asyncio.Task[None]] = set()
        self.running: dict[asyncio.Task[None], ClaimedMessage] = {}
        # Idle slots wait on these; ``waking`` counts slots woken (or new) that have not yet looked for work.
        self.idle: deque[asyncio.Future[None]] = deque()
        self.waking = 0
        self.closing = False
        self.force = asyncio.Event()
        self.counters = consumer.counters

    async def run(self, handle_signals: bool) -> None:
        consumer = self.consumer
        await consumer.start()
        await check_queues(consumer, self.retry)
        restore = self._install_signals() if handle_signals else None
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(), name="pgmq-worker-heartbeat")
        log.info(
            "worker started on %s: concurrency %d, max_attempts %d",
            ", ".join(sorted(consumer.queues.values())),
            self.concurrency,
            self.retry.max_attempts,
        )
        try:
            await self._claim_loop()
        finally:
            try:
                await self._shutdown()
            finally:
                await aio.cancel_and_wait(heartbeat)
                if restore is not None:
                    restore()
            c = self.counters
            log.info(
                "worker stopped: %d handled, %d failed, %d retried, %d given up",
                c.handled,
                c.failed,
                c.retries,
                c.dead_lettered,
            )

    # -- claiming ------------------------------------------------------------

    async def _claim_loop(self) -> None:
        consumer = self.consumer
        ack_limit = max(1000, _ACKS_PER_SLOT * self.concurrency)
        while not consumer.stopping:
            free = self.concurrency - len(self.running) - len(self.waiting)
            if free <= 0:
                await consumer.wait_for_wakeup()
                continue
            if consumer.acks.outstanding >= ack_limit:
                await consumer.acks.flush()
            claimed = await consumer.claim(free)
            if claimed:
                self.waiting.extend(claimed)
                self._wake_slot()

    # -- slots ---------------------------------------------------------------

    def _wake_slot(self) -> None:
        """Make sure some slot will look at ``waiting`` soon: wake an idle one, or start one."""
        if not self.waiting or self.waking:
            return
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                self.waking += 1
                waiter.set_result(None)
                return
        if len(self.slots) < self.concurrency:
            self.waking += 1
            task = asyncio.get_running_loop().create_task(self._slot(), name="pgmq-worker-slot")
            self.slots.add(task)
            task.add_done_callback(self._slot_done)

    async def _slot(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        consumer = self.consumer
        in_flight = consumer.in_flight
        self.waking -= 1
        while True:
            if not self.waiting:
                if self.closing:
                    return
                waiter = asyncio.get_running_loop().create_future()
                self.idle.append(waiter)
                await waiter
                self.waking -= 1
                continue
            message = self.waiting.popleft()
            # More waiting: another slot takes the next one if this handler has to wait.
            self._wake_slot()
            hold = InFlight(message, message.vt)
            in_flight[(message.queue_name, message.msg_id)] = hold
            self.running[task] = message
            try:
                await self._handle(hold)
            finally:
                del self.running[task]
                consumer.nudge()

    def _slot_done(self, task: asyncio.Task[None]) -> None:
        self.slots.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("worker slot failed: %s", describe_error(exc), exc_info=exc)

    # -- one message ---------------------------------------------------------

    async def _handle(self, hold: InFlight) -> None:
        message = hold.message
        key = (message.queue_name, message.msg_id)
        started = time.monotonic()
        try:
            try:
                if self.is_async:
                    await self.handler(message)  # type: ignore[misc]
                else:
                    result = await asyncio.to_thread(self.handler, message)
                    if inspect.isawaitable(result):
                        await result
            except asyncio.CancelledError:
                self.counters.handler_done(time.monotonic() - started, ok=False)
                raise
            except Exception as exc:
                self.counters.handler_done(time.monotonic() - started, ok=False)
                await self._failed(hold, exc)
                return
            self.counters.handler_done(time.monotonic() - started, ok=True)
            if not hold.settled:
                # A failed batch is logged by the batcher; the message comes back after its timeout.
                self.consumer.acks.enqueue(message.queue_name, message.msg_id, archive=self.archive)
        finally:
            self.consumer.in_flight.pop(key, None)

    async def _failed(self, hold: InFlight, exc: Exception) -> None:
        message = hold.message
        error = describe_error(exc)
        where = f"message {message.msg_id} of {message.queue_name}"
        if hold.settled:
            log.info("%s: handler raised after settling it (%s); nothing to retry", where, error)
            return
        try:
            if self.retry.gives_up(message.read_ct):
                statements = self.retry.give_up_statements(
                    message.queue_name, message.msg_id, message.read_ct, message.message, message.headers, error
                )
                await self.consumer.session.run(statements)
                self.counters.dead_lettered += 1
                target = self.retry.dead_letter_queue
                log.warning(
                    "%s failed on attempt %d of %d (%s): %s",
                    where,
                    message.read_ct,
                    self.retry.max_attempts,
                    error,
                    f"moved to dead-letter queue {target}" if target else "archived",
                    exc_info=exc,
                )
                if self.consumer.fifo:
                    self.consumer.wake(message.queue_name)
                return
            delay = self.retry.backoff(message.read_ct)
            await self.consumer.session.run(self.retry.retry_statements(message.queue_name, message.msg_id, delay))
            self.counters.retries += 1
            self.consumer.schedule(message.queue_name, message.msg_id, delay)
            log.info("%s failed on attempt %d (%s): retrying in %.2f s", where, message.read_ct, error, delay)
        except ConsumerError as db_exc:
            # It comes back when its visibility timeout ends.
            log.error("%s failed (%s) and could not be given back: %s", where, error, describe_error(db_exc))

    # -- heartbeat -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        consumer = self.consumer
        seconds = consumer.visibility_timeout
        while True:
            await asyncio.sleep(max(seconds / 4, 0.05))
            due: dict[str, list[InFlight]] = {}
            for hold in list(consumer.in_flight.values()):
                if not hold.settled and consumer.server_seconds_until(hold.vt) < seconds / 2:
                    due.setdefault(hold.message.queue_name, []).append(hold)
            if not due:
                continue
            statements = [
                (EXTEND_MANY, {"queue": queue, "ids": [h.message.msg_id for h in holds], "vt": seconds})
                for queue, holds in due.items()
            ]
            try:
                results = await consumer.session.run(statements)
            except ConsumerError as exc:
                log.warning("heartbeat failed: %s", describe_error(exc))
                continue
            for holds, rows in zip(due.values(), results, strict=True):
                new_vt = {int(row["msg_id"]): row["vt"] for row in rows}
                for hold in holds:
                    if hold.message.msg_id in new_vt:
                        hold.vt = new_vt[hold.message.msg_id]
                        self.counters.heartbeats += 1
                    else:
                        log.warning(
                            "message %s of %s is gone while its handler runs",
                            hold.message.msg_id,
                            hold.message.queue_name,
                        )

    # -- stopping ------------------------------------------------------------

    async def _shutdown(self) -> None:
        consumer = self.consumer
        consumer.stop()
        # No slot takes another message from here on; idle slots leave.
        self.closing = True
        unstarted = [*self.waiting, *consumer.take_unstarted()]
        self.waiting.clear()
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                self.waking += 1
                waiter.set_result(None)
        await self._hand_back(unstarted, "claimed but not started")
        if self.running:
            log.info("stopping: waiting up to %g s for %d running handler(s)", self.grace_period, len(self.running))
            await self._wait_running()
        if self.running:
            late = dict(self.running)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            log.warning("%d handler(s) still running after the grace period were cancelled", len(late))
            await self._hand_back(list(late.values()), "cancelled")
        await asyncio.gather(*self.slots, return_exceptions=True)
        await consumer.acks.flush()

    async def _wait_running(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_period
        while self.running and not self.force.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            forcing = asyncio.ensure_future(self.force.wait())
            try:
                await asyncio.wait({*self.running, forcing}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                forcing.cancel()

    async def _hand_back(self, messages: list[ClaimedMessage], why: str) -> None:
        if not messages:
            return
        try:
            count = await self.consumer.release(messages)
        except ConsumerError as exc:
            log.error("could not hand back %d message(s) %s: %s", len(messages), why, describe_error(exc))
            return
        log.info("handed back %d message(s) %s", count, why)

    def _install_signals(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        previous: dict[signal.Signals, Any] = {sig: signal.getsignal(sig) for sig in signals}

        def on_signal(sig: signal.Signals) -> None:
            if self.consumer.stopping:
                log.warning("%s again: cancelling running handlers now", sig.name)
                self.force.set()
            else:
                log.info("%s: stopping", sig.name)
                self.consumer.stop()

        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)

        def restore() -> None:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                with contextlib.suppress(TypeError, ValueError):
                    signal.signal(sig, handler)

        return restore

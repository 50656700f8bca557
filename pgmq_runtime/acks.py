"""Acknowledgements in batches: many deletes and archives, one transaction.

A handler that returns acknowledges its message; so does ``ClaimedMessage.delete()``
or ``archive()`` called by hand. Each acknowledgement is queued here. A caller
of ``delete()``/``archive()`` waits on a future that resolves only once the
transaction carrying it has committed; the worker's own acknowledgements
(:meth:`AckBatcher.enqueue`) carry no future: nobody waits on them one by one,
their commit is counted, :meth:`AckBatcher.flush` waits for it and a failed
batch is logged here. One flusher task commits whatever is queued, one
``pgmq.delete(queue, ids[])`` (or ``pgmq.archive``) per queue and kind, as soon
as the previous commit returns: under load the batches grow by themselves
(group commit), at low rates each acknowledgement goes out at once.

:class:`ControlSession` is the connection those batches (and the worker's
retries, heartbeats and hand-backs) go through, apart from the connection
that claims, so that acknowledging never waits behind a claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pgmq_runtime import aio, db
from pgmq_runtime.errors import ConnectionLostError, ConsumerError, DatabaseError, describe_error
from pgmq_runtime.queries import QUERIES
from pgmq_runtime.stats import Counters

log = logging.getLogger(__name__)

# A catalogued query and its parameters (see pgmq_runtime.db.Session.fetch_many).
Statement = db.Step
DELETE_MANY = QUERIES["delete_many"]
ARCHIVE_MANY = QUERIES["archive_many"]
# At most this many ids in one pgmq.delete / pgmq.archive call.
MAX_BATCH = 1000


class ControlSession:
    """One connection of the db layer, opened on first use, that runs statements one transaction at a time.

    ``open_session`` makes the connection (a :class:`pgmq_runtime.db.Session`,
    whose errors :mod:`pgmq_runtime.db` has already translated). A lost
    connection is re-opened (with backoff, for up to ``reconnect_timeout``
    seconds) and the transaction run once more: everything sent through here
    is safe to repeat (delete, archive and set_vt by id). Any other database
    error becomes a :class:`ConsumerError` with the translated error's line.
    """

    def __init__(self, open_session: Callable[[], Awaitable[db.Session]], reconnect_timeout: float) -> None:
        self._open = open_session
        self.reconnect_timeout = reconnect_timeout
        self._session: db.Session | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def run(self, statements: Sequence[Statement]) -> list[list[db.Row]]:
        """Run ``statements`` in one transaction; the rows of each, as dicts."""
        async with self._lock:
            for attempt in (1, 2):
                session = await self._connection()
                try:
                    return await session.fetch_many(statements)
                except ConnectionLostError as exc:
                    await self._drop()
                    reason = _driver_words(exc)
                    if attempt == 2:
                        raise ConsumerError(f"lost the consumer's control connection: {reason}") from exc
                    log.warning("control connection lost (%s); reconnecting", reason)
                except DatabaseError as exc:
                    raise ConsumerError(str(exc)) from exc
        raise AssertionError("unreachable")

    async def _connection(self) -> db.Session:
        if self._session is not None and not self._session.closed:
            return self._session
        if self._closed:
            raise ConsumerError("the consumer is closed")
        deadline = time.monotonic() + self.reconnect_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                self._session = await self._open()
                return self._session
            except ConnectionLostError as exc:
                if time.monotonic() > deadline:
                    raise ConsumerError(f"cannot connect the consumer: {describe_error(exc)}") from exc
            await asyncio.sleep(db.backoff_delay(attempt, 0.1, 5.0))

    async def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    async def close(self) -> None:
        """Close the connection; later calls fail with a ConsumerError."""
        self._closed = True
        async with self._lock:
            await self._drop()


def _driver_words(exc: ConnectionLostError) -> str:
    """The lost connection's own error, as one line (what was logged before the db layer translated it)."""
    return describe_error(exc.__cause__ if exc.__cause__ is not None else exc)


@dataclass(slots=True)
class _Ack:
    queue_name: str
    msg_id: int
    archive: bool
    # None: nobody waits on this acknowledgement by itself (the worker's own).
    future: asyncio.Future[bool] | None = field(repr=False)


class AckBatcher:
    """Queue deletes and archives; commit them in batches on a :class:`ControlSession`.

    ``on_commit(queue_name)`` is called after each committed batch, once per
    queue it touched (the FIFO worker re-reads that queue: its next message
    may be claimable now).
    """

    def __init__(
        self,
        session: ControlSession,
        counters: Counters,
        *,
        max_batch: int = MAX_BATCH,
        on_commit: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.counters = counters
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._pending: list[_Ack] = []
        # Acknowledgements queued so far, and how many of them have committed or failed
        # (batches settle in the order they were queued).
        self._queued = 0
        self._settled = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, queue_name: str, msg_id: int, archive: bool = False) -> asyncio.Future[bool]:
        """Queue one acknowledgement; the future says (after commit) whether the message was still there."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue(_Ack(queue_name, msg_id, archive, future))
        return future

    def enqueue(self, queue_name: str, msg_id: int, archive: bool = False) -> None:
        """Queue one acknowledgement that nobody waits on by itself (the worker's, after its handler returned).

        It counts in :attr:`outstanding` until its batch committed or failed,
        :meth:`flush` waits for it, and a failed batch is logged here (its
        messages come back when their visibility timeout ends). No future and
        no callbacks per message: this is the worker's hot path.
        """
        self._queue(_Ack(queue_name, msg_id, archive, None))

    def _queue(self, ack: _Ack) -> None:
        self._pending.append(ack)
        self._queued += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._run(), name="pgmq-ack-flusher")
        self._wake.set()

    async def delete(self, queue_name: str, msg_id: int) -> bool:
        """Delete a message; True once committed, False if it was already gone."""
        return await asyncio.shield(self.submit(queue_name, msg_id))

    async def archive(self, queue_name: str, msg_id: int) -> bool:
        """Archive a message; True once committed, False if it was already gone."""
        return await asyncio.shield(self.submit(queue_name, msg_id, archive=True))

    @property
    def outstanding(self) -> int:
        """Acknowledgements queued or in flight, not yet committed (or failed)."""
        return self._queued - self._settled

    async def flush(self) -> None:
        """Wait until every acknowledgement queued so far has committed (or failed)."""
        target = self._queued
        if self._settled >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, waiter))
        # Shielded: a cancelled caller must not leave a cancelled waiter behind.
        await asyncio.shield(waiter)

    async def close(self) -> None:
        """Flush, then stop the flusher task."""
        await self.flush()
        if self._flusher is not None:
            await aio.cancel_and_wait(self._flusher)
            self._flusher = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._commit(batch)

    async def _commit(self, batch: list[_Ack]) -> None:
        try:
            await self._commit_batch(batch)
        finally:
            self._settled += len(batch)
            if self._flush_waiters:
                settled = self._settled
                for target, waiter in self._flush_waiters:
                    if target <= settled and not waiter.done():
                        waiter.set_result(None)
                self._flush_waiters = [(t, w) for t, w in self._flush_waiters if t > settled]

    async def _commit_batch(self, batch: list[_Ack]) -> None:
        groups: dict[tuple[str, bool], dict[int, None]] = {}
        for ack in batch:
            groups.setdefault((ack.queue_name, ack.archive), {})[ack.msg_id] = None
        keys = list(groups)
        statements: list[Statement] = [
            (ARCHIVE_MANY if archive else DELETE_MANY, {"queue": queue, "ids": list(groups[(queue, archive)])})
            for queue, archive in keys
        ]
        try:
            results = await self.session.run(statements)
        except Exception as exc:
            log.warning("%d acknowledgement(s) failed: %s", len(batch), describe_error(exc))
            for ack in batch:
                if ack.future is not None and not ack.future.done():
                    ack.future.set_exception(exc)
            return
        done = {key: {int(row["msg_id"]) for row in rows} for key, rows in zip(keys, results, strict=True)}
        self.counters.ack_batches += 1
        for (_queue, archive), ids in done.items():
            if archive:
                self.counters.archived += len(ids)
            else:
                self.counters.deleted += len(ids)
        for ack in batch:
            ids = done[(ack.queue_name, ack.archive)]
            ok = ack.msg_id in ids
            # The same id twice in one batch: only the first is reported as acknowledged.
            ids.discard(ack.msg_id)
            if ack.future is not None and not ack.future.done():
                ack.future.set_result(ok)
        if self.on_commit is not None:
            for queue in dict.fromkeys(queue for queue, _ in keys):
                self.on_commit(queue)

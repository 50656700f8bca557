"""A thin blocking facade over the async client, listener and consumer, for code without asyncio.

Each object owns a private event loop (``asyncio.Runner``) and drives the async
object on it; the loop runs only while one of its methods is being called.
Between calls nothing reads the connection, so keep the time between calls
well under the visibility timeout (and expect gap markers after long pauses).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from pgmq_runtime.client import HealthReport, Operations, PgmqNotifyClient, QueueInfo, QueueMetrics, Transaction
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from pgmq_runtime.events import JsonValue, ListenerItem
from pgmq_runtime.listener import ListenerStats, PgmqNotifyListener, SelfCheckResult


class SyncMessage:
    """A claimed message with blocking ``delete``, ``archive`` and ``extend``."""

    def __init__(self, claimed: ClaimedMessage, runner: asyncio.Runner) -> None:
        self.claimed = claimed
        self._runner = runner

    @property
    def queue_name(self) -> str:
        """The queue the message belongs to."""
        return self.claimed.queue_name

    @property
    def msg_id(self) -> int:
        """The message id."""
        return self.claimed.msg_id

    @property
    def message(self) -> JsonValue:
        """The message body."""
        return self.claimed.message

    @property
    def headers(self) -> JsonValue:
        """The message headers (or None)."""
        return self.claimed.headers

    @property
    def read_ct(self) -> int:
        """How many times the message was claimed."""
        return self.claimed.read_ct

    def delete(self) -> bool:
        """Delete the message; False if it was already gone."""
        return self._runner.run(self.claimed.delete())

    def archive(self) -> bool:
        """Archive the message; False if it was already gone."""
        return self._runner.run(self.claimed.archive())

    def extend(self, seconds: int) -> datetime | None:
        """Keep the message ``seconds`` longer; the new ``vt``, or None if gone."""
        return self._runner.run(self.claimed.extend(seconds))


class _Blocking:
    def __init__(self) -> None:
        self._runner = asyncio.Runner()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection(s) and the private event loop."""
        try:
            self._runner.run(self._aclose())
        finally:
            self._runner.close()

    async def _aclose(self) -> None:
        raise NotImplementedError


class SyncConsumer(_Blocking):
    """Blocking :class:`PgmqConsumer`: ``for message in consumer: ...; message.delete()``."""

    def __init__(
        self,
        dsn: str,
        queues: str | Sequence[str],
        config: PgmqNotifyConfig | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.consumer = PgmqConsumer(dsn, queues, config, **options)
        self._runner.run(self.consumer.start())

    def __iter__(self) -> Iterator[SyncMessage]:
        return self

    def __next__(self) -> SyncMessage:
        try:
            claimed = self._runner.run(self.consumer.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None
        return SyncMessage(claimed, self._runner)

    async def _aclose(self) -> None:
        await self.consumer.close()


class SyncListener(_Blocking):
    """Blocking :class:`PgmqNotifyListener`: ``for item in listener: ...``."""

    def __init__(self, dsn: str, config: PgmqNotifyConfig | None = None, **options: Any) -> None:
        super().__init__()
        self.listener = PgmqNotifyListener(dsn, config, **options)
        self._runner.run(self.listener.connect())

    def listen(self, channel: str) -> None:
        """LISTEN on ``channel``."""
        self._runner.run(self.listener.listen(channel))

    def listen_queue_created(self) -> None:
        """Listen for ``queue_created`` events."""
        self._runner.run(self.listener.listen_queue_created())

    def listen_message_ready_for_namespace(self, namespace: str) -> None:
        """Listen for one namespace's message events."""
        self._runner.run(self.listener.listen_message_ready_for_namespace(namespace))

    def listen_message_ready_global(self) -> None:
        """Listen on the global message channel."""
        self._runner.run(self.listener.listen_message_ready_global())

    def listen_default_namespaces(self) -> None:
        """Listen for the default namespace's message events."""
        self._runner.run(self.listener.listen_default_namespaces())

    def next_event(self, timeout: float | None = None) -> ListenerItem | None:
        """The next item; None on timeout."""
        return self._runner.run(self.listener.next_event(timeout))

    def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        """Probe NOTIFY round trip; see :meth:`PgmqNotifyListener.self_check`."""
        return self._runner.run(self.listener.self_check(timeout))

    @property
    def stats(self) -> ListenerStats:
        """The listener's counters."""
        return self.listener.stats

    def __iter__(self) -> Iterator[ListenerItem]:
        return self

    def __next__(self) -> ListenerItem:
        try:
            return self._runner.run(self.listener.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    async def _aclose(self) -> None:
        await self.listener.close()


class SyncOperations:
    """The blocking twin of :class:`pgmq_runtime.client.Operations`: the same methods, same arguments.

    Claimed messages come back as :class:`SyncMessage`.
    """

    def __init__(self, operations: Operations, runner: asyncio.Runner) -> None:
        self._ops = operations
        self._runner = runner

    def _messages(self, claimed: Sequence[ClaimedMessage]) -> list[SyncMessage]:
        return [SyncMessage(m, self._runner) for m in claimed]

    def create_queue(self, queue: str, **options: Any) -> None:
        """See :meth:`PgmqNotifyClient.create_queue`."""
        self._runner.run(self._ops.create_queue(queue, **options))

    def send(self, queue: str, message: JsonValue, delay: int = 0, headers: JsonValue = None) -> int:
        """See :meth:`PgmqNotifyClient.send`."""
        return self._runner.run(self._ops.send(queue, message, delay, headers))

    def send_batch(
        self, queue: str, messages: Sequence[JsonValue], delay: int = 0, headers: Sequence[JsonValue] | None = None
    ) -> list[int]:
        """See :meth:`PgmqNotifyClient.send_batch`."""
        return self._runner.run(self._ops.send_batch(queue, messages, delay, headers))

    def send_topic(self, routing_key: str, message: JsonValue, delay: int = 0, headers: JsonValue = None) -> int:
        """See :meth:`PgmqNotifyClient.send_topic`."""
        return self._runner.run(self._ops.send_topic(routing_key, message, delay, headers))

    def read(self, queue: str, vt: int = 30, qty: int = 1) -> list[SyncMessage]:
        """See :meth:`PgmqNotifyClient.read`."""
        return self._messages(self._runner.run(self._ops.read(queue, vt, qty)))

    def read_specific(self, queue: str, msg_id: int, vt: int = 30) -> SyncMessage | None:
        """See :meth:`PgmqNotifyClient.read_specific`."""
        claimed = self._runner.run(self._ops.read_specific(queue, msg_id, vt))
        return None if claimed is None else SyncMessage(claimed, self._runner)

    def pop(self, queue: str, qty: int = 1) -> list[SyncMessage]:
        """See :meth:`PgmqNotifyClient.pop`."""
        return self._messages(self._runner.run(self._ops.pop(queue, qty)))

    def delete(self, queue: str, msg_ids: int | Sequence[int]) -> bool | list[int]:
        """See :meth:`PgmqNotifyClient.delete`."""
        if isinstance(msg_ids, int):
            return self._runner.run(self._ops.delete(queue, msg_ids))
        return self._runner.run(self._ops.delete(queue, list(msg_ids)))

    def archive(self, queue: str, msg_ids: int | Sequence[int]) -> bool | list[int]:
        """See :meth:`PgmqNotifyClient.archive`."""
        if isinstance(msg_ids, int):
            return self._runner.run(self._ops.archive(queue, msg_ids))
        return self._runner.run(self._ops.archive(queue, list(msg_ids)))

    def set_vt(self, queue: str, msg_ids: int | Sequence[int], vt: int) -> SyncMessage | list[SyncMessage] | None:
        """See :meth:`PgmqNotifyClient.set_vt`."""
        if isinstance(msg_ids, int):
            one = self._runner.run(self._ops.set_vt(queue, msg_ids, vt))
            return None if one is None else SyncMessage(one, self._runner)
        return self._messages(self._runner.run(self._ops.set_vt(queue, list(msg_ids), vt)))

    def extend(self, queue_name: str, msg_id: int, seconds: int) -> datetime | None:
        """See :meth:`PgmqNotifyClient.extend`."""
        return self._runner.run(self._ops.extend(queue_name, msg_id, seconds))

    def purge_queue(self, queue: str) -> int:
        """See :meth:`PgmqNotifyClient.purge_queue`."""
        return self._runner.run(self._ops.purge_queue(queue))

    def drop_queue(self, queue: str) -> bool:
        """See :meth:`PgmqNotifyClient.drop_queue`."""
        return self._runner.run(self._ops.drop_queue(queue))

    def list_queues(self) -> list[QueueInfo]:
        """See :meth:`PgmqNotifyClient.list_queues`."""
        return self._runner.run(self._ops.list_queues())

    def metrics(self, queue: str) -> QueueMetrics:
        """See :meth:`PgmqNotifyClient.metrics`."""
        return self._runner.run(self._ops.metrics(queue))

    def health(self) -> HealthReport:
        """See :meth:`PgmqNotifyClient.health`."""
        return self._runner.run(self._ops.health())


class SyncTransaction(SyncOperations):
    """What :meth:`SyncClient.transaction` yields: every client method, plus :meth:`execute`."""

    def __init__(self, transaction: Transaction, runner: asyncio.Runner) -> None:
        super().__init__(transaction, runner)
        self._tx = transaction

    def execute(self, statement: str, params: Any = None) -> None:
        """Run your own SQL (``%s`` placeholders) in this transaction."""
        self._runner.run(self._tx.execute(statement, params))


class SyncClient(_Blocking, SyncOperations):
    """Blocking :class:`PgmqNotifyClient`: ``with SyncClient(dsn, config) as client: client.send(...)``.

    ``source`` is a DSN (the client owns a pool) or what the async client
    takes; ``options`` are :class:`PgmqNotifyClient`'s. Claimed messages come
    back as :class:`SyncMessage`; :meth:`transaction` runs sends and your own
    SQL in one transaction.
    """

    def __init__(self, source: Any, config: PgmqNotifyConfig | None = None, **options: Any) -> None:
        _Blocking.__init__(self)
        self.client = PgmqNotifyClient(source, config, **options)
        SyncOperations.__init__(self, self.client, self._runner)
        try:
            self._runner.run(self.client.open())
        except BaseException:
            self._runner.close()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SyncTransaction]:
        """Sends (and ``tx.execute``) in one transaction: events at commit, none on rollback (an exception)."""
        manager = self.client.transaction()
        tx = self._runner.run(manager.__aenter__())
        try:
            yield SyncTransaction(tx, self._runner)
        except BaseException as exc:
            if not self._runner.run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self._runner.run(manager.__aexit__(None, None, None))

    async def _aclose(self) -> None:
        await self.client.close()

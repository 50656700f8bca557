"""``PgmqNotifyClient``: the producer and operations client, on the runtime's connection layer.

It sends the way the config's ``mode`` needs (plain ``pgmq.send`` when a
trigger announces, the generated ``send_with_notify`` in ``wrapper`` mode, so
the same code notifies in every mode and never twice in ``both``), reads,
claims by id, acknowledges many ids in one round trip, manages queues and
reports health. It owns a ``psycopg_pool`` pool (from a DSN), joins one you
give it, runs on a connection you own (:meth:`PgmqNotifyClient.using`) or in
your transaction (:meth:`PgmqNotifyClient.transaction`). Errors are the typed
ones of :mod:`pgmq_runtime.db`, plus
:class:`~pgmq_runtime.errors.MessageNotSerializableError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, overload

import psycopg
import psycopg_pool

from pgmq_codegen import __version__ as GENERATOR_VERSION
from pgmq_runtime import db, install_check, object_names
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage
from pgmq_runtime.errors import MessageNotSerializableError, PgmqNotifyError, PoolClosedError
from pgmq_runtime.events import JsonValue
from pgmq_runtime.queries import QUERIES
from pgmq_runtime.stats import ClientStats

if TYPE_CHECKING:
    from pgmq_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)

APPLICATION_NAME = "pgmq-runtime-client"
# Above this share of the notification queue, health() reports a problem (NOTIFY starts failing when full).
NOTIFY_QUEUE_WARN = 0.5


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One row of ``pgmq.list_queues()``."""

    queue_name: str
    is_partitioned: bool
    is_unlogged: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """``pgmq.metrics(queue)``: length, message ages in seconds, messages ever sent."""

    queue_name: str
    queue_length: int
    newest_msg_age_sec: int | None
    oldest_msg_age_sec: int | None
    total_messages: int
    scrape_time: datetime


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What :meth:`PgmqNotifyClient.health` found; ``ok`` when ``problems`` is empty."""

    pgmq_installed: bool
    pgmq_version: str | None
    has_topics: bool
    expected_fingerprint: str
    installed_fingerprint: str | None
    installed_generator_version: str | None
    missing_functions: tuple[str, ...]
    notification_queue_usage: float
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


class Backend(db.Executor, Protocol):
    """Where a client's queries run: a pool, a caller's connection, or :class:`pgmq_runtime.testing.FakePgmq`."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[TransactionBackend]: ...


class TransactionBackend(db.Executor, Protocol):
    """A backend inside one transaction; it also runs the caller's own SQL."""

    async def execute(self, statement: str, params: Any = None) -> None: ...


class _ConnectionBackend:
    """Queries on one connection (the caller's, or a pooled one held for a transaction)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str) -> None:
        self.conn = conn
        self.schema = schema

    async def fetch(self, query: Any, params: db.Params = None, *, queue: str | None = None) -> list[db.Row]:
        return await db.run(self.conn, query, params, schema=self.schema, queue=queue)

    async def execute(self, statement: str, params: Any = None) -> None:
        with db.translating(schema=self.schema):
            await self.conn.execute(statement, params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_ConnectionBackend]:
        # Inside the caller's open transaction this is a savepoint.
        with db.translating(schema=self.schema):
            async with self.conn.transaction():
                yield self


class _PoolBackend:
    """Each query on a connection taken from the pool; a transaction holds one connection."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any], schema: str) -> None:
        self.executor = db.PoolExecutor(pool, schema)
        self.schema = schema

    async def fetch(self, query: Any, params: db.Params = None, *, queue: str | None = None) -> list[db.Row]:
        return await self.executor.fetch(query, params, queue=queue)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_ConnectionBackend]:
        async with self.executor.connection() as conn, _ConnectionBackend(conn, self.schema).transaction() as tx:
            yield tx


def _json(value: Any, what: str, queue: str) -> str | None:
    if value is None and what == "headers":
        return None
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MessageNotSerializableError(f"{what} for queue {queue!r} is not JSON-serialisable: {exc}") from exc


class Operations:
    """Everything the client does; shared by the client, :meth:`~PgmqNotifyClient.using` and transactions."""

    def __init__(
        self, config: PgmqNotifyConfig, backend: Backend | TransactionBackend, stats: ClientStats | None = None
    ) -> None:
        self.config = config
        self._backend = backend
        #: Messages sent and failed calls, shared with the client's transactions and using() handles.
        self.stats = stats if stats is not None else ClientStats()

    async def _rows(self, name: str, /, **params: Any) -> list[db.Row]:
        # The queue a statement names lets a missing queue be reported by name.
        try:
            return await self._backend.fetch(QUERIES[name], params, queue=params.get("queue"))
        except PgmqNotifyError:
            self.stats.errors += 1
            raise

    def _message(self, queue: str, row: db.Row) -> ClaimedMessage:
        return ClaimedMessage(
            queue, row["msg_id"], row["read_ct"], row["enqueued_at"], row["vt"], row["message"], row["headers"], self
        )

    # -- sending -------------------------------------------------------------

    @property
    def _wrapped(self) -> bool:
        # Only "wrapper" needs the wrappers: in "both" the queue trigger announces (the wrappers pass through).
        return self.config.mode == "wrapper"

    async def send(self, queue: str, message: JsonValue, delay: int = 0, headers: JsonValue = None) -> int:
        """Send one message (visible after ``delay`` seconds); its id. Announced in every mode, once."""
        name = "send_with_notify" if self._wrapped else "send"
        rows = await self._rows(
            name,
            queue=queue,
            message=_json(message, "message", queue),
            headers=_json(headers, "headers", queue),
            delay=delay,
        )
        self.stats.sent += 1
        return int(rows[0]["msg_id"])

    async def send_batch(
        self,
        queue: str,
        messages: Sequence[JsonValue],
        delay: int = 0,
        headers: Sequence[JsonValue] | None = None,
    ) -> list[int]:
        """Send several messages in one statement (one ``batch_ready`` event); their ids in order."""
        if headers is not None and len(headers) != len(messages):
            raise ValueError("give one headers value per message")
        name = "send_batch_with_notify" if self._wrapped else "send_batch"
        rows = await self._rows(
            name,
            queue=queue,
            messages=[_json(m, "message", queue) for m in messages],
            headers=None if headers is None else [_json(h, "headers", queue) for h in headers],
            delay=delay,
        )
        self.stats.sent += len(rows)
        return [int(r["msg_id"]) for r in rows]

    async def send_topic(self, routing_key: str, message: JsonValue, delay: int = 0, headers: JsonValue = None) -> int:
        """Send to every queue bound to a matching topic (PGMQ 1.11+); how many queues matched.

        Announced in every mode, once per queue (in ``wrapper`` mode each bound queue's
        send goes through ``send_with_notify``).
        """
        if message is None:
            raise MessageNotSerializableError(f"{routing_key}: the message is null; PGMQ refuses a null message")
        rows = await self._rows(
            "send_topic_with_notify" if self._wrapped else "send_topic",
            routing_key=routing_key,
            message=_json(message, "message", routing_key),
            headers=_json(headers, "headers", routing_key),
            delay=delay,
        )
        matched = int(rows[0]["matched"] or 0)
        self.stats.sent += matched
        return matched

    # -- reading and claiming ------------------------------------------------

    async def read(self, queue: str, vt: int = 30, qty: int = 1) -> list[ClaimedMessage]:
        """Claim up to ``qty`` visible messages for ``vt`` seconds (``pgmq.read``)."""
        return [self._message(queue, r) for r in await self._rows("read", queue=queue, vt=vt, qty=qty)]

    async def read_specific(self, queue: str, msg_id: int, vt: int = 30) -> ClaimedMessage | None:
        """Claim message ``msg_id`` for ``vt`` seconds; None if it is gone, delayed or claimed by someone else."""
        rows = await self._rows("read_specific", queue=queue, msg_id=msg_id, vt=vt)
        return self._message(queue, rows[0]) if rows else None

    async def pop(self, queue: str, qty: int = 1) -> list[ClaimedMessage]:
        """Read and delete up to ``qty`` visible messages in one step (``pgmq.pop``)."""
        return [self._message(queue, r) for r in await self._rows("pop", queue=queue, qty=qty)]

    @overload
    async def delete(self, queue: str, msg_ids: int) -> bool: ...

    @overload
    async def delete(self, queue: str, msg_ids: Sequence[int]) -> list[int]: ...

    async def delete(self, queue: str, msg_ids: int | Sequence[int]) -> bool | list[int]:
        """Delete one message (True if it was there) or many in one round trip (the ids deleted)."""
        ids = [msg_ids] if isinstance(msg_ids, int) else list(msg_ids)
        done = [int(r["msg_id"]) for r in await self._rows("delete_many", queue=queue, ids=ids)]
        return bool(done) if isinstance(msg_ids, int) else done

    @overload
    async def archive(self, queue: str, msg_ids: int) -> bool: ...

    @overload
    async def archive(self, queue: str, msg_ids: Sequence[int]) -> list[int]: ...

    async def archive(self, queue: str, msg_ids: int | Sequence[int]) -> bool | list[int]:
        """Archive one message (True if it was there) or many in one round trip (the ids archived)."""
        ids = [msg_ids] if isinstance(msg_ids, int) else list(msg_ids)
        done = [int(r["msg_id"]) for r in await self._rows("archive_many", queue=queue, ids=ids)]
        return bool(done) if isinstance(msg_ids, int) else done

    @overload
    async def set_vt(self, queue: str, msg_ids: int, vt: int) -> ClaimedMessage | None: ...

    @overload
    async def set_vt(self, queue: str, msg_ids: Sequence[int], vt: int) -> list[ClaimedMessage]: ...

    async def set_vt(
        self, queue: str, msg_ids: int | Sequence[int], vt: int
    ) -> ClaimedMessage | list[ClaimedMessage] | None:
        """Make messages visible ``vt`` seconds from now (0: at once); the messages that exist."""
        ids = [msg_ids] if isinstance(msg_ids, int) else list(msg_ids)
        found = [self._message(queue, r) for r in await self._rows("set_vt", queue=queue, ids=ids, vt=vt)]
        if isinstance(msg_ids, int):
            return found[0] if found else None
        return found

    async def extend(self, queue_name: str, msg_id: int, seconds: int) -> datetime | None:
        """Keep a claimed message ``seconds`` longer (``ClaimedMessage.extend``); the new vt, None if gone."""
        rows = await self._rows("extend_vt", queue=queue_name, msg_id=msg_id, seconds=seconds)
        value = rows[0]["vt"] if rows else None
        return value if isinstance(value, datetime) else None

    # -- queues --------------------------------------------------------------

    async def create_queue(
        self,
        queue: str,
        *,
        unlogged: bool = False,
        partitioned: bool = False,
        partition_interval: str = "10000",
        retention_interval: str = "100000",
    ) -> None:
        """Create a queue; nothing happens if it exists. ``partitioned`` needs pg_partman."""
        if unlogged and partitioned:
            raise ValueError("a queue is either unlogged or partitioned")
        if partitioned:
            await self._rows(
                "create_partitioned",
                queue=queue,
                partition_interval=partition_interval,
                retention_interval=retention_interval,
            )
        else:
            await self._rows("create_unlogged" if unlogged else "create", queue=queue)

    async def purge_queue(self, queue: str) -> int:
        """Delete every message of ``queue``; how many."""
        rows = await self._rows("purge_queue", queue=queue)
        return int(rows[0]["purged"])

    async def drop_queue(self, queue: str) -> bool:
        """Drop ``queue`` and its archive; False if it did not exist."""
        rows = await self._rows("drop_queue", queue=queue)
        return bool(rows[0]["dropped"])

    async def list_queues(self) -> list[QueueInfo]:
        """Every queue, by name."""
        return [QueueInfo(**r) for r in await self._rows("list_queues")]

    async def metrics(self, queue: str) -> QueueMetrics:
        """Length and ages of ``queue`` (``pgmq.metrics``)."""
        rows = await self._rows("metrics", queue=queue)
        return QueueMetrics(**rows[0])

    async def health(self) -> HealthReport:
        """Connectivity, PGMQ version, our install's fingerprint against this config, the notification queue."""
        (row,) = await self._rows("health", schema=self.config.schema)
        expected = self.config.fingerprint()
        marker = object_names.parse_marker(row["schema_comment"])
        installed = {(r["name"], r["args"]) for r in await self._rows("installed_functions", schema=self.config.schema)}
        missing = tuple(
            f"{self.config.schema}.{spec.name}({spec.args})"
            for spec in object_names.functions_for(self.config)
            if (spec.name, spec.catalog_args) not in installed
        )
        usage = float(row["notification_queue_usage"])
        problems = []
        if not row["pgmq_installed"]:
            problems.append("PGMQ is not installed (no table pgmq.meta)")
        if marker is None:
            problems.append(f"pgmq-codegen is not installed in schema {self.config.schema!r}: run the migration")
        elif marker.fingerprint != expected:
            problems.append(
                f"schema {self.config.schema!r} was installed with config fingerprint {marker.fingerprint}, "
                f"this config's is {expected}: generate and apply a new migration"
            )
        elif marker.version != GENERATOR_VERSION:
            problems.append(
                f"schema {self.config.schema!r} was installed by pgmq-codegen {marker.version}, "
                f"this is {GENERATOR_VERSION}: generate and apply a new migration"
            )
        if missing and marker is not None:
            problems.append(f"{len(missing)} function(s) missing, e.g. {missing[0]}: run pgmq-codegen diff")
        if usage >= NOTIFY_QUEUE_WARN:
            problems.append(f"the notification queue is {usage:.0%} full: a listener is not reading")
        return HealthReport(
            pgmq_installed=bool(row["pgmq_installed"]),
            pgmq_version=row["pgmq_version"],
            has_topics=bool(row["has_topics"]),
            expected_fingerprint=expected,
            installed_fingerprint=marker.fingerprint if marker else None,
            installed_generator_version=marker.version if marker else None,
            missing_functions=missing,
            notification_queue_usage=usage,
            problems=tuple(problems),
        )

    # -- transactions --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Run sends (and your own SQL, ``tx.execute``) in one transaction: events at commit, none on rollback."""
        backend = self._backend
        if not hasattr(backend, "transaction"):
            raise PgmqNotifyError("transactions do not nest on a transaction handle; use the handle itself")
        async with backend.transaction() as tx:
            yield Transaction(self.config, tx, self.stats)


class Transaction(Operations):
    """The handle :meth:`PgmqNotifyClient.transaction` yields: every client method, plus :meth:`execute`."""

    def __init__(self, config: PgmqNotifyConfig, backend: TransactionBackend, stats: ClientStats) -> None:
        super().__init__(config, backend, stats)
        self._tx = backend

    async def execute(self, statement: str, params: Any = None) -> None:
        """Run your own SQL (``%s`` placeholders) in this transaction."""
        await self._tx.execute(statement, params)


class PgmqNotifyClient(Operations):
    """The producer and operations client: ``async with PgmqNotifyClient(dsn, config) as client:``.

    ``source`` is a DSN (the client then owns a pool of ``min_size`` to
    ``max_size`` connections, opened by ``async with`` or :meth:`open`), an
    ``AsyncConnectionPool`` you own, or :class:`pgmq_runtime.testing.FakePgmq`.
    ``configure`` is awaited on each new connection of an owned pool.
    ``metrics`` (a :class:`pgmq_runtime.metrics.RuntimeMetrics`) counts the
    messages it sends and its failed calls (``client.stats``).
    """

    def __init__(
        self,
        source: str | psycopg_pool.AsyncConnectionPool[Any] | Backend,
        config: PgmqNotifyConfig | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        configure: db.Configure | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._owns_pool = isinstance(source, str)
        config = config or PgmqNotifyConfig()
        backend: Backend
        if isinstance(source, str):
            connector = db.Connector(
                source, application_name=APPLICATION_NAME, connect_timeout=connect_timeout, configure=configure
            )
            self._pool = connector.pool(min_size=min_size, max_size=max_size)
            backend = _PoolBackend(self._pool, config.schema)
        elif isinstance(source, psycopg_pool.AsyncConnectionPool):
            self._pool = source
            backend = _PoolBackend(source, config.schema)
        else:
            backend = source
        super().__init__(config, backend)
        # Not self.metrics: that is PGMQ's queue metrics (tasker-pgmq's name).
        self._runtime_metrics = metrics
        if metrics is not None:
            metrics.watch_client(self)

    async def open(self) -> PgmqNotifyClient:
        """Open the owned pool and wait for its first connection (ConnectionLostError if the server is down)."""
        if self._pool is not None and self._owns_pool:
            with db.translating(schema=self.config.schema):
                await self._pool.open(wait=True, timeout=self._pool.timeout)
            log.info("client pool open (mode %s, schema %s)", self.config.mode, self.config.schema)
        if self._pool is not None:
            # The same start-up check as the listener and the consumer: a missing or stale
            # install is one ERROR naming the repair, never silence.
            with db.translating(schema=self.config.schema):
                async with self._pool.connection() as conn:
                    await install_check.check_and_log_async(conn, self.config, "client", pgmq_calls_follow=True)
        return self

    async def close(self) -> None:
        """Close the owned pool; later calls raise PoolClosedError. A pool you gave stays open."""
        if self._pool is not None and self._owns_pool and not self._pool.closed:
            await self._pool.close()
            log.info("client pool closed (%d sent, %d failed calls)", self.stats.sent, self.stats.errors)
        if self._runtime_metrics is not None:
            self._runtime_metrics.retire(self)

    async def __aenter__(self) -> PgmqNotifyClient:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def using(self, conn: psycopg.AsyncConnection[Any]) -> Operations:
        """The same methods on ``conn``, a connection you own: they join its transaction, if one is open."""
        if conn.closed:
            raise PoolClosedError("the connection given to using() is closed")
        return Operations(self.config, _ConnectionBackend(conn, self.config.schema), self.stats)

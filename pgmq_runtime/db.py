"""The runtime's one connection layer: opening connections, running named queries, translating errors.

Listener, consumer and client never call psycopg's connect or ``execute``
themselves. They ask a :class:`Connector` for connections (keepalives,
``application_name``, ``connect_timeout``, an optional ``configure`` hook) or
for a ``psycopg_pool.AsyncConnectionPool``, and run the named statements of
:mod:`pgmq_runtime.queries` through an :class:`Executor`, which returns rows
as dicts. Every psycopg (or socket) error is translated here, by
:func:`translate`, into one typed :class:`~pgmq_runtime.errors.PgmqNotifyError`
with one line of text: the rest of the runtime only ever sees our errors.

:class:`pgmq_runtime.testing.FakePgmq` implements :class:`Database` and
:class:`Executor` in memory, so the real consumer and client run without
PostgreSQL in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import msgspec
import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import set_json_loads

from pgmq_runtime.errors import (
    ConnectionLostError,
    DatabaseError,
    MigrationMissingError,
    PgmqNotifyError,
    PgmqNotInstalledError,
    PoolClosedError,
    QueueNotFoundError,
    describe_error,
)
from pgmq_runtime.queries import Query

log = logging.getLogger(__name__)

Row = dict[str, Any]
Connection = psycopg.AsyncConnection[DictRow]
Configure = Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]
Params = Mapping[str, Any] | None
# One catalogued query with its parameters, as Session.fetch_many runs them.
Step = tuple[Query, Params]

# Errors that mean "the connection is gone or cannot be made", not "the statement is wrong".
_LOST = (psycopg.OperationalError, psycopg.InterfaceError, OSError, TimeoutError)
_JSON = msgspec.json.Decoder()


def loads_json(data: bytes | str) -> Any:
    """Decode a json/jsonb column: what ``json.loads`` gives, about 20 times faster.

    msgspec decodes what it can (every message body a claim returns goes
    through here); whatever it refuses (a number out of float range, a lone
    surrogate, an integer over 4300 digits) is left to ``json.loads``, so the
    value, or the error, is the one psycopg's default loader would give.
    """
    try:
        return _JSON.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def use_fast_json(conn: psycopg.AsyncConnection[Any]) -> None:
    """Load ``json``/``jsonb`` columns of ``conn`` with :func:`loads_json` (a ``configure`` hook may override it)."""
    set_json_loads(loads_json, conn)


def backoff_delay(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect ``attempt`` (1-based): capped exponential, jittered.

    Half of the capped delay is fixed and half is random ("equal jitter"), so
    many clients dropped at once do not reconnect in lockstep.
    """
    ceiling = min(cap, initial * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + ceiling / 2 * rand()


def connect_kwargs(dsn: str, application_name: str, connect_timeout: float) -> dict[str, Any]:
    """Connection settings for a long-lived runtime connection; the DSN's own values win."""
    given = conninfo_to_dict(dsn)
    defaults: dict[str, Any] = {
        "application_name": application_name,
        "connect_timeout": max(1, round(connect_timeout)),
        # The OS notices a dead peer even while we only wait for notifications.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    return {"autocommit": True, **{k: v for k, v in defaults.items() if k not in given}}


# -- error translation ------------------------------------------------------


def translate(
    exc: BaseException,
    *,
    schema: str | None = None,
    queue: str | None = None,
    queues: Sequence[str] = (),
) -> PgmqNotifyError:
    """Our typed error for ``exc``, one line of text naming what is missing or lost.

    ``schema`` is the config's schema (to recognise a missing migration),
    ``queue`` the one queue an operation names, ``queues`` the queues a
    consumer serves. Our own errors come back unchanged.
    """
    if isinstance(exc, PgmqNotifyError):
        return exc
    if isinstance(exc, psycopg_pool.PoolClosed):
        return PoolClosedError(f"the connection pool is closed ({describe_error(exc)})")
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ConnectionLostError(f"no connection from the pool in time: {describe_error(exc)}")
    text = describe_error(exc, with_type=False)
    if isinstance(exc, psycopg.errors.UndefinedTable) and ("pgmq.q_" in text or "pgmq.meta" in text):
        if "pgmq.meta" in text:
            return PgmqNotInstalledError(f"{text} (is PGMQ installed in this database?)")
        if queue is not None:
            return QueueNotFoundError(f"queue {queue!r} does not exist ({text})")
        return QueueNotFoundError(f"{text} (does every queue of {sorted(queues)} exist?)")
    if isinstance(exc, psycopg.errors.RaiseException) and "does not exist" in text and queue is not None:
        return QueueNotFoundError(f"queue {queue!r} does not exist ({text})")
    missing = (psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName)
    if isinstance(exc, missing):
        if schema is not None and schema in text:
            return MigrationMissingError(
                f"{text} (is the pgmq-codegen SQL installed, in schema {schema!r}? "
                "Run the migration: pgmq-codegen generate-migration, or pgmq-codegen sql)"
            )
        if "pgmq." in text or 'schema "pgmq"' in text:
            return PgmqNotInstalledError(f"{text} (is PGMQ installed in this database, and recent enough?)")
    if isinstance(exc, _LOST):
        return ConnectionLostError(f"connection lost: {describe_error(exc)}")
    return DatabaseError(text)


def is_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (ours or psycopg's) means the connection is gone."""
    return isinstance(exc, (ConnectionLostError, *_LOST))


@contextlib.contextmanager
def translating(*, schema: str | None = None, queue: str | None = None, queues: Sequence[str] = ()) -> Iterator[None]:
    """Translate any psycopg or socket error raised inside the block (see :func:`translate`)."""
    try:
        yield
    except PgmqNotifyError:
        raise
    except (psycopg.Error, psycopg_pool.PoolClosed, OSError, TimeoutError) as exc:
        raise translate(exc, schema=schema, queue=queue, queues=queues) from exc


# -- executing named queries ------------------------------------------------


class Executor(Protocol):
    """Runs catalogued queries and returns rows as dicts (a connection, a pool, or the fake)."""

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]: ...


async def run(
    conn: psycopg.AsyncConnection[Any],
    query: Query,
    params: Params = None,
    *,
    schema: str,
    queue: str | None = None,
    queues: Sequence[str] = (),
    identifiers: Mapping[str, str] | None = None,
) -> list[Row]:
    """Run ``query`` on ``conn``; its rows as dicts (none for statements without a result)."""
    statement = query.compose(schema, **(identifiers or {}))
    with translating(schema=schema, queue=queue, queues=queues):
        if conn.closed:
            raise ConnectionLostError("connection lost: the connection is closed")
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(statement, params)
            return list(await cursor.fetchall()) if cursor.description else []


class ConnectionExecutor:
    """An :class:`Executor` on one connection (the caller's own, or one of a transaction)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str, queues: Sequence[str] = ()) -> None:
        self.conn = conn
        self.schema = schema
        self.queues = tuple(queues)

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]:
        return await run(self.conn, query, params, schema=self.schema, queue=queue, queues=self.queues)


class PoolExecutor:
    """An :class:`Executor` that takes a connection from a pool for each query."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]:
        async with self.connection() as conn:
            return await run(conn, query, params, schema=self.schema, queue=queue)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection, with pool errors translated."""
        if self.pool.closed:
            raise PoolClosedError("the connection pool is closed")
        with translating(schema=self.schema):
            async with self.pool.connection() as conn:
                yield conn


# -- opening connections ----------------------------------------------------


class Database(Protocol):
    """What the consumer and client need from the layer: dedicated sessions and executors."""

    async def session(self, application_name: str, schema: str, queues: Sequence[str] = ()) -> Session: ...


class Session(Protocol):
    """One dedicated connection's worth of named queries."""

    @property
    def closed(self) -> bool: ...

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]: ...

    async def fetch_many(self, steps: Sequence[Step]) -> list[list[Row]]:
        """Run ``steps`` in one transaction (one step alone: as a statement of its own); the rows of each."""
        ...

    async def close(self) -> None: ...


class Connector:
    """How the runtime connects to one database: a DSN plus connection settings.

    ``connect_timeout`` bounds each attempt; keepalives let the OS notice a
    dead peer; ``configure`` is awaited on every new connection (dedicated or
    pooled), for example to ``SET`` a role or ``search_path``. The DSN's own
    settings win over these defaults.
    """

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str = "pgmq-runtime",
        connect_timeout: float = 10.0,
        configure: Configure | None = None,
        prepare: bool = True,
    ) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self.configure = configure
        # False: no server-side prepared statements (they break behind transaction poolers).
        self.prepare = prepare

    def kwargs(self, application_name: str | None = None) -> dict[str, Any]:
        """The keyword arguments of ``psycopg.AsyncConnection.connect`` for this connector."""
        kwargs = connect_kwargs(self.dsn, application_name or self.application_name, self.connect_timeout)
        if not self.prepare:
            kwargs["prepare_threshold"] = None
        return kwargs

    async def connect(self, application_name: str | None = None) -> psycopg.AsyncConnection[Any]:
        """A new autocommit connection; :class:`ConnectionLostError` if the server cannot be reached."""
        name = application_name or self.application_name
        with translating():
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(self.dsn, **self.kwargs(name)), self.connect_timeout + 1
            )
        use_fast_json(conn)
        try:
            if self.configure is not None:
                with translating():
                    await self.configure(conn)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        log.debug("connected %s (backend pid %s)", name, conn.info.backend_pid)
        return conn

    async def session(self, application_name: str, schema: str, queues: Sequence[str] = ()) -> PsycopgSession:
        """A dedicated connection that runs named queries (see :class:`Session`)."""
        return PsycopgSession(await self.connect(application_name), schema, queues)

    def pool(self, *, min_size: int = 1, max_size: int = 10, application_name: str | None = None) -> Any:
        """A new, not yet opened ``AsyncConnectionPool`` with this connector's settings."""
        kwargs = self.kwargs(application_name)
        configure = self.configure

        async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
            use_fast_json(conn)
            if configure is not None:
                await configure(conn)

        return psycopg_pool.AsyncConnectionPool(
            self.dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            configure=_configure,
            open=False,
            timeout=self.connect_timeout,
            name=application_name or self.application_name,
        )


class PsycopgSession:
    """A :class:`Session` on one real connection."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], schema: str, queues: Sequence[str] = ()) -> None:
        self.conn = conn
        self.schema = schema
        self.queues = tuple(queues)

    @property
    def closed(self) -> bool:
        return self.conn.closed

    @property
    def backend_pid(self) -> int | None:
        """The server process id, while connected."""
        return None if self.conn.closed else self.conn.info.backend_pid

    async def fetch(self, query: Query, params: Params = None, *, queue: str | None = None) -> list[Row]:
        return await run(self.conn, query, params, schema=self.schema, queue=queue, queues=self.queues)

    async def fetch_many(self, steps: Sequence[Step]) -> list[list[Row]]:
        if len(steps) == 1:
            return [await self.fetch(*steps[0])]
        with translating(schema=self.schema, queues=self.queues):
            async with self.conn.transaction():
                return [await self.fetch(query, params) for query, params in steps]

    async def close(self) -> None:
        await close_quietly(self.conn)


async def close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    """Close ``conn``, ignoring errors (it is usually already broken)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 10)

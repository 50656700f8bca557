"""The consumer's connections to the database, through :mod:`pgmq_runtime.db`.

:class:`ClaimConnection` is the claiming connection. Claims run on it with
``synchronous_commit = off`` unless they must be durable (a claim lost in a
crash only makes its message visible again); it measures the server's clock
once per connection, so that a message announced for later is claimed when
the server says it is visible. A lost connection is replaced with jittered
backoff by one task at a time (see :meth:`ClaimConnection.reconnect`).
:func:`queues_in_namespace` opens a short one to list a namespace's queues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pgmq_runtime import db
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import (
    ConnectionLostError,
    ConsumerError,
    DatabaseError,
    PgmqNotInstalledError,
    describe_error,
)
from pgmq_runtime.queries import QUERIES

# The consumer's logger: these lines are the consumer's state changes.
log = logging.getLogger("pgmq_runtime.consumer")

APPLICATION_NAME = "pgmq-runtime-consumer"


class ClaimConnection:
    """Opens the claiming :class:`~pgmq_runtime.db.Session` and runs catalogued queries on it.

    ``keep_trying(deadline)`` says whether a reconnect goes on (the consumer
    is neither closed nor, for a reconnect without deadline, stopping).
    """

    def __init__(
        self,
        database: db.Database,
        schema: str,
        queues: Sequence[str],
        *,
        durable_claims: bool,
        keep_trying: Callable[[float | None], bool],
    ) -> None:
        self._database = database
        self._schema = schema
        self._queues = list(queues)
        self.durable_claims = durable_claims
        self._keep_trying = keep_trying
        self.session: db.Session | None = None
        # When a query last succeeded (time.monotonic()), for the idle liveness check.
        self.last_used = time.monotonic()
        self.clock_offset = 0.0
        self.reconnects = 0
        self._reconnecting = asyncio.Lock()

    async def open(self) -> db.Session:
        """Open the connection (the consumer's start)."""
        self.session = await self._open()
        return self.session

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    def server_now(self) -> datetime:
        """Now on the server's clock (as measured when the connection was opened)."""
        return datetime.fromtimestamp(time.time() + self.clock_offset, UTC)

    async def rows(self, name: str, params: dict[str, Any] | None = None) -> list[db.Row]:
        """Run catalogued query ``name``; ConnectionLostError (to reconnect on) or ConsumerError."""
        session = self.session
        if session is None or session.closed:
            raise ConnectionLostError("the consumer's connection is closed")
        try:
            rows = await session.fetch(QUERIES[name], params)
        except ConnectionLostError:
            raise
        except DatabaseError as exc:
            raise ConsumerError(str(exc)) from exc
        self.last_used = time.monotonic()
        return rows

    async def scalar(self, name: str, column: str, params: dict[str, Any], reconnect_timeout: float) -> Any:
        """``column`` of the first row of query ``name`` (None without rows), retried once after a reconnect.

        Only for statements that are safe to repeat (extend).
        """
        for attempt in (1, 2):
            try:
                rows = await self.rows(name, params)
                return rows[0][column] if rows else None
            except ConnectionLostError as exc:
                if attempt == 2:
                    raise ConsumerError(f"message {params['msg_id']} of {params['queue']}: {exc}") from exc
                deadline = time.monotonic() + reconnect_timeout
                await self.reconnect(deadline=deadline, reason=describe_error(exc))
        return None

    async def check_alive(self, timeout: float) -> bool:
        """A cheap query on the idle connection; a dead one is replaced now. True if it was replaced."""
        self.last_used = time.monotonic()
        try:
            await asyncio.wait_for(self.rows("ping"), timeout)
        except (ConnectionLostError, TimeoutError) as exc:
            if not self._keep_trying(None):
                return False
            reason = describe_error(exc) if isinstance(exc, ConnectionLostError) else "liveness query timed out"
            await self.reconnect(deadline=None, reason=f"idle check: {reason}")
            return True
        return False

    async def _open(self) -> db.Session:
        session = await self._database.session(APPLICATION_NAME, self._schema, self._queues)
        try:
            if not self.durable_claims:
                # A claim lost in a crash only makes its message visible again: no need to wait for the disk.
                await session.fetch(QUERIES["claims_without_flush"])
            before = time.time()
            rows = await session.fetch(QUERIES["server_clock"])
            after = time.time()
        except BaseException:
            await session.close()
            raise
        if rows:
            self.clock_offset = float(rows[0]["epoch"]) - (before + after) / 2
        self.last_used = time.monotonic()
        return session

    async def reconnect(self, deadline: float | None, reason: str) -> None:
        """Replace a lost connection, with backoff, until ``deadline`` (None: until the consumer stops)."""
        broken = self.session
        async with self._reconnecting:
            if self.session is not broken and self.session is not None and not self.session.closed:
                return  # another task reconnected while we waited
            log.warning("consumer connection lost (%s); reconnecting", reason)
            if broken is not None:
                await broken.close()
            self.session = None
            attempt = 0
            started = time.monotonic()
            while self._keep_trying(deadline):
                attempt += 1
                try:
                    self.session = await self._open()
                    self.reconnects += 1
                    log.warning(
                        "consumer reconnected after %.1f s and %d attempt(s) (was: %s)",
                        time.monotonic() - started,
                        attempt,
                        reason,
                    )
                    return
                except ConnectionLostError as exc:
                    if deadline is not None and time.monotonic() > deadline:
                        raise ConsumerError(f"cannot reconnect the consumer: {exc}") from exc
                await asyncio.sleep(db.backoff_delay(attempt, 0.1, 5.0))
            raise ConsumerError("the consumer is closed")


async def queues_in_namespace(dsn: str, config: PgmqNotifyConfig, namespace: str) -> list[str]:
    """The existing queues whose name maps to ``namespace`` under ``config``'s pattern.

    Raises :class:`ConsumerError` with one line: server unreachable, PGMQ not
    installed, ... (its cause is the typed error of :mod:`pgmq_runtime.db`).
    """
    try:
        session = await db.Connector(dsn, application_name=APPLICATION_NAME).session(APPLICATION_NAME, config.schema)
        try:
            rows = await session.fetch(QUERIES["queue_names"])
        finally:
            await session.close()
    except PgmqNotInstalledError as exc:
        raise ConsumerError("PGMQ is not installed in this database (no table pgmq.meta)") from exc
    except DatabaseError as exc:
        # The driver's own words say best why a connection failed ("Connection refused", a wrong password).
        cause = exc.__cause__ if isinstance(exc, ConnectionLostError) and exc.__cause__ is not None else exc
        raise ConsumerError(f"cannot list the queues: {describe_error(cause)}") from exc
    names = [str(row["queue_name"]) for row in rows]
    return [name for name in names if config.extract_namespace(name) == namespace]

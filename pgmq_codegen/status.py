"""What ``pgmq-codegen status`` shows, as typed data: queues, install, notification queue, probe.

:func:`read_status` takes one sample of a database: every queue's depth,
oldest message age and messages ever sent (``pgmq.metrics``); whether the
install is in sync with the config (``diff``'s read); how full PostgreSQL's
one notification queue is (``pg_notification_queue_usage()``) and the
sessions that may hold it back; and the round trip of a probe notification.
:func:`with_rates` turns two samples into messages per second in and out.
No Rich, no Typer here: ``status_output`` draws it, ``cli`` is the verb.

PostgreSQL does not show which sessions LISTEN. The notification queue can
only advance past what every listening session has read, and a session reads
only between transactions, so the sessions that hold it back are among those
with a transaction open: they are listed oldest first, those idle in a
transaction (the usual culprit) flagged, and ``listening`` is ``"likely"``
for a session whose last statement was LISTEN or that is a pgmq-runtime
listener (its ``application_name``), else ``"unknown"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgmq_codegen import diff
from pgmq_codegen.errors import DatabaseError, PgmqNotifyError
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import describe_error

LISTENER_APPLICATION = "pgmq-runtime-listener"
STATUS_APPLICATION = "pgmq-codegen-status"


@dataclass(frozen=True)
class QueueStatus:
    """One queue: depth, oldest message age, messages ever sent; rates once two samples exist."""

    name: str
    depth: int
    oldest_age_seconds: int | None
    total_sent: int
    in_per_s: float | None = None
    out_per_s: float | None = None


@dataclass(frozen=True)
class Session:
    """A session with a transaction open: while it LISTENs, the notification queue cannot pass it."""

    pid: int
    user: str
    application: str
    state: str
    transaction_seconds: float
    last_query: str
    listening: str  # "likely" or "unknown": PostgreSQL does not say

    @property
    def idle_in_transaction(self) -> bool:
        """Idle with a transaction open: it reads no notification until the transaction ends."""
        return self.state.startswith("idle in transaction")


@dataclass(frozen=True)
class InstallStatus:
    """Whether the database carries what the config installs; one line per finding otherwise."""

    in_sync: bool
    findings: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class ProbeResult:
    """The probe notification: round-trip milliseconds, or why it did not arrive."""

    ok: bool
    round_trip_ms: float | None
    detail: str


@dataclass(frozen=True)
class StatusReport:
    """One sample of a database's health."""

    database: str
    taken_at: datetime
    monotonic: float
    queues: tuple[QueueStatus, ...]
    install: InstallStatus
    notify_queue_usage: float
    sessions: tuple[Session, ...]
    probe: ProbeResult
    seconds_between_samples: float | None = field(default=None)

    @property
    def holders(self) -> tuple[Session, ...]:
        """The sessions most likely to hold the notification queue back: idle in a transaction."""
        return tuple(s for s in self.sessions if s.idle_in_transaction)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        data = asdict(self)
        data["taken_at"] = self.taken_at.isoformat()
        del data["monotonic"]
        data["holders"] = [s.pid for s in self.holders]
        return data


_QUEUES = """
SELECT m.queue_name, m.queue_length, m.oldest_msg_age_sec, m.total_messages
FROM pgmq.meta AS q, LATERAL pgmq.metrics(q.queue_name) AS m
ORDER BY m.queue_name
"""

# Other client sessions with a transaction open, oldest first.
_SESSIONS = """
SELECT a.pid, coalesce(a.usename::text, '') AS user, coalesce(a.application_name, '') AS application,
       coalesce(a.state, 'unknown') AS state,
       extract(epoch FROM pg_catalog.clock_timestamp() - a.xact_start)::float8 AS transaction_seconds,
       left(coalesce(a.query, ''), 200) AS last_query
FROM pg_catalog.pg_stat_activity AS a
WHERE a.backend_type = 'client backend' AND a.xact_start IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()
  AND a.datname IS NOT NULL
ORDER BY a.xact_start
LIMIT 20
"""


async def read_status(
    dsn: str, config: PgmqNotifyConfig, *, probe_timeout: float = 2.0, connect_timeout: int = 10
) -> StatusReport:
    """Take one sample of the database at ``dsn`` (read only: the probe is a NOTIFY nobody else hears).

    Raises :class:`~pgmq_codegen.errors.DatabaseError` with one line when the
    database cannot be reached or lacks PGMQ.
    """
    conn = await _connect(dsn, connect_timeout)
    async with conn:
        database = f"{conn.info.dbname} on {conn.info.host}:{conn.info.port}"
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute("SELECT pg_catalog.to_regclass('pgmq.meta') IS NOT NULL AS has_pgmq")
                row = await cur.fetchone()
                if not row or not row["has_pgmq"]:
                    raise DatabaseError(f"{database}: PGMQ is not installed (no pgmq.meta)")
                await cur.execute(_QUEUES)
                queues = tuple(
                    QueueStatus(
                        r["queue_name"], int(r["queue_length"]), r["oldest_msg_age_sec"], int(r["total_messages"])
                    )
                    for r in await cur.fetchall()
                )
                await cur.execute("SELECT pg_catalog.pg_notification_queue_usage() AS usage")
                usage_row = await cur.fetchone()
                await cur.execute(_SESSIONS)
                sessions = tuple(_session(r) for r in await cur.fetchall())
        except psycopg.Error as exc:
            raise DatabaseError(f"{database}: reading the status failed: {describe_error(exc)}") from exc
        probe = await _probe(conn, dsn, probe_timeout, connect_timeout)
    install = await asyncio.to_thread(_install_status, dsn, config)
    return StatusReport(
        database=database,
        taken_at=datetime.now(UTC),
        monotonic=time.monotonic(),
        queues=queues,
        install=install,
        notify_queue_usage=float(usage_row["usage"]) if usage_row else 0.0,
        sessions=sessions,
        probe=probe,
    )


def with_rates(previous: StatusReport | None, current: StatusReport) -> StatusReport:
    """``current`` with each queue's messages/s in (sent) and out (deleted or archived) since ``previous``."""
    if previous is None:
        return current
    seconds = current.monotonic - previous.monotonic
    if seconds <= 0:
        return current
    before = {q.name: q for q in previous.queues}
    queues = []
    for q in current.queues:
        old = before.get(q.name)
        if old is None:
            queues.append(q)
            continue
        sent = max(q.total_sent - old.total_sent, 0)
        removed = max(sent - (q.depth - old.depth), 0)
        queues.append(replace(q, in_per_s=sent / seconds, out_per_s=removed / seconds))
    return replace(current, queues=tuple(queues), seconds_between_samples=seconds)


async def sample_twice(dsn: str, config: PgmqNotifyConfig, interval: float = 1.0) -> StatusReport:
    """Two samples ``interval`` seconds apart: the second, with rates (what ``--once`` shows)."""
    first = await read_status(dsn, config)
    await asyncio.sleep(interval)
    return with_rates(first, await read_status(dsn, config))


def _session(row: dict[str, Any]) -> Session:
    query = str(row["last_query"])
    listening = query.lstrip().upper().startswith("LISTEN") or row["application"] == LISTENER_APPLICATION
    return Session(
        pid=int(row["pid"]),
        user=str(row["user"]),
        application=str(row["application"]),
        state=str(row["state"]),
        transaction_seconds=float(row["transaction_seconds"]),
        last_query=query,
        listening="likely" if listening else "unknown",
    )


def _install_status(dsn: str, config: PgmqNotifyConfig) -> InstallStatus:
    try:
        report = diff.compare(dsn, config)
    except PgmqNotifyError as exc:
        return InstallStatus(False, error=str(exc))
    findings = tuple(f"{f.kind} {f.object_type} {f.name}: {f.detail}" for f in report.findings)
    return InstallStatus(report.in_sync, findings)


async def _probe(conn: psycopg.AsyncConnection[Any], dsn: str, timeout: float, connect_timeout: int) -> ProbeResult:
    """LISTEN on a fresh channel here, NOTIFY it from a second connection, time the arrival."""
    channel = f"pgmq_codegen_status_probe_{secrets.token_hex(6)}"
    try:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        async with await _connect(dsn, connect_timeout) as sender:
            started = time.monotonic()
            await sender.execute("SELECT pg_catalog.pg_notify(%s, 'probe')", (channel,))
            async for _ in conn.notifies(timeout=timeout, stop_after=1):
                return ProbeResult(True, (time.monotonic() - started) * 1000, "the probe notification arrived")
        return ProbeResult(False, None, f"no probe notification within {timeout:g} s")
    except (psycopg.Error, DatabaseError) as exc:
        return ProbeResult(False, None, f"probe failed: {describe_error(exc)}")
    finally:
        with contextlib.suppress(psycopg.Error):
            await conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))


async def _connect(dsn: str, connect_timeout: int) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=connect_timeout, application_name=STATUS_APPLICATION
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect: {describe_error(exc)}") from exc

"""The log records an operator gets: a killed backend, an invalid notification (rate-limited)."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.events import InvalidEvent, ListenerReconnected
from pgmq_runtime.listener import PgmqNotifyListener

CONFIG = PgmqNotifyConfig()
CHANNEL = CONFIG.message_ready_channel("orders")


async def _next(listener: PgmqNotifyListener, kind: type) -> object:
    while True:
        item = await asyncio.wait_for(listener.next_event(), 30)
        if isinstance(item, kind):
            return item


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pgmq_runtime.listener" and r.levelno == level]


async def test_a_killed_backend_logs_the_loss_and_the_reconnect_with_how_long_and_why(dsn, caplog):
    caplog.set_level(logging.INFO, logger="pgmq_runtime")
    async with PgmqNotifyListener(dsn, CONFIG, backoff_initial=0.05) as listener:
        await listener.listen(CHANNEL)
        pid = listener.backend_pid
        await listener.next_event(timeout=0.01)  # starts the reader
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        gap = await _next(listener, ListenerReconnected)
    assert isinstance(gap, ListenerReconnected)
    warnings = [r.getMessage() for r in _records(caplog, logging.WARNING)]
    lost = [m for m in warnings if m.startswith("listener connection lost")]
    back = [m for m in warnings if m.startswith("listener reconnected after")]
    assert len(lost) == 1 and "server closed the connection" in lost[0]  # why: libpq's own words
    assert len(back) == 1 and " s and 1 attempt" in back[0]  # how long, and how many tries
    assert any("connected" in r.getMessage() for r in _records(caplog, logging.INFO))


async def test_invalid_notifications_are_one_warning_with_the_reason_not_one_per_notification(dsn, caplog):
    caplog.set_level(logging.INFO, logger="pgmq_runtime")
    async with PgmqNotifyListener(dsn, CONFIG) as listener:
        await listener.listen(CHANNEL)
        await listener.next_event(timeout=0.01)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for n in range(5):
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"not json {n}"))
        invalid = [await _next(listener, InvalidEvent) for _ in range(5)]
        stats = listener.stats
    assert stats.invalid_events == 5
    assert [e.raw for e in invalid] == [f"not json {n}" for n in range(5)]  # type: ignore[attr-defined]
    (warning,) = [r.getMessage() for r in _records(caplog, logging.WARNING)]
    assert "invalid notification" in warning and "not valid JSON" in warning and CHANNEL in warning

"""A full notification queue on PostgreSQL 18: sends keep succeeding, and the check names who holds it.

PostgreSQL keeps every notification in one queue that cannot advance past the
slowest LISTENing session. A session that LISTENs and then sits idle in a
transaction fills it; once full, every transaction that NOTIFYs fails at
commit. PostgreSQL 18's ``max_notify_queue_pages`` makes the queue small enough
for a test to fill (the default holds 8 GB), so this test runs its own server.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import psycopg
import pytest
from rich.console import Console

from pgmq_codegen import diff, diff_output
from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.install_check import check_install
from tests import servers
from tests.conftest import install

PAGES = 64  # x 8 kB: a 512 kB queue
MESSAGE = '{"pad": "' + "x" * 6000 + '"}'
SENDS = 200  # ~2.4 MB of notifications (each send notifies two channels): far more than the queue holds


@pytest.fixture(scope="module")
def small_queue_dsn() -> Iterator[str]:
    try:
        bindir = servers.bindir_for(18)
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc))
    server = LocalPostgres(settings={"max_notify_queue_pages": str(PAGES)}, bindir=bindir)
    server.start()
    try:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        dsn = server.dsn_for("app")
        install_pgmq(dsn)
        yield dsn
    finally:
        server.stop()


# Coalescing's events are small signals, at most one per window: they would take
# thousands of windows to fill the queue; the guard's unit and PostgreSQL 15
# tests cover that path.
@pytest.mark.parametrize("config", [PgmqNotifyConfig(), PgmqNotifyConfig(mode="wrapper")], ids=["trigger", "wrapper"])
def test_sends_succeed_while_an_idle_in_transaction_listener_fills_the_queue(small_queue_dsn, config):
    dsn = small_queue_dsn
    install(dsn, config)
    queue = f"full_{config.mode}_queue"
    send = (
        f"SELECT pgmq_notify.send_with_notify('{queue}', %s::jsonb)"
        if config.mode == "wrapper"
        else f"SELECT pgmq.send('{queue}', %s::jsonb)"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", [queue])
    holder = psycopg.connect(dsn, autocommit=True, application_name="stuck listener")
    try:
        holder.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(config.global_message_ready_channel()))
        )
        holder.autocommit = False
        holder.execute("SELECT 1")  # idle in transaction from here on: it reads no notification
        holder_pid = holder.info.backend_pid

        peak = 0.0
        with psycopg.connect(dsn, autocommit=True) as sender:
            for _ in range(SENDS):
                sender.execute(send, [MESSAGE])  # raises "too many notifications" without the guard
                row = sender.execute("SELECT pg_notification_queue_usage()").fetchone()
                assert row is not None
                peak = max(peak, float(row[0]))
            count = sender.execute(f"SELECT count(*) FROM pgmq.q_{queue}").fetchone()
        assert count == (SENDS,)  # every message stored: consumers' catch-up reads find them
        assert 0.5 <= peak < 1.0

        report = check_install(dsn, config)
        filling = [p for p in report.problems if p.kind == "notify_queue_filling"]
        assert len(filling) == 1, report.summary()
        assert report.notify_queue.usage >= 0.5
        assert report.notify_queue.holders[0].pid == holder_pid
        assert report.notify_queue.holders[0].state == "idle in transaction"
        assert f"pid {holder_pid}" in filling[0].detail and "'stuck listener'" in filling[0].detail
        assert "pg_terminate_backend" in report.repair

        # diff: still in sync (exit 0), and it says how full the queue is and who holds it.
        drift = diff.compare(dsn, config)
        assert drift.in_sync and drift.notify_queue_filling
        assert drift.to_dict()["notification_queue"]["holders"][0]["pid"] == holder_pid
        console = Console(file=io.StringIO(), width=200)
        diff_output.print_report(drift, console)
        printed = console.file.getvalue()
        assert "Notification queue: " in printed and f"pid {holder_pid}" in printed
    finally:
        holder.rollback()
        holder.close()
    # The holder gone, the queue drains and sends notify again.
    listener = psycopg.connect(dsn, autocommit=True)
    try:
        listener.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(config.global_message_ready_channel()))
        )
        with psycopg.connect(dsn, autocommit=True) as sender:
            sender.execute(send, ['{"after": true}'])
            sender.execute(f"SELECT pgmq.purge_queue('{queue}')")
        events = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert len(events) == 1 and '"after"' in events[0]
    finally:
        listener.close()

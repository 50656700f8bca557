"""Deployments as production runs them: PGMQ as an extension, other roles, PGMQ upgrades.

Every test here runs with PGMQ from loose SQL and as a real extension
(``any_dsn``) where both can hold, and on every server version of the session.
"""

from __future__ import annotations

import psycopg

from pgmq_runtime.config import PgmqNotifyConfig
from tests import servers
from tests.conftest import install

COALESCING = PgmqNotifyConfig(coalesce_ms=50)
APP_CREATES_QUEUES = (
    "GRANT USAGE, CREATE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT, INSERT, DELETE ON pgmq.meta TO {role}",
)


def _scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return row[0]


def _sequences(dsn: str, schema: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = %s::regnamespace ORDER BY 1",
            [schema],
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_pgmq_is_a_real_extension_and_our_install_notifies(ext_dsn, subscribe, server_major):
    config = PgmqNotifyConfig()
    install(ext_dsn, config)
    sub = subscribe(ext_dsn, [config.queue_created_channel(), config.global_message_ready_channel()])
    assert _scalar(ext_dsn, "SELECT extversion FROM pg_extension WHERE extname = 'pgmq'") == servers.pgmq_version()
    assert int(str(_scalar(ext_dsn, "SHOW server_version_num"))) // 10000 == server_major
    with psycopg.connect(ext_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("""SELECT pgmq.send('orders_queue', '{"a": 1}')""")
    kinds = [r.event["event_type"] for r in sub.drain()]
    assert kinds == ["queue_created", "message_with_payload"]

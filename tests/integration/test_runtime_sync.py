"""The blocking facade drives the same listener and consumer."""

from __future__ import annotations

import psycopg

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.events import MessageWithPayloadEvent
from pgmq_runtime.sync import SyncConsumer, SyncListener
from tests.conftest import install


def test_sync_listener_and_consumer(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('jobs_queue')")
        with SyncListener(dsn, config) as listener:
            listener.listen_message_ready_for_namespace("jobs")
            assert listener.self_check().ok
            conn.execute("""SELECT pgmq.send('jobs_queue', '{"n": 1}')""")
            event = listener.next_event(timeout=30)
            assert listener.stats.events == 1
        conn.execute("""SELECT pgmq.send('jobs_queue', '{"n": 2}')""")
        with SyncConsumer(dsn, "jobs_queue", config) as consumer:
            first, second = next(consumer), next(consumer)
            assert (first.message, second.message) == ({"n": 1}, {"n": 2})
            assert first.delete() and second.archive()
            assert first.extend(10) is None  # gone
        left = conn.execute("SELECT count(*) FROM pgmq.q_jobs_queue").fetchone()
    assert isinstance(event, MessageWithPayloadEvent) and event.message == {"n": 1}
    assert left == (0,)

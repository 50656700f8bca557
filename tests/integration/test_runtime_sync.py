"""The blocking facade drives the same listener and consumer."""

from __future__ import annotations

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.events import MessageWithPayloadEvent
from pgmq_runtime.sync import SyncClient, SyncConsumer, SyncListener
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


def test_sync_client_sends_claims_and_acknowledges(dsn, subscribe):
    config = PgmqNotifyConfig(mode="wrapper")
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("jobs")])
    with SyncClient(dsn, config) as client:
        client.create_queue("jobs_queue")
        sent = client.send("jobs_queue", {"n": 1})
        batch = client.send_batch("jobs_queue", [{"n": 2}, {"n": 3}])
        claimed = client.read_specific("jobs_queue", sent)
        assert claimed is not None and claimed.message == {"n": 1}
        assert claimed.delete()
        (read,) = client.read("jobs_queue")
        assert read.msg_id == batch[0] and read.archive()
        assert client.delete("jobs_queue", [batch[1]]) == [batch[1]]
        assert client.metrics("jobs_queue").queue_length == 0
        assert client.health().ok
    events = [r.event for r in sub.drain()]
    assert [e["event_type"] for e in events] == ["message_with_payload", "batch_ready"]


def test_sync_client_transactions_and_visibility(dsn, subscribe):
    config = PgmqNotifyConfig()
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("jobs")])
    with SyncClient(dsn, config) as client:
        client.create_queue("jobs_queue")
        with client.transaction() as tx:
            tx.execute("CREATE TABLE orders (id int)")
            tx.execute("INSERT INTO orders VALUES (%s)", (1,))
            kept = tx.send("jobs_queue", {"n": 1})
        with pytest.raises(RuntimeError, match="changed my mind"), client.transaction() as tx:
            tx.execute("INSERT INTO orders VALUES (%s)", (2,))
            tx.send("jobs_queue", {"n": 2})
            raise RuntimeError("changed my mind")
        (claimed,) = client.read("jobs_queue", vt=60)
        assert claimed.msg_id == kept
        assert client.read("jobs_queue") == []  # invisible for 60 s
        again = client.set_vt("jobs_queue", kept, 0)
        assert again is not None and again.msg_id == kept
        assert [m.msg_id for m in client.set_vt("jobs_queue", [kept, 999_999], 0)] == [kept]
        (claimed,) = client.read("jobs_queue", vt=1)
        assert client.extend("jobs_queue", kept, 60) is not None
        assert client.read("jobs_queue") == []  # extended past its 1 s
        assert client.extend("jobs_queue", 999_999, 60) is None
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT array_agg(id) FROM orders").fetchone() == ([1],)
        assert conn.execute("SELECT count(*) FROM pgmq.q_jobs_queue").fetchone() == (1,)
    assert [r.event["msg_id"] for r in sub.drain()] == [kept]  # nothing from the rolled-back send

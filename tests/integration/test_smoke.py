"""The generated SQL installs and a plain pgmq.send notifies."""

from __future__ import annotations

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install


def test_plain_send_notifies_namespace_and_global_channels(dsn, subscribe):
    import psycopg

    config = PgmqNotifyConfig()
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("orders"), config.global_message_ready_channel()])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        (msg_id,) = conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 1}')""").fetchone()
    got = sub.drain()
    assert sorted(r.channel for r in got) == ["pgmq_message_ready", "pgmq_message_ready.orders"]
    assert {r.event["msg_id"] for r in got} == {msg_id}
    assert got[0].event["message"] == {"n": 1}

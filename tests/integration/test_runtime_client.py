"""PgmqNotifyClient against a real server, in every mode, with the events a listener receives."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pgmq
import psycopg
import psycopg_pool
import pytest

from pgmq_runtime import PgmqNotifyClient
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import (
    DatabaseError,
    MessageNotSerializableError,
    MigrationMissingError,
    PoolClosedError,
    QueueNotFoundError,
)
from tests.conftest import install

MODES = ["trigger", "wrapper", "both"]


def announced(received) -> Counter[int]:
    """How often each message id was announced, over every message event received."""
    ids: Counter[int] = Counter()
    for r in received:
        event = r.event
        if event["event_type"] == "batch_ready":
            ids.update(event["msg_ids"])
        elif "msg_id" in event:
            ids[event["msg_id"]] += 1
    return ids


@pytest.mark.parametrize("mode", MODES)
async def test_every_method_in_every_mode_announces_each_message_once(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    sub = subscribe(dsn, [config.queue_created_channel(), config.message_ready_channel("orders")])
    async with PgmqNotifyClient(dsn, config) as client:
        await client.create_queue("orders_queue")
        await client.create_queue("orders_queue")  # idempotent
        await client.create_queue("orders_fast_queue", unlogged=True)
        created = [r.event["queue_name"] for r in sub.drain() if r.event["event_type"] == "queue_created"]
        assert sorted(created) == ["orders_fast_queue", "orders_queue"]

        first = await client.send("orders_queue", {"id": 1}, headers={"h": 1})
        batch = await client.send_batch("orders_queue", [{"id": 2}, {"id": 3}], headers=[{"h": 2}, None])
        delayed = await client.send("orders_queue", {"id": 4}, delay=60)
        events = sub.drain()
        assert announced(events) == Counter({first: 1, batch[0]: 1, batch[1]: 1, delayed: 1})
        single = next(r.event for r in events if r.event.get("msg_id") == first)
        assert single["event_type"] == "message_with_payload" and single["message"] == {"id": 1}
        assert single["headers"] == {"h": 1}
        source = "wrapper" if mode == "wrapper" else "trigger"
        assert {r.event["metadata"]["source"] for r in events} == {source}
        assert [r.event["event_type"] for r in events].count("batch_ready") == 1

        claimed = await client.read_specific("orders_queue", first, vt=30)
        assert claimed is not None and claimed.message == {"id": 1} and claimed.headers == {"h": 1}
        assert await client.read_specific("orders_queue", first, vt=30) is None  # claimed already
        assert await client.read_specific("orders_queue", delayed, vt=30) is None  # not visible yet
        (read,) = await client.read("orders_queue", vt=30, qty=1)
        assert read.msg_id == batch[0]
        (popped,) = await client.pop("orders_queue")
        assert popped.msg_id == batch[1] and popped.message == {"id": 3}
        moved = await client.set_vt("orders_queue", delayed, 0)
        assert moved is not None and moved.msg_id == delayed
        assert [m.msg_id for m in await client.set_vt("orders_queue", [first, 999], 0)] == [first]

        assert sorted(await client.delete("orders_queue", [first, batch[0], 999])) == [first, batch[0]]
        assert await client.delete("orders_queue", first) is False
        assert await client.archive("orders_queue", delayed) is True
        again = await client.send_batch("orders_queue", [{"n": n} for n in range(3)])
        assert sorted(await client.archive("orders_queue", again[:2])) == again[:2]
        metrics = await client.metrics("orders_queue")
        assert metrics.queue_length == 1 and metrics.total_messages == 7
        assert await client.purge_queue("orders_queue") == 1
        names = {q.queue_name: q.is_unlogged for q in await client.list_queues()}
        assert names == {"orders_queue": False, "orders_fast_queue": True}
        assert await client.drop_queue("orders_fast_queue") is True
        health = await client.health()
        assert health.ok, health.problems
        assert health.installed_fingerprint == config.fingerprint() and health.missing_functions == ()
        assert 0.0 <= health.notification_queue_usage < 0.5 and health.pgmq_installed
        assert announced(sub.drain()) == Counter({i: 1 for i in again})


@pytest.mark.parametrize("mode", MODES)
async def test_a_transaction_announces_at_commit_and_not_at_all_on_rollback(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("orders")])
    async with PgmqNotifyClient(dsn, config) as client:
        await client.create_queue("orders_queue")
        async with client.transaction() as tx:
            await tx.execute("CREATE TABLE orders (id int)")
            await tx.execute("INSERT INTO orders VALUES (%s)", (4,))
            kept = await tx.send("orders_queue", {"id": 4})
            kept_batch = await tx.send_batch("orders_queue", [{"id": 5}, {"id": 6}])
            assert sub.drain(timeout=0.2) == []  # nothing before commit
        assert announced(sub.drain()) == Counter({kept: 1, kept_batch[0]: 1, kept_batch[1]: 1})

        with pytest.raises(RuntimeError, match="change of plan"):
            async with client.transaction() as tx:
                await tx.execute("INSERT INTO orders VALUES (%s)", (7,))
                await tx.send("orders_queue", {"id": 7})
                await tx.send_batch("orders_queue", [{"id": 8}])
                raise RuntimeError("change of plan")
        assert sub.drain() == []
        remaining = [m.message for m in await client.read("orders_queue", vt=30, qty=10)]
        async with client.transaction() as tx:
            await tx.execute("SELECT 1")
    assert remaining == [{"id": 4}, {"id": 5}, {"id": 6}]
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        rows = await (await conn.execute("SELECT id FROM orders")).fetchall()
    assert rows == [(4,)]


@pytest.mark.parametrize("mode", MODES)
async def test_a_caller_owned_connection_sends_in_its_own_transaction(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("orders")])
    client = PgmqNotifyClient(dsn, config)  # never opened: using() needs no pool
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute("SELECT pgmq.create('orders_queue')")
        await conn.commit()
        mine = client.using(conn)
        sent = await mine.send("orders_queue", {"id": 1})
        assert sub.drain(timeout=0.2) == []  # the caller's transaction is still open
        await conn.commit()
        assert announced(sub.drain()) == Counter({sent: 1})
        lost = await mine.send("orders_queue", {"id": 2})
        await conn.rollback()
        assert sub.drain() == []
        async with conn.transaction():
            inner = await mine.send_batch("orders_queue", [{"id": 3}])
        assert announced(sub.drain()) == Counter({inner[0]: 1})
        left = [m.msg_id for m in await mine.read("orders_queue", qty=10)]
        await conn.commit()
    assert left == [sent, *inner] and lost not in left


async def test_the_client_joins_a_pool_the_caller_owns(dsn):
    install(dsn, PgmqNotifyConfig())
    async with psycopg_pool.AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        async with PgmqNotifyClient(pool) as client:
            await client.create_queue("jobs_queue")
            sent = await client.send("jobs_queue", {"n": 1})
        assert not pool.closed  # the client leaves a given pool open
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT msg_id FROM pgmq.q_jobs_queue")).fetchone()
    assert row == (sent,)


async def test_interop_with_the_official_pgmq_client(dsn, subscribe):
    config = PgmqNotifyConfig()
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("shared")])
    official = await asyncio.to_thread(pgmq.PGMQueue, conn_string=dsn, init_extension=False, pool_size=1)
    try:
        async with PgmqNotifyClient(dsn, config) as client:
            await client.create_queue("shared_queue")
            ours = await client.send("shared_queue", {"from": "us"}, headers={"k": "v"})
            theirs = await asyncio.to_thread(official.send, "shared_queue", {"from": "them"})
            read_by_them = await asyncio.to_thread(official.read, "shared_queue", 30)
            read_by_us = await client.read_specific("shared_queue", theirs)
            assert await asyncio.to_thread(official.delete, "shared_queue", ours)
            assert await client.delete("shared_queue", theirs) is True
            assert "shared_queue" in [q.queue_name for q in await client.list_queues()]
            assert await asyncio.to_thread(official.metrics, "shared_queue")
    finally:
        await asyncio.to_thread(official.close)
    assert read_by_them.msg_id == ours and read_by_them.message == {"from": "us"}
    assert read_by_us is not None and read_by_us.message == {"from": "them"}
    assert announced(sub.drain()) == Counter({ours: 1, theirs: 1})


async def test_errors_are_typed_one_line_and_send_nothing(dsn, subscribe):
    config = PgmqNotifyConfig(mode="wrapper")
    sub = subscribe(dsn, [config.global_message_ready_channel()])
    async with PgmqNotifyClient(dsn, config) as client:
        with pytest.raises(MigrationMissingError, match=r"in schema 'pgmq_notify'.*Run the migration"):
            await client.send("orders_queue", {"n": 1})
        install(dsn, config)
        with pytest.raises(QueueNotFoundError, match="queue 'orders_queue' does not exist"):
            await client.send("orders_queue", {"n": 1})
        with pytest.raises(QueueNotFoundError, match="queue 'nowhere' does not exist"):
            await client.read("nowhere")
        await client.create_queue("orders_queue")
        with pytest.raises(MessageNotSerializableError, match="message for queue 'orders_queue'"):
            await client.send("orders_queue", {"when": {1, 2}})
        with pytest.raises(MessageNotSerializableError):
            await client.send_batch("orders_queue", [{"ok": 1}, float("nan")])
        assert await client.read("orders_queue", qty=10) == []
        health = await client.health()
    assert sub.drain() == []
    assert health.ok
    with pytest.raises(PoolClosedError, match="pool is closed"):
        await client.send("orders_queue", {"n": 1})


async def test_health_reports_a_config_that_does_not_match_the_install(dsn):
    install(dsn, PgmqNotifyConfig())
    async with PgmqNotifyClient(dsn, PgmqNotifyConfig(channels_prefix="other")) as client:
        drifted = await client.health()
    async with PgmqNotifyClient(dsn, PgmqNotifyConfig(schema="elsewhere")) as client:
        missing = await client.health()
    assert not drifted.ok and "generate and apply a new migration" in drifted.problems[0]
    assert not missing.ok and missing.installed_fingerprint is None
    assert "run the migration" in missing.problems[0]


async def test_health_reports_an_install_made_by_another_generator_version(dsn):
    config = PgmqNotifyConfig()
    install(dsn, config)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"COMMENT ON SCHEMA pgmq_notify IS 'pgmq-codegen 0.0.1 fingerprint={config.fingerprint()}'")
    async with PgmqNotifyClient(dsn, config) as client:
        report = await client.health()
    assert report.installed_generator_version == "0.0.1"
    assert not report.ok and "installed by pgmq-codegen 0.0.1" in report.problems[0]


@pytest.mark.parametrize("mode", MODES)
async def test_send_topic_reaches_every_bound_queue_with_one_event_each(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    sub = subscribe(dsn, [config.global_message_ready_channel()])
    async with PgmqNotifyClient(dsn, config) as client:
        assert (await client.health()).has_topics
        for queue in ("eu_queue", "us_queue", "asia_queue"):
            await client.create_queue(queue)
        async with client.transaction() as tx:
            await tx.execute("SELECT pgmq.bind_topic('orders.*', 'eu_queue')")
            await tx.execute("SELECT pgmq.bind_topic('orders.#', 'us_queue')")
            await tx.execute("SELECT pgmq.bind_topic('orders.created', 'us_queue')")  # matched twice, sent once
            await tx.execute("SELECT pgmq.bind_topic('invoices.#', 'asia_queue')")
        matched = await client.send_topic("orders.created", {"id": 1}, headers={"h": 1})
        assert await client.send_topic("nobody.listens", {"id": 2}) == 0
        with pytest.raises(MessageNotSerializableError):
            await client.send_topic("orders.created", None)
        sizes = {q: (await client.metrics(q)).queue_length for q in ("eu_queue", "us_queue", "asia_queue")}
    events = sub.drain()
    assert matched == 2
    assert sizes == {"eu_queue": 1, "us_queue": 1, "asia_queue": 0}
    assert sorted(r.event["queue_name"] for r in events) == ["eu_queue", "us_queue"]
    assert all(r.event["message"] == {"id": 1} and r.event["headers"] == {"h": 1} for r in events)


async def test_the_readme_wrapper_calls_announce_in_wrapper_mode(dsn, subscribe):
    config = PgmqNotifyConfig(mode="wrapper")
    install(dsn, config)
    sub = subscribe(dsn, [config.message_ready_channel("orders")])
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    calls = [line.split("  --")[0] for line in readme.splitlines() if line.startswith("SELECT * FROM pgmq_notify.send")]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pgmq.create('orders_queue')")
        ids = [row[0] for call in calls for row in await (await conn.execute(call)).fetchall()]
    assert len(calls) == 3 and len(ids) == 4
    assert announced(sub.drain()) == Counter({i: 1 for i in ids})


async def test_a_partitioned_queue_without_pg_partman_is_one_typed_line(dsn):
    async with PgmqNotifyClient(dsn) as client:
        with pytest.raises(DatabaseError) as caught:
            await client.create_queue("big_queue", partitioned=True)
    assert "\n" not in str(caught.value) and "partman" in str(caught.value).lower()


async def test_health_names_the_pgmq_extension_version(ext_dsn):
    """From CREATE EXTENSION: its version; loose SQL carries none (the report says None, not a guess)."""
    install(ext_dsn, PgmqNotifyConfig())
    async with PgmqNotifyClient(ext_dsn) as client:
        report = await client.health()
    with psycopg.connect(ext_dsn) as conn:
        (version,) = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgmq'").fetchone()
    assert report.ok and report.pgmq_installed and report.pgmq_version == version


async def test_health_of_a_loose_sql_install_has_no_pgmq_version(dsn):
    install(dsn, PgmqNotifyConfig())
    async with PgmqNotifyClient(dsn) as client:
        report = await client.health()
    assert report.ok and report.pgmq_installed and report.pgmq_version is None

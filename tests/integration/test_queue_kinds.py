"""Partitioned (pg_partman) and unlogged queues emit every event, in every mode.

PGMQ's ``create_partitioned`` makes ``pgmq.q_<name>`` a partitioned table that
pg_partman extends with new partitions as msg_ids grow. Our message trigger is
a statement-level trigger on the parent table, which PostgreSQL fires for
inserts routed into any partition, including partitions created after the
migration; the last test proves it with pg_partman's ``run_maintenance``.

pg_partman comes from the Debian package where the server has one; other
servers (the wheel's PostgreSQL 18) get that package's SQL-only extension
files copied in by the test set-up (``pg_partman`` in tests/conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import Subscriber, install
from tests.integration.producers import producer_for

MODES = ["trigger", "wrapper", "both"]
KINDS = ["partitioned", "unlogged"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _conn(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, dsn: str) -> str:
    if request.param == "partitioned":
        request.getfixturevalue("pg_partman")  # skips, saying why, where pg_partman cannot be had
    return str(request.param)


def _create(conn: psycopg.Connection[tuple[object, ...]], kind: str, queue: str, interval: int = 10) -> None:
    if kind == "partitioned":
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_partman")
        conn.execute("SELECT pgmq.create_partitioned(%s, %s, %s)", [queue, str(interval), str(interval * 1000)])
    else:
        conn.execute("SELECT pgmq.create_unlogged(%s)", [queue])


def _partitions(conn: psycopg.Connection[tuple[object, ...]], queue: str) -> set[str]:
    rows = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
        [f"pgmq.q_{queue}"],
    ).fetchall()
    return {str(r[0]) for r in rows}


def _by_channel(got: list[Any], channel: str) -> list[dict[str, Any]]:
    return [json.loads(r.payload) for r in got if r.channel == channel]


@pytest.mark.parametrize("created", ["before_migration", "after_migration"])
def test_every_event_type_on_the_queue_kind(
    dsn: str, subscribe: Callable[[str, list[str]], Subscriber], mode: str, kind: str, created: str
) -> None:
    config = PgmqNotifyConfig(mode=mode)
    queue = "orders_queue"
    ns_channel = config.message_ready_channel("orders")
    if created == "before_migration":
        with _conn(dsn) as conn:
            _create(conn, kind, queue, interval=1000)
        install(dsn, config)
        sub = subscribe(dsn, [config.queue_created_channel(), ns_channel, config.global_message_ready_channel()])
    else:
        install(dsn, config)
        sub = subscribe(dsn, [config.queue_created_channel(), ns_channel, config.global_message_ready_channel()])
        with _conn(dsn) as conn:
            _create(conn, kind, queue, interval=1000)
    with _conn(dsn) as conn:
        relkind, persistence = conn.execute(
            "SELECT relkind, relpersistence FROM pg_class WHERE oid = %s::regclass", [f"pgmq.q_{queue}"]
        ).fetchone() or ("", "")
        assert (relkind, persistence) == (("p", "p") if kind == "partitioned" else ("r", "u"))
        producer = producer_for(conn, config)
        single = producer.send(queue, {"order": 1})
        big = producer.send(queue, {"blob": "x" * 20_000})
        (one,) = producer.send_batch(queue, [{"only": True}])
        many = producer.send_batch(queue, [{"i": i} for i in range(3000)])
    got = sub.drain()
    created_events = [json.loads(r.payload) for r in got if r.channel == config.queue_created_channel()]
    expected_created = [] if created == "before_migration" else [(queue, "orders")]
    assert [(e["queue_name"], e["namespace"]) for e in created_events] == expected_created
    for channel in (ns_channel, config.global_message_ready_channel()):
        events = _by_channel(got, channel)
        singles = [(e["event_type"], e["msg_id"]) for e in events if e["event_type"] != "batch_ready"]
        assert singles == [("message_with_payload", single), ("message_ready", big), ("message_with_payload", one)]
        batches = [e for e in events if e["event_type"] == "batch_ready"]
        assert len(batches) > 1, "3,000 ids cannot fit one payload"
        announced = [i for e in batches for i in e["msg_ids"]]
        assert sorted(announced) == sorted(many)
        assert len(announced) == len(set(announced))
    assert all(len(r.payload.encode()) <= config.max_payload_size for r in got)


@pytest.mark.usefixtures("pg_partman")
def test_partitions_made_by_maintenance_after_the_migration_notify(
    dsn: str, subscribe: Callable[[str, list[str]], Subscriber], mode: str
) -> None:
    """Rows routed into a partition that run_maintenance created later still fire the parent's trigger."""
    config = PgmqNotifyConfig(mode=mode)
    queue = "grow_queue"
    install(dsn, config)
    with _conn(dsn) as conn:
        _create(conn, "partitioned", queue, interval=10)
        first = _partitions(conn, queue)
        producer = producer_for(conn, config)
        # Fill the premade partitions (ids 1..49), then let pg_partman make more.
        filler = producer.send_batch(queue, [{"fill": i} for i in range(49)])
        conn.execute("SELECT run_maintenance(%s)", [f"pgmq.q_{queue}"])
        new_partitions = _partitions(conn, queue) - first
        assert new_partitions, "run_maintenance made no partition"
        sub = subscribe(dsn, [config.global_message_ready_channel()])
        single = producer.send(queue, {"after": "maintenance"})
        batch = producer.send_batch(queue, [{"after": i} for i in range(8)])
        rows = conn.execute(
            f"SELECT msg_id, tableoid::regclass::text FROM pgmq.q_{queue} WHERE msg_id = ANY(%s)",
            [[single, *batch]],
        ).fetchall()
    assert max(filler) < single
    assert {str(r[1]) for r in rows} <= new_partitions, "the rows must land in the new partitions"
    events = [r.event for r in sub.drain()]
    assert [(e["event_type"], e.get("msg_id")) for e in events[:1]] == [("message_with_payload", single)]
    assert [(e["event_type"], e.get("msg_ids")) for e in events[1:]] == [("batch_ready", batch)]

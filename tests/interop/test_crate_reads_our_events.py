"""Python produces, Rust listens: the real tasker-pgmq 0.1.3 listener reads every event our SQL emits.

Each test installs our generated migration, starts the crate's own
``PgmqNotifyListener`` (``tasker_listener``) and one plain LISTEN connection of
ours on the same channels, produces with plain SQL, and checks that the crate
parsed every notification into the matching ``PgmqNotifyEvent`` variant with
the same fields that :func:`pgmq_runtime.events.parse_event` reads from the
very same notification.

The crate's listener does not look at channel names, so listening on the
global and a namespace channel at once would give every event twice: each
test listens on one message channel.
"""

from __future__ import annotations

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.events import parse_event
from tests.conftest import install
from tests.integration.producers import producer_for
from tests.interop.conftest import assert_same_event, crate_channels

MODES = ["trigger", "wrapper", "both"]


def _both_views(crate, sub, count: int) -> list[tuple[dict, object]]:
    """The next ``count`` notifications as the crate saw them, paired with our parse of the same ones."""
    crate_lines = crate.collect(count)
    ours = [parse_event(r.channel, r.payload) for r in sub.drain()]
    assert len(ours) == count, ours
    assert crate.quiet(0.2) == [], "the crate got more notifications than we did"
    return list(zip(crate_lines, ours, strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_every_event_type_we_emit_parses_in_the_crate(dsn, subscribe, crate_listener, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    crate = crate_listener(dsn, ["orders"], queue_created=True)
    assert crate.channels == sorted([config.message_ready_channel("orders"), config.queue_created_channel()])
    sub = subscribe(dsn, [config.queue_created_channel(), config.message_ready_channel("orders")])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        producer = producer_for(conn, config)
        small = producer.send("orders_queue", {"order": 7, "name": "Zoë", "tags": [1, None]}, headers={"t": "x"})
        delayed = producer.send("orders_queue", {"later": True}, delay=30)
        big = producer.send("orders_queue", {"blob": "y" * 20_000})
        # 2,600 characters but 7,800 bytes: only a byte count sees that it cannot be carried.
        euros = producer.send("orders_queue", {"s": "€" * 2600})
        batch = producer.send_batch("orders_queue", [{"i": i} for i in range(3)], delay=5)
        big_delayed = producer.send("orders_queue", {"blob": "z" * 20_000}, delay=60)
    pairs = _both_views(crate, sub, 7)
    for crate_line, ours in pairs:
        assert_same_event(crate_line, ours)

    variants = [c["variant"] for c, _ in pairs]
    assert variants == [
        "QueueCreated",
        "MessageWithPayload",
        "MessageWithPayload",
        "MessageReady",
        "MessageReady",
        "BatchReady",
        "MessageReady",
    ]
    events = [c["event"] for c, _ in pairs]
    assert (events[0]["queue_name"], events[0]["namespace"]) == ("orders_queue", "orders")
    assert (events[1]["msg_id"], events[1]["message"]) == (small, {"order": 7, "name": "Zoë", "tags": [1, None]})
    assert (events[2]["msg_id"], events[2]["delay_seconds"]) == (delayed, 30)
    # ready_at is when the message becomes visible, not when it was sent.
    assert (pairs[2][1].ready_at - pairs[1][1].ready_at).total_seconds() > 29
    assert [e["msg_id"] for e in events[3:5]] == [big, euros]
    assert (events[5]["msg_ids"], events[5]["message_count"], events[5]["delay_seconds"]) == (batch, 3, 5)
    # A delayed signal: the crate sees when it becomes visible in ready_at; visibility_timeout_seconds,
    # which tasker's SQL fills with the delay, is absent (None) in ours: delay_seconds carries it.
    assert (events[6]["msg_id"], events[6]["visibility_timeout_seconds"]) == (big_delayed, None)
    assert pairs[6][1].delay_seconds == 60
    assert (pairs[6][1].ready_at - pairs[3][1].ready_at).total_seconds() > 59
    source = "wrapper" if mode == "wrapper" else "trigger"
    assert events[3]["metadata"] == events[5]["metadata"] == {"source": source}


def test_prefix_and_custom_pattern_reach_the_crate_on_its_own_channel_names(dsn, subscribe, crate_listener, tasker):
    pattern = r"^(?P<namespace>[a-z]+)_jobs$"
    config = PgmqNotifyConfig(channels_prefix="myapp", queue_naming_pattern=pattern)
    install(dsn, config)
    computed = crate_channels(tasker, prefix="myapp", pattern=pattern, queues=["billing_jobs"])
    (entry,) = computed["queues"]
    assert entry["namespace"] == {"ok": "billing"}
    assert entry["channel"] == {"ok": config.message_ready_channel("billing")}
    assert config.message_ready_channel("billing") == "myapp.pgmq_message_ready.billing"
    crate = crate_listener(dsn, ["billing"], queue_created=True, prefix="myapp", pattern=pattern)
    sub = subscribe(dsn, crate.channels)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('billing_jobs')")
        producer = producer_for(conn, config)
        one = producer.send("billing_jobs", {"amount": 12})
        many = producer.send_batch("billing_jobs", [{"amount": 1}, {"amount": 2}])
    pairs = _both_views(crate, sub, 3)
    for crate_line, ours in pairs:
        assert_same_event(crate_line, ours)
    assert [getattr(ours, "channel", None) for _, ours in pairs] == [
        "myapp.pgmq_queue_created",
        "myapp.pgmq_message_ready.billing",
        "myapp.pgmq_message_ready.billing",
    ]
    assert pairs[1][0]["event"]["msg_id"] == one and pairs[2][0]["event"]["msg_ids"] == many


def test_a_batch_split_over_several_events_parses_in_the_crate_and_carries_every_id_once(
    dsn, subscribe, crate_listener
):
    config = PgmqNotifyConfig()
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        crate = crate_listener(dsn, glob=True)
        sub = subscribe(dsn, [config.global_message_ready_channel()])
        ids = producer_for(conn, config).send_batch("orders_queue", [{"i": i} for i in range(3000)])
    received = sub.drain()
    assert len(received) > 1, "3,000 ids do not fit one payload"
    pairs = list(zip(crate.collect(len(received)), [parse_event(r.channel, r.payload) for r in received], strict=True))
    announced: list[int] = []
    for crate_line, ours in pairs:
        assert_same_event(crate_line, ours)
        assert crate_line["variant"] == "BatchReady"
        announced.extend(crate_line["event"]["msg_ids"])
    assert sorted(announced) == sorted(ids) and len(set(announced)) == len(ids)


@pytest.mark.parametrize("mode", ["trigger", "wrapper"])
def test_mixed_case_queues_reach_the_crate_listener_of_the_namespace_it_computes(
    dsn, subscribe, crate_listener, tasker, mode
):
    """PGMQ lowercases the table name (q_orders_queue); our events keep ``Orders_Queue`` everywhere."""
    pattern = r"(?P<namespace>[A-Za-z]+)_"
    config = PgmqNotifyConfig(mode=mode, queue_naming_pattern=pattern)
    install(dsn, config)
    (entry,) = crate_channels(tasker, pattern=pattern, queues=["Orders_Queue"])["queues"]
    assert entry["namespace"] == {"ok": "Orders"} and config.extract_namespace("Orders_Queue") == "Orders"
    crate = crate_listener(dsn, ["Orders"], queue_created=True, pattern=pattern)
    sub = subscribe(dsn, crate.channels)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('Orders_Queue')")
        producer = producer_for(conn, config)
        producer.send("Orders_Queue", {"n": 1})
        producer.send_batch("Orders_Queue", [{"n": 2}, {"n": 3}])
    pairs = _both_views(crate, sub, 3)
    for crate_line, ours in pairs:
        assert_same_event(crate_line, ours)
    assert {(c["event"]["queue_name"], c["event"]["namespace"]) for c, _ in pairs} == {("Orders_Queue", "Orders")}

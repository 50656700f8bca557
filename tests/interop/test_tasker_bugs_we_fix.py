"""Where tasker-pgmq 0.1.3's own SQL is wrong, ours is right: each test shows both, side by side.

Nothing here copies tasker's behaviour into ours. Each test runs tasker's
generated migration (``tasker-pgmq-cli generate-migration``) on one database
and ours on another, with the crate's own listener or parser on both, and
shows the difference:

- truncation: tasker cuts an oversized payload and appends ``...}``, which is
  not JSON, and it measures with ``length()`` (characters), so a multibyte
  payload is still over its limit after the cut; ours never truncates, measures
  bytes and sends a signal event instead;
- channel length: with a prefix and a long queue name, tasker's NOTIFY fails
  and aborts the sender's transaction; ours shortens the channel name;
- case: in message events tasker names a queue by its lowercased table, in
  ``queue_created`` by ``pgmq.meta``'s spelling, so a Rust listener on the
  namespace the crate computes never hears the messages; ours is consistent;
- capture groups: tasker's SQL takes group 1, the crate the ``namespace`` group;
- queues created after the migration: tasker's SQL never announces their messages.
"""

from __future__ import annotations

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ConfigError
from pgmq_runtime.events import InvalidEvent, parse_event
from tests.conftest import install
from tests.integration.producers import producer_for
from tests.interop.conftest import (
    assert_same_event,
    crate_channels,
    tasker_config_toml,
    tasker_migration,
)

# PGMQ's longest queue name (47 characters). The second one is 61 bytes: "é" takes two.
ASCII_QUEUE = "a" * 41 + "_queue"
ACCENTED_QUEUE = "é" * 14 + "a" * 27 + "_queue"


def _apply_tasker(tasker, dsn: str, directory, **config) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(tasker_migration(tasker, directory, tasker_config_toml(**config)).encode())


def _create(dsn: str, *queues: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for queue in queues:
            conn.execute("SELECT pgmq.create(%s)", [queue])


def test_truncated_payloads_are_invalid_json_and_over_the_limit_where_ours_are_valid_signals(
    dsn, other_dsn, tmp_path, subscribe, crate_listener, tasker
):
    # tasker's SQL, max_payload_size = 200 (its validate-config accepts that).
    _create(dsn, ASCII_QUEUE, ACCENTED_QUEUE)
    _apply_tasker(tasker, dsn, tmp_path, max_payload_size=200)
    crate = crate_listener(dsn, glob=True)
    sub = subscribe(dsn, ["pgmq_message_ready"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        for queue in (ASCII_QUEUE, ACCENTED_QUEUE):
            conn.execute("SELECT pgmq.send(%s, '{}'::jsonb)", [queue])
    crate_lines = crate.collect(2)
    received = sub.drain()
    assert len(received) == 2
    for crate_line, notification in zip(crate_lines, received, strict=True):
        assert notification.payload.endswith("...}")
        assert crate_line["error"].startswith("Serialization error")
        assert crate_line["payload"] == notification.payload
        ours = parse_event(notification.channel, notification.payload)
        # Ours reports it as a value (a consumer treats it as a gap and reads the queue), never crashes.
        assert isinstance(ours, InvalidEvent) and "not valid JSON" in ours.reason
    ascii_payload, accented_payload = (r.payload for r in received)
    assert len(ascii_payload) == len(ascii_payload.encode()) == 194
    # Cut to 194 characters, still 208 bytes: over its own 200 limit.
    assert len(accented_payload) == 194 and len(accented_payload.encode()) > 200

    # Ours: a limit too small for the longest signal event is refused, with the key named ...
    with pytest.raises(ConfigError, match="max_payload_size"):
        PgmqNotifyConfig.from_mapping({"max_payload_size": 200})
    # ... and at our smallest limit, payloads that do not fit become valid signal events, in bytes.
    config = PgmqNotifyConfig.from_mapping({"max_payload_size": 1024})
    install(other_dsn, config)
    _create(other_dsn, ASCII_QUEUE, ACCENTED_QUEUE)
    crate = crate_listener(other_dsn, glob=True)
    sub = subscribe(other_dsn, ["pgmq_message_ready"])
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        producer = producer_for(conn, config)
        for queue in (ASCII_QUEUE, ACCENTED_QUEUE):
            producer.send(queue, {"s": "x" * 1000})  # ASCII: over 1024 bytes with the envelope
            producer.send(queue, {"s": "ü" * 400})  # 400 characters, 800 bytes: over 1024 in bytes only
            producer.send(queue, {"s": "x" * 10})
    received = sub.drain()
    crate_lines = crate.collect(len(received))
    assert len(received) == 6
    for crate_line, notification in zip(crate_lines, received, strict=True):
        assert_same_event(crate_line, parse_event(notification.channel, notification.payload))
        assert len(notification.payload.encode()) <= 1024
    assert [c["variant"] for c in crate_lines] == ["MessageReady", "MessageReady", "MessageWithPayload"] * 2


def test_a_long_channel_aborts_tasker_sends_where_ours_shortens_it(
    dsn, other_dsn, tmp_path, subscribe, crate_listener, tasker
):
    queue = "n" * 41 + "_queue"
    namespace = "n" * 41
    # The crate itself cannot name this namespace's channel: 66 bytes.
    (entry,) = crate_channels(tasker, prefix="myapp", queues=[queue])["queues"]
    assert entry["namespace"] == {"ok": namespace}
    assert "exceeds maximum length of 63" in entry["channel"]["error"]

    _create(dsn, queue)
    _apply_tasker(tasker, dsn, tmp_path, prefix="myapp")
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="channel name too long"):
            conn.execute("""SELECT pgmq.send(%s, '{"lost": true}'::jsonb)""", [queue])
        # The sender's transaction aborted: the message was never stored.
        assert conn.execute(f"SELECT count(*) FROM pgmq.q_{queue}").fetchone() == (0,)

    config = PgmqNotifyConfig(channels_prefix="myapp")
    install(other_dsn, config)
    _create(other_dsn, queue)
    channel = config.message_ready_channel(namespace)
    assert len(channel.encode()) <= 63 and "~" in channel
    # A Rust listener of this namespace uses the global channel: the crate refuses "~" in a name.
    shortened = crate_channels(tasker, prefix="myapp", namespaces=[channel.rsplit(".", 1)[1]])["namespaces"]
    assert "invalid characters" in shortened[0]["channel"]["error"]
    crate = crate_listener(other_dsn, glob=True, prefix="myapp")
    sub = subscribe(other_dsn, [channel])
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        msg_id = producer_for(conn, config).send(queue, {"kept": True})
    (notification,) = sub.drain()
    (crate_line,) = crate.collect(1)
    assert notification.channel == channel
    assert_same_event(crate_line, parse_event(notification.channel, notification.payload))
    assert (crate_line["event"]["msg_id"], crate_line["event"]["namespace"]) == (msg_id, namespace)


def test_mixed_case_queue_messages_miss_the_crate_listener_under_tasker_sql_but_not_ours(
    dsn, other_dsn, tmp_path, subscribe, crate_listener, tasker
):
    (entry,) = crate_channels(tasker, queues=["Mixed_queue"])["queues"]
    assert entry["namespace"] == {"ok": "Mixed"} and entry["channel"] == {"ok": "pgmq_message_ready.Mixed"}

    _apply_tasker(tasker, dsn, tmp_path)
    crate = crate_listener(dsn, ["Mixed"], queue_created=True)
    sub = subscribe(dsn, ["pgmq_message_ready"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('Mixed_queue')")
    # tasker attaches message triggers only when its migration runs: run it again, as its docs suggest.
    _apply_tasker(tasker, dsn, tmp_path / "again")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""SELECT pgmq.send('Mixed_queue', '{"n": 1}'::jsonb)""")
    (created,) = crate.collect(1)
    assert (created["variant"], created["event"]["queue_name"]) == ("QueueCreated", "Mixed_queue")
    assert crate.quiet(0.5) == [], "the message event went to pgmq_message_ready.mixed"
    (announced,) = (parse_event(r.channel, r.payload) for r in sub.drain())
    assert (announced.queue_name, announced.namespace) == ("mixed_queue", "mixed")

    config = PgmqNotifyConfig()
    install(other_dsn, config)
    crate = crate_listener(other_dsn, ["Mixed"], queue_created=True)
    sub = subscribe(other_dsn, crate.channels)
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('Mixed_queue')")
        producer_for(conn, config).send("Mixed_queue", {"n": 1})
    crate_lines = crate.collect(2)
    for crate_line, notification in zip(crate_lines, sub.drain(), strict=True):
        assert_same_event(crate_line, parse_event(notification.channel, notification.payload))
        assert (crate_line["event"]["queue_name"], crate_line["event"]["namespace"]) == ("Mixed_queue", "Mixed")


def test_a_group_before_the_namespace_group_splits_tasker_sql_from_its_crate_but_not_ours(
    dsn, other_dsn, tmp_path, subscribe, crate_listener, tasker
):
    pattern = r"(prod|dev)_(?P<namespace>\w+)_queue"
    (entry,) = crate_channels(tasker, pattern=pattern, queues=["prod_orders_queue"])["queues"]
    assert entry["namespace"] == {"ok": "orders"}

    _create(dsn, "prod_orders_queue")
    _apply_tasker(tasker, dsn, tmp_path, pattern=pattern)
    crate = crate_listener(dsn, ["orders"], pattern=pattern)
    sub = subscribe(dsn, ["pgmq_message_ready"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""SELECT pgmq.send('prod_orders_queue', '{}'::jsonb)""")
    (announced,) = (parse_event(r.channel, r.payload) for r in sub.drain())
    assert announced.namespace == "prod"  # tasker's SQL takes capture group 1
    assert crate.quiet(0.5) == [], "the event went to pgmq_message_ready.prod"

    config = PgmqNotifyConfig(queue_naming_pattern=pattern)
    assert config.extract_namespace("prod_orders_queue") == "orders"
    install(other_dsn, config)
    _create(other_dsn, "prod_orders_queue")
    crate = crate_listener(other_dsn, ["orders"], pattern=pattern)
    sub = subscribe(other_dsn, crate.channels)
    with psycopg.connect(other_dsn, autocommit=True) as conn:
        producer_for(conn, config).send("prod_orders_queue", {})
    (crate_line,) = crate.collect(1)
    (notification,) = sub.drain()
    assert_same_event(crate_line, parse_event(notification.channel, notification.payload))
    assert crate_line["event"]["namespace"] == "orders"


def test_queues_created_after_the_migration_are_silent_under_tasker_sql_but_not_ours(
    dsn, other_dsn, tmp_path, crate_listener, tasker
):
    _apply_tasker(tasker, dsn, tmp_path)
    install(other_dsn, PgmqNotifyConfig())
    crates = [crate_listener(d, ["orders"], queue_created=True) for d in (dsn, other_dsn)]
    for d in (dsn, other_dsn):
        with psycopg.connect(d, autocommit=True) as conn:
            conn.execute("SELECT pgmq.create('orders_queue')")
            conn.execute("""SELECT pgmq.send('orders_queue', '{"n": 1}'::jsonb)""")
    tasker_side, our_side = (c.quiet(0.6) for c in crates)
    assert [line["variant"] for line in tasker_side] == ["QueueCreated"]
    assert [line["variant"] for line in our_side] == ["QueueCreated", "MessageWithPayload"]

"""The generated SQL emits DESIGN.md's events, checked on a real server in every mode.

One suite, parametrised over mode: in trigger mode messages are sent with
PGMQ's own functions, in wrapper and both modes through send_with_notify. And
over PGMQ's install: from loose SQL and as a real extension (``both_installs``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install
from tests.integration.producers import plain_producer, producer_for

pytestmark = pytest.mark.both_installs

MODES = ["trigger", "wrapper", "both"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _conn(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def _vt_text(conn: psycopg.Connection[tuple[object, ...]], queue: str, msg_id: int, column: str = "vt") -> str:
    row = conn.execute(
        psycopg.sql.SQL(
            """SELECT to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM pgmq.{} WHERE msg_id = %s"""
        ).format(psycopg.sql.Identifier(column), psycopg.sql.Identifier("q_" + queue.lower())),
        [msg_id],
    ).fetchone()
    assert row is not None
    return str(row[0])


def setup(dsn: str, subscribe, config: PgmqNotifyConfig, queue: str = "orders_queue"):
    install(dsn, config)
    conn = _conn(dsn)
    conn.execute("SELECT pgmq.create(%s)", [queue])
    ns = config.extract_namespace(queue)
    channels = [config.message_ready_channel(ns), config.global_message_ready_channel()]
    sub = subscribe(dsn, channels)
    return conn, sub, producer_for(conn, config)


def test_single_send_carries_the_whole_event(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    conn, sub, producer = setup(dsn, subscribe, config)
    msg_id = producer.send("orders_queue", {"order": 7, "name": "Zoë"}, headers={"trace": "abc"})
    got = sub.drain()
    assert sorted(r.channel for r in got) == ["pgmq_message_ready", "pgmq_message_ready.orders"]
    assert got[0].payload == got[1].payload
    assert got[0].event == {
        "event_type": "message_with_payload",
        "msg_id": msg_id,
        "queue_name": "orders_queue",
        "namespace": "orders",
        "message": {"order": 7, "name": "Zoë"},
        "headers": {"trace": "abc"},
        "ready_at": _vt_text(conn, "orders_queue", msg_id),
        "enqueued_at": _vt_text(conn, "orders_queue", msg_id, "enqueued_at"),
        "delay_seconds": 0,
        "metadata": {"source": "wrapper" if mode == "wrapper" else "trigger"},
    }


def test_delayed_sends_carry_ready_at_and_delay(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    conn, sub, producer = setup(dsn, subscribe, config)
    by_seconds = producer.send("orders_queue", {"n": 1}, delay=30)
    at = datetime.now(UTC) + timedelta(seconds=90)
    by_time = producer.send("orders_queue", {"n": 2}, delay=at)
    events = {r.event["msg_id"]: r.event for r in sub.drain() if r.channel.endswith("orders")}
    assert events[by_seconds]["delay_seconds"] == 30
    assert events[by_seconds]["ready_at"] == _vt_text(conn, "orders_queue", by_seconds)
    assert events[by_time]["ready_at"] == at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert events[by_time]["delay_seconds"] in (89, 90)


def test_events_arrive_at_commit_and_never_on_rollback(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    with _conn(dsn) as admin:
        admin.execute("SELECT pgmq.create('orders_queue')")
    sub = subscribe(dsn, [config.global_message_ready_channel()])
    conn = psycopg.connect(dsn)
    producer = producer_for(conn, config)
    producer.send("orders_queue", {"n": "rolled back"})
    conn.rollback()
    producer.send("orders_queue", {"n": "committed"})
    assert sub.drain(timeout=0.3) == []
    conn.commit()
    got = sub.drain()
    assert [r.event["message"] for r in got] == [{"n": "committed"}]
    conn.close()


def _event_size(event_payload: str) -> int:
    return len(event_payload.encode("utf-8"))


def test_payload_decision_counts_bytes_not_characters(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    _, sub, producer = setup(dsn, subscribe, config)
    # Find the event's overhead with a small message, then fill to the exact limit.
    probe = producer.send("orders_queue", {"s": "x"})
    (first,) = [r for r in sub.drain() if r.channel.endswith("orders")]
    overhead = _event_size(first.payload) - 1
    room = config.max_payload_size - overhead
    fits = producer.send("orders_queue", {"s": "x" * room})
    over = producer.send("orders_queue", {"s": "x" * (room + 1)})
    # 2,600 three-byte characters: 2,600 by length() but 7,800 bytes, over 8,000 with the
    # envelope: a character-counting check would send it and NOTIFY would abort the send.
    euros = producer.send("orders_queue", {"s": "€" * 2600})
    # 3,000 four-byte characters (12,000 bytes).
    clefs = producer.send("orders_queue", {"s": "𝄞" * 3000})
    events = {r.event["msg_id"]: r for r in sub.drain() if r.channel.endswith("orders")}
    assert probe == first.event["msg_id"]
    assert events[fits].event["event_type"] == "message_with_payload"
    assert _event_size(events[fits].payload) == config.max_payload_size
    for signal in (over, euros, clefs):
        event = events[signal].event
        assert event["event_type"] == "message_ready"
        assert event["payload_omitted"] is True
        assert "message" not in event
    assert all(_event_size(r.payload) <= config.max_payload_size for r in events.values())


def test_a_one_megabyte_message_is_sent_and_signalled(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    _, sub, producer = setup(dsn, subscribe, config)
    msg_id = producer.send("orders_queue", {"blob": "y" * 1_000_000})
    (event,) = [r.event for r in sub.drain() if r.channel.endswith("orders")]
    assert event["event_type"] == "message_ready"
    assert event["msg_id"] == msg_id


def test_a_batch_of_5000_announces_every_id_exactly_once(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    _, sub, producer = setup(dsn, subscribe, config)
    ids = producer.send_batch("orders_queue", [{"i": i} for i in range(5000)], delay=3)
    received = sub.drain()
    for channel in ("pgmq_message_ready.orders", "pgmq_message_ready"):
        events = [r for r in received if r.channel == channel]
        assert len(events) > 1, "5,000 ids cannot fit one payload"
        announced: list[int] = []
        for r in events:
            assert _event_size(r.payload) <= config.max_payload_size
            event = json.loads(r.payload)
            assert event["event_type"] == "batch_ready"
            assert event["message_count"] == len(event["msg_ids"])
            assert event["delay_seconds"] == 3
            announced.extend(event["msg_ids"])
        assert sorted(announced) == sorted(ids)
        assert len(announced) == len(set(announced))


@pytest.mark.parametrize("limit", [7800, 600])
def test_a_split_batch_keeps_every_event_within_the_limit_whatever_the_ids_widths(dsn, subscribe, limit):
    """Ids of every width, negative ones too, split into events that each fit, every id once and in order.

    Chunks hold as many ids as fit when each is as wide as the widest, so there
    are few events: at most one more than the ids' bytes at that width need.
    """
    config = PgmqNotifyConfig(mode="trigger", max_payload_size=limit)
    conn, sub, _ = setup(dsn, subscribe, config)
    # Distinct ids (NOTIFY drops a payload repeated in one transaction) of 1 to 19 digits, the largest,
    # and a long run of the widest (a sign and 19 digits), which fills whole events.
    widths = {10 ** (digits - 1) + k for digits in range(1, 19) for k in range(150)}
    ids = sorted(widths | {2**63 - 1} | {-(2**63) + k for k in range(2000)})
    conn.execute(
        'SELECT "pgmq_notify".announce_batch_v1(%s, %s, %s, %s, now(), %s)',
        ["orders_queue", "orders", config.message_ready_channel("orders"), ids, "test"],
    )
    events = [r for r in sub.drain() if r.channel == config.message_ready_channel("orders")]
    announced: list[int] = []
    for r in events:
        assert _event_size(r.payload) <= limit
        event = json.loads(r.payload)
        assert event["message_count"] == len(event["msg_ids"])
        announced.extend(event["msg_ids"])
    assert announced == ids
    envelope = _event_size(events[0].payload) - len(json.dumps(events[0].event["msg_ids"], separators=(",", ":")))
    per_event = (limit - envelope - 10) // 21
    assert len(events) <= -(-len(ids) // per_event) + 1


def test_one_statement_with_several_vts_gives_one_batch_event_per_vt(dsn, subscribe):
    """The trigger's common batch (one vt) skips grouping; any other statement still gets an event per vt."""
    config = PgmqNotifyConfig(mode="trigger")
    conn, sub, _ = setup(dsn, subscribe, config)
    rows = conn.execute(
        "INSERT INTO pgmq.q_orders_queue (vt, message) SELECT now() + make_interval(secs => i % 2 * 60), "
        "jsonb_build_object('i', i) FROM generate_series(1, 6) AS i RETURNING msg_id, vt"
    ).fetchall()
    events = [r.event for r in sub.drain() if r.channel.endswith("orders")]
    assert [e["event_type"] for e in events] == ["batch_ready", "batch_ready"]
    by_delay = {e["delay_seconds"] > 30: sorted(e["msg_ids"]) for e in events}
    now = min(vt for _, vt in rows)
    assert by_delay == {
        False: sorted(i for i, vt in rows if vt == now),
        True: sorted(i for i, vt in rows if vt != now),
    }


def test_a_batch_of_one_is_a_single_message_event(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    _, sub, producer = setup(dsn, subscribe, config)
    (msg_id,) = producer.send_batch("orders_queue", [{"only": True}])
    (event,) = [r.event for r in sub.drain() if r.channel.endswith("orders")]
    assert event["event_type"] == "message_with_payload"
    assert (event["msg_id"], event["message"]) == (msg_id, {"only": True})


def test_queues_created_after_the_migration_notify_like_older_ones(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('old_queue')")
    install(dsn, config)
    sub = subscribe(dsn, [config.queue_created_channel(), config.global_message_ready_channel()])
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('new_queue')")
        conn.execute("SELECT pgmq.create_unlogged('fast_queue')")
        producer = producer_for(conn, config)
        sent = {q: producer.send(q, {"q": q}) for q in ("old_queue", "new_queue", "fast_queue")}
    got = sub.drain()
    created = [r.event for r in got if r.event["event_type"] == "queue_created"]
    assert [(e["queue_name"], e["namespace"]) for e in created] == [("new_queue", "new"), ("fast_queue", "fast")]
    assert all(e["created_at"].endswith("Z") for e in created)
    messages = {r.event["queue_name"]: r.event for r in got if r.event["event_type"] != "queue_created"}
    assert {q: e["msg_id"] for q, e in messages.items()} == sent
    assert {e["namespace"] for e in messages.values()} == {"old", "new", "fast"}


def test_mixed_case_queue_names_agree_across_events(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode, queue_naming_pattern=r"(?P<namespace>[A-Za-z]+)_")
    install(dsn, config)
    channel = config.message_ready_channel("Orders")
    assert channel == "pgmq_message_ready.Orders"
    sub = subscribe(dsn, [config.queue_created_channel(), channel])
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('Orders_Queue')")
        producer = producer_for(conn, config)
        producer.send("Orders_Queue", {"n": 1})
        producer.send_batch("Orders_Queue", [{"n": 2}, {"n": 3}])
    got = sub.drain()
    assert [r.event["event_type"] for r in got] == ["queue_created", "message_with_payload", "batch_ready"]
    assert {(r.event["queue_name"], r.event["namespace"]) for r in got} == {("Orders_Queue", "Orders")}
    assert {r.channel for r in got[1:]} == {channel}


def test_plain_pgmq_send_notifies_only_where_triggers_are(dsn, subscribe, mode):
    """In wrapper mode a plain pgmq.send (any client) announces nothing; in the others it does."""
    import pgmq

    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    client = pgmq.PGMQueue(
        host=str(info["host"]),
        port=str(info["port"]),
        username="postgres",
        password="",
        database=str(info["dbname"]),
        init_extension=False,
    )
    try:
        client.create_queue("billing_queue")
        sub = subscribe(dsn, [config.global_message_ready_channel()])
        single = client.send("billing_queue", {"amount": 12})
        batch = client.send_batch("billing_queue", [{"amount": 1}, {"amount": 2}], delay=4)
        got = sub.drain()
    finally:
        client.pool.close()
    if mode == "wrapper":
        assert got == []
        return
    single_event, batch_event = (r.event for r in got)
    assert (single_event["msg_id"], single_event["message"]) == (single, {"amount": 12})
    assert (batch_event["msg_ids"], batch_event["delay_seconds"]) == (batch, 4)


def test_wrapper_sends_are_announced_once_in_both_mode(dsn, subscribe):
    config = PgmqNotifyConfig(mode="both")
    conn, sub, producer = setup(dsn, subscribe, config)
    wrapped = producer.send("orders_queue", {"via": "wrapper"})
    plain = plain_producer(conn).send("orders_queue", {"via": "pgmq.send"})
    got = [r.event["msg_id"] for r in sub.drain() if r.channel.endswith("orders")]
    assert got == [wrapped, plain]


@pytest.mark.parametrize("mode", ["trigger", "both"])
def test_topic_sends_notify_every_bound_queue(dsn, subscribe, mode):
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    sub = subscribe(dsn, [config.global_message_ready_channel()])
    with _conn(dsn) as conn:
        for queue in ("eu_queue", "us_queue"):
            conn.execute("SELECT pgmq.create(%s)", [queue])
        conn.execute("SELECT pgmq.bind_topic('orders.*', 'eu_queue')")
        conn.execute("SELECT pgmq.bind_topic('orders.#', 'us_queue')")
        conn.execute("""SELECT pgmq.send_topic('orders.created', '{"id": 1}'::jsonb)""")
        conn.execute(
            """SELECT * FROM pgmq.send_batch_topic('orders.created', ARRAY['{"id": 2}', '{"id": 3}']::jsonb[])"""
        )
    got = [r.event for r in sub.drain()]
    singles = sorted((e["queue_name"], e["message"]["id"]) for e in got if e["event_type"] == "message_with_payload")
    batches = sorted((e["queue_name"], e["message_count"]) for e in got if e["event_type"] == "batch_ready")
    assert singles == [("eu_queue", 1), ("us_queue", 1)]
    assert batches == [("eu_queue", 2), ("us_queue", 2)]


def test_prefix_signal_only_no_global_no_metadata(dsn, subscribe, mode):
    config = PgmqNotifyConfig(
        mode=mode, channels_prefix="myapp.v2", include_payload="never", global_channel=False, include_metadata=False
    )
    install(dsn, config)
    sub = subscribe(
        dsn,
        [config.queue_created_channel(), config.global_message_ready_channel(), config.message_ready_channel("orders")],
    )
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        msg_id = producer_for(conn, config).send("orders_queue", {"secret": "not in the event"})
    got = sub.drain()
    assert [r.channel for r in got] == ["myapp.v2.pgmq_queue_created", "myapp.v2.pgmq_message_ready.orders"]
    event = got[1].event
    assert event["event_type"] == "message_ready" and event["msg_id"] == msg_id
    assert "secret" not in got[1].payload and "metadata" not in event and "metadata" not in got[0].event


def test_long_namespaces_get_a_shortened_channel_that_python_agrees_on(dsn, subscribe, mode):
    config = PgmqNotifyConfig(
        mode=mode, channels_prefix="tenant_east", queue_naming_pattern=r"(?P<namespace>[^_]+)_queue"
    )
    queue = "n" + "é" * 30 + "_queue"  # namespace of 61 bytes: the channel would be 92 bytes
    channel = config.message_ready_channel(config.extract_namespace(queue))
    assert len(channel.encode()) <= 63 and "~" in channel
    install(dsn, config)
    sub = subscribe(dsn, [channel])
    with _conn(dsn) as conn:
        conn.execute("SELECT pgmq.create(%s)", [queue])
        msg_id = producer_for(conn, config).send(queue, {"n": 1})
    (got,) = sub.drain()
    assert (got.channel, got.event["msg_id"]) == (channel, msg_id)


@pytest.mark.parametrize("mode", ["trigger", "wrapper"])
def test_every_message_event_carries_the_messages_enqueued_at(dsn, subscribe, mode):
    """enqueued_at: the row's own, in ready_at's format, in payload, signal and batch events."""
    config = PgmqNotifyConfig(mode=mode)
    install(dsn, config)
    queue = "stamped_queue"
    prefix = "pgmq_notify.send" if mode == "wrapper" else "pgmq.send"
    big = '{"blob": "' + "x" * 8000 + '"}'
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (queue,))
        sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(queue))])
        suffix = "_with_notify" if mode == "wrapper" else ""
        conn.execute(f"SELECT * FROM {prefix}{suffix}(%s, %s::jsonb)", (queue, '{"n": 1}'))
        conn.execute(f"SELECT * FROM {prefix}{suffix}(%s, %s::jsonb)", (queue, big))
        batch = "pgmq_notify.send_batch_with_notify" if mode == "wrapper" else "pgmq.send_batch"
        conn.execute(f"SELECT * FROM {batch}(%s, ARRAY['{{}}', '{{}}']::jsonb[])", (queue,))
        stamps = dict(
            conn.execute(
                f"SELECT msg_id, to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                f"FROM pgmq.q_{queue}"
            ).fetchall()
        )
    events = [n.event for n in sub.drain()]
    assert [e["event_type"] for e in events] == ["message_with_payload", "message_ready", "batch_ready"]
    for event in events:
        for msg_id in event.get("msg_ids") or [event["msg_id"]]:
            assert event["enqueued_at"] == stamps[msg_id], event


@pytest.mark.parametrize(
    "config",
    [PgmqNotifyConfig(), PgmqNotifyConfig(mode="wrapper"), PgmqNotifyConfig(coalesce_ms=20)],
    ids=["trigger", "wrapper", "coalescing"],
)
def test_a_full_notification_queue_silences_notifications_but_never_a_send(dsn, subscribe, monkeypatch, config):
    """Full-queue guard: above NOTIFY_QUEUE_LIMIT every send still succeeds and stores its message, silently.

    PostgreSQL 15's queue cannot be filled in a test (8 GB), so the limit is set
    below any usage (-1): the guard's branch is taken on every send.
    """
    from pgmq_codegen import render

    monkeypatch.setattr(render, "NOTIFY_QUEUE_LIMIT", -1.0)
    install(dsn, config)
    queue = "guarded_queue"
    sub = subscribe(
        dsn,
        [
            config.queue_created_channel(),
            config.message_ready_channel(config.extract_namespace(queue)),
            config.global_message_ready_channel(),
        ],
    )
    send = "pgmq_notify.send_with_notify" if config.mode == "wrapper" else "pgmq.send"
    batch = "pgmq_notify.send_batch_with_notify" if config.mode == "wrapper" else "pgmq.send_batch"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (queue,))
        ids = [conn.execute(f"SELECT * FROM {send}(%s, %s::jsonb)", (queue, '{"n": 1}')).fetchone()[0]]
        ids += [r[0] for r in conn.execute(f"SELECT * FROM {batch}(%s, ARRAY['{{}}', '{{}}']::jsonb[])", (queue,))]
        stored = [r[0] for r in conn.execute(f"SELECT msg_id FROM pgmq.q_{queue} ORDER BY msg_id")]
    assert sub.drain() == []
    assert stored == sorted(ids) and len(ids) == 3


# What the trigger announced before issue #20 built single-send events with format():
# json_build_object over the row (the delay is taken from the event, as it depends on
# when the trigger ran). The new text must be these bytes exactly.
_JSON_BUILD_OBJECT_EVENT = """
SELECT pg_catalog.json_build_object(
    'event_type', 'message_with_payload', 'msg_id', msg_id, 'queue_name', %(queue)s::text, 'namespace', %(ns)s::text,
    'message', message, 'headers', headers,
    'ready_at', to_char(vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'enqueued_at', to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'delay_seconds', %(delay)s::integer, 'metadata', json_build_object('source', 'trigger'))::text,
  pg_catalog.json_build_object(
    'event_type', 'message_ready', 'msg_id', msg_id, 'queue_name', %(queue)s::text, 'namespace', %(ns)s::text,
    'ready_at', to_char(vt AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'enqueued_at', to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'delay_seconds', %(delay)s::integer, 'payload_omitted', true,
    'metadata', json_build_object('source', 'trigger'))::text
FROM pgmq.{table} WHERE msg_id = %(msg_id)s
"""


_JSON_BUILD_OBJECT_BATCH = """
SELECT pg_catalog.json_build_object(
    'event_type', 'batch_ready', 'msg_ids', to_json(array_agg(msg_id ORDER BY msg_id)),
    'queue_name', %(queue)s::text, 'namespace', %(ns)s::text, 'message_count', cardinality(array_agg(msg_id)),
    'ready_at', to_char(min(vt) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'enqueued_at', to_char(min(enqueued_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'delay_seconds', %(delay)s::integer, 'metadata', json_build_object('source', 'trigger'))::text
FROM pgmq.{table} WHERE msg_id = ANY(%(ids)s)
"""


@pytest.mark.parametrize("queue", ["orders_queue", 'we"ird\\_queue', "Ünïcødé_queue"])
def test_trigger_single_send_events_are_json_build_objects_bytes(dsn, subscribe, queue):
    """The trigger builds a single send's or a batch's event with one format() call: json_build_object's bytes.

    Awkward queue names (escaped by to_json), messages with escapes, unicode,
    arrays and scalars, headers or none, a delay, and a message too big to carry.
    """
    config = PgmqNotifyConfig(mode="trigger", queue_naming_pattern=r"(?P<namespace>.+)_queue")
    conn, sub, producer = setup(dsn, subscribe, config, queue=queue)
    table = conn.execute("SELECT pgmq.format_table_name(%s, 'q')", [queue]).fetchone()
    assert table is not None
    sends = [
        ({"order": 7, "name": "Zoë"}, {"trace": "abc"}, None),
        ({"s": 'quote " backslash \\ newline \n tab \t nul-ish \u0001 / €𝄞'}, None, None),
        ({"nested": {"a": [1, 2.5, None, True, False], "e": {}}}, {"h": [1, {"x": None}]}, 30),
        ([1, "two", 3.0], None, None),
        ("just a string", None, 0),
        (None, None, None),
        ({"blob": "z" * 9000}, None, None),
    ]
    ids = [producer.send(queue, message, headers=headers, delay=delay) for message, headers, delay in sends]
    events = {r.event["msg_id"]: r for r in sub.drain() if r.channel == config.message_ready_channel(queue[:-6])}
    assert sorted(events) == sorted(ids)
    for msg_id in ids:
        received = events[msg_id]
        params = {"queue": queue, "ns": queue[:-6], "delay": received.event["delay_seconds"], "msg_id": msg_id}
        query = psycopg.sql.SQL(_JSON_BUILD_OBJECT_EVENT).format(table=psycopg.sql.Identifier(str(table[0])))
        with_payload, signal = conn.execute(query, params).fetchone()
        expected = with_payload if received.event["event_type"] == "message_with_payload" else signal
        assert received.payload == expected
    assert events[ids[-1]].event["event_type"] == "message_ready"
    assert events[ids[2]].event["delay_seconds"] == 30
    batch = producer.send_batch(queue, [{"b": 1}, {"b": "€"}, {"b": None}])
    (received,) = [r for r in sub.drain() if r.channel == config.message_ready_channel(queue[:-6])]
    expected = conn.execute(
        psycopg.sql.SQL(_JSON_BUILD_OBJECT_BATCH).format(table=psycopg.sql.Identifier(str(table[0]))),
        {"queue": queue, "ns": queue[:-6], "delay": received.event["delay_seconds"], "ids": batch},
    ).fetchone()
    assert expected is not None and received.payload == expected[0]
    conn.close()

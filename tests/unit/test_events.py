"""parse_event: typed events from our SQL's and tasker-pgmq's payloads; typed errors otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgmq_runtime.errors import ChannelNameError
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    QueueCreatedEvent,
    parse_event,
)
from pgmq_runtime.listener import backoff_delay, validate_channel

# Payloads exactly as json_build_object(...)::text prints them.
OURS_PAYLOAD = (
    '{"event_type" : "message_with_payload", "msg_id" : 7, "queue_name" : "Orders_queue", '
    '"namespace" : "Orders", "message" : {"n": 1, "name": "caf\u00e9"}, "headers" : {"h": "x"}, '
    '"ready_at" : "2025-01-02T03:04:05.123456Z", "delay_seconds" : 0, '
    '"metadata" : {"source" : "trigger"}}'
)
OURS_SIGNAL = (
    '{"event_type" : "message_ready", "msg_id" : 8, "queue_name" : "orders_queue", '
    '"namespace" : "orders", "ready_at" : "2025-01-02T03:04:35.000001Z", "delay_seconds" : 30, '
    '"payload_omitted" : true}'
)
OURS_BATCH = (
    '{"event_type" : "batch_ready", "msg_ids" : [9,10,11], "queue_name" : "orders_queue", '
    '"namespace" : "orders", "message_count" : 3, "ready_at" : "2025-01-02T03:04:05.000000Z", '
    '"delay_seconds" : 0, "metadata" : {"source" : "wrapper"}}'
)
OURS_CREATED = (
    '{"event_type" : "queue_created", "queue_name" : "orders_queue", "namespace" : "orders", '
    '"created_at" : "2025-01-02T03:04:05.000000Z", "metadata" : {"source" : "trigger"}}'
)
# tasker-pgmq 0.1.3 (serde): nanosecond timestamps, visibility_timeout_seconds,
# no delay_seconds or headers.
TASKER_SIGNAL = json.dumps(
    {
        "event_type": "message_ready",
        "msg_id": 12,
        "queue_name": "orders_queue",
        "namespace": "orders",
        "ready_at": "2025-01-02T03:04:05.123456789Z",
        "metadata": {},
        "visibility_timeout_seconds": 0,
    }
)
TASKER_PAYLOAD = json.dumps(
    {
        "event_type": "message_with_payload",
        "msg_id": 13,
        "queue_name": "orders_queue",
        "namespace": "orders",
        "message": [1, 2],
        "ready_at": "2025-01-02T03:04:05+00:00",
    }
)


def test_message_with_payload_from_our_sql():
    event = parse_event("pgmq_message_ready.Orders", OURS_PAYLOAD)
    assert event == MessageWithPayloadEvent(
        msg_id=7,
        queue_name="Orders_queue",
        namespace="Orders",
        message={"n": 1, "name": "caf\u00e9"},
        headers={"h": "x"},
        ready_at=datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        delay_seconds=0,
        metadata={"source": "trigger"},
        channel="pgmq_message_ready.Orders",
    )
    assert event.raw == OURS_PAYLOAD
    assert event.msg_ids == (7,)


def test_signal_event_from_our_sql():
    event = parse_event("c", OURS_SIGNAL)
    assert isinstance(event, MessageReadyEvent)
    assert (event.msg_id, event.delay_seconds, dict(event.metadata)) == (8, 30, {})
    assert event.ready_at.utcoffset() == timedelta(0)


def test_batch_event_from_our_sql():
    event = parse_event("c", OURS_BATCH)
    assert isinstance(event, BatchReadyEvent)
    assert event.msg_ids == (9, 10, 11)
    assert event.message_count == 3
    assert event.metadata["source"] == "wrapper"


def test_coalesced_flag_is_read_from_signals_and_batches_and_defaults_to_false():
    signal_text = OURS_SIGNAL.replace('"payload_omitted" : true', '"payload_omitted" : true, "coalesced" : true')
    signal = parse_event("c", signal_text)
    batch = parse_event("c", OURS_BATCH.replace('"delay_seconds" : 0', '"delay_seconds" : 0, "coalesced" : true'))
    assert isinstance(signal, MessageReadyEvent) and signal.coalesced
    assert isinstance(batch, BatchReadyEvent) and batch.coalesced
    plain = parse_event("c", OURS_SIGNAL)
    assert isinstance(plain, MessageReadyEvent) and not plain.coalesced


def test_queue_created_from_our_sql():
    event = parse_event("pgmq_queue_created", OURS_CREATED)
    assert isinstance(event, QueueCreatedEvent)
    assert event.created_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert event.event_type == "queue_created"


def test_tasker_signal_keeps_its_extra_field_and_defaults_the_rest():
    event = parse_event("c", TASKER_SIGNAL)
    assert isinstance(event, MessageReadyEvent)
    assert event.visibility_timeout_seconds == 0
    assert event.delay_seconds == 0
    assert event.ready_at == datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_tasker_payload_without_headers_or_delay():
    event = parse_event("c", TASKER_PAYLOAD)
    assert isinstance(event, MessageWithPayloadEvent)
    assert (event.message, event.headers, event.delay_seconds) == ([1, 2], None, 0)


def test_unknown_fields_are_ignored():
    data = json.loads(OURS_CREATED) | {"future_field": {"x": 1}}
    assert isinstance(parse_event("c", json.dumps(data)), QueueCreatedEvent)


def test_json_null_message_is_a_message_not_a_missing_field():
    data = json.loads(TASKER_PAYLOAD) | {"message": None}
    event = parse_event("c", json.dumps(data))
    assert isinstance(event, MessageWithPayloadEvent)
    assert event.message is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('"a string"', "expected a JSON object"),
        ("[]", "expected a JSON object"),
        ('{"queue_name": "q"}', "missing field 'event_type'"),
        ('{"event_type": "message_deleted", "queue_name": "q", "namespace": "n"}', "unknown event_type"),
        (
            '{"event_type": "queue_created", "namespace": "n", "created_at": "2025-01-01T00:00:00Z"}',
            "missing field 'queue_name'",
        ),
        ('{"event_type": "queue_created", "queue_name": "q", "namespace": "n"}', "missing field 'created_at'"),
        (
            '{"event_type": "queue_created", "queue_name": "q", "namespace": "n", "created_at": "2025-01-01T00:00:00"}',
            "no time zone",
        ),
        (
            '{"event_type": "queue_created", "queue_name": "q", "namespace": "n", "created_at": "yesterday"}',
            "not an ISO 8601",
        ),
        (
            '{"event_type": "message_ready", "msg_id": "7", "queue_name": "q", "namespace": "n", '
            '"ready_at": "2025-01-01T00:00:00Z"}',
            "'msg_id' must be an integer",
        ),
        (
            '{"event_type": "message_ready", "msg_id": true, "queue_name": "q", "namespace": "n", '
            '"ready_at": "2025-01-01T00:00:00Z"}',
            "'msg_id' must be an integer",
        ),
        (
            '{"event_type": "message_with_payload", "msg_id": 1, "queue_name": "q", "namespace": "n", '
            '"ready_at": "2025-01-01T00:00:00Z"}',
            "missing field 'message'",
        ),
        (
            '{"event_type": "batch_ready", "msg_ids": [1, 2.5], "queue_name": "q", "namespace": "n", '
            '"message_count": 2, "ready_at": "2025-01-01T00:00:00Z"}',
            "only integers",
        ),
        (
            '{"event_type": "batch_ready", "msg_ids": [1], "queue_name": "q", "namespace": "n", '
            '"ready_at": "2025-01-01T00:00:00Z"}',
            "missing field 'message_count'",
        ),
        (
            '{"event_type": "queue_created", "queue_name": "q", "namespace": "n", '
            '"created_at": "2025-01-01T00:00:00Z", "metadata": {"n": 1}}',
            "'metadata' must be an object of strings",
        ),
        (
            '{"event_type": "message_ready", "msg_id": 1, "queue_name": "q", "namespace": "n", '
            '"ready_at": "2025-01-01T00:00:00Z", "coalesced": "yes"}',
            "'coalesced' must be true or false",
        ),
    ],
)
def test_bad_payloads_become_invalid_events_with_the_reason(payload, reason):
    event = parse_event("chan", payload)
    assert isinstance(event, InvalidEvent)
    assert reason in event.reason
    assert (event.channel, event.raw, event.event_type) == ("chan", payload, "invalid")


@given(st.text(max_size=200))
def test_any_text_parses_without_raising(text):
    event = parse_event("c", text)
    assert event.event_type in {"invalid", "queue_created", "message_ready", "message_with_payload", "batch_ready"}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@given(
    st.sampled_from(["queue_created", "message_ready", "message_with_payload", "batch_ready", "x"]),
    st.dictionaries(
        st.sampled_from(
            [
                "msg_id",
                "msg_ids",
                "queue_name",
                "namespace",
                "message",
                "headers",
                "ready_at",
                "created_at",
                "delay_seconds",
                "message_count",
                "metadata",
                "visibility_timeout_seconds",
            ]
        ),
        _json,
    ),
)
def test_any_json_object_parses_without_raising(kind, fields):
    payload = json.dumps({"event_type": kind, **fields})
    event = parse_event("c", payload)
    assert event.raw == payload


def test_events_are_immutable():
    event = parse_event("c", OURS_CREATED)
    with pytest.raises(AttributeError):
        event.queue_name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.metadata["source"] = "forged"  # type: ignore[index]


def test_channel_names_are_checked_in_bytes_before_listen():
    assert validate_channel("a" * 63) == "a" * 63
    with pytest.raises(ChannelNameError, match="64 bytes"):
        validate_channel("é" * 32)
    with pytest.raises(ChannelNameError):
        validate_channel("")


@pytest.mark.parametrize("rand", [0.0, 0.5, 1.0])
def test_backoff_grows_and_is_capped(rand):
    delays = [backoff_delay(n, 0.1, 10.0, lambda: rand) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(0.05 + 0.05 * rand)
    assert max(delays) <= 10.0
    assert delays[-1] == pytest.approx(5.0 + 5.0 * rand)


@pytest.mark.parametrize("payload", [OURS_PAYLOAD, OURS_SIGNAL, OURS_BATCH])
def test_enqueued_at_is_read_when_present_and_none_when_absent(payload):
    """Our SQL sends enqueued_at in the ready_at format; tasker-pgmq and older installs do not."""
    absent = parse_event("c", payload)
    assert not isinstance(absent, InvalidEvent) and absent.enqueued_at is None  # type: ignore[union-attr]
    present = parse_event(
        "c", payload.replace('"ready_at" :', '"enqueued_at" : "2025-01-02T03:04:01.500000Z", "ready_at" :')
    )
    assert present.enqueued_at == datetime(2025, 1, 2, 3, 4, 1, 500000, tzinfo=UTC)  # type: ignore[union-attr]
    bad = parse_event("c", payload.replace('"ready_at" :', '"enqueued_at" : "soon", "ready_at" :'))
    assert isinstance(bad, InvalidEvent) and "enqueued_at" in bad.reason

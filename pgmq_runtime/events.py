"""Typed notification events and the parser that builds them from ``(channel, payload)``.

No I/O here: the listener hands every notification to :func:`parse_event`,
which returns one of the four event classes or an :class:`InvalidEvent`
carrying the raw text and the reason. It never raises and never invents data.

The parser reads both pgmq-codegen's events and tasker-pgmq's: optional fields
that tasker-pgmq leaves out (``headers``, ``delay_seconds``) get neutral
defaults, fields it adds (``visibility_timeout_seconds``) are kept when typed,
and unknown fields are ignored. A missing or mistyped required field makes the
event invalid.

The listener also yields gap markers (:class:`ListenerReconnected`,
:class:`ListenerOverflow`): both say that notifications may have been missed,
so a consumer must catch up by reading the queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import msgspec

QUEUE_CREATED: Final = "queue_created"
MESSAGE_READY: Final = "message_ready"
MESSAGE_WITH_PAYLOAD: Final = "message_with_payload"
BATCH_READY: Final = "batch_ready"
EVENT_TYPES: Final = (QUEUE_CREATED, MESSAGE_READY, MESSAGE_WITH_PAYLOAD, BATCH_READY)

JsonValue: TypeAlias = Any
_EMPTY: Mapping[str, str] = MappingProxyType({})


class _Event(msgspec.Struct, frozen=True):
    """Base of the four event classes: frozen, and equal when all fields but ``raw`` are.

    They are msgspec Structs rather than frozen dataclasses because building one
    costs about a tenth as much (a frozen dataclass sets each field through
    ``object.__setattr__``), and the listener builds one per notification.
    ``msgspec.structs.replace`` copies one with changed fields.
    """

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _compared(self) == _compared(other)

    def __hash__(self) -> int:
        return hash(_compared(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in _fields(self) if name != "raw")
        return f"{type(self).__name__}({shown})"


def _fields(event: msgspec.Struct) -> list[tuple[str, Any]]:
    return [(name, getattr(event, name)) for name in event.__struct_fields__]


def _compared(event: msgspec.Struct) -> tuple[Any, ...]:
    """What equality looks at: every field but the raw text."""
    return tuple(value for name, value in _fields(event) if name != "raw")


class QueueCreatedEvent(_Event, frozen=True):
    """A queue was created (a row was added to ``pgmq.meta``)."""

    queue_name: str
    namespace: str
    created_at: datetime
    metadata: Mapping[str, str] = _EMPTY
    channel: str = ""
    # The notification text as received (left out of equality and repr).
    raw: str = ""

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return QUEUE_CREATED


class MessageWithPayloadEvent(_Event, frozen=True):
    """One message was sent and its whole content fits in the notification.

    The content saves a fetch, not a claim: another consumer may own the
    message, so claim it by id before acting on it.
    """

    msg_id: int
    queue_name: str
    namespace: str
    message: JsonValue
    ready_at: datetime
    headers: JsonValue = None
    delay_seconds: int = 0
    # When the message was enqueued (its enqueued_at); None from senders that do not say (tasker-pgmq).
    enqueued_at: datetime | None = None
    metadata: Mapping[str, str] = _EMPTY
    channel: str = ""
    # The notification text as received (left out of equality and repr).
    raw: str = ""

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return MESSAGE_WITH_PAYLOAD

    @property
    def msg_ids(self) -> tuple[int, ...]:
        """The ids this event announces (one)."""
        return (self.msg_id,)


class MessageReadyEvent(_Event, frozen=True):
    """One message was sent; too large for the notification, so fetch it by id."""

    msg_id: int
    queue_name: str
    namespace: str
    ready_at: datetime
    delay_seconds: int = 0
    # When the message was enqueued (its enqueued_at); None from senders that do not say (tasker-pgmq).
    enqueued_at: datetime | None = None
    visibility_timeout_seconds: int | None = None
    # True when sent with coalesce_ms: other messages of the window were sent silently.
    coalesced: bool = False
    metadata: Mapping[str, str] = _EMPTY
    channel: str = ""
    # The notification text as received (left out of equality and repr).
    raw: str = ""

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return MESSAGE_READY

    @property
    def msg_ids(self) -> tuple[int, ...]:
        """The ids this event announces (one)."""
        return (self.msg_id,)


class BatchReadyEvent(_Event, frozen=True):
    """Several messages were sent by one statement (one of possibly several chunks)."""

    msg_ids: tuple[int, ...]
    queue_name: str
    namespace: str
    message_count: int
    ready_at: datetime
    delay_seconds: int = 0
    # When the message was enqueued (its enqueued_at); None from senders that do not say (tasker-pgmq).
    enqueued_at: datetime | None = None
    # True when sent with coalesce_ms: other messages of the window were sent silently.
    coalesced: bool = False
    metadata: Mapping[str, str] = _EMPTY
    channel: str = ""
    # The notification text as received (left out of equality and repr).
    raw: str = ""

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return BATCH_READY


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """A notification that is not a valid event: bad JSON, unknown type, missing field."""

    channel: str
    raw: str
    reason: str

    @property
    def event_type(self) -> str:
        """Always ``"invalid"``; the raw text is kept in :attr:`raw`."""
        return "invalid"


@dataclass(frozen=True, slots=True)
class ListenerGap:
    """Base of the gap markers: notifications may have been missed before this point."""

    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ListenerReconnected(ListenerGap):
    """The connection was lost and is back; every channel is listened to again.

    ``down_seconds`` is how long no notification could arrive. Anything sent in
    that time was not announced: read the queues to catch up.
    """

    down_seconds: float = 0.0
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class ListenerOverflow(ListenerGap):
    """The bounded buffer was full and ``dropped`` notifications were discarded."""

    dropped: int = 0


MessageEvent: TypeAlias = MessageWithPayloadEvent | MessageReadyEvent | BatchReadyEvent
PgmqEvent: TypeAlias = QueueCreatedEvent | MessageEvent
ParsedEvent: TypeAlias = PgmqEvent | InvalidEvent
ListenerItem: TypeAlias = ParsedEvent | ListenerGap


class _Invalid(Exception):
    """Internal: why a payload is not a valid event."""


def parse_event(channel: str, payload: str) -> ParsedEvent:
    """Parse one notification; never raises.

    Returns a typed event, or an :class:`InvalidEvent` with the raw payload and
    the reason when the payload is not JSON, has an unknown ``event_type`` or
    lacks a required field.
    """
    try:
        wire = _decode_wire(payload)
    except ValueError:  # msgspec's DecodeError and ValidationError
        return _parse_slowly(channel, payload)
    event = wire.event(channel, payload)
    return _parse_slowly(channel, payload) if event is None else event


# The fast path: msgspec decodes and type-checks the payload straight into a wire
# struct (about 5x faster than json.loads into a dict), keeping integers of any
# size exact. Anything it refuses takes the slow path below, which decides (json
# also reads NaN or lone surrogates) and names the problem. The wire structs
# follow the slow path's rules exactly: a unit test holds the two paths equal.


class _WireQueueCreated(msgspec.Struct, tag_field="event_type", tag=QUEUE_CREATED, gc=False):
    queue_name: str
    namespace: str
    created_at: str
    metadata: dict[str, str] | None = None

    def event(self, channel: str, raw: str) -> QueueCreatedEvent | None:
        created_at = _aware(self.created_at)
        if created_at is None:
            return None
        metadata = _EMPTY if self.metadata is None else MappingProxyType(self.metadata)
        return QueueCreatedEvent(self.queue_name, self.namespace, created_at, metadata, channel, raw)


class _WireMessageWithPayload(msgspec.Struct, tag_field="event_type", tag=MESSAGE_WITH_PAYLOAD, gc=False):
    msg_id: int
    queue_name: str
    namespace: str
    message: Any  # required, and may be null
    ready_at: str
    headers: Any = None
    delay_seconds: int | None = None
    enqueued_at: str | None = None
    metadata: dict[str, str] | None = None

    def event(self, channel: str, raw: str) -> MessageWithPayloadEvent | None:
        ready_at = _aware(self.ready_at)
        enqueued_at = None if self.enqueued_at is None else _aware(self.enqueued_at)
        if ready_at is None or (enqueued_at is None and self.enqueued_at is not None):
            return None
        return MessageWithPayloadEvent(
            msg_id=self.msg_id,
            queue_name=self.queue_name,
            namespace=self.namespace,
            message=self.message,
            ready_at=ready_at,
            headers=self.headers,
            delay_seconds=self.delay_seconds or 0,
            enqueued_at=enqueued_at,
            metadata=_EMPTY if self.metadata is None else MappingProxyType(self.metadata),
            channel=channel,
            raw=raw,
        )


class _WireMessageReady(msgspec.Struct, tag_field="event_type", tag=MESSAGE_READY, gc=False):
    msg_id: int
    queue_name: str
    namespace: str
    ready_at: str
    delay_seconds: int | None = None
    enqueued_at: str | None = None
    visibility_timeout_seconds: int | None = None
    coalesced: bool = False
    metadata: dict[str, str] | None = None

    def event(self, channel: str, raw: str) -> MessageReadyEvent | None:
        ready_at = _aware(self.ready_at)
        enqueued_at = None if self.enqueued_at is None else _aware(self.enqueued_at)
        if ready_at is None or (enqueued_at is None and self.enqueued_at is not None):
            return None
        return MessageReadyEvent(
            msg_id=self.msg_id,
            queue_name=self.queue_name,
            namespace=self.namespace,
            ready_at=ready_at,
            delay_seconds=self.delay_seconds or 0,
            enqueued_at=enqueued_at,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
            coalesced=self.coalesced,
            metadata=_EMPTY if self.metadata is None else MappingProxyType(self.metadata),
            channel=channel,
            raw=raw,
        )


class _WireBatchReady(msgspec.Struct, tag_field="event_type", tag=BATCH_READY, gc=False):
    msg_ids: tuple[int, ...]
    queue_name: str
    namespace: str
    message_count: int
    ready_at: str
    delay_seconds: int | None = None
    enqueued_at: str | None = None
    coalesced: bool = False
    metadata: dict[str, str] | None = None

    def event(self, channel: str, raw: str) -> BatchReadyEvent | None:
        ready_at = _aware(self.ready_at)
        enqueued_at = None if self.enqueued_at is None else _aware(self.enqueued_at)
        if ready_at is None or (enqueued_at is None and self.enqueued_at is not None):
            return None
        return BatchReadyEvent(
            msg_ids=self.msg_ids,
            queue_name=self.queue_name,
            namespace=self.namespace,
            message_count=self.message_count,
            ready_at=ready_at,
            delay_seconds=self.delay_seconds or 0,
            enqueued_at=enqueued_at,
            coalesced=self.coalesced,
            metadata=_EMPTY if self.metadata is None else MappingProxyType(self.metadata),
            channel=channel,
            raw=raw,
        )


_decode_wire = msgspec.json.Decoder(
    _WireQueueCreated | _WireMessageWithPayload | _WireMessageReady | _WireBatchReady
).decode
# Decodes any JSON to Python values, like json.loads but faster; integers stay exact.
_decode_any = msgspec.json.Decoder().decode


def _aware(text: str) -> datetime | None:
    """``text`` as a datetime with a time zone, or None (the slow path then says why)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if value.tzinfo is None else value


def _parse_slowly(channel: str, payload: str) -> ParsedEvent:
    """Decode into a dict and check field by field, naming the first problem found."""
    try:
        data = _decode_any(payload)
    except ValueError:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            return InvalidEvent(channel, payload, f"not valid JSON: {exc}")
    if type(data) is not dict:
        return InvalidEvent(channel, payload, f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("event_type")
    # Only a string can name a builder (and a list as key would raise).
    build = _BUILDERS.get(kind) if type(kind) is str else None
    try:
        if build is None:
            raise _Invalid(_kind_problem(data))
        return build(data, channel, payload)
    except _Invalid as exc:
        return InvalidEvent(channel, payload, str(exc))


def _kind_problem(data: dict[str, Any]) -> str:
    kind = data.get("event_type")
    if kind is None:
        return "missing field 'event_type'"
    return f"unknown event_type {kind!r}; expected one of {', '.join(EVENT_TYPES)}"


# The slow path's builders, one per event type: each field checked in turn.


def _queue_created(data: dict[str, Any], channel: str, raw: str) -> QueueCreatedEvent:
    return QueueCreatedEvent(
        queue_name=_str(data, "queue_name"),
        namespace=_str(data, "namespace"),
        created_at=_time(data, "created_at"),
        metadata=_metadata(data),
        channel=channel,
        raw=raw,
    )


def _message_with_payload(data: dict[str, Any], channel: str, raw: str) -> MessageWithPayloadEvent:
    if "message" not in data:
        raise _Invalid("missing field 'message'")
    return MessageWithPayloadEvent(
        msg_id=_int(data, "msg_id"),
        queue_name=_str(data, "queue_name"),
        namespace=_str(data, "namespace"),
        message=data["message"],
        ready_at=_time(data, "ready_at"),
        enqueued_at=_opt_time(data, "enqueued_at"),
        headers=data.get("headers"),
        delay_seconds=_delay(data),
        metadata=_metadata(data),
        channel=channel,
        raw=raw,
    )


def _message_ready(data: dict[str, Any], channel: str, raw: str) -> MessageReadyEvent:
    return MessageReadyEvent(
        msg_id=_int(data, "msg_id"),
        queue_name=_str(data, "queue_name"),
        namespace=_str(data, "namespace"),
        ready_at=_time(data, "ready_at"),
        enqueued_at=_opt_time(data, "enqueued_at"),
        delay_seconds=_delay(data),
        visibility_timeout_seconds=_opt_int(data, "visibility_timeout_seconds"),
        coalesced=_flag(data, "coalesced"),
        metadata=_metadata(data),
        channel=channel,
        raw=raw,
    )


def _batch_ready(data: dict[str, Any], channel: str, raw: str) -> BatchReadyEvent:
    ids = data.get("msg_ids")
    if type(ids) is not list:
        raise _Invalid("field 'msg_ids' must be a list of integers")
    for i in ids:
        if type(i) is not int:  # bool is a subclass of int: exact type, not isinstance
            raise _Invalid("field 'msg_ids' must hold only integers")
    return BatchReadyEvent(
        msg_ids=tuple(ids),
        queue_name=_str(data, "queue_name"),
        namespace=_str(data, "namespace"),
        message_count=_int(data, "message_count"),
        ready_at=_time(data, "ready_at"),
        enqueued_at=_opt_time(data, "enqueued_at"),
        delay_seconds=_delay(data),
        coalesced=_flag(data, "coalesced"),
        metadata=_metadata(data),
        channel=channel,
        raw=raw,
    )


_BUILDERS: Final[dict[str, Callable[[dict[str, Any], str, str], PgmqEvent]]] = {
    QUEUE_CREATED: _queue_created,
    MESSAGE_WITH_PAYLOAD: _message_with_payload,
    MESSAGE_READY: _message_ready,
    BATCH_READY: _batch_ready,
}


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if type(value) is str:
        return value
    if value is None:
        raise _Invalid(f"missing field {key!r}")
    raise _Invalid(f"field {key!r} must be a string, got {type(value).__name__}")


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if type(value) is int:
        return value
    if value is None:
        raise _Invalid(f"missing field {key!r}")
    raise _Invalid(f"field {key!r} must be an integer, got {json.dumps(value)}")


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None or type(value) is int:
        return value
    raise _Invalid(f"field {key!r} must be an integer, got {json.dumps(value)}")


def _delay(data: Mapping[str, Any]) -> int:
    return _opt_int(data, "delay_seconds") or 0


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if type(value) is not bool:
        raise _Invalid(f"field {key!r} must be true or false, got {json.dumps(value)}")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime:
    text = _str(data, key)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Invalid(f"field {key!r} is not an ISO 8601 timestamp: {text!r}") from exc
    # fromisoformat gives a fixed offset or none at all: no offset means no time zone.
    if value.tzinfo is None:
        raise _Invalid(f"field {key!r} has no time zone: {text!r}")
    return value


def _opt_time(data: Mapping[str, Any], key: str) -> datetime | None:
    return None if data.get(key) is None else _time(data, key)


def _metadata(data: Mapping[str, Any]) -> Mapping[str, str]:
    value = data.get("metadata")
    if value is None:
        return _EMPTY
    if type(value) is not dict:
        raise _Invalid("field 'metadata' must be an object of strings")
    for item in value.values():
        if type(item) is not str:
            raise _Invalid("field 'metadata' must be an object of strings")
    # The decoded dict belongs to this call alone: wrapping it without a copy is safe.
    return MappingProxyType(value)

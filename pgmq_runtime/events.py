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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeAlias

QUEUE_CREATED: Final = "queue_created"
MESSAGE_READY: Final = "message_ready"
MESSAGE_WITH_PAYLOAD: Final = "message_with_payload"
BATCH_READY: Final = "batch_ready"
EVENT_TYPES: Final = (QUEUE_CREATED, MESSAGE_READY, MESSAGE_WITH_PAYLOAD, BATCH_READY)

JsonValue: TypeAlias = Any
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class QueueCreatedEvent:
    """A queue was created (a row was added to ``pgmq.meta``)."""

    queue_name: str
    namespace: str
    created_at: datetime
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    channel: str = ""
    raw: str = field(default="", repr=False, compare=False)

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return QUEUE_CREATED


@dataclass(frozen=True, slots=True)
class MessageWithPayloadEvent:
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
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    channel: str = ""
    raw: str = field(default="", repr=False, compare=False)

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return MESSAGE_WITH_PAYLOAD

    @property
    def msg_ids(self) -> tuple[int, ...]:
        """The ids this event announces (one)."""
        return (self.msg_id,)


@dataclass(frozen=True, slots=True)
class MessageReadyEvent:
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
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    channel: str = ""
    raw: str = field(default="", repr=False, compare=False)

    @property
    def event_type(self) -> str:
        """The wire tag of this event."""
        return MESSAGE_READY

    @property
    def msg_ids(self) -> tuple[int, ...]:
        """The ids this event announces (one)."""
        return (self.msg_id,)


@dataclass(frozen=True, slots=True)
class BatchReadyEvent:
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
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    channel: str = ""
    raw: str = field(default="", repr=False, compare=False)

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
        data = json.loads(payload)
    except ValueError as exc:
        return InvalidEvent(channel, payload, f"not valid JSON: {exc}")
    if not isinstance(data, dict):
        return InvalidEvent(channel, payload, f"expected a JSON object, got {type(data).__name__}")
    try:
        return _build(data, channel, payload)
    except _Invalid as exc:
        return InvalidEvent(channel, payload, str(exc))


def _build(data: dict[str, Any], channel: str, raw: str) -> PgmqEvent:
    kind = data.get("event_type")
    if kind is None:
        raise _Invalid("missing field 'event_type'")
    if kind not in EVENT_TYPES:
        raise _Invalid(f"unknown event_type {kind!r}; expected one of {', '.join(EVENT_TYPES)}")
    common: dict[str, Any] = {
        "queue_name": _str(data, "queue_name"),
        "namespace": _str(data, "namespace"),
        "metadata": _metadata(data),
        "channel": channel,
        "raw": raw,
    }
    if kind == QUEUE_CREATED:
        return QueueCreatedEvent(created_at=_time(data, "created_at"), **common)
    if kind == MESSAGE_WITH_PAYLOAD:
        if "message" not in data:
            raise _Invalid("missing field 'message'")
        return MessageWithPayloadEvent(
            msg_id=_int(data, "msg_id"),
            message=data["message"],
            headers=data.get("headers"),
            ready_at=_time(data, "ready_at"),
            enqueued_at=_opt_time(data, "enqueued_at"),
            delay_seconds=_opt_int(data, "delay_seconds") or 0,
            **common,
        )
    if kind == MESSAGE_READY:
        return MessageReadyEvent(
            msg_id=_int(data, "msg_id"),
            ready_at=_time(data, "ready_at"),
            enqueued_at=_opt_time(data, "enqueued_at"),
            delay_seconds=_opt_int(data, "delay_seconds") or 0,
            visibility_timeout_seconds=_opt_int(data, "visibility_timeout_seconds"),
            coalesced=_flag(data, "coalesced"),
            **common,
        )
    if kind == BATCH_READY:
        ids = data.get("msg_ids")
        if not isinstance(ids, list):
            raise _Invalid("field 'msg_ids' must be a list of integers")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise _Invalid("field 'msg_ids' must hold only integers")
        return BatchReadyEvent(
            msg_ids=tuple(ids),
            message_count=_int(data, "message_count"),
            ready_at=_time(data, "ready_at"),
            enqueued_at=_opt_time(data, "enqueued_at"),
            delay_seconds=_opt_int(data, "delay_seconds") or 0,
            coalesced=_flag(data, "coalesced"),
            **common,
        )
    raise AssertionError(kind)  # unreachable: kind is one of EVENT_TYPES


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        raise _Invalid(f"missing field {key!r}")
    if not isinstance(value, str):
        raise _Invalid(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = _opt_int(data, key)
    if value is None:
        raise _Invalid(f"missing field {key!r}")
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"field {key!r} must be an integer, got {json.dumps(value)}")
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _Invalid(f"field {key!r} must be true or false, got {json.dumps(value)}")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime:
    text = _str(data, key)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _Invalid(f"field {key!r} is not an ISO 8601 timestamp: {text!r}") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Invalid(f"field {key!r} has no time zone: {text!r}")
    return value


def _opt_time(data: Mapping[str, Any], key: str) -> datetime | None:
    return None if data.get(key) is None else _time(data, key)


def _metadata(data: Mapping[str, Any]) -> Mapping[str, str]:
    value = data.get("metadata")
    if value is None:
        return _EMPTY
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Invalid("field 'metadata' must be an object of strings")
    return MappingProxyType(dict(value))

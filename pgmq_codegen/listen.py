"""``pgmq-codegen listen``: a live tail of notification events, as a typed function.

The CLI is a thin shell around :func:`tail`; formatting helpers return plain
strings (or, in :func:`rich_line`, a Rich ``Text``) so they can be tested
without a terminal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ListenerError
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    ListenerGap,
    ListenerItem,
    ListenerOverflow,
    ListenerReconnected,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    QueueCreatedEvent,
)
from pgmq_runtime.listener import EventSource, PgmqNotifyListener

# How often tail() looks at its stop flag while no event arrives.
_STOP_CHECK_SECONDS = 0.5
_PREVIEW_CHARS = 80


@dataclass(frozen=True)
class TailSummary:
    """What a finished tail saw."""

    items: int
    gaps: int
    invalid: int


def channels_for(config: PgmqNotifyConfig, namespaces: Sequence[str]) -> tuple[list[str], list[str]]:
    """The channels to tail and notes for the user.

    ``queue_created`` always; the given namespaces' channels, or without any,
    the global channel (or the default namespace when ``global_channel`` is off).
    """
    channels = [config.queue_created_channel()]
    notes: list[str] = []
    if namespaces:
        channels += [config.message_ready_channel(ns) for ns in dict.fromkeys(namespaces)]
    elif config.global_channel:
        channels.append(config.global_message_ready_channel())
    else:
        channels.append(config.message_ready_channel(config.default_namespace))
        notes.append(
            "global_channel is off in the config: showing only the default namespace "
            f"{config.default_namespace!r}; pass --namespace to see others"
        )
    return channels, notes


async def tail(
    dsn: str,
    config: PgmqNotifyConfig,
    namespaces: Sequence[str],
    on_item: Callable[[ListenerItem], None],
    *,
    on_notice: Callable[[str], None] = lambda _text: None,
    stop: asyncio.Event | None = None,
    self_check: bool = True,
    source: EventSource | None = None,
) -> TailSummary:
    """Listen and call ``on_item`` for every event, invalid event and gap until ``stop`` is set.

    Human-readable status (channels, self-check result) goes to ``on_notice``.
    With ``self_check``, a probe NOTIFY must come back first, or
    :class:`~pgmq_runtime.errors.ListenerError` is raised (a pooler in
    transaction mode or a read replica accepts LISTEN but delivers nothing).
    ``source`` replaces the real listener (e.g. a
    :class:`pgmq_runtime.testing.FakeListener`). Connection loss is not an
    error: the gap is reported as an item and the tail goes on.
    """
    stop = stop or asyncio.Event()
    listener: EventSource = source or PgmqNotifyListener(dsn, config)
    if isinstance(listener, PgmqNotifyListener):
        await listener.connect()
    items = gaps = invalid = 0
    try:
        channels, notes = channels_for(config, namespaces)
        for channel in channels:
            await listener.listen(channel)
        for note in notes:
            on_notice(note)
        on_notice("listening on " + ", ".join(channels))
        if self_check:
            result = await listener.self_check()
            if not result.ok:
                raise ListenerError(f"self-check failed: {result.detail}. Disable the self-check to listen anyway.")
            on_notice(f"self-check passed ({result.waited_seconds * 1000:.0f} ms)")
        while not stop.is_set():
            item = await listener.next_event(timeout=_STOP_CHECK_SECONDS)
            if item is None:
                if listener.closed:
                    break
                continue
            items += 1
            gaps += isinstance(item, ListenerGap)
            invalid += isinstance(item, InvalidEvent)
            on_item(item)
    finally:
        await listener.close()
    return TailSummary(items, gaps, invalid)


def event_json(item: ListenerItem) -> dict[str, Any]:
    """The item as one JSON object: the event as received plus its channel, or a marker."""
    if isinstance(item, InvalidEvent):
        return {"event_type": "invalid", "channel": item.channel, "reason": item.reason, "raw": item.raw}
    if isinstance(item, ListenerReconnected):
        return {
            "event_type": "listener_reconnected",
            "at": item.at.isoformat(),
            "down_seconds": round(item.down_seconds, 3),
            "attempts": item.attempts,
            "reason": item.reason,
        }
    if isinstance(item, ListenerOverflow):
        return {
            "event_type": "listener_overflow",
            "at": item.at.isoformat(),
            "dropped": item.dropped,
            "reason": item.reason,
        }
    if isinstance(item, ListenerGap):
        return {"event_type": "listener_gap", "at": item.at.isoformat(), "reason": item.reason}
    received = json.loads(item.raw) if item.raw else {}
    return {**received, "channel": item.channel}


def format_json_line(item: ListenerItem) -> str:
    """One line of JSON (no newline inside) for ``--json`` output."""
    return json.dumps(event_json(item), ensure_ascii=False, separators=(",", ":"))


def format_text(item: ListenerItem) -> str:
    """A short readable line describing the item."""
    if isinstance(item, QueueCreatedEvent):
        return f"queue_created  {item.queue_name} (namespace {item.namespace})"
    if isinstance(item, MessageWithPayloadEvent):
        body = json.dumps(item.message, ensure_ascii=False)
        if len(body) > _PREVIEW_CHARS:
            body = body[: _PREVIEW_CHARS - 1] + "…"
        return f"message        {item.queue_name} #{item.msg_id}{_delay(item.delay_seconds)} {body}"
    if isinstance(item, MessageReadyEvent):
        return f"message_ready  {item.queue_name} #{item.msg_id}{_delay(item.delay_seconds)} (no payload)"
    if isinstance(item, BatchReadyEvent):
        first, last = (item.msg_ids[0], item.msg_ids[-1]) if item.msg_ids else (0, 0)
        return (
            f"batch_ready    {item.queue_name} {item.message_count} messages "
            f"#{first}..#{last}{_delay(item.delay_seconds)}"
        )
    if isinstance(item, InvalidEvent):
        return f"INVALID        on {item.channel}: {item.reason}"
    if isinstance(item, ListenerReconnected):
        return (
            f"GAP            connection lost for {item.down_seconds:.1f} s ({item.reason}); events may have been missed"
        )
    if isinstance(item, ListenerOverflow):
        return f"GAP            buffer full, {item.dropped} notification(s) dropped"
    return f"GAP            {item.reason}"


_STYLES: dict[type, str] = {
    QueueCreatedEvent: "bold cyan",
    MessageWithPayloadEvent: "green",
    MessageReadyEvent: "yellow",
    BatchReadyEvent: "magenta",
    InvalidEvent: "bold red",
}


def rich_line(item: ListenerItem) -> Text:
    """The readable line, styled for a Rich console."""
    text = format_text(item)
    style = _STYLES.get(type(item), "bold red reverse" if isinstance(item, ListenerGap) else "")
    head, _, rest = text.partition(" ")
    return Text.assemble((head, style), " ", rest)


def _delay(seconds: int) -> str:
    return f" (visible in {seconds} s)" if seconds > 0 else ""

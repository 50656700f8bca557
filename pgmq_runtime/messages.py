"""A claimed message and what can be done with it: delete, archive, extend.

:class:`ClaimedMessage` is what :class:`~pgmq_runtime.consumer.PgmqConsumer`
yields and hands to a worker's handler; its actions go back to the consumer
(or to any :class:`MessageActions`). :class:`InFlight` is the worker's record
of a message whose handler runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pgmq_runtime.events import JsonValue


class MessageActions(Protocol):
    """What a claimed message can do; the consumer (or a test fake) implements it."""

    async def delete(self, queue_name: str, msg_id: int) -> bool: ...

    async def archive(self, queue_name: str, msg_id: int) -> bool: ...

    async def extend(self, queue_name: str, msg_id: int, seconds: int) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message this consumer holds until ``vt``; delete or archive it when done."""

    queue_name: str
    msg_id: int
    read_ct: int
    enqueued_at: datetime
    vt: datetime
    message: JsonValue
    headers: JsonValue
    actions: MessageActions = field(repr=False, compare=False)

    async def delete(self) -> bool:
        """Delete the message (``pgmq.delete``); False if it was already gone."""
        return await self.actions.delete(self.queue_name, self.msg_id)

    async def archive(self) -> bool:
        """Move the message to the queue's archive (``pgmq.archive``); False if gone."""
        return await self.actions.archive(self.queue_name, self.msg_id)

    async def extend(self, seconds: int) -> datetime | None:
        """Keep the message ``seconds`` longer; returns the new ``vt``, None if gone."""
        return await self.actions.extend(self.queue_name, self.msg_id, seconds)


@dataclass(slots=True)
class InFlight:
    """A message a worker's handler holds: until when it is claimed, and whether it was settled by hand."""

    message: ClaimedMessage
    vt: datetime
    settled: bool = False

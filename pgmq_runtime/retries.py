"""What happens to a message whose handler raised: back after a backoff, or given up on.

A message's attempts are its ``read_ct`` (how many times it was claimed).
Below ``max_attempts`` it is given back with a visibility timeout that grows
with ``read_ct`` (capped exponential, jittered), so it is retried after the
backoff rather than after the full visibility timeout. At ``max_attempts`` it
is given up on: archived (kept in the queue's archive table), or, with a
``dead_letter_queue``, deleted from its queue and sent there in one
statement (one transaction; no copy if it was already gone), its headers
extended with ``x-pgmq-dead-letter`` (where it came from and why it failed).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from pgmq_runtime.acks import Statement
from pgmq_runtime.events import JsonValue
from pgmq_runtime.listener import backoff_delay
from pgmq_runtime.queries import QUERIES

DEAD_LETTER_HEADER = "x-pgmq-dead-letter"
# The catalogued statements (pgmq_runtime.queries) a retry or a give-up sends.
RETRY_LATER = QUERIES["retry_later"]
GIVE_UP_ARCHIVE = QUERIES["archive"]
DEAD_LETTER = QUERIES["dead_letter"]
QUEUE_EXISTS = QUERIES["queue_exists"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries with backoff, then archive or dead-letter.

    ``max_attempts``: claims (``read_ct``) after which a failing message is
    given up on; ``backoff_initial`` seconds before the first retry, doubling
    per attempt up to ``backoff_max`` (half fixed, half random);
    ``dead_letter_queue``: an existing queue that receives given-up messages
    (None: archive them).
    """

    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    dead_letter_queue: str | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_initial must be > 0 and backoff_max >= backoff_initial")
        if self.dead_letter_queue == "":
            raise ValueError("dead_letter_queue must be a queue name or None")

    def gives_up(self, read_ct: int) -> bool:
        """True when a message that failed on its ``read_ct``-th claim is not retried."""
        return read_ct >= self.max_attempts

    def backoff(self, read_ct: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds until a message that failed on its ``read_ct``-th claim is visible again."""
        return backoff_delay(max(read_ct, 1), self.backoff_initial, self.backoff_max, rand)

    def retry_statements(self, queue_name: str, msg_id: int, delay: float) -> list[Statement]:
        """Give the message back, visible again in ``delay`` seconds."""
        return [(RETRY_LATER, {"queue": queue_name, "msg_id": msg_id, "delay": delay})]

    def give_up_statements(
        self, queue_name: str, msg_id: int, read_ct: int, message: JsonValue, headers: JsonValue, error: str
    ) -> list[Statement]:
        """Archive the message, or move it to the dead-letter queue (one statement, one transaction)."""
        if self.dead_letter_queue is None:
            return [(GIVE_UP_ARCHIVE, {"queue": queue_name, "msg_id": msg_id})]
        base: dict[str, Any] = dict(headers) if isinstance(headers, dict) else {}
        base[DEAD_LETTER_HEADER] = {"queue": queue_name, "msg_id": msg_id, "read_ct": read_ct, "error": error}
        params = {
            "queue": queue_name,
            "msg_id": msg_id,
            "target": self.dead_letter_queue,
            "message": Jsonb(message),
            "headers": Jsonb(base),
        }
        return [(DEAD_LETTER, params)]

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

DEAD_LETTER_HEADER = "x-pgmq-dead-letter"
# Give a message back: visible again after a backoff of %s seconds (fractions allowed).
RETRY_LATER = "SELECT msg_id FROM pgmq.set_vt(%s::text, %s::bigint, clock_timestamp() + make_interval(secs => %s))"
GIVE_UP_ARCHIVE = "SELECT pgmq.archive(%s::text, %s::bigint)"
# Delete from the queue and send to the dead-letter queue in one statement: no copy if it was gone.
DEAD_LETTER = (
    "WITH gone AS MATERIALIZED (SELECT pgmq.delete(%s::text, %s::bigint) AS deleted) "
    "SELECT pgmq.send(%s::text, %s::jsonb, %s::jsonb) FROM gone WHERE gone.deleted"
)
QUEUE_EXISTS = "SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = %s)"


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
        return [(RETRY_LATER, (queue_name, msg_id, delay))]

    def give_up_statements(
        self, queue_name: str, msg_id: int, read_ct: int, message: JsonValue, headers: JsonValue, error: str
    ) -> list[Statement]:
        """Archive the message, or move it to the dead-letter queue (one statement, one transaction)."""
        if self.dead_letter_queue is None:
            return [(GIVE_UP_ARCHIVE, (queue_name, msg_id))]
        base: dict[str, Any] = dict(headers) if isinstance(headers, dict) else {}
        base[DEAD_LETTER_HEADER] = {"queue": queue_name, "msg_id": msg_id, "read_ct": read_ct, "error": error}
        return [(DEAD_LETTER, (queue_name, msg_id, self.dead_letter_queue, Jsonb(message), Jsonb(base)))]

"""What a consumer claims next: announced ids, ids not visible yet, queues to read.

The consumer's bookkeeping between notifications and claims, apart from its
I/O (:mod:`pgmq_runtime.consumer` does the claiming). An event adds the ids it
announces, and, when it carried the message, the body, so that the claim need
not fetch it again. Ids announced for later wait in a heap until they are due.
Start-up, gaps, the slow timer, FIFO mode and ids announced faster than they
are claimed mark whole queues to be read (a catch-up); after a coalesced event
its queue is re-read until it is quiet (:class:`~pgmq_runtime.rechecks.RecheckSchedule`).
Queues are keyed by their lowercased name; times are ``time.monotonic()``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from datetime import datetime

from pgmq_runtime.events import JsonValue, MessageEvent, MessageWithPayloadEvent
from pgmq_runtime.rechecks import RecheckSchedule

# Claim a delayed message this long after its visibility time, against clock jitter.
DELAY_MARGIN = 0.05

Body = tuple[JsonValue, JsonValue]


class ClaimPlan:
    """Ids to claim and queues to read, for the queues ``keys``.

    ``max_pending`` announced ids (and as many delayed ones) are remembered per
    queue before they are forgotten in favour of reading the queue; with
    ``fifo`` announced ids are never claimed by id (that would ignore the
    groups): their queue is read instead.
    """

    def __init__(self, keys: Iterable[str], *, coalesce_ms: int, max_pending: int, fifo: bool) -> None:
        self.keys = frozenset(keys)
        self.max_pending = max_pending
        self.fifo = fifo
        self.pending: dict[str, dict[int, None]] = {}
        self.payloads: dict[tuple[str, int], Body] = {}
        # Announced ids not yet visible: (when due, id, queue, from a coalesced event).
        self.delayed: list[tuple[float, int, str, bool]] = []
        self.catch_up: set[str] = set(self.keys)
        self.rechecks = RecheckSchedule(coalesce_ms)
        self.rechecking: set[str] = set()

    def read_all(self) -> None:
        """Read every queue (start-up, a gap, the slow timer, a new connection)."""
        self.catch_up = set(self.keys)

    def read(self, key: str) -> None:
        """Read queue ``key`` at the next claim."""
        self.catch_up.add(key)

    def note(self, key: str, event: MessageEvent, server_now: datetime, now: float) -> bool:
        """Remember what ``event`` announces for queue ``key``; True if too much was pending (the queue is read)."""
        coalesced = not isinstance(event, MessageWithPayloadEvent) and event.coalesced
        if coalesced:
            # Other sends of this window were silent: read the queue until it is quiet.
            self.wake(key, now)
        delay = (event.ready_at - server_now).total_seconds()
        if delay > 0:
            if len(self.delayed) >= self.max_pending:
                return False  # the slow timer's catch-up finds it once it is visible
            due = now + delay + DELAY_MARGIN
            for msg_id in event.msg_ids:
                heapq.heappush(self.delayed, (due, msg_id, key, coalesced))
            return False
        pending = self.pending.setdefault(key, {})
        if len(pending) + len(event.msg_ids) > self.max_pending:
            # Announced faster than consumed: forget the ids and read the queue instead.
            self.read_instead(key)
            return True
        for msg_id in event.msg_ids:
            pending[msg_id] = None
        if isinstance(event, MessageWithPayloadEvent):
            self.payloads[(key, event.msg_id)] = (event.message, event.headers)
        return False

    def read_instead(self, key: str) -> None:
        """Forget the ids announced for queue ``key`` (and their bodies) and read the queue instead.

        For too many pending ids, and after a claim by id came back short: other
        consumers heard the same events and took those messages, and claiming the
        rest by id would race them again id by id, while reads (SKIP LOCKED) give
        each consumer different messages. Every visible message is still found:
        the queue is read until a read finds nothing.
        """
        pending = self.pending.get(key)
        if pending:
            pending.clear()
        self.payloads = {k: v for k, v in self.payloads.items() if k[0] != key}
        self.catch_up.add(key)

    def wake(self, key: str, now: float) -> None:
        """Re-read queue ``key`` until it is quiet, from ``now`` (a coalesced event, or its ``ready_at``)."""
        self.rechecks.woken(key, now)
        self.catch_up.add(key)
        self.rechecking.add(key)

    def schedule(self, key: str, msg_id: int, delay: float, now: float) -> None:
        """Claim ``msg_id`` of queue ``key`` once it is visible again, ``delay`` seconds after ``now``."""
        heapq.heappush(self.delayed, (now + delay + DELAY_MARGIN, msg_id, key, False))

    def promote_due(self, now: float) -> None:
        """Delayed ids that are due become pending."""
        while self.delayed and self.delayed[0][0] <= now:
            _, msg_id, key, coalesced = heapq.heappop(self.delayed)
            self.pending.setdefault(key, {})[msg_id] = None
            if coalesced:
                # Silent sends of that window with the same delay become visible now too.
                self.wake(key, now)

    def take_ids(self, size: int) -> tuple[str, list[int]] | None:
        """Up to ``size`` pending ids of one queue, forgotten here; None if none is pending."""
        for key, pending in self.pending.items():
            if pending and self.fifo:
                # Due retries and delayed ids in FIFO mode: a grouped read finds them.
                pending.clear()
                self.catch_up.add(key)
            elif pending:
                ids = list(itertools.islice(pending, size))
                for msg_id in ids:
                    del pending[msg_id]
                return key, ids
        return None

    def take_bodies(self, key: str, ids: list[int]) -> dict[int, Body] | None:
        """The bodies the events carried for ``ids``, forgotten here; None unless every one came with its event."""
        cached = [self.payloads.pop((key, i), None) for i in ids]
        if any(c is None for c in cached):
            return None
        return {i: c for i, c in zip(ids, cached, strict=True) if c is not None}

    def next_read(self) -> str | None:
        """The queue to read next, if any."""
        return min(self.catch_up) if self.catch_up else None

    def read_done(self, key: str, found: int, now: float) -> bool:
        """A read of ``key`` found ``found`` messages; True if it was a re-check."""
        # Fewer rows than asked for may only mean that other consumers hold the rest
        # (SKIP LOCKED): the queue is caught up once a read finds nothing.
        if not found:
            self.catch_up.discard(key)
        if key not in self.rechecking:
            return False
        self.rechecking.discard(key)
        if found:
            self.rechecks.found(key, now)
        return True

    def start_due_rechecks(self, now: float) -> bool:
        """Mark the queues whose re-check is due for reading; True if there were any."""
        due = self.rechecks.due(now)
        if not due:
            return False
        self.catch_up.update(due)
        self.rechecking.update(due)
        return True

    def timeout(self, now: float, timeout: float) -> float:
        """``timeout``, shortened to when the next delayed id or re-check is due."""
        if self.delayed:
            timeout = min(timeout, max(self.delayed[0][0] - now, 0.0))
        recheck = self.rechecks.wait(now)
        if recheck is not None:
            timeout = min(timeout, recheck)
        return timeout

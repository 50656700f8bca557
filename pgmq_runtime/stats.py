"""Counters of a consumer and its worker, and of a client, in one place: the hook point for metrics.

:class:`Counters` is mutable and shared by the consumer, its acknowledgement
batcher and its worker loop; :class:`ConsumerStats` is the frozen snapshot
that ``PgmqConsumer.stats`` returns. :class:`ClientStats` is a client's
(shared by its transactions and :meth:`~pgmq_runtime.client.PgmqNotifyClient.using`).
Every counter only grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Counters:
    """What the acknowledgement batcher and the worker loop count (one per consumer)."""

    # Acknowledgements committed (messages deleted or archived because their handler succeeded,
    # or by hand), and the transactions that carried them.
    deleted: int = 0
    archived: int = 0
    ack_batches: int = 0
    # Handler calls: returned, raised; and the seconds they took (sum and maximum).
    handled: int = 0
    failed: int = 0
    handler_seconds: float = 0.0
    handler_seconds_max: float = 0.0
    # After a failure: messages given back with a backoff, messages given up on (archived or
    # moved to the dead-letter queue) once they reached max_attempts.
    retries: int = 0
    dead_lettered: int = 0
    # Visibility timeouts pushed out for running handlers, and messages handed back at stop.
    heartbeats: int = 0
    handed_back: int = 0
    # Told of each handler call (seconds, ok): RuntimeMetrics.watch_consumer sets it to fill its histogram.
    on_handler: Callable[[float, bool], None] | None = None

    def handler_done(self, seconds: float, ok: bool) -> None:
        """Count one handler call that took ``seconds`` and returned (``ok``) or raised."""
        if self.on_handler is not None:
            self.on_handler(seconds, ok)
        if ok:
            self.handled += 1
        else:
            self.failed += 1
        self.handler_seconds += seconds
        self.handler_seconds_max = max(self.handler_seconds_max, seconds)


@dataclass(frozen=True, slots=True)
class ConsumerStats:
    """A snapshot of a consumer's counters.

    Claims by path: ``claimed_from_events`` (ids announced by notifications),
    ``claimed_by_catch_up`` (queue reads: start-up, gaps, the slow timer, FIFO
    reads) and, among those, ``claimed_by_recheck`` (re-reads after coalesced
    events). The remaining fields are those of :class:`Counters`.
    """

    claimed_from_events: int
    claimed_by_catch_up: int
    catch_up_reads: int
    gaps: int
    reconnects: int
    # Re-reads made after coalesced events (coalesce_ms), and the messages they found.
    rechecks: int = 0
    claimed_by_recheck: int = 0
    deleted: int = 0
    archived: int = 0
    ack_batches: int = 0
    handled: int = 0
    failed: int = 0
    handler_seconds: float = 0.0
    handler_seconds_max: float = 0.0
    retries: int = 0
    dead_lettered: int = 0
    heartbeats: int = 0
    handed_back: int = 0


@dataclass(slots=True)
class ClientStats:
    """A client's counters: ``sent`` messages (a batch counts each message, a topic send each
    queue it reached; counted when the call returns, so a send whose transaction later rolls
    back is counted too) and ``errors``, calls that failed in the database (a missing queue
    or migration, a lost connection, ...)."""

    sent: int = 0
    errors: int = 0

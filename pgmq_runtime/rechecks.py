"""When to re-read a queue after a coalesced event, so its silent messages are claimed too.

With ``coalesce_ms`` the SQL announces only the first send of each window; the
other sends of that window stay silent. A consumer woken by such an event
re-reads the queue every quarter window (2-10 ms) until the window is over,
then goes on for a margin, for silent senders still committing, and for as long
as the re-reads find messages ("until the queue is quiet"). In the margin, re-reads
that come back empty are spaced out (doubling, up to 10 ms): at low rates most
of them find nothing, and a found message brings the quarter-window pace back.
A silent message is therefore claimed within one re-read interval of its
commit, at most 10 ms, as long as it commits before the margin runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How long after the window the re-reads go on, for silent senders still committing.
QUIET_MARGIN = 0.05
# Re-check interval bounds (seconds): a quarter of the window, within these.
MIN_INTERVAL = 0.002
MAX_INTERVAL = 0.010
# Window assumed when the consumer's config says coalesce_ms = 0 but events say coalesced.
UNKNOWN_WINDOW = 1.0


@dataclass
class RecheckSchedule:
    """Per queue, the time until which it is re-read, and when the next re-read is due.

    Times are ``time.monotonic()`` seconds; ``coalesce_ms`` comes from the
    consumer's config (0 means the consumer was not told the window).
    """

    coalesce_ms: int
    _until: dict[str, float] = field(default_factory=dict)
    # When each queue's latest window ends: until then it is re-read at the full pace.
    _window_end: dict[str, float] = field(default_factory=dict)
    # Rounds of re-reads since one last found messages (spaces out the margin's re-reads).
    _empty_rounds: int = 0
    # Queues handed out by due() for their last read: found() may still extend them.
    _last_read: set[str] = field(default_factory=set)
    _next_at: float = 0.0

    @property
    def window(self) -> float:
        """The coalescing window in seconds."""
        return self.coalesce_ms / 1000 if self.coalesce_ms > 0 else UNKNOWN_WINDOW

    @property
    def interval(self) -> float:
        """Seconds between two re-reads of a queue."""
        return min(max(self.window / 4, MIN_INTERVAL), MAX_INTERVAL)

    def woken(self, key: str, now: float) -> None:
        """A coalesced event for queue ``key`` arrived at ``now``."""
        self._window_end[key] = max(self._window_end.get(key, 0.0), now + self.window)
        self._extend(key, now + self.window + QUIET_MARGIN)

    def found(self, key: str, now: float) -> None:
        """A re-read of ``key`` found messages: the queue is not quiet yet (its last read included)."""
        if key in self._until or key in self._last_read:
            self._last_read.discard(key)
            self._empty_rounds = 0
            self._extend(key, now + QUIET_MARGIN)
            self._next_at = min(self._next_at, now + self.interval)

    def _extend(self, key: str, until: float) -> None:
        if not self._until:
            self._next_at = 0.0
            self._empty_rounds = 0
        self._until[key] = max(self._until.get(key, 0.0), until)

    def due(self, now: float) -> list[str]:
        """The queues to re-read now (empty if none is due); a queue past its time is read one last time."""
        # The consumer asks again only once its reads are done: a last read has been answered.
        self._last_read = set()
        if not self._until or now < self._next_at:
            return []
        keys = list(self._until)
        in_window = any(now < self._window_end.get(key, 0.0) for key in keys)
        for key in keys:
            if now >= self._until[key]:
                del self._until[key]
                self._window_end.pop(key, None)
                self._last_read.add(key)
        self._next_at = now + (self.interval if in_window else self._margin_interval())
        self._empty_rounds = 0 if in_window else self._empty_rounds + 1
        return keys

    def _margin_interval(self) -> float:
        """After the window: the interval, doubled for each re-read round that found nothing, up to the maximum."""
        return min(self.interval * (1 << min(self._empty_rounds, 8)), MAX_INTERVAL)

    def wait(self, now: float) -> float | None:
        """Seconds until the next re-read is due, or None when no queue is being re-read."""
        if not self._until:
            return None
        return max(self._next_at - now, 0.0)

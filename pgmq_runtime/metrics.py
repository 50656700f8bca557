"""The runtime's metrics, defined and collected in one place; exporters only translate them.

:data:`CATALOGUE` names every metric once (name, kind, help, labels). A
:class:`RuntimeMetrics` collects them:

- counters are read, when an exporter asks, from the ``stats`` of the
  listeners and consumers it watches (the runtime already counts everything,
  so the notification hot path pays nothing for metrics); a source that closes
  is folded into a running total, so counters never go back;
- histograms (handler durations, event delay) are observed as they happen,
  into fixed buckets.

Pass one to ``PgmqConsumer(..., metrics=m)``, ``PgmqNotifyListener(...,
metrics=m)`` or ``PgmqNotifyClient(..., metrics=m)``, or call :meth:`RuntimeMetrics.watch_consumer` yourself; then
expose it with :mod:`pgmq_runtime.metrics_export` (Prometheus, OpenTelemetry,
an HTTP ``/metrics``). No third-party import happens here.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from pgmq_runtime.client import PgmqNotifyClient
    from pgmq_runtime.consumer import PgmqConsumer
    from pgmq_runtime.listener import ListenerStats, PgmqNotifyListener
    from pgmq_runtime.stats import ClientStats, ConsumerStats

PREFIX: Final = "pgmq_runtime"

Kind = Literal["counter", "histogram"]
LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name without prefix or ``_total`` suffix, kind, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        """The exported name, e.g. ``pgmq_runtime_events_received``."""
        return f"{PREFIX}_{self.name}"


# Seconds: from sub-millisecond notifications to handlers of a minute.
DEFAULT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)

CATALOGUE: Final = (
    MetricSpec("events_received", "counter", "Notifications parsed into events by the listeners."),
    MetricSpec("events_invalid", "counter", "Notifications that were not valid events (kept as InvalidEvent)."),
    MetricSpec("events_dropped", "counter", "Notifications dropped because a listener's buffer was full."),
    MetricSpec("listener_reconnects", "counter", "Times a listener's connection was lost and re-established."),
    MetricSpec("gaps", "counter", "Gap markers and invalid events a consumer caught up after."),
    MetricSpec("consumer_reconnects", "counter", "Times a consumer's claiming connection was re-established."),
    MetricSpec(
        "claimed",
        "counter",
        "Messages claimed, by path: event (announced ids), catch_up (queue reads), recheck (after coalesced events).",
        ("path",),
    ),
    MetricSpec("catch_up_reads", "counter", "Queue reads made to catch up (start, gaps, slow timer, FIFO)."),
    MetricSpec("rechecks", "counter", "Queue re-reads made after coalesced events."),
    MetricSpec("acknowledged", "counter", "Messages acknowledged, by action: delete or archive.", ("action",)),
    MetricSpec("ack_batches", "counter", "Transactions that carried acknowledgements."),
    MetricSpec("handler_calls", "counter", "Handler calls, by outcome: ok or failed.", ("outcome",)),
    MetricSpec("retries", "counter", "Failed messages given back with a backoff."),
    MetricSpec("dead_lettered", "counter", "Failed messages given up on (archived or moved to a dead-letter queue)."),
    MetricSpec("heartbeats", "counter", "Visibility timeouts extended for running handlers."),
    MetricSpec("handed_back", "counter", "Claimed messages handed back unstarted at stop."),
    MetricSpec("messages_sent", "counter", "Messages sent through clients (a topic send: one per queue reached)."),
    MetricSpec(
        "client_errors", "counter", "Client calls that failed in the database (missing queue, lost connection, ...)."
    ),
    MetricSpec("handler_duration_seconds", "histogram", "Seconds a handler call took, by outcome.", ("outcome",)),
    MetricSpec(
        "event_delay_seconds",
        "histogram",
        "Seconds from a message's enqueued_at to its event reaching the consumer (server clock).",
    ),
)
SPECS: Final[Mapping[str, MetricSpec]] = {spec.name: spec for spec in CATALOGUE}


@dataclass(slots=True)
class HistogramValue:
    """Cumulative bucket counts (``counts[i]``: observations ≤ ``buckets[i]``), count and sum."""

    buckets: tuple[float, ...]
    counts: list[int]
    count: int = 0
    sum: float = 0.0


def _labels(**labels: str) -> LabelSet:
    return tuple(sorted(labels.items()))


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...]
    per_bucket: list[int] = field(default_factory=list)
    count: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        if not self.per_bucket:
            self.per_bucket = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.per_bucket[bisect.bisect_left(self.buckets, value)] += 1
        self.count += 1
        self.sum += value

    def value(self) -> HistogramValue:
        counts: list[int] = []
        running = 0
        for n in self.per_bucket[: len(self.buckets)] or [0] * len(self.buckets):
            running += n
            counts.append(running)
        return HistogramValue(self.buckets, counts, self.count, self.sum)


CounterSamples = dict[tuple[str, LabelSet], float]
Observer = Callable[[MetricSpec, LabelSet, float], None]


def listener_samples(stats: ListenerStats) -> CounterSamples:
    """The catalogue's counters from one listener's stats."""
    return {
        ("events_received", ()): stats.events,
        ("events_invalid", ()): stats.invalid_events,
        ("events_dropped", ()): stats.dropped,
        ("listener_reconnects", ()): stats.reconnects,
    }


def consumer_samples(stats: ConsumerStats) -> CounterSamples:
    """The catalogue's counters from one consumer's stats (claims split into disjoint paths)."""
    return {
        ("gaps", ()): stats.gaps,
        ("consumer_reconnects", ()): stats.reconnects,
        ("claimed", _labels(path="event")): stats.claimed_from_events,
        # claimed_by_catch_up counts the re-checks' claims too.
        ("claimed", _labels(path="catch_up")): stats.claimed_by_catch_up - stats.claimed_by_recheck,
        ("claimed", _labels(path="recheck")): stats.claimed_by_recheck,
        ("catch_up_reads", ()): stats.catch_up_reads,
        ("rechecks", ()): stats.rechecks,
        ("acknowledged", _labels(action="delete")): stats.deleted,
        ("acknowledged", _labels(action="archive")): stats.archived,
        ("ack_batches", ()): stats.ack_batches,
        ("handler_calls", _labels(outcome="ok")): stats.handled,
        ("handler_calls", _labels(outcome="failed")): stats.failed,
        ("retries", ()): stats.retries,
        ("dead_lettered", ()): stats.dead_lettered,
        ("heartbeats", ()): stats.heartbeats,
        ("handed_back", ()): stats.handed_back,
    }


def client_samples(stats: ClientStats) -> CounterSamples:
    """The catalogue's counters from one client's stats."""
    return {("messages_sent", ()): stats.sent, ("client_errors", ()): stats.errors}


class RuntimeMetrics:
    """Collects the catalogue's metrics from the listeners and consumers it watches.

    Thread-safe: exporters may read it from an HTTP thread while the event loop
    observes. ``buckets`` are the histogram bounds in seconds.
    """

    def __init__(self, buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._sources: dict[int, Callable[[], CounterSamples]] = {}
        self._retired: CounterSamples = {}
        self._histograms: dict[tuple[str, LabelSet], _Histogram] = {}
        self._observers: list[Observer] = []

    # -- sources -----------------------------------------------------------

    def watch(self, key: object, read: Callable[[], CounterSamples]) -> None:
        """Read counters from ``read()`` at each collection until :meth:`retire` (``key``: the source)."""
        with self._lock:
            self._sources.setdefault(id(key), read)

    def watch_listener(self, listener: PgmqNotifyListener) -> None:
        """Count ``listener``'s events, invalid and dropped notifications and reconnects."""
        self.watch(listener, lambda: listener_samples(listener.stats))

    def watch_consumer(self, consumer: PgmqConsumer) -> None:
        """Count ``consumer``'s claims, acknowledgements, handler calls, ... and those of its listener."""
        self.watch(consumer, lambda: consumer_samples(consumer.stats))
        consumer.counters.on_handler = self.handler_done
        if consumer.listener is not None:
            self.watch_listener(consumer.listener)

    def watch_client(self, client: PgmqNotifyClient) -> None:
        """Count ``client``'s sent messages and failed calls (its transactions and ``using()`` handles too)."""
        self.watch(client, lambda: client_samples(client.stats))

    def retire(self, key: object) -> None:
        """Stop reading ``key``, keeping its last counts in the totals (counters never go back)."""
        with self._lock:
            read = self._sources.pop(id(key), None)
            if read is not None:
                for sample, value in read().items():
                    self._retired[sample] = self._retired.get(sample, 0) + value

    # -- observations ------------------------------------------------------

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record ``value`` in histogram ``name`` (a catalogue name) with ``labels``."""
        spec = SPECS[name]
        key = (name, _labels(**labels))
        with self._lock:
            histogram = self._histograms.get(key)
            if histogram is None:
                histogram = self._histograms[key] = _Histogram(self.buckets)
            histogram.observe(value)
            observers = list(self._observers)
        for observer in observers:
            observer(spec, key[1], value)

    def handler_done(self, seconds: float, ok: bool) -> None:
        """One handler call took ``seconds``."""
        self.observe("handler_duration_seconds", seconds, outcome="ok" if ok else "failed")

    def event_delay(self, seconds: float) -> None:
        """A message event arrived ``seconds`` after its message was enqueued."""
        self.observe("event_delay_seconds", max(seconds, 0.0))

    def add_observer(self, observer: Observer) -> None:
        """Also hand every histogram observation to ``observer`` (the OpenTelemetry exporter does)."""
        with self._lock:
            self._observers.append(observer)

    # -- reading -----------------------------------------------------------

    def counters(self) -> CounterSamples:
        """Every counter now: the watched sources' sums plus the retired ones'."""
        with self._lock:
            reads = list(self._sources.values())
            totals = dict(self._retired)
        for read in reads:
            for sample, value in read().items():
                totals[sample] = totals.get(sample, 0) + value
        # Every unlabelled counter is present from the start, at zero.
        for spec in CATALOGUE:
            if spec.kind == "counter" and not spec.labels:
                totals.setdefault((spec.name, ()), 0)
        return totals

    def histograms(self) -> dict[tuple[str, LabelSet], HistogramValue]:
        """Every histogram observed so far."""
        with self._lock:
            return {key: h.value() for key, h in self._histograms.items()}

"""Sizes, progress reporting and small statistics shared by the benchmark phases."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

QUEUE = "bench_queue"
# The namespace the default pattern gives QUEUE, and so its channel.
NAMESPACE = "bench"


@dataclass(frozen=True)
class Sizes:
    """How long and how big each phase is; ``FULL``, ``QUICK`` and ``TINY`` are the presets."""

    name: str
    # Producer throughput (pgbench): rounds of every cell, seconds per cell.
    producer_rounds: int
    producer_seconds: int
    # When set, each pgbench client runs this many transactions instead of -T seconds (smoke tests).
    producer_transactions: int
    # Latency: rounds per rate, seconds per variant and round, at each rate.
    latency_rounds: int
    latency_rates: tuple[tuple[int, float], ...]
    # Consumer throughput: rounds, messages drained per cell.
    consumer_rounds: int
    consumer_messages: int
    # Runtime: events parsed per payload kind, notifications drained per round.
    parse_events: int
    drain_notifications: int
    drain_rounds: int
    # Cost per send: interleaved rounds, single sends per cell (batch cells send fewer statements).
    cost_rounds: int
    cost_sends: int

    @property
    def producers(self) -> tuple[int, ...]:
        """Producer counts of the scaling series."""
        return (1, 2, 4, 8)


FULL = Sizes(
    name="full",
    producer_rounds=5,
    producer_seconds=2,
    producer_transactions=0,
    latency_rounds=3,
    latency_rates=((500, 3.0), (20, 5.0)),
    consumer_rounds=3,
    consumer_messages=10_000,
    parse_events=30_000,
    drain_notifications=20_000,
    drain_rounds=3,
    cost_rounds=40,
    cost_sends=10,
)
QUICK = Sizes(
    name="quick",
    producer_rounds=2,
    producer_seconds=1,
    producer_transactions=0,
    latency_rounds=1,
    latency_rates=((500, 2.0), (20, 4.0)),
    consumer_rounds=1,
    consumer_messages=5000,
    parse_events=10_000,
    drain_notifications=5_000,
    drain_rounds=1,
    cost_rounds=15,
    cost_sends=10,
)
TINY = Sizes(
    name="tiny",
    producer_rounds=1,
    producer_seconds=1,
    producer_transactions=5,
    latency_rounds=1,
    latency_rates=((500, 0.2), (20, 0.25)),
    consumer_rounds=1,
    consumer_messages=200,
    parse_events=500,
    drain_notifications=500,
    drain_rounds=1,
    cost_rounds=1,
    cost_sends=2,
)
PRESETS = {s.name: s for s in (FULL, QUICK, TINY)}


class Progress(Protocol):
    """Where the phases report what they are doing; the CLI shows it with Rich."""

    def step(self, description: str) -> None:
        """One unit of work is about to start."""

    def note(self, text: str) -> None:
        """Something worth a line of its own (a warning, a phase result)."""


class SilentProgress:
    """A Progress that says nothing (for calls from Python and tests)."""

    def step(self, description: str) -> None:
        """Ignore the step."""

    def note(self, text: str) -> None:
        """Ignore the note."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def median(values: Sequence[float]) -> float:
    """Median, NaN when empty."""
    return float(statistics.median(values)) if values else math.nan

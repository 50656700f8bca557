"""RecheckSchedule: after a coalesced event, re-read the queue until the window is over and it is quiet."""

from __future__ import annotations

import itertools

import pytest

from pgmq_runtime.rechecks import MAX_INTERVAL, MIN_INTERVAL, QUIET_MARGIN, UNKNOWN_WINDOW, RecheckSchedule


def drive(schedule: RecheckSchedule, start: float, step: float, until: float) -> list[tuple[float, list[str]]]:
    """Ask the schedule every ``step`` seconds what is due, as the consumer's loop does."""
    reads = []
    now = start
    while now <= until:
        if keys := schedule.due(now):
            reads.append((round(now, 6), keys))
        now += step
    return reads


def test_nothing_is_due_before_any_coalesced_event():
    schedule = RecheckSchedule(coalesce_ms=20)
    assert schedule.due(5.0) == []
    assert schedule.wait(5.0) is None


def test_rereads_cover_the_window_at_the_interval_and_the_margin_at_most_the_maximum_apart():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("q", now=10.0)
    reads = drive(schedule, start=10.0, step=0.001, until=11.0)
    times = [t for t, _ in reads]
    assert times[0] == 10.0
    gaps = [(a, round(b - a, 6)) for a, b in itertools.pairwise(times)]
    # Within the window: every quarter window (5 ms), never more.
    assert all(gap <= schedule.interval + 0.001 for at, gap in gaps if at < 10.020)
    # In the margin, re-reads that find nothing are spaced out, never past the maximum.
    margin_gaps = [gap for at, gap in gaps if at >= 10.020]
    assert max(margin_gaps) > schedule.interval + 0.001
    assert max(margin_gaps) <= MAX_INTERVAL + 0.001
    # The last read is at or just past the window plus the margin, then nothing.
    assert 10.0 + 0.020 + QUIET_MARGIN <= times[-1] <= 10.0 + 0.020 + QUIET_MARGIN + MAX_INTERVAL + 0.001
    assert schedule.wait(11.0) is None


def test_the_margin_spends_fewer_reads_than_the_full_pace_would():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("q", now=0.0)
    reads = drive(schedule, start=0.0, step=0.0005, until=1.0)
    full_pace = (0.020 + QUIET_MARGIN) / schedule.interval + 1
    assert len(reads) < 0.75 * full_pace


def test_a_read_that_finds_messages_brings_back_the_full_pace():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("q", now=0.0)
    before = drive(schedule, start=0.0, step=0.0005, until=0.060)
    spaced = round(before[-1][0] - before[-2][0], 6)
    assert spaced > schedule.interval + 0.0005  # the margin's empty re-reads have spaced out
    schedule.found("q", now=before[-1][0])  # ... until the latest one finds messages
    after = drive(schedule, start=0.0605, step=0.0005, until=0.2)
    first_gaps = [round(b - a, 6) for (a, _), (b, _) in itertools.pairwise([before[-1], *after[:2]])]
    assert all(gap <= schedule.interval + 0.0005 for gap in first_gaps)


def test_messages_found_by_the_last_read_keep_the_rereads_going():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("q", now=0.0)
    end = 0.020 + QUIET_MARGIN
    assert schedule.due(end) == ["q"]  # the last read: nothing is left to re-read after it
    assert schedule.wait(end) is None
    schedule.found("q", now=end + 0.001)  # ... but it found messages, so the queue is not quiet
    reads = drive(schedule, start=end + schedule.interval, step=0.001, until=1.0)
    assert reads[0][1] == ["q"]
    assert reads[-1][0] >= end + 0.001 + QUIET_MARGIN


def test_found_after_the_last_read_was_answered_schedules_nothing():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("q", now=0.0)
    end = 0.020 + QUIET_MARGIN
    assert schedule.due(end) == ["q"]
    assert schedule.due(end + 1.0) == []  # the next round of due() closes the last read
    schedule.found("q", now=end + 1.0)
    assert schedule.wait(end + 1.0) is None


def test_found_without_a_wake_schedules_nothing():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.found("q", now=0.0)
    assert schedule.due(0.0) == []


def test_queues_are_tracked_separately():
    schedule = RecheckSchedule(coalesce_ms=20)
    schedule.woken("a", now=0.0)
    schedule.woken("b", now=0.05)
    reads = drive(schedule, start=0.0, step=0.001, until=1.0)
    last_a = max(t for t, keys in reads if "a" in keys)
    last_b = max(t for t, keys in reads if "b" in keys)
    assert last_a < last_b
    assert any(keys == ["a", "b"] or keys == ["b", "a"] for _, keys in reads)


def test_wait_says_how_long_until_the_next_read():
    schedule = RecheckSchedule(coalesce_ms=40)
    schedule.woken("q", now=1.0)
    assert schedule.wait(1.0) == 0.0
    assert schedule.due(1.0) == ["q"]
    assert schedule.wait(1.0) == pytest.approx(schedule.interval)


@pytest.mark.parametrize(
    ("coalesce_ms", "interval"),
    [(1, MIN_INTERVAL), (20, 0.005), (40, MAX_INTERVAL), (60_000, MAX_INTERVAL), (0, MAX_INTERVAL)],
)
def test_interval_is_a_quarter_window_within_bounds(coalesce_ms, interval):
    assert RecheckSchedule(coalesce_ms).interval == pytest.approx(interval)


def test_unknown_window_is_assumed_when_the_config_says_zero():
    assert RecheckSchedule(0).window == UNKNOWN_WINDOW

"""coalesce_ms on a real server: few notifications, yet every message claimed promptly and once.

With ``coalesce_ms > 0`` the generated SQL notifies at most once per queue per
window; the other sends of that window are silent. A PgmqConsumer woken by
such a (``"coalesced": true``) event keeps re-reading the queue until the
window has passed, so the silent messages are claimed within about
``coalesce_ms``, not at the consumer's slow poll (10 s by default, 30 s in the
deterministic test). Every wait bound here sits far under the poll interval: a
consumer that claims only the announced ids, or reads the queue just once per
event, leaves the later messages of a window to the poll and fails the bound.

The chaos test is seeded: its seed is printed and named in its assertions;
set ``PGMQ_COALESCE_SEED`` to replay a run's choices (thread timing aside).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pgmq
import psycopg
import pytest

from pgmq_runtime import consumer as consumer_mod
from pgmq_runtime import listener as listener_mod
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from tests.conftest import Subscriber, install
from tests.integration.producers import plain_producer, producer_for

Subscribe = Callable[[str, list[str]], Subscriber]

QUEUE = "chaos_queue"
COALESCE_MS = 20
# Allowed beyond the window: room for a loaded 2-core CI machine (and other
# work on it), yet ten times under the consumer's default 10 s poll.
WAIT_MARGIN = 1.0
STRICT_BOUND = COALESCE_MS / 1000 + WAIT_MARGIN
# Extra time for a message sent while, or just before, a runtime connection was cut.
RECONNECT_ALLOWANCE = 3.0
VISIBILITY_TIMEOUT = 30
DEFAULT_POLL_INTERVAL = 10.0
# Claims held ahead of the caller: small, so that a claim is yielded soon after it is made.
CONSUMER_BATCH = 10
PRODUCERS = 8
# Sending phases (seconds from the start): 3.3 s of traffic and two quiet spells
# longer than STRICT_BOUND. Each phase ends with a tail inside one window:
# producer 0 sends (and notifies) as the window opens, then, from TAIL_SILENT
# into it (after the consumers' first reads, as a rule) until TAIL_END, sends
# silently every 2 ms. With no later notification to ride on, only the
# re-check (or the slow poll) finds those.
PHASES = [(0.0, 1.1), (2.5, 3.6), (5.0, 6.1)]
TAIL_SILENT = 0.010
TAIL_END = 0.018
KILLS = 4
MAX_PAUSE = 0.03
MAX_BATCH = 50
SINGLE_SHARE = 0.95
DRAIN_SECONDS = VISIBILITY_TIMEOUT + DEFAULT_POLL_INTERVAL + 15
RUNTIME_APPS = [consumer_mod.APPLICATION_NAME, listener_mod.APPLICATION_NAME]


class Sender(Protocol):
    """What both the plain-SQL Producer and the official pgmq client offer."""

    def send(self, queue: str, message: Any) -> int: ...

    def send_batch(self, queue: str, messages: list[Any]) -> list[int]: ...


@dataclass(frozen=True)
class Sent:
    """One acknowledged message: its unique key and when its send had committed (wall clock)."""

    key: str
    committed_at: float


@dataclass(frozen=True)
class Claim:
    """One message as a consumer yielded it; ``read_at`` is when the database claimed it."""

    consumer: int
    msg_id: int
    key: str
    read_ct: int
    read_at: float
    yielded_at: float


@dataclass(frozen=True)
class Kill:
    """Runtime connections terminated at ``at``; all were connected again by ``back`` (wall clock)."""

    at: float
    back: float


@dataclass
class Run:
    """What the chaos run records; each producer thread writes only its own ``sent`` dict."""

    seed: int
    sent: list[dict[int, Sent]] = field(default_factory=lambda: [{} for _ in range(PRODUCERS)])
    claims: list[Claim] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)

    def all_sent(self) -> dict[int, Sent]:
        return {msg_id: sent for part in self.sent for msg_id, sent in part.items()}


# -- producers -------------------------------------------------------------


def produce(dsn: str, config: PgmqNotifyConfig, index: int, run: Run, start: float) -> None:
    """Send random bursts in each phase, then its tail; record every acknowledged id with its commit time.

    In trigger mode odd producers use the official pgmq client and even ones
    plain SQL; in wrapper mode only the generated wrappers notify and the
    pgmq client cannot call them, so every producer sends through them in SQL.
    """
    rng = random.Random(f"{run.seed}-producer-{index}")
    sent = run.sent[index]
    conn: psycopg.Connection[Any] | None = None
    client: pgmq.PGMQueue | None = None
    sender: Sender
    if config.mode == "trigger" and index % 2:
        client = pgmq.PGMQueue(conn_string=dsn, init_extension=False, pool_size=1)
        sender = client
    else:
        conn = psycopg.connect(dsn, autocommit=True)
        sender = producer_for(conn, config)
    keys = (f"p{index}-{n}" for n in itertools.count())

    def send(size: int, single: bool) -> None:
        batch = [next(keys) for _ in range(size)]
        bodies = [{"key": key, "producer": index} for key in batch]
        ids = [sender.send(QUEUE, bodies[0])] if single else sender.send_batch(QUEUE, bodies)
        # Autocommit, or the client's own transaction: returned means committed.
        committed_at = time.time()
        assert len(ids) == size
        for msg_id, key in zip(ids, batch, strict=True):
            sent[msg_id] = Sent(key, committed_at)

    try:
        for begin, end in PHASES:
            _sleep_until(start + begin)
            while time.time() < start + end:
                size = _burst_size(rng)
                send(size, single=size == 1 and rng.random() < 0.75)
                time.sleep(rng.uniform(0, MAX_PAUSE))
            if index == 0:
                # Windows are epoch milliseconds // COALESCE_MS on the server's clock, which is ours.
                tail = math.ceil((start + end + 0.05) * 1000 / COALESCE_MS) * COALESCE_MS / 1000
                _sleep_until(tail + 0.001)
                send(1, single=True)
                _sleep_until(tail + TAIL_SILENT)
                while time.time() < tail + TAIL_END:
                    send(1, single=True)
                    time.sleep(0.002)
    finally:
        if client is not None:
            client.close()
        if conn is not None:
            conn.close()


def _burst_size(rng: random.Random) -> int:
    """Mostly single sends, else a batch of 1..MAX_BATCH, log-uniform (small ones common).

    The mean (~1.6 messages a send, ~700 messages a second in all) stays well
    within what two consumers deleting one message per round trip absorb on a
    small machine, so the waits measure the re-check, not a backlog.
    """
    if rng.random() < SINGLE_SHARE:
        return 1
    return round(math.exp(rng.uniform(0.0, math.log(MAX_BATCH))))


def _sleep_until(deadline: float) -> None:
    """Sleep until ``deadline``, wall-clock seconds."""
    time.sleep(max(0.0, deadline - time.time()))


# -- consumers and chaos ---------------------------------------------------


async def consume(index: int, consumer: PgmqConsumer, run: Run) -> None:
    """Claim and delete until cancelled, recording each claim the moment it is yielded."""
    async for message in consumer:
        yielded_at = time.time()
        body = message.message
        key = str(body.get("key")) if isinstance(body, dict) else repr(body)
        # Both claim paths set vt = clock_timestamp() + visibility timeout.
        read_at = message.vt.timestamp() - VISIBILITY_TIMEOUT
        run.claims.append(Claim(index, message.msg_id, key, message.read_ct, read_at, yielded_at))
        # A delete whose answer a kill swallowed is retried and then says False: fine either way.
        await message.delete()


async def kill_connections(dsn: str, run: Run, start: float) -> None:
    """Terminate random runtime connections (consumers' own and listeners') at random moments.

    The plan cuts listeners only, consumer connections only and both at least
    once each; every kill then waits (up to 5 s) until two consumers and two
    listeners are connected again, which dates the outage for the wait bounds.
    Kills fall inside the sending phases: one in a quiet spell would make a
    catch-up read that finds a tail's silent messages, hiding a missing re-check.
    """
    rng = random.Random(f"{run.seed}-kills")
    kinds = [[listener_mod.APPLICATION_NAME], [consumer_mod.APPLICATION_NAME], RUNTIME_APPS]
    kinds += [rng.choice(kinds) for _ in range(KILLS - len(kinds))]
    rng.shuffle(kinds)
    phases = [rng.choice(PHASES) for _ in range(KILLS)]
    moments = sorted(rng.uniform(begin + 0.1, end - 0.1) for begin, end in phases)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        for at, apps in zip(moments, kinds, strict=True):
            await asyncio.sleep(max(0.0, start + at - time.time()))
            cursor = await admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = ANY(%s) ORDER BY pid",
                (apps,),
            )
            pids = [int(row[0]) for row in await cursor.fetchall()]
            victims = rng.sample(pids, rng.randint(1, len(pids))) if pids else []
            killed_at = time.time()
            for pid in victims:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            run.kills.append(Kill(killed_at, await _all_connected(admin, victims, killed_at + 5.0)))


async def _all_connected(admin: psycopg.AsyncConnection[Any], gone: list[int], deadline: float) -> float:
    """When (wall clock) both consumers and their shared LISTEN connection are connected again, none in ``gone``."""
    while time.time() < deadline:
        cursor = await admin.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = ANY(%s) AND NOT pid = ANY(%s) GROUP BY 1",
            (RUNTIME_APPS, gone),
        )
        counts = dict(await cursor.fetchall())
        # The two consumers' listeners share one LISTEN connection (pgmq_runtime.listen_hub).
        if counts.get(consumer_mod.APPLICATION_NAME) == 2 and counts.get(listener_mod.APPLICATION_NAME) == 1:
            return time.time()
        await asyncio.sleep(0.02)
    return deadline


# -- waits -----------------------------------------------------------------


@dataclass
class Waits:
    """Claim waits (yielded minus committed), grouped by what may explain them, and the late ones."""

    strict: list[float] = field(default_factory=list)
    near_kill: list[float] = field(default_factory=list)
    reclaimed: list[float] = field(default_factory=list)
    found: list[float] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, run: Run, sent: dict[int, Sent]) -> Waits:
        waits = cls()
        for claim in run.claims:
            committed = sent[claim.msg_id].committed_at
            wait = claim.yielded_at - committed
            waits.found.append(claim.read_at - committed)
            if claim.read_ct > 1:
                # A claim whose answer a kill swallowed: the message came back at its
                # visibility timeout (at-least-once) and a catch-up found it.
                bound = VISIBILITY_TIMEOUT + DEFAULT_POLL_INTERVAL + RECONNECT_ALLOWANCE
                waits.reclaimed.append(wait)
            elif any(k.at - STRICT_BOUND <= committed <= k.back for k in run.kills):
                bound = STRICT_BOUND + RECONNECT_ALLOWANCE
                waits.near_kill.append(wait)
            else:
                bound = STRICT_BOUND
                waits.strict.append(wait)
            if wait > bound:
                waits.late.append(f"msg {claim.msg_id} waited {wait:.3f} s > {bound:.2f} s (read_ct {claim.read_ct})")
        return waits

    def summary(self) -> str:
        return (
            f"yielded after: no kill nearby {_figures(self.strict)}; near a kill {_figures(self.near_kill)}; "
            f"re-delivered {_figures(self.reclaimed)}; claimed in the database after {_figures(self.found)}"
        )


def _figures(values: list[float]) -> str:
    if not values:
        return "n=0"
    ordered = sorted(values)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]
    return f"n={len(ordered)} p50={ordered[len(ordered) // 2]:.3f} p99={p99:.3f} max={ordered[-1]:.3f} s"


# -- tests -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["trigger", "wrapper"])
async def test_chaos_every_message_claimed_once_and_promptly_while_connections_die(
    dsn: str, subscribe: Subscribe, mode: str
) -> None:
    """8 producers, 2 consumers, random kills under coalesce_ms=20: nothing lost, nothing twice, waits short.

    Proves: every acknowledged message is claimed and deleted; no id is
    yielded twice (with a 30 s visibility timeout a re-delivery is a bug,
    save a claim whose answer a kill swallowed, which comes back with
    read_ct 2 and is bounded apart); a message with no disconnect nearby is
    yielded within the window + 1 s of its commit, one near a disconnect
    within 3 s more, both far under the 10 s poll; and the namespace channel
    carried far fewer notifications than messages, about one per window, each
    a signal with ``"coalesced": true``.
    """
    seed = int(os.environ.get("PGMQ_COALESCE_SEED", random.randrange(2**32)))
    print(f"chaos seed {seed} (replay: PGMQ_COALESCE_SEED={seed})")
    where = f"seed {seed}, mode {mode}"
    config = PgmqNotifyConfig(mode=mode, coalesce_ms=COALESCE_MS)
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (QUEUE,))
    sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(QUEUE))])
    run = Run(seed)
    consumers = [
        PgmqConsumer(dsn, QUEUE, config, visibility_timeout=VISIBILITY_TIMEOUT, batch_size=CONSUMER_BATCH)
        for _ in range(2)
    ]
    workers: list[asyncio.Task[None]] = []
    try:
        for consumer in consumers:
            await consumer.start()
        workers = [asyncio.create_task(consume(i, c, run)) for i, c in enumerate(consumers)]
        loop = asyncio.get_running_loop()
        start = time.time()
        # Own threads: the default executor has fewer workers than producers on 2 cores.
        with ThreadPoolExecutor(PRODUCERS) as pool:
            producing = [loop.run_in_executor(pool, produce, dsn, config, i, run, start) for i in range(PRODUCERS)]
            await asyncio.gather(kill_connections(dsn, run, start), *producing)
        sent = run.all_sent()
        deadline = time.monotonic() + DRAIN_SECONDS
        while not set(sent) <= {c.msg_id for c in run.claims} and time.monotonic() < deadline:
            for worker in workers:
                if worker.done():
                    worker.result()  # a consumer that died fails the test with its error
            await asyncio.sleep(0.05)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for consumer in consumers:
            await consumer.close()

    claimed = Counter(c.msg_id for c in run.claims)
    lost = set(sent) - set(claimed)
    assert not lost, f"{len(lost)} of {len(sent)} messages never claimed, e.g. {sorted(lost)[:10]} ({where})"
    assert set(claimed) <= set(sent), f"claimed ids nobody acknowledged: {sorted(set(claimed) - set(sent))[:10]}"
    twice = [msg_id for msg_id, n in claimed.items() if n > 1]
    assert not twice, f"claimed more than once: {twice[:10]} ({where})"
    mismatched = [c for c in run.claims if c.key != sent[c.msg_id].key]
    assert not mismatched, f"bodies that do not match their id: {mismatched[:5]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        left = conn.execute("SELECT queue_length FROM pgmq.metrics(%s)", (QUEUE,)).fetchone()
        assert left == (0,), f"{left} claimed messages left undeleted ({where})"
    assert {c.consumer for c in run.claims} == {0, 1}, "both consumers claimed"
    # The plan cut listeners and consumer connections: both kinds came back.
    assert len(run.kills) == KILLS
    assert sum(c.listener.stats.reconnects for c in consumers if c.listener is not None) >= 1
    assert sum(c.stats.reconnects for c in consumers) >= 1

    waits = Waits.of(run, sent)
    downs = ", ".join(f"{k.back - k.at:.2f}" for k in run.kills)
    print(f"{len(sent)} messages; {waits.summary()}; outages {downs} s")
    assert not waits.late, f"{len(waits.late)} late claims ({where}); {waits.summary()}; first: {waits.late[:5]}"

    events = [n.event for n in sub.drain()]
    # Windows a phase touches: either edge may cut one, a send may overrun the end, the tail has one.
    windows = sum(math.ceil((end - begin) * 1000 / COALESCE_MS) + 3 for begin, end in PHASES)
    print(f"{len(events)} notifications for {len(sent)} messages, sent in at most {windows} windows")
    assert events, "no notification at all"
    uncoalesced = [e for e in events if e.get("coalesced") is not True]
    assert not uncoalesced, f"{len(uncoalesced)} events without coalesced: true, e.g. {uncoalesced[:1]}"
    kinds = {e["event_type"] for e in events}
    assert kinds <= {"message_ready", "batch_ready"}, f"coalesced events must be signals, got {kinds}"
    assert len(events) * 5 <= len(sent), f"{len(events)} notifications for {len(sent)} messages: not coalesced"
    # At most one per window, but two sends can pass a window's gate together: rare, not the rule.
    assert len(events) <= windows * 1.1, f"{len(events)} notifications for at most {windows} windows"


@contextlib.asynccontextmanager
async def _claiming(
    dsn: str, queue: str, config: PgmqNotifyConfig
) -> AsyncIterator[tuple[PgmqConsumer, list[tuple[int, float]]]]:
    """A PgmqConsumer on ``queue`` that polls only every 30 s, claiming and deleting
    in the background and recording each claim as (msg_id, time.time()); yielded
    once its start-up catch-up has run."""
    claims: list[tuple[int, float]] = []
    async with PgmqConsumer(dsn, queue, config, poll_interval=30, visibility_timeout=30) as consumer:

        async def collect() -> None:
            async for message in consumer:
                claims.append((message.msg_id, time.time()))
                await message.delete()

        worker = asyncio.create_task(collect())
        try:
            await _until(lambda: consumer.stats.catch_up_reads >= 1, 10.0, "the start-up catch-up")
            yield consumer, claims
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def _into_next_window(window_ms: int) -> float:
    """Sleep until 5 ms into the next window; return when that window began (time.time()).

    Windows are epoch milliseconds // window_ms on the server's clock, which is
    this machine's: starting just after one opens leaves the whole of it to run.
    """
    window_start = (math.floor(time.time() * 1000 / window_ms) + 1) * window_ms / 1000
    await asyncio.sleep(window_start + 0.005 - time.time())
    return window_start


async def test_silent_sends_of_the_window_are_claimed_by_the_recheck_not_the_poll(
    dsn: str, subscribe: Subscribe
) -> None:
    """One notifying send, then five silent ones in its 200 ms window: all six claimed within ~0.2 s.

    The consumer polls every 30 s, and the silent messages are sent only after
    the announced one was claimed, 80 ms into the window (so the read that
    answered the event could not see them): only the consumer re-reading the
    queue for the rest of the window can find them in time, and its stats say
    the re-reads did. Exactly one notification is sent, a signal with
    ``"coalesced": true``.
    """
    window_ms = 200
    queue = "burst_queue"
    config = PgmqNotifyConfig(coalesce_ms=window_ms)
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as first_conn, psycopg.connect(dsn, autocommit=True) as other_conn:
        first_conn.execute("SELECT pgmq.create(%s)", (queue,))
        sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(queue))])
        async with _claiming(dsn, queue, config) as (consumer, claims):
            window_start = await _into_next_window(window_ms)
            first = plain_producer(first_conn).send(queue, {"n": 0})
            first_sent = time.time()
            await _until(lambda: len(claims) >= 1, window_start + 0.15 - time.time(), "the announced message")
            await asyncio.sleep(max(0.0, window_start + 0.08 - time.time()))
            silent = [plain_producer(other_conn).send(queue, {"n": n}) for n in range(1, 6)]
            assert time.time() < window_start + window_ms / 1000, "too slow to stay in one window"
            await _until(lambda: len(claims) >= 6, 10.0, "all six messages")
            await asyncio.sleep(0.3)  # a second claim of any of them would show now

    ids = [msg_id for msg_id, _ in claims]
    assert sorted(ids) == sorted([first, *silent]), f"claimed {ids}, sent {[first, *silent]}"
    last_wait = max(at for _, at in claims) - first_sent
    bound = window_ms / 1000 + 0.5
    print(f"announced message claimed after {claims[0][1] - first_sent:.3f} s; all six after {last_wait:.3f} s")
    assert last_wait <= bound, f"silent messages claimed {last_wait:.3f} s after the first send (> {bound} s)"
    assert consumer.stats.claimed_by_recheck == 5
    events = [n.event for n in sub.drain()]
    assert len(events) == 1, f"one notification for the whole window, got {events}"
    assert events[0]["event_type"] == "message_ready"
    assert events[0]["msg_id"] == first and events[0]["coalesced"] is True


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


async def test_a_send_that_opens_the_window_with_no_rows_still_wakes_the_consumer(
    dsn: str, subscribe: Subscribe
) -> None:
    """An INSERT into a queue table that finds no rows (an outbox job with nothing
    to move, say) opens a window yet inserts nothing: it must still signal.

    Otherwise the window is taken without a notification, and the silent sends
    that follow in it wait for the next window's first send or the slow poll
    (30 s here). With the signal (``batch_ready`` with no ids, ``"coalesced":
    true``) the consumer re-reads the queue and claims them within the window.
    """
    window_ms = 200
    queue = "empty_batch_queue"
    config = PgmqNotifyConfig(coalesce_ms=window_ms)
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as first_conn, psycopg.connect(dsn, autocommit=True) as other_conn:
        first_conn.execute("SELECT pgmq.create(%s)", (queue,))
        sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(queue))])
        async with _claiming(dsn, queue, config) as (_, claims):
            window_start = await _into_next_window(window_ms)
            opened = time.time()
            moved = first_conn.execute(
                f"INSERT INTO pgmq.q_{queue} (vt, message) SELECT now(), '{{}}'::jsonb WHERE false"
            ).rowcount
            assert moved == 0
            silent = [plain_producer(other_conn).send(queue, {"n": n}) for n in range(3)]
            assert time.time() < window_start + window_ms / 1000, "too slow to stay in one window"
            await _until(lambda: len(claims) >= 3, 10.0, "the three silent messages")

    assert sorted(msg_id for msg_id, _ in claims) == sorted(silent)
    last_wait = max(at for _, at in claims) - opened
    bound = window_ms / 1000 + 0.5
    assert last_wait <= bound, f"silent messages claimed {last_wait:.3f} s after the window opened (> {bound} s)"
    events = [n.event for n in sub.drain()]
    assert len(events) == 1, f"one notification for the whole window, got {events}"
    assert events[0]["event_type"] == "batch_ready" and events[0]["coalesced"] is True, events[0]
    assert events[0]["msg_ids"] == [] and events[0]["message_count"] == 0, events[0]


async def test_silent_delayed_sends_are_claimed_when_they_become_visible(dsn: str, subscribe: Subscribe) -> None:
    """Sends with the same delay in one window: all claimed soon after their ``vt``, not at the poll.

    Only the first is announced, and when its event arrives the others are not
    visible yet, so re-reading at once finds nothing. The consumer must wake
    again at the announced ``ready_at`` and re-read until the queue is quiet.
    """
    window_ms = 200
    delay = 1
    queue = "delayed_queue"
    config = PgmqNotifyConfig(coalesce_ms=window_ms)
    install(dsn, config)
    send = "SELECT pgmq.send(%s, %s::jsonb, %s)"
    with psycopg.connect(dsn, autocommit=True) as first_conn, psycopg.connect(dsn, autocommit=True) as other_conn:
        first_conn.execute("SELECT pgmq.create(%s)", (queue,))
        sub = subscribe(dsn, [config.message_ready_channel(config.extract_namespace(queue))])
        async with _claiming(dsn, queue, config) as (_, claims):
            window_start = await _into_next_window(window_ms)
            first_sent = time.time()
            (first,) = first_conn.execute(send, (queue, '{"n": 0}', delay)).fetchone() or ()
            await asyncio.sleep(0.05)  # the event has arrived and been answered by now
            silent = [other_conn.execute(send, (queue, f'{{"n": {n}}}', delay)).fetchone()[0] for n in (1, 2, 3)]
            assert time.time() < window_start + window_ms / 1000, "too slow to stay in one window"
            await _until(lambda: len(claims) >= 4, 10.0, "all four delayed messages")

    assert sorted(msg_id for msg_id, _ in claims) == sorted([first, *silent])
    last_wait = max(at for _, at in claims) - first_sent
    bound = delay + window_ms / 1000 + 0.5
    assert last_wait <= bound, f"delayed messages claimed {last_wait:.3f} s after the first send (> {bound} s)"
    events = [n.event for n in sub.drain()]
    assert len(events) == 1 and events[0]["msg_id"] == first and events[0]["coalesced"] is True, events

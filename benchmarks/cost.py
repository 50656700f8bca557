"""Cost per send: the sending backend's own CPU time, per message, for every variant.

Throughput ratios on a small shared machine move with whatever else runs
(pgbench, the listening backend and the Python listener share the cores). The
CPU time that the sending backend itself spends (``/proc/<pid>/schedstat``,
first field: nanoseconds on a CPU) does not wait on the disk or on other
processes, so it says what a notification costs the producer and where it goes.

One connection per variant sends a few statements back to back (autocommit:
each a transaction of its own, its commit and the NOTIFY it queues included),
prepared as pgbench ``-M prepared`` does, after one warm-up statement. A round
runs every case with every variant (the variant order rotates from round to
round) and each cell is short (10 single sends), so that many rounds interleave
finely with whatever else the machine does; the figure reported is the lower
quartile over rounds, the least disturbed measurements, with the spread
(interquartile range) beside it.
A LISTEN connection per variant drains its channel meanwhile and counts the ids
announced, as in the producer phase.

Each cell is measured two ways (``METHODS``), interleaved in every round:
``client``, one statement per round trip from this process, as an application
sends; and ``loop``, the same statements sent and committed back to back by a
procedure in the server (``CALL bench_cost_loop``). The loop has no round trip,
no protocol work and no sleep between statements, after which a backend finds
its caches cold; it sends ``LOOP_FACTOR`` times as many statements per cell, and
with ``synchronous_commit = off`` for the call, so that the WAL flush's kernel
time (the same for every variant, and the noisiest part of a commit) stays out
of it. What it measures is the SQL and the commit's own work, NOTIFY included:
the figure that steers the trigger's SQL (issue #20). The client figure, with
durable commits, is what an application's send costs.

Every sending backend is pinned to one and the same CPU (the last this process
may use) for the phase. Unpinned, each variant's backend tends to stay on the
CPU it started on, and on a shared 2-core machine one CPU can be much busier
than the other for minutes, and a variant then measures tens of µs more or less
than it costs (in a scratch run, thirteen connections calling small plpgsql
functions that differ by 1-3 µs measured up to 30 µs apart; pinned, they came
out 1-3 µs apart). Pinned, the variants share that CPU's state and the
interleaving cancels the rest.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import server
from benchmarks.common import QUEUE, Progress, Sizes, percentile
from benchmarks.producers import MESSAGE, AnnouncementCounter
from benchmarks.server import BenchServer, Variant


def message_of(size: int) -> str:
    """A JSON object of ``size`` bytes as PostgreSQL's jsonb prints it."""
    head, tail = '{"blob": "', '", "order_id": 12345}'
    return head + "x" * (size - len(head) - len(tail)) + tail


# 7 KB: the complete event still fits the default max_payload_size (7800 bytes), so it carries the message.
SMALL_MESSAGE, LARGE_MESSAGE = message_of(300), message_of(7000)


@dataclass(frozen=True)
class CostCase:
    """One send shape: ``batch`` messages of ``message`` per statement."""

    key: str
    label: str
    batch: int
    message: str
    # Statements per cell: this share of ``Sizes.cost_sends`` (at least one).
    share: float

    def statements(self, sizes: Sizes) -> int:
        """Statements sent per cell."""
        return max(int(sizes.cost_sends * self.share), 1)

    def query(self, variant: Variant) -> str:
        """The statement, with the queue and message as parameters."""
        if self.batch == 1:
            return f"SELECT * FROM {variant.send_fn}(%s, %s::jsonb)"
        return f"SELECT count(*) FROM {variant.batch_fn}(%s, array_fill(%s::jsonb, ARRAY[{self.batch}]))"


# How a cell's statements are sent: see the module docstring.
METHODS = ("client", "loop")

# Created in every variant's database: sends and commits ``p_sends`` statements of one case.
LOOP_PROCEDURE = """
CREATE OR REPLACE PROCEDURE public.bench_cost_loop(p_queue text, p_message jsonb, p_batch integer, p_sends integer)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..p_sends LOOP
        IF p_batch = 1 THEN
            PERFORM {send_fn}(p_queue, p_message);
        ELSE
            PERFORM {batch_fn}(p_queue, pg_catalog.array_fill(p_message, ARRAY[p_batch]));
        END IF;
        COMMIT;
    END LOOP;
END $$
"""
_CALL_LOOP = "CALL public.bench_cost_loop(%s, %s::jsonb, %s, %s)"
# The loop sends this many times the client's statements per cell: it is cheap, and longer cells are steadier.
LOOP_FACTOR = 5


CASES = (
    CostCase("send-300b", "single send, 300-byte message", 1, SMALL_MESSAGE, 1.0),
    CostCase("send-7kb", "single send, 7 KB message", 1, LARGE_MESSAGE, 1.0),
    CostCase("batch100", "send_batch(100), per message", 100, MESSAGE, 0.2),
    CostCase("batch1000", "send_batch(1000), per message", 1000, MESSAGE, 0.1),
)


_TRUNCATE = f"TRUNCATE pgmq.q_{QUEUE}"
_SEQUENCE = f"pg_catalog.pg_get_serial_sequence('pgmq.q_{QUEUE}', 'msg_id')"
# Every variant's message ids start here (or above, at the same value for all): a batch event's size
# depends on the ids' width, and the producer phase leaves some variants' ids far ahead of others'.
FIRST_ID = 1_000_000


def align_ids(conns: dict[str, psycopg.Connection[Any]]) -> int:
    """Set every variant's next message id to one common value; returns it.

    At least FIRST_ID, and past every id already used, so that no id is sent
    twice (the listeners count duplicates) and every variant's ids have the
    same number of digits for the whole phase (each sends as many messages).
    """
    last_value = f"SELECT pg_catalog.pg_sequence_last_value({_SEQUENCE}::pg_catalog.regclass)"
    used = [int(row[0] or 0) for conn in conns.values() if (row := conn.execute(last_value).fetchone())]
    start = max(FIRST_ID, *(u + 1 for u in used))
    for conn in conns.values():
        conn.execute(f"SELECT pg_catalog.setval({_SEQUENCE}, %s, false)", (start,))
    return start


@dataclass
class CostCell:
    """One variant sending one case's statements once, by one method."""

    case: str
    variant: str
    round: int
    messages: int
    cpu_us: float
    method: str = "client"

    @property
    def per_message(self) -> float:
        """Backend CPU per message, in µs."""
        return self.cpu_us / self.messages


@dataclass
class CostSummary:
    """Lower quartile over rounds of one (method, case, variant), and how far it is above plain and the floor."""

    method: str
    case: str
    label: str
    variant: str
    us_per_message: float
    spread: float
    over_plain: float
    over_floor: float
    sent: int
    announced: int
    duplicates: int


def backend_cpu_ns(pid: int) -> int:
    """Nanoseconds that process ``pid`` has spent on a CPU (first field of its schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def available() -> bool:
    """Whether this process can read the server backends' schedstat (same machine, Linux)."""
    return Path(f"/proc/{os.getpid()}/schedstat").exists()


def pin_to_one_cpu(pids: list[int]) -> int | None:
    """Pin the backends ``pids`` to the last CPU this process may use; that CPU, or None when not allowed."""
    try:
        cpu = max(os.sched_getaffinity(0))
        for pid in pids:
            os.sched_setaffinity(pid, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def run_count(sizes: Sizes, variants: tuple[Variant, ...] = server.COST_VARIANTS) -> int:
    """How many cells :func:`run` measures (for the progress bar)."""
    return sizes.cost_rounds * len(CASES) * len(METHODS) * len(variants)


def _measure(conn: psycopg.Connection[Any], pid: int, case: CostCase, variant: Variant, n: int) -> float:
    """Backend CPU µs for ``n`` statements of ``case`` sent one by one (after one warm-up)."""
    query, params = case.query(variant), (QUEUE, case.message)
    conn.execute(query, params, prepare=True)
    before = backend_cpu_ns(pid)
    for _ in range(n):
        conn.execute(query, params, prepare=True)
    return (backend_cpu_ns(pid) - before) / 1000


def _measure_loop(conn: psycopg.Connection[Any], pid: int, case: CostCase, n: int) -> float:
    """Backend CPU µs for ``n`` statements of ``case`` sent by the in-server loop (after a warm-up call)."""
    conn.execute("SET synchronous_commit = off")
    try:
        conn.execute(_CALL_LOOP, (QUEUE, case.message, case.batch, 1))
        before = backend_cpu_ns(pid)
        conn.execute(_CALL_LOOP, (QUEUE, case.message, case.batch, n))
        return (backend_cpu_ns(pid) - before) / 1000
    finally:
        conn.execute("RESET synchronous_commit")


def run(
    bench: BenchServer, sizes: Sizes, progress: Progress, variants: tuple[Variant, ...] = server.COST_VARIANTS
) -> tuple[list[CostCell], dict[str, AnnouncementCounter], dict[str, int]]:
    """Every case with every variant, ``sizes.cost_rounds`` times, interleaved.

    Returns the cells, the listener of each variant (stopped) and the messages each variant sent.
    """
    conns = {v.name: psycopg.connect(bench.dsn(v), autocommit=True) for v in variants}
    counters = {v.name: AnnouncementCounter(bench.dsn(v), v) for v in variants}
    sent = dict.fromkeys(conns, 0)
    cells: list[CostCell] = []
    try:
        pids = {name: int(c.execute("SELECT pg_backend_pid()").fetchone()[0]) for name, c in conns.items()}  # type: ignore[index]
        pinned = pin_to_one_cpu(list(pids.values()))
        progress.note(
            f"cost: sending backends pinned to CPU {pinned}"
            if pinned is not None
            else "cost: sending backends could not be pinned to one CPU (figures may differ by backend placement)"
        )
        first_id = align_ids(conns)
        progress.note(f"cost: every variant's message ids start at {first_id:,}")
        for variant in variants:
            procedure = LOOP_PROCEDURE.format(send_fn=variant.send_fn, batch_fn=variant.batch_fn)
            conns[variant.name].execute(procedure.encode())
        for counter in counters.values():
            counter.start()
        for round_no in range(sizes.cost_rounds):
            server.checkpoint(bench)
            for case in CASES:
                shift = round_no % len(variants)
                for method in METHODS:
                    for variant in variants[shift:] + variants[:shift]:
                        progress.step(
                            f"cost round {round_no + 1}/{sizes.cost_rounds}: {case.label}, {method}, {variant.name}"
                        )
                        conn, pid = conns[variant.name], pids[variant.name]
                        conn.execute(_TRUNCATE)
                        n = case.statements(sizes)
                        if method == "loop":
                            n *= LOOP_FACTOR
                            cpu = _measure_loop(conn, pid, case, n)
                        else:
                            cpu = _measure(conn, pid, case, variant, n)
                        sent[variant.name] += (n + 1) * case.batch
                        cells.append(CostCell(case.key, variant.name, round_no, n * case.batch, cpu, method))
    finally:
        for name, counter in counters.items():
            counter.finish(sent[name])
        for conn in conns.values():
            conn.close()
    return cells, counters, sent


def summarize(
    cells: list[CostCell], counters: dict[str, AnnouncementCounter], sent: dict[str, int]
) -> list[CostSummary]:
    """Per method, case and variant: lower quartile of µs per message over rounds, and distance to plain and floor."""
    out: list[CostSummary] = []
    variants = list(dict.fromkeys(c.variant for c in cells))
    methods = [m for m in METHODS if any(c.method == m for c in cells)]
    for method, case in ((m, c) for m in methods for c in CASES):
        quartile: dict[str, tuple[float, float]] = {}
        for name in variants:
            values = sorted(
                c.per_message for c in cells if c.method == method and c.case == case.key and c.variant == name
            )
            if values:
                quartile[name] = (percentile(values, 25), percentile(values, 75) - percentile(values, 25))
        plain = quartile.get("plain", (float("nan"), 0.0))[0]
        floor = quartile.get("floor", (float("nan"), 0.0))[0]
        for name, (value, spread) in quartile.items():
            counter = counters.get(name)
            out.append(
                CostSummary(
                    method=method,
                    case=case.key,
                    label=case.label,
                    variant=name,
                    us_per_message=value,
                    spread=spread,
                    over_plain=value - plain,
                    over_floor=value - floor,
                    sent=sent.get(name, 0),
                    announced=len(counter.ids) if counter else 0,
                    duplicates=counter.duplicates if counter else 0,
                )
            )
    return out


def to_json(cells: list[CostCell], summaries: list[CostSummary]) -> dict[str, Any]:
    """Raw cells and summaries, for latest.json."""
    return {"cells": [asdict(c) for c in cells], "summary": [asdict(s) for s in summaries]}

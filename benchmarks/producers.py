"""Producer throughput with pgbench: every variant, single sends and batches, 1 to 8 connections.

Each cell is one pgbench run (``-M prepared -n -T secs -c N -j N``) of a
one-statement script against one variant's database. A round runs every case
with every variant back to back (the variant order rotates from round to
round), and ratios are taken within a round, then the median over rounds is
reported, so that slow moments of the machine cancel out of the ratios.

While pgbench runs, one LISTEN connection drains the variant's notifications
(as a deployment's listener would) and counts the message ids announced, so
each run also checks that no message went unannounced. A coalescing variant
announces only the first message of each window: there the count of
notifications per message is reported instead (and a message announced twice
is still an error).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import server
from benchmarks.common import NAMESPACE, QUEUE, Progress, Sizes, median
from benchmarks.server import BenchServer, Variant

MESSAGE = '{"order_id": 12345, "customer": "benchmark", "amount": 99.5, "items": ["a", "b", "c"]}'


@dataclass(frozen=True)
class Case:
    """One producer shape: ``clients`` connections each sending ``batch`` messages per statement."""

    key: str
    label: str
    clients: int
    batch: int
    # Names of the variants measured in this case; empty means all of them.
    only: tuple[str, ...] = ()

    def variants(self, variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        """The variants this case runs, in the given order."""
        return tuple(v for v in variants if not self.only or v.name in self.only)

    def script(self, variant: Variant) -> str:
        """The pgbench script: one statement, as an application would send it."""
        if self.batch == 1:
            return f"SELECT * FROM {variant.send_fn}('{QUEUE}', '{MESSAGE}'::jsonb);\n"
        return (
            f"SELECT count(*) FROM {variant.batch_fn}('{QUEUE}', "
            f"array_fill('{MESSAGE}'::jsonb, ARRAY[{self.batch}]));\n"
        )


# 2 and 8 connections only fill in the scaling curve: skip PGMQ's own notify there to save time.
_SCALING_ONLY = ("plain", "trigger", "wrapper", "coalesce20")
SCALING_CASES = tuple(
    Case(f"send-c{n}", f"send, {n} conn", n, 1, () if n in (1, 4) else _SCALING_ONLY) for n in (1, 2, 4, 8)
)
BATCH_CASES = (
    Case("batch100-c1", "send_batch(100), 1 conn", 1, 100),
    Case("batch100-c4", "send_batch(100), 4 conn", 4, 100),
    Case("batch1000-c1", "send_batch(1000), 1 conn", 1, 1000),
)
CASES = SCALING_CASES + BATCH_CASES


@dataclass
class Cell:
    """One pgbench run."""

    case: str
    variant: str
    round: int
    clients: int
    batch: int
    tps: float
    msgs_per_s: float
    inserted: int
    announced: int
    duplicates: int
    notifications: int
    failed: int
    # Whether every message must be announced; else unannounced messages are not missing.
    announces_each: bool
    # Wall time of the pgbench run (connections included), for notifications per second.
    seconds: float

    @property
    def missing(self) -> int:
        """Messages inserted but never announced, where each must be (0 elsewhere)."""
        return max(self.inserted - self.announced, 0) if self.announces_each else 0


class AnnouncementCounter(threading.Thread):
    """Drains one LISTEN connection in the background and counts the message ids announced."""

    def __init__(self, dsn: str, variant: Variant) -> None:
        super().__init__(daemon=True)
        self.variant = variant
        self.conn = psycopg.connect(dsn, autocommit=True)
        channel = (
            variant.config.message_ready_channel(NAMESPACE) if variant.config is not None else variant.native_channel
        )
        self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self.ids: set[int] = set()
        self.duplicates = 0
        self.notifications = 0
        self.last_at = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for notify in self.conn.notifies(timeout=0.05):
                self.notifications += 1
                self.last_at = time.monotonic()
                if self.variant.config is not None:
                    self._count(notify.payload)

    def _count(self, payload: str) -> None:
        event = json.loads(payload)
        ids = event.get("msg_ids") or [event["msg_id"]]
        for msg_id in ids:
            if msg_id in self.ids:
                self.duplicates += 1
            self.ids.add(msg_id)

    def finish(self, expected: int, quiet: float = 0.3, limit: float = 10.0) -> None:
        """Wait until ``expected`` ids arrived (or ``quiet`` s pass without one), then stop."""
        deadline = time.monotonic() + limit
        while self.variant.notifies and time.monotonic() < deadline:
            if self.variant.announces_each and len(self.ids) >= expected:
                break
            if time.monotonic() - self.last_at > quiet:
                break
            time.sleep(0.02)
        self._halt.set()
        self.join()
        self.conn.close()


_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_FAILED = re.compile(r"number of failed transactions: (\d+)")


def run_pgbench(
    bench: BenchServer, variant: Variant, case: Case, seconds: int, workdir: Path, transactions: int = 0
) -> tuple[float, int]:
    """Run one pgbench cell for ``seconds`` (or ``transactions`` per client); returns (tps, failed transactions)."""
    script = workdir / f"{variant.name}-{case.key}.sql"
    script.write_text(case.script(variant))
    host, port = bench.host_port
    command = [
        bench.pgbench,
        *("-h", host, "-p", str(port), "-U", "postgres"),
        *("-n", "-M", "prepared"),
        *(("-t", str(transactions)) if transactions else ("-T", str(seconds))),
        *("-c", str(case.clients), "-j", str(case.clients)),
        *("-f", str(script)),
        variant.name,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed for {variant.name}/{case.key}: {done.stderr.strip() or done.stdout}")
    match = _TPS.search(done.stdout)
    if match is None:
        raise RuntimeError(f"no tps in pgbench output for {variant.name}/{case.key}:\n{done.stdout}")
    failed = _FAILED.search(done.stdout)
    return float(match.group(1)), int(failed.group(1)) if failed else 0


def measure_cell(bench: BenchServer, variant: Variant, case: Case, round_no: int, sizes: Sizes, workdir: Path) -> Cell:
    """Empty the queue, listen, run pgbench, then check every inserted message was announced."""
    dsn = bench.dsn(variant)
    server.reset_queue(dsn)
    counter = AnnouncementCounter(dsn, variant)
    counter.start()
    began = time.monotonic()
    try:
        tps, failed = run_pgbench(bench, variant, case, sizes.producer_seconds, workdir, sizes.producer_transactions)
    finally:
        seconds = time.monotonic() - began
        inserted = server.queue_length(dsn)
        counter.finish(inserted)
    return Cell(
        case=case.key,
        variant=variant.name,
        round=round_no,
        clients=case.clients,
        batch=case.batch,
        tps=tps,
        msgs_per_s=tps * case.batch,
        inserted=inserted,
        announced=len(counter.ids),
        duplicates=counter.duplicates,
        notifications=counter.notifications,
        failed=failed,
        announces_each=variant.announces_each,
        seconds=seconds,
    )


def cell_count(sizes: Sizes, cases: tuple[Case, ...] = CASES, variants: tuple[Variant, ...] = server.VARIANTS) -> int:
    """How many pgbench runs :func:`run` makes (for the progress bar)."""
    return sizes.producer_rounds * sum(len(case.variants(variants)) for case in cases)


def run(
    bench: BenchServer,
    sizes: Sizes,
    progress: Progress,
    cases: tuple[Case, ...] = CASES,
    variants: tuple[Variant, ...] = server.VARIANTS,
) -> list[Cell]:
    """Every case with every variant, ``sizes.producer_rounds`` times, interleaved."""
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="pgmq-bench-") as tmp:
        workdir = Path(tmp)
        for round_no in range(sizes.producer_rounds):
            server.checkpoint(bench)
            # Rotate who goes first, so no variant always runs right after another.
            for case in cases:
                own = case.variants(variants)
                shift = round_no % len(own)
                for variant in own[shift:] + own[:shift]:
                    progress.step(
                        f"producers round {round_no + 1}/{sizes.producer_rounds}: {case.label}, {variant.name}"
                    )
                    cells.append(measure_cell(bench, variant, case, round_no, sizes, workdir))
    return cells


@dataclass
class Summary:
    """Median over rounds of one (case, variant): throughput and ratio to plain."""

    case: str
    label: str
    variant: str
    clients: int
    batch: int
    msgs_per_s: float
    ratio: float
    ratio_min: float
    ratio_max: float
    inserted: int
    announced: int
    missing: int
    duplicates: int
    failed: int
    notifications: int
    seconds: float


def summarize(cells: list[Cell], cases: tuple[Case, ...] = CASES) -> list[Summary]:
    """Per case and variant: median msgs/s, and the median of the per-round ratios to plain."""
    by_key = {(c.case, c.variant, c.round): c for c in cells}
    rounds = sorted({c.round for c in cells})
    variants = list(dict.fromkeys(c.variant for c in cells))
    out: list[Summary] = []
    for case in cases:
        for name in variants:
            own = [by_key[(case.key, name, r)] for r in rounds if (case.key, name, r) in by_key]
            if not own:
                continue
            ratios = [
                cell.msgs_per_s / base.msgs_per_s
                for cell in own
                if (base := by_key.get((case.key, "plain", cell.round))) is not None and base.msgs_per_s > 0
            ]
            out.append(
                Summary(
                    case=case.key,
                    label=case.label,
                    variant=name,
                    clients=case.clients,
                    batch=case.batch,
                    msgs_per_s=median([c.msgs_per_s for c in own]),
                    ratio=median(ratios),
                    ratio_min=min(ratios, default=float("nan")),
                    ratio_max=max(ratios, default=float("nan")),
                    inserted=sum(c.inserted for c in own),
                    announced=sum(c.announced for c in own),
                    missing=sum(c.missing for c in own),
                    duplicates=sum(c.duplicates for c in own),
                    failed=sum(c.failed for c in own),
                    notifications=sum(c.notifications for c in own),
                    seconds=sum(c.seconds for c in own),
                )
            )
    return out


def to_json(cells: list[Cell], summaries: list[Summary]) -> dict[str, Any]:
    """Raw cells and summaries, for latest.json."""
    return {"cells": [asdict(c) for c in cells], "summary": [asdict(s) for s in summaries]}

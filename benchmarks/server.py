"""One throwaway PostgreSQL with one database per variant, and what the machine is.

Every variant lives in its own database of the same server, so each
measurement can run the variants back to back (A B C D E, A B C D E, ...) and
the ratios see the same machine state.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from benchmarks.common import QUEUE
from pgmq_codegen import render
from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime.config import PgmqNotifyConfig

TEMPLATE = "bench_template"
# Durable commits, as users run them: every commit waits for its WAL flush.
SERVER_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "max_connections": "100",
}


@dataclass(frozen=True)
class Variant:
    """One way of sending: its database, how it sends, and whether every message is announced."""

    name: str
    label: str
    config: PgmqNotifyConfig | None = None
    native_throttle_ms: int | None = None
    send_fn: str = "pgmq.send"
    batch_fn: str = "pgmq.send_batch"
    # SQL run in the variant's database after PGMQ (the cost phase's floor trigger).
    setup_sql: str = ""

    @property
    def announces_each(self) -> bool:
        """True when every message must be announced (pgmq-codegen's modes, unless they coalesce)."""
        return self.config is not None and not self.coalesces

    @property
    def coalesces(self) -> bool:
        """True when pgmq-codegen notifies at most once per queue per window (``coalesce_ms``)."""
        return self.config is not None and self.config.coalesce_ms > 0

    @property
    def notifies(self) -> bool:
        """True when sending emits a NOTIFY at all."""
        return self.config is not None or self.native_throttle_ms is not None

    @property
    def native_channel(self) -> str:
        """The channel of PGMQ's own ``enable_notify_insert``."""
        return f"pgmq.q_{QUEUE}.INSERT"


TRIGGER_CONFIG = PgmqNotifyConfig(mode="trigger")
WRAPPER_CONFIG = PgmqNotifyConfig(mode="wrapper")
# The window of the coalescing variant: issue #9 asks for 10-50 ms.
COALESCE_MS = 20
COALESCE_CONFIG = PgmqNotifyConfig(mode="trigger", coalesce_ms=COALESCE_MS)

PLAIN = Variant("plain", "plain pgmq.send")
TRIGGER = Variant("trigger", "pgmq-codegen trigger", config=TRIGGER_CONFIG)
WRAPPER = Variant(
    "wrapper",
    "pgmq-codegen wrapper",
    config=WRAPPER_CONFIG,
    send_fn="pgmq_notify.send_with_notify",
    batch_fn="pgmq_notify.send_batch_with_notify",
)
COALESCE = Variant("coalesce20", f"pgmq-codegen trigger, coalesce_ms={COALESCE_MS}", config=COALESCE_CONFIG)
NATIVE0 = Variant("native0", "PGMQ notify 0 ms", native_throttle_ms=0)
NATIVE250 = Variant("native250", "PGMQ notify 250 ms", native_throttle_ms=250)
VARIANTS = (PLAIN, TRIGGER, WRAPPER, COALESCE, NATIVE0, NATIVE250)

# The floor of any trigger that sees the rows: a statement-level trigger with a
# transition table that does nothing. Only the cost phase measures it.
FLOOR_SQL = f"""
CREATE FUNCTION public.bench_floor() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER bench_floor AFTER INSERT ON pgmq.q_{QUEUE} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.bench_floor();
"""
FLOOR = Variant("floor", "empty statement trigger (floor)", setup_sql=FLOOR_SQL)
# What NOTIFY itself costs: the floor plus the two pg_notify calls of a default install, each carrying
# the first row's message as it is (no event built, no size check): no trigger that notifies twice
# can cost less.
NOTIFY_FLOOR_SQL = f"""
CREATE FUNCTION public.bench_notify_floor() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v_payload text;
BEGIN
    SELECT message::text INTO v_payload FROM new_rows LIMIT 1;
    PERFORM pg_notify('pgmq_message_ready.bench', v_payload), pg_notify('pgmq_message_ready', v_payload);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify_floor AFTER INSERT ON pgmq.q_{QUEUE} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.bench_notify_floor();
"""
NOTIFY_FLOOR = Variant("notify_floor", "floor + 2 bare NOTIFY", setup_sql=NOTIFY_FLOOR_SQL)
# The default trigger as it was before issue #20 rebuilt it (benchmarks/baseline): the
# new one's gain, measured in the same run.
TRIGGER_BEFORE = Variant(
    "trigger_before",
    "trigger before #20 (43bf804)",
    config=TRIGGER_CONFIG,
    setup_sql=(Path(__file__).parent / "baseline" / "trigger_before_20.sql").read_text(),
)
TRIGGER_NO_GLOBAL = Variant(
    "trigger_noglobal", "trigger, global_channel=false", config=PgmqNotifyConfig(mode="trigger", global_channel=False)
)
TRIGGER_NEVER = Variant(
    "trigger_never",
    'trigger, include_payload="never"',
    config=PgmqNotifyConfig(mode="trigger", include_payload="never"),
)
COST_VARIANTS = (
    *(PLAIN, FLOOR, NOTIFY_FLOOR),
    *(TRIGGER, TRIGGER_BEFORE, TRIGGER_NO_GLOBAL, TRIGGER_NEVER, COALESCE, WRAPPER),
    *(NATIVE0, NATIVE250),
)
ALL_VARIANTS = tuple(dict.fromkeys(VARIANTS + COST_VARIANTS))


@dataclass
class BenchServer:
    """The started server and the DSN of each variant's database."""

    server: LocalPostgres

    def dsn(self, variant: Variant) -> str:
        """DSN of the variant's database."""
        return self.server.dsn_for(variant.name)

    @property
    def pgbench(self) -> str:
        """Path of pgbench from the server's own binaries (falls back to PATH)."""
        assert self.server.bindir is not None
        candidate = Path(self.server.bindir) / "pgbench"
        return str(candidate) if candidate.exists() else "pgbench"

    @property
    def host_port(self) -> tuple[str, int]:
        """Where pgbench connects."""
        return "127.0.0.1", self.server.port


def create_variant_databases(bench: BenchServer, variants: tuple[Variant, ...] = VARIANTS) -> None:
    """PGMQ and the queue in a template, then one copy per variant with its notification set-up."""
    with psycopg.connect(bench.server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    template_dsn = bench.server.dsn_for(TEMPLATE)
    install_pgmq(template_dsn)
    with psycopg.connect(template_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (QUEUE,))
    with psycopg.connect(bench.server.dsn, autocommit=True) as conn:
        for variant in variants:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(variant.name), sql.Identifier(TEMPLATE))
            )
    for variant in variants:
        with psycopg.connect(bench.dsn(variant)) as conn:
            if variant.config is not None:
                for statement in render.install_statements(variant.config):
                    conn.execute(statement.encode())
            if variant.native_throttle_ms is not None:
                conn.execute("SELECT pgmq.enable_notify_insert(%s, %s)", (QUEUE, variant.native_throttle_ms))
            if variant.setup_sql:
                conn.execute(variant.setup_sql.encode())


def with_async_commit(dsn: str) -> str:
    """``dsn`` with ``synchronous_commit=off`` for the session.

    Safe for a consumer: a claim or delete lost in a crash only makes the
    message visible again, which at-least-once delivery allows anyway.
    """
    return make_conninfo(dsn, options="-c synchronous_commit=off")


def reset_queue(dsn: str) -> None:
    """Empty the queue table so every measurement starts from the same size."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE pgmq.{}").format(sql.Identifier(f"q_{QUEUE}")))


def queue_length(dsn: str) -> int:
    """Rows in the queue table (visible or not)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM pgmq.{}").format(sql.Identifier(f"q_{QUEUE}"))).fetchone()
    return int(row[0]) if row else 0


def checkpoint(bench: BenchServer) -> None:
    """Flush dirty pages now, so a checkpoint is less likely to land inside a measurement."""
    with psycopg.connect(bench.server.dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


@contextmanager
def started(variants: tuple[Variant, ...] = ALL_VARIANTS, fsync: bool = True) -> Iterator[BenchServer]:
    """Start the server, create the variant databases, stop and remove it all on exit.

    ``fsync=False`` turns off the disk flush (commits then cost almost nothing):
    only for comparing with figures measured that way, never the published run.
    """
    server = LocalPostgres(settings={**SERVER_SETTINGS, "fsync": "on" if fsync else "off"})
    server.start()
    try:
        bench = BenchServer(server)
        create_variant_databases(bench, variants)
        yield bench
    finally:
        server.stop()


def machine_info(bench: BenchServer) -> dict[str, Any]:
    """What the numbers were measured on."""
    with psycopg.connect(bench.server.dsn, autocommit=True) as conn:
        version_row = conn.execute("SHOW server_version").fetchone()
        settings = {
            name: str(row[0])
            for name in ("fsync", "synchronous_commit", "shared_buffers", "wal_sync_method")
            if (row := conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone())
        }
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": str(version_row[0]) if version_row else "?",
        "settings": settings,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python3 -m benchmarks.run", *sys.argv[1:]]),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0

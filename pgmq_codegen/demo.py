"""``pgmq-codegen demo``: the whole job, end to end, on a throwaway PostgreSQL."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from pgmq_codegen import generate_migration, init_config
from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime.config import PgmqNotifyConfig

QUEUE = "orders_queue"


def _sends(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Produce with plain SQL, as any PGMQ client would; return what was done."""
    done = []
    conn.execute("SELECT pgmq.create(%s)", [QUEUE])
    done.append(f"pgmq.create('{QUEUE}')")
    conn.execute("SELECT pgmq.send(%s, %s::jsonb)", [QUEUE, json.dumps({"order": 1, "item": "book"})])
    done.append("pgmq.send(small message)")
    conn.execute("SELECT pgmq.send(%s, %s::jsonb, 2)", [QUEUE, json.dumps({"order": 2, "note": "delayed 2 s"})])
    done.append("pgmq.send(message delayed by 2 s)")
    conn.execute("SELECT pgmq.send(%s, %s::jsonb)", [QUEUE, json.dumps({"order": 3, "blob": "€" * 4000})])
    done.append("pgmq.send(12 kB message: too big for NOTIFY)")
    batch = [json.dumps({"order": n}) for n in range(4, 9)]
    conn.execute("SELECT pgmq.send_batch(%s, %s::jsonb[])", [QUEUE, batch])
    done.append("pgmq.send_batch(5 messages)")
    return done


def _describe(payload: str) -> tuple[str, str, str]:
    event = json.loads(payload)
    kind = event.get("event_type", "?")
    if kind == "queue_created":
        return kind, event["queue_name"], f"namespace {event['namespace']}"
    if kind == "message_with_payload":
        return kind, f"msg {event['msg_id']}", f"message {json.dumps(event['message'])[:60]}, ready {event['ready_at']}"
    if kind == "message_ready":
        return kind, f"msg {event['msg_id']}", "signal only: fetch by id (payload too big)"
    if kind == "batch_ready":
        return kind, f"msgs {event['msg_ids']}", f"{event['message_count']} messages"
    return kind, "", payload[:60]


def run(console: Console, keep: bool = False) -> None:
    """Generate a Flyway migration, apply it to a scratch server and show the events."""
    workdir = Path(tempfile.mkdtemp(prefix="pgmq-codegen-demo-"))
    try:
        config_path = init_config.init_config(workdir / "pgmq-codegen.toml")
        config = PgmqNotifyConfig.from_file(config_path)
        console.print(f"[bold]1.[/] wrote default config {config_path}")
        result = generate_migration.generate_migration(config, "flyway", workdir / "db" / "migration")
        for path in result.files:
            console.print(f"[bold]2.[/] wrote {path}")
        with console.status("[bold]3.[/] starting a throwaway PostgreSQL…"), LocalPostgres() as pg:
            console.print(f"[bold]3.[/] PostgreSQL running on port {pg.port} (as an unprivileged user)")
            install_pgmq(pg.dsn)
            console.print("[bold]4.[/] installed PGMQ from the pgmq package's SQL")
            with psycopg.connect(pg.dsn, autocommit=True) as conn:
                conn.execute(result.files[0].read_text(encoding="utf-8").encode())
                console.print(f"[bold]5.[/] applied {result.files[0].name}")
                listener = psycopg.connect(pg.dsn, autocommit=True)
                channels = [
                    config.queue_created_channel(),
                    config.message_ready_channel(config.extract_namespace(QUEUE)),
                ]
                for channel in channels:
                    listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                console.print(f"[bold]6.[/] listening on {', '.join(channels)}")
                started = time.monotonic()
                for step in _sends(conn):
                    console.print(f"   sent: {step}")
                table = Table(title="events received", show_lines=False)
                for column in ("ms", "channel", "event_type", "what", "detail"):
                    table.add_column(column)
                for note in listener.notifies(timeout=1.0):
                    kind, what, detail = _describe(note.payload)
                    elapsed = f"{(time.monotonic() - started) * 1000:.0f}"
                    table.add_row(elapsed, note.channel, kind, what, detail)
                listener.close()
                console.print(table)
        console.print("[green]done:[/] the throwaway server is stopped and removed")
    finally:
        if keep:
            console.print(f"kept the generated files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

"""How tests send messages: through PGMQ itself or through the wrapper functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig


@dataclass
class Producer:
    """Sends with plain SQL through ``send_fn``/``batch_fn`` on an autocommit connection."""

    conn: psycopg.Connection[Any]
    send_fn: str
    batch_fn: str

    def send(self, queue: str, message: Any, headers: Any = None, delay: int | datetime | None = None) -> int:
        args: list[Any] = [queue, json.dumps(message)]
        casts = ["%s", "%s::jsonb"]
        if headers is not None:
            args.append(json.dumps(headers))
            casts.append("%s::jsonb")
        if delay is not None:
            args.append(delay)
            casts.append("%s::integer" if isinstance(delay, int) else "%s::timestamptz")
        row = self.conn.execute(f"SELECT * FROM {self.send_fn}({', '.join(casts)})", args).fetchone()
        assert row is not None
        return int(row[0])

    def send_batch(self, queue: str, messages: list[Any], delay: int | None = None) -> list[int]:
        args: list[Any] = [queue, [json.dumps(m) for m in messages]]
        casts = ["%s", "%s::jsonb[]"]
        if delay is not None:
            args.append(delay)
            casts.append("%s::integer")
        rows = self.conn.execute(f"SELECT * FROM {self.batch_fn}({', '.join(casts)})", args).fetchall()
        return [int(r[0]) for r in rows]


def producer_for(conn: psycopg.Connection[Any], config: PgmqNotifyConfig) -> Producer:
    """The send path that notifies in ``config.mode``: PGMQ's own in trigger mode, else the wrappers."""
    if config.mode == "trigger":
        return Producer(conn, "pgmq.send", "pgmq.send_batch")
    return Producer(
        conn,
        object_names.qualified(config, "send_with_notify"),
        object_names.qualified(config, "send_batch_with_notify"),
    )


def plain_producer(conn: psycopg.Connection[Any]) -> Producer:
    return Producer(conn, "pgmq.send", "pgmq.send_batch")

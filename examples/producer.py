"""A producer to copy: record each order and announce it in the same transaction (the outbox pattern).

    DATABASE_URL=postgresql://app@localhost/app python examples/producer.py 10

The order row and its message commit together or not at all: a rolled-back
order leaves no message and no event. The client sends the way the config's
``mode`` needs (plain ``pgmq.send`` under the trigger, ``send_with_notify`` in
``wrapper`` mode), so listeners and ``PgmqConsumer`` hear of every message once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from pgmq_runtime import PgmqNotifyClient, PgmqNotifyError, load_config

log = logging.getLogger("producer")
QUEUE = "orders_queue"


async def run(dsn: str, count: int) -> list[int]:
    """Record ``count`` orders, each with its message in one transaction; the message ids."""
    config = load_config()  # ./pgmq-codegen.toml if present, else defaults
    ids = []
    async with PgmqNotifyClient(dsn, config) as client:
        await client.create_queue(QUEUE)  # does nothing if the queue exists
        async with client.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, total numeric NOT NULL)")
        for n in range(1, count + 1):
            async with client.transaction() as tx:
                await tx.execute("INSERT INTO orders VALUES (%s, %s) ON CONFLICT (id) DO NOTHING", (n, 9.5 * n))
                ids.append(await tx.send(QUEUE, {"order_id": n}, headers={"kind": "order_created"}))
        health = await client.health()
    log.info("sent %d message(s); install %s", len(ids), "in sync" if health.ok else "; ".join(health.problems))
    return ids


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        asyncio.run(run(os.environ["DATABASE_URL"], int(sys.argv[1]) if len(sys.argv) > 1 else 1))
    except PgmqNotifyError as exc:
        raise SystemExit(f"producer: {exc}") from None

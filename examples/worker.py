"""A worker to copy: consume every queue of one namespace, process each message, delete it.

    DATABASE_URL=postgresql://app@localhost/app python examples/worker.py orders

Delivery is at least once: if the worker dies after processing but before
``delete()``, the message comes back when its visibility timeout ends, so make
``process`` safe to run twice (idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from pgmq_runtime import PgmqConsumer, load_config
from pgmq_runtime.consumer import ClaimedMessage, queues_in_namespace

log = logging.getLogger("worker")


async def process(message: ClaimedMessage) -> None:
    """Your work goes here."""
    log.info("%s #%s: %s", message.queue_name, message.msg_id, message.message)


async def run(dsn: str, namespace: str, max_messages: int | None = None) -> int:
    """Consume ``namespace`` until interrupted (or ``max_messages``); returns the count."""
    config = load_config()  # ./pgmq-codegen.toml if present, else defaults
    queues = await queues_in_namespace(dsn, config, namespace)
    if not queues:
        raise SystemExit(f"no queue in namespace {namespace!r} yet")
    done = 0
    async with PgmqConsumer(dsn, queues, config, visibility_timeout=60) as consumer:
        async for message in consumer:
            try:
                await process(message)
            except Exception:
                # Leave it: it becomes visible again after the visibility timeout.
                log.exception("message %s failed; it will be retried", message.msg_id)
                continue
            await message.delete()
            done += 1
            if max_messages is not None and done >= max_messages:
                break
    return done


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(os.environ["DATABASE_URL"], sys.argv[1] if len(sys.argv) > 1 else "default"))

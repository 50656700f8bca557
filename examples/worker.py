"""A worker to copy: handle every queue of one namespace, 16 messages at a time, until SIGTERM or Ctrl-C.

    DATABASE_URL=postgresql://app@localhost/app python examples/worker.py orders

A handler that returns acknowledges its message (deleted, in batches); one
that raises has it retried with a backoff, then archived after five attempts.
On SIGTERM or Ctrl-C the worker stops claiming, lets running handlers finish,
hands back what it had claimed but not started, and exits 0 with a "stopped"
line. Delivery is at least once: make ``process`` safe to run twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from pgmq_runtime import PgmqConsumer, PgmqNotifyError, RetryPolicy, load_config
from pgmq_runtime.consumer import ClaimedMessage, queues_in_namespace

log = logging.getLogger("worker")


async def process(message: ClaimedMessage) -> None:
    """Your work goes here; raise to have the message retried."""
    log.info("%s #%s: %s", message.queue_name, message.msg_id, message.message)


async def run(dsn: str, namespace: str, max_messages: int | None = None, concurrency: int = 16) -> int:
    """Handle ``namespace``'s messages until stopped (or ``max_messages`` were handled); returns the count."""
    config = load_config()  # ./pgmq-codegen.toml if present, else defaults
    queues = await queues_in_namespace(dsn, config, namespace)
    if not queues:
        raise PgmqNotifyError(f"no queue in namespace {namespace!r} yet")
    done = 0
    async with PgmqConsumer(dsn, queues, config, visibility_timeout=60) as consumer:

        async def handle(message: ClaimedMessage) -> None:
            nonlocal done
            await process(message)
            done += 1
            if max_messages is not None and done >= max_messages:
                consumer.stop()

        await consumer.run(handle, concurrency=concurrency, retry=RetryPolicy(max_attempts=5))
    return done


def main(argv: list[str]) -> int:
    """Run until SIGTERM or Ctrl-C: exit 0 with a "stopped" line; a problem is one line on stderr, exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    namespace = argv[1] if len(argv) > 1 else "default"
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("worker: set DATABASE_URL to the database's connection string", file=sys.stderr)
        return 2
    try:
        done = asyncio.run(run(dsn, namespace))
    except PgmqNotifyError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the worker was running
        done = 0
    print(f"stopped after {done} message(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

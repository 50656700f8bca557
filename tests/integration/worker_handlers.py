"""Handlers the CLI worker test runs in a subprocess: ``pgmq-codegen worker tests.integration.worker_handlers:NAME``."""

from __future__ import annotations

import asyncio
import os

from pgmq_runtime.consumer import ClaimedMessage


async def record_slowly(message: ClaimedMessage) -> None:
    """Take a little while, then append the message id to the file named by $WORKER_LOG."""
    await asyncio.sleep(0.02)
    with open(os.environ["WORKER_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{message.msg_id}\n")
        log.flush()
        os.fsync(log.fileno())


async def fail_first_attempt(message: ClaimedMessage) -> None:
    """Raise on a message's first delivery, return on the next (so each message is retried once)."""
    if message.read_ct == 1:
        raise RuntimeError(f"first attempt at {message.msg_id}")


async def record(message: ClaimedMessage) -> None:
    """Append ``msg_id read_ct`` to the file named by $WORKER_LOG (one file per process; no fsync, no sleep)."""
    with open(os.environ["WORKER_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{message.msg_id} {message.read_ct}\n")

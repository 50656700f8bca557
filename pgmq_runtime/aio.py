"""Small asyncio helpers the runtime's tasks share."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has finished, ignoring how it ended.

    The usual ``task.cancel(); with suppress(CancelledError): await task``
    also swallows a cancellation of the *caller* that arrives during the wait,
    and the caller then runs on as if nothing happened (a consumer iterating
    in a task that was cancelled kept polling for ever). ``asyncio.wait`` does
    not raise the task's own cancellation, so the caller's still propagates.
    """
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: an error while winding down is not worth a warning at exit

"""pgmq_runtime.aio.cancel_and_wait: winding a task down never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pgmq_runtime.aio import cancel_and_wait


async def _slow_to_stop() -> None:
    """A task that takes a moment to wind down when cancelled (as a listener read does)."""
    try:
        await asyncio.sleep(60)
    finally:
        await asyncio.sleep(0.05)


async def _old_pattern(task: asyncio.Future[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("wind_down", [cancel_and_wait, _old_pattern], ids=["cancel_and_wait", "old_pattern"])
async def test_the_callers_cancellation_during_the_wait_is_not_swallowed(wind_down):
    carried_on = False

    async def caller() -> None:
        nonlocal carried_on
        inner = asyncio.ensure_future(_slow_to_stop())
        await asyncio.sleep(0)  # inner is now running (a task cancelled before it starts stops at once)
        await wind_down(inner)
        carried_on = True  # a swallowed cancellation lets the caller run on

    outer = asyncio.ensure_future(caller())
    await asyncio.sleep(0.01)  # the caller now waits for the inner task to wind down
    outer.cancel()
    await asyncio.wait({outer})
    if wind_down is _old_pattern:
        assert carried_on and not outer.cancelled()  # the bug this helper exists for
    else:
        assert outer.cancelled() and not carried_on


async def test_a_task_that_failed_while_winding_down_is_waited_for_quietly():
    async def fails() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            raise RuntimeError("while stopping")

    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.done()

"""AckBatcher without a database: batches, flush, and acknowledgements that nobody waits on one by one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from pgmq_runtime.acks import DELETE_MANY, AckBatcher, Statement
from pgmq_runtime.db import Row
from pgmq_runtime.stats import Counters


class FakeSession:
    """Answers ``delete_many`` with the ids, once ``release`` is set (or fails with ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[list[Statement]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.error = error

    async def run(self, statements: Sequence[Statement]) -> list[list[Row]]:
        self.calls.append(list(statements))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [[{"msg_id": msg_id} for msg_id in (params or {})["ids"]] for _query, params in statements]


def batcher(session: FakeSession) -> AckBatcher:
    return AckBatcher(session, Counters())  # type: ignore[arg-type]  # duck-typed ControlSession


async def test_enqueued_acknowledgements_are_outstanding_until_their_batch_commits():
    session = FakeSession()
    session.release.clear()
    acks = batcher(session)
    for msg_id in range(1, 6):
        acks.enqueue("q", msg_id)
    by_hand = acks.submit("q", 6)
    assert acks.outstanding == 6
    flushed = asyncio.ensure_future(acks.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done() and acks.outstanding == 6
    session.release.set()
    await asyncio.wait_for(flushed, 1)
    assert acks.outstanding == 0
    assert await by_hand is True
    # One batch, one pgmq.delete(queue, ids[]) with every id.
    assert session.calls == [[(DELETE_MANY, {"queue": "q", "ids": [1, 2, 3, 4, 5, 6]})]]
    assert (acks.counters.deleted, acks.counters.ack_batches) == (6, 1)
    await acks.close()


async def test_flush_waits_only_for_what_was_queued_before_it():
    session = FakeSession()
    session.release.clear()
    acks = batcher(session)
    acks.enqueue("q", 1)
    first = asyncio.ensure_future(acks.flush())
    await asyncio.sleep(0)  # the first batch is in flight
    acks.enqueue("q", 2)
    second = asyncio.ensure_future(acks.flush())
    session.release.set()
    await asyncio.wait_for(first, 1)
    assert acks.outstanding in (0, 1)
    await asyncio.wait_for(second, 1)
    assert acks.outstanding == 0 and acks.counters.deleted == 2
    await acks.close()


async def test_a_failed_batch_of_enqueued_acknowledgements_is_logged_and_settles(caplog: pytest.LogCaptureFixture):
    session = FakeSession(error=RuntimeError("connection refused"))
    acks = batcher(session)
    acks.enqueue("q", 1)
    acks.enqueue("q", 2)
    by_hand = acks.submit("q", 3)
    with caplog.at_level(logging.WARNING, logger="pgmq_runtime.acks"):
        await asyncio.wait_for(acks.flush(), 1)
    assert acks.outstanding == 0 and acks.counters.deleted == 0
    with pytest.raises(RuntimeError):
        await by_hand
    assert "3 acknowledgement(s) failed: RuntimeError: connection refused" in caplog.text
    await acks.close()

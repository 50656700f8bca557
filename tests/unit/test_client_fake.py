"""The real PgmqNotifyClient and PgmqConsumer code on FakePgmq (the faked connection layer), no PostgreSQL."""

from __future__ import annotations

import pytest

from pgmq_runtime import PgmqNotifyClient
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.errors import MessageNotSerializableError, MigrationMissingError, QueueNotFoundError
from pgmq_runtime.events import BatchReadyEvent, MessageWithPayloadEvent, QueueCreatedEvent
from pgmq_runtime.testing import FakePgmq


async def test_client_on_the_fake_sends_events_and_claims():
    fake = FakePgmq(PgmqNotifyConfig(mode="wrapper"))
    listener = fake.listener()
    await listener.listen_queue_created()
    await listener.listen_message_ready_for_namespace("orders")
    async with PgmqNotifyClient(fake, fake.config) as client:
        await client.create_queue("orders_queue")
        first = await client.send("orders_queue", {"id": 1})
        batch = await client.send_batch("orders_queue", [{"id": 2}, {"id": 3}])
        async with client.transaction() as tx:
            kept = await tx.send("orders_queue", {"id": 4})
        with pytest.raises(RuntimeError):
            async with client.transaction() as tx:
                await tx.send("orders_queue", {"id": 5})
                raise RuntimeError("rolled back")
        claimed = await client.read_specific("orders_queue", first)
        assert claimed is not None and await client.read_specific("orders_queue", first) is None
        assert sorted(await client.delete("orders_queue", [first, *batch])) == [first, *batch]
        with pytest.raises(QueueNotFoundError):
            await client.send("nowhere_queue", 1)
        with pytest.raises(MessageNotSerializableError):
            await client.send("orders_queue", object())
        assert (await client.health()).ok
    listener.end()
    items = [item async for item in listener]
    assert [type(i) for i in items] == [
        QueueCreatedEvent,
        MessageWithPayloadEvent,
        BatchReadyEvent,
        MessageWithPayloadEvent,
    ]
    assert items[-1].msg_id == kept and items[1].metadata == {"source": "wrapper"}
    assert set(fake.queue("orders_queue").messages) == {kept}


async def test_wrapper_sends_need_the_wrapper_functions():
    fake = FakePgmq(PgmqNotifyConfig(mode="trigger"))
    fake.create_queue("q")
    client = PgmqNotifyClient(fake, PgmqNotifyConfig(mode="wrapper"))
    with pytest.raises(MigrationMissingError):
        await client.send("q", 1)


async def test_the_real_consumer_claims_by_event_on_the_fake():
    fake = FakePgmq()
    ids = fake.send_batch("jobs_queue", [{"n": n} for n in range(3)])
    async with PgmqConsumer("fake", "jobs_queue", fake.config, poll_only=True, database=fake) as consumer:
        got = [await anext(consumer) for _ in range(3)]
    assert [m.msg_id for m in got] == ids
    assert all(m.read_ct == 1 for m in got) and "read" in fake.queries

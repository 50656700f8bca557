"""pgmq_runtime.testing: the in-memory fake behaves like the real listener and consumer."""

from __future__ import annotations

import asyncio
import json

import pytest

from pgmq_codegen import listen
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.errors import ChannelNameError, ListenerError
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    ListenerReconnected,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    QueueCreatedEvent,
)
from pgmq_runtime.listener import SelfCheckResult
from pgmq_runtime.testing import FakeListener, FakePgmq


async def drain(listener: FakeListener) -> list[object]:
    listener.end()
    return [item async for item in listener]


async def test_sends_become_the_events_the_sql_would_send():
    fake = FakePgmq(PgmqNotifyConfig(max_payload_size=1100))
    listener = fake.listener()
    await listener.listen_queue_created()
    await listener.listen_message_ready_for_namespace("orders")
    fake.create_queue("orders_queue")
    small = fake.send("orders_queue", {"n": 1}, headers={"h": 1})
    large = fake.send("orders_queue", {"blob": "x" * 2000})
    batch = fake.send_batch("orders_queue", [{"i": 1}, {"i": 2}])
    items = await drain(listener)
    assert [type(i) for i in items] == [
        QueueCreatedEvent,
        MessageWithPayloadEvent,
        MessageReadyEvent,
        BatchReadyEvent,
    ]
    assert items[1].msg_id == small and items[1].message == {"n": 1} and items[1].headers == {"h": 1}
    assert items[2].msg_id == large
    assert items[3].msg_ids == tuple(batch)
    assert all(i.metadata == {"source": "trigger"} for i in items)


async def test_only_listened_channels_are_delivered():
    fake = FakePgmq(PgmqNotifyConfig(channels_prefix="app"))
    listener = fake.listener()
    await listener.listen_message_ready_for_namespace("billing")
    fake.send("orders_queue", {"n": 1})
    fake.send("billing_queue", {"n": 2})
    items = await drain(listener)
    assert [(i.queue_name, i.channel) for i in items] == [("billing_queue", "app.pgmq_message_ready.billing")]


async def test_global_channel_carries_every_namespace():
    fake = FakePgmq()
    listener = fake.listener()
    await listener.listen_message_ready_global()
    fake.send("orders_queue", 1)
    fake.send("billing_queue", 2)
    assert [i.namespace for i in await drain(listener)] == ["orders", "billing"]


async def test_include_payload_never_sends_signals_only():
    fake = FakePgmq(PgmqNotifyConfig(include_payload="never", include_metadata=False))
    listener = fake.listener()
    await listener.listen_default_namespaces()
    fake.send("misc", {"n": 1})
    (item,) = await drain(listener)
    assert isinstance(item, MessageReadyEvent)
    assert item.namespace == "default" and dict(item.metadata) == {}


async def test_gaps_and_invalid_payloads_reach_the_handler():
    listener = FakeListener()
    await listener.listen("custom")
    listener.notify("custom", "{oops")
    listener.disconnect(down_seconds=2.5)
    invalid, gap = await drain(listener)
    assert isinstance(invalid, InvalidEvent) and invalid.raw == "{oops"
    assert isinstance(gap, ListenerReconnected) and gap.down_seconds == 2.5
    assert (listener.stats.invalid_events, listener.stats.reconnects) == (1, 1)


async def test_a_full_buffer_drops_and_counts():
    fake = FakePgmq()
    listener = fake.listener(buffer_size=2)
    await listener.listen_default_namespaces()
    for n in range(5):
        fake.send("q", n)
    assert len(await drain(listener)) == 2
    assert listener.stats.dropped == 3


async def test_listen_validates_channel_names_like_the_real_listener():
    with pytest.raises(ChannelNameError):
        await FakeListener().listen("x" * 64)


async def test_next_event_times_out_with_none_and_close_ends_iteration():
    listener = FakeListener()
    assert await listener.next_event(timeout=0) is None
    waiter = asyncio.create_task(listener.next_event())
    await asyncio.sleep(0)
    await listener.close()
    assert await waiter is None
    assert [i async for i in listener] == []


async def test_consumer_yields_claimed_messages_and_actions_change_the_queue():
    fake = FakePgmq()
    ids = fake.send_batch("jobs_queue", [{"n": n} for n in range(3)])
    delayed = fake.send("jobs_queue", {"later": True}, delay_seconds=60)
    seen = []
    async for message in fake.consumer("jobs_queue"):
        seen.append(message.msg_id)
        if message.message["n"] == 0:
            assert await message.delete()
        elif message.message["n"] == 1:
            assert await message.archive()
        else:
            assert await message.extend(30) is not None
    assert seen == ids
    queue = fake.queue("JOBS_QUEUE")
    assert set(queue.messages) == {ids[2], delayed}
    assert set(queue.archived) == {ids[1]}
    assert [m async for m in fake.consumer("jobs_queue")] == []  # claimed or delayed
    assert not await queue_delete(fake, ids[0])


async def queue_delete(fake: FakePgmq, msg_id: int) -> bool:
    return await fake.delete("jobs_queue", msg_id)


async def test_fake_drives_the_listen_tail():
    fake = FakePgmq()
    listener = fake.listener()
    lines: list[str] = []
    notices: list[str] = []
    stop = asyncio.Event()

    def on_item(item):
        lines.append(listen.format_json_line(item))
        if len(lines) == 2:
            stop.set()

    task = asyncio.create_task(
        listen.tail("unused", fake.config, [], on_item, on_notice=notices.append, stop=stop, source=listener)
    )
    while len(listener.channels) < 2:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    fake.create_queue("orders_queue")
    fake.send("orders_queue", {"n": 1})
    summary = await task
    assert summary.items == 2
    assert [json.loads(line)["event_type"] for line in lines] == ["queue_created", "message_with_payload"]
    assert json.loads(lines[1])["channel"] == "pgmq_message_ready"
    assert any("self-check passed" in n for n in notices)


class SilentListener(FakeListener):
    """Accepts LISTEN but delivers nothing, like PgBouncer in transaction mode."""

    async def self_check(self, timeout: float = 5.0) -> SelfCheckResult:
        return SelfCheckResult(False, "probe", timeout, "no probe notification within 5 s")


async def test_tail_stops_at_start_up_when_the_self_check_fails():
    listener = SilentListener()
    with pytest.raises(ListenerError, match="self-check failed: no probe notification"):
        await listen.tail("unused", listener.config, ["orders"], print, source=listener)
    assert listener.closed


def test_text_and_json_lines_for_every_kind_of_item():
    fake = FakePgmq(PgmqNotifyConfig(max_payload_size=1024))
    listener = fake.listener()
    asyncio.run(listener.listen_message_ready_global())
    asyncio.run(listener.listen_queue_created())
    fake.create_queue("orders_queue")
    fake.send("orders_queue", {"text": "line1\nline2"}, delay_seconds=5)
    fake.send("orders_queue", {"blob": "x" * 2000})
    fake.send_batch("orders_queue", [1, 2, 3])
    listener.notify("pgmq_message_ready", "not json")
    listener.disconnect(down_seconds=1.5, reason="server closed the connection")
    listener.end()
    items = asyncio.run(_collect(listener))
    texts = [listen.format_text(i) for i in items]
    assert texts[0] == "queue_created  orders_queue (namespace orders)"
    assert texts[1].startswith("message        orders_queue #1 (visible in 5 s) {")
    assert texts[2] == "message_ready  orders_queue #2 (no payload)"
    assert texts[3] == "batch_ready    orders_queue 3 messages #3..#5"
    assert texts[4].startswith("INVALID        on pgmq_message_ready: not valid JSON")
    assert texts[5].startswith("GAP            connection lost for 1.5 s")
    lines = [listen.format_json_line(i) for i in items]
    assert all("\n" not in line for line in lines)
    decoded = [json.loads(line) for line in lines]
    assert decoded[1]["message"] == {"text": "line1\nline2"} and decoded[1]["channel"] == "pgmq_message_ready"
    assert decoded[4] == {
        "event_type": "invalid",
        "channel": "pgmq_message_ready",
        "reason": items[4].reason,
        "raw": "not json",
    }
    assert decoded[5]["event_type"] == "listener_reconnected" and decoded[5]["down_seconds"] == 1.5
    assert [str(listen.rich_line(i)) for i in items] == texts


async def _collect(listener: FakeListener) -> list[object]:
    return [item async for item in listener]

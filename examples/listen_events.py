"""Listen to pgmq-codegen events from plain asyncio code.

    DATABASE_URL=postgresql://app@localhost/app python examples/listen_events.py

Events tell you that something happened; they are not the messages. If you
act on messages, use PgmqConsumer (see worker.py), which claims them and
catches up after gaps. A gap marker means notifications were lost while the
connection was down (or the buffer was full).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from pgmq_runtime import (
    BatchReadyEvent,
    InvalidEvent,
    ListenerGap,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    PgmqNotifyListener,
    QueueCreatedEvent,
    load_config,
)


async def main(dsn: str, max_events: int | None = None) -> list[str]:
    """Print events as they come (stops after ``max_events`` if given); returns the lines."""
    lines: list[str] = []
    async with PgmqNotifyListener(dsn, load_config()) as listener:
        await listener.listen_queue_created()
        await listener.listen_message_ready_global()
        check = await listener.self_check()
        if not check.ok:
            raise SystemExit(f"notifications do not reach this connection: {check.detail}")
        async for item in listener:
            match item:
                case QueueCreatedEvent(queue_name=name):
                    line = f"new queue {name}"
                case MessageWithPayloadEvent(queue_name=q, msg_id=i, message=body):
                    line = f"{q} #{i}: {body}"
                case MessageReadyEvent(queue_name=q, msg_id=i):
                    line = f"{q} #{i} (too large for the notification: fetch it by id)"
                case BatchReadyEvent(queue_name=q, msg_ids=ids):
                    line = f"{q}: {len(ids)} messages"
                case InvalidEvent(reason=why):
                    line = f"unreadable notification: {why}"
                case ListenerGap(reason=why):
                    line = f"gap ({why}): events may have been missed"
                case _:
                    line = repr(item)
            print(line, flush=True)
            lines.append(line)
            if max_events is not None and len(lines) >= max_events:
                break
    return lines


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(os.environ["DATABASE_URL"]))

"""A half-open connection is noticed by the liveness query and replaced.

A small TCP proxy between the listener and the server stops forwarding bytes
on the connections it already carries, as a dead network path would, without
closing them. No PostgreSQL behaviour is faked: the server is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import psycopg

from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.events import ListenerReconnected, MessageWithPayloadEvent
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import install


class FreezingProxy:
    """Forwards TCP to ``target``; ``freeze()`` silently stalls every current connection."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.port = 0
        self._generation = 0
        self._frozen_below = 0
        self._thawed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self._frozen_below = self._generation + 1

    def thaw(self) -> None:
        self._thawed.set()

    async def close(self) -> None:
        self.thaw()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._generation += 1
        generation = self._generation
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(generation, src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, generation: int, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if generation < self._frozen_below and not self._thawed.is_set():
                    await self._thawed.wait()
                dst.write(data)
                await dst.drain()
        dst.close()


def via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


async def test_a_half_open_connection_is_detected_and_replaced(dsn, pg_server):
    config = PgmqNotifyConfig()
    install(dsn, config)
    proxy = FreezingProxy(pg_server.port)
    await proxy.start()
    listener = PgmqNotifyListener(
        via(dsn, proxy.port), config, liveness_interval=0.5, liveness_timeout=0.5, backoff_initial=0.05
    )
    try:
        async with listener:
            await listener.listen_default_namespaces()
            assert (await listener.self_check()).ok
            old_pid = listener.backend_pid
            proxy.freeze()
            gap = await listener.next_event(timeout=30)
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute("SELECT pgmq.create('jobs')")
                await conn.execute("""SELECT pgmq.send('jobs', '{"n": 1}')""")
            event = await listener.next_event(timeout=30)
            assert listener.backend_pid != old_pid
    finally:
        await proxy.close()
    assert isinstance(gap, ListenerReconnected)
    assert "liveness query" in gap.reason
    assert isinstance(event, MessageWithPayloadEvent) and event.message == {"n": 1}

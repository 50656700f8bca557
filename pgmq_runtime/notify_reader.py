"""Reading notifications off an async psycopg connection with as little work per notification as possible.

psycopg's ``AsyncConnection.notifies()`` builds each ``Notify`` twice (once
for its notify handlers, once to yield it) and hands them over one async
generator step at a time; at tens of thousands of notifications a second
that costs more than parsing them. :func:`read_notifications` waits for the
socket itself and takes libpq's list directly: ``pgconn.consume_input()``
then ``pgconn.notifies()`` until empty, decoding channel and payload once.

Notifications that psycopg reads while the connection runs a query (a LISTEN,
the liveness ping) go to its notify handlers instead: :func:`attach` registers
one, so none is missed. Like ``notifies()``, the reader holds the
connection's lock for its window, so queries wait at most that long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg

Deliver = Callable[[str, str], None]


def attach(conn: psycopg.AsyncConnection[Any], deliver: Deliver) -> None:
    """Have psycopg hand ``deliver`` the notifications it reads while running queries on ``conn``."""
    conn.add_notify_handler(lambda notify: deliver(notify.channel, notify.payload))


async def read_notifications(conn: psycopg.AsyncConnection[Any], window: float, deliver: Deliver) -> bool:
    """Hand every notification arriving within ``window`` seconds to ``deliver``; True if any came.

    Raises psycopg's ``OperationalError`` when the connection is lost.
    """
    loop = asyncio.get_running_loop()
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    received = False
    # The lock psycopg's own notifies() and execute() take: one user of the socket at a time.
    async with conn.lock:
        deadline = loop.time() + window
        fd = pgconn.socket
        while True:
            # Whatever libpq already holds first (read along with a query's results).
            while (n := pgconn.notifies()) is not None:
                deliver(n.relname.decode(encoding), n.extra.decode(encoding))
                received = True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return received
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _set_done, readable)
            try:
                async with asyncio.timeout(remaining):
                    await readable
            except TimeoutError:
                return received
            finally:
                loop.remove_reader(fd)
            pgconn.consume_input()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

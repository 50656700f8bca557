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
connection's lock for its window, so queries wait at most that long, or not
at all when whoever needs the connection first calls :meth:`Interrupt.request`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg

Deliver = Callable[[str, str], None]


class Interrupt:
    """Ends a :func:`read_notifications` window early: someone else needs the connection."""

    def __init__(self) -> None:
        self.requested = False
        self.waiter: asyncio.Future[None] | None = None

    def request(self) -> None:
        """Make the current (and every later) read return as soon as libpq's list is drained."""
        self.requested = True
        if self.waiter is not None:
            _set_done(self.waiter)

    def clear(self) -> None:
        """Let reads use their whole window again."""
        self.requested = False


def attach(conn: psycopg.AsyncConnection[Any], deliver: Deliver) -> None:
    """Have psycopg hand ``deliver`` the notifications it reads while running queries on ``conn``."""
    conn.add_notify_handler(lambda notify: deliver(notify.channel, notify.payload))


async def read_notifications(
    conn: psycopg.AsyncConnection[Any], window: float, deliver: Deliver, interrupt: Interrupt | None = None
) -> bool:
    """Hand every notification arriving within ``window`` seconds to ``deliver``; True if any came.

    Returns early, once libpq holds no more notifications, when ``interrupt``
    is requested.

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
            if remaining <= 0 or (interrupt is not None and interrupt.requested):
                return received
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _set_done, readable)
            if interrupt is not None:
                interrupt.waiter = readable
            try:
                async with asyncio.timeout(remaining):
                    await readable
            except TimeoutError:
                return received
            finally:
                loop.remove_reader(fd)
                if interrupt is not None:
                    interrupt.waiter = None
            pgconn.consume_input()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

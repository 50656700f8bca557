"""The runtime examples work as written, against a real server."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import psycopg

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_worker_consumes_a_namespace_and_deletes(dsn):
    install(dsn, PgmqNotifyConfig())
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for queue in ("orders_queue", "orders_eu_queue", "billing_queue"):
            await conn.execute("SELECT pgmq.create(%s)", (queue,))
        await conn.execute("SELECT pgmq.send('orders_queue', '{\"n\": 1}')")
        await conn.execute("SELECT pgmq.send('billing_queue', '{\"n\": 2}')")
        worker = asyncio.create_task(load("worker").run(dsn, "orders", max_messages=2))
        await conn.execute("SELECT pgmq.send('orders_queue', '{\"n\": 3}')")
        done = await asyncio.wait_for(worker, 60)
        left = await (
            await conn.execute(
                "SELECT (SELECT count(*) FROM pgmq.q_orders_queue), (SELECT count(*) FROM pgmq.q_billing_queue)"
            )
        ).fetchone()
    assert done == 2
    assert left == (0, 1)


async def test_listen_example_prints_events(dsn, capsys):
    install(dsn, PgmqNotifyConfig())
    listening = asyncio.create_task(load("listen_events").main(dsn, max_events=2))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        # The example's last statement before it iterates is the self-check's UNLISTEN.
        while not (
            await (
                await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'pgmq-runtime-listener' AND query LIKE 'UNLISTEN %'"
                )
            ).fetchone()
        )[0]:
            assert not listening.done(), listening
            await asyncio.sleep(0.05)
        await conn.execute("SELECT pgmq.create('orders_queue')")
        await conn.execute("SELECT pgmq.send('orders_queue', '{\"n\": 1}')")
    lines = await asyncio.wait_for(listening, 60)
    assert lines == ["new queue orders_queue", "orders_queue #1: {'n': 1}"]
    assert capsys.readouterr().out.splitlines() == lines

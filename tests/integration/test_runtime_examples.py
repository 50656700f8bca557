"""The runtime examples work as written, against a real server."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
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


def start_worker_example(dsn: str, namespace: str = "orders") -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(EXAMPLES.parent)}
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py"), namespace],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_example_on_a_wrong_port_says_so_in_one_line(dsn):
    wrong = psycopg.conninfo.make_conninfo(dsn, port=free_port())
    worker = start_worker_example(wrong)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("worker: cannot list the queues: OperationalError")


def test_worker_example_on_a_database_without_pgmq_says_so_in_one_line(bare_dsn):
    worker = start_worker_example(bare_dsn)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2
    assert err.strip() == "worker: PGMQ is not installed in this database (no table pgmq.meta)"


def test_worker_example_stops_cleanly_on_sigterm(dsn):
    install(dsn, PgmqNotifyConfig())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("SELECT pgmq.send('orders_queue', '{\"n\": 1}')")
        worker = start_worker_example(dsn)
        try:
            deadline = time.monotonic() + 60
            while conn.execute("SELECT count(*) FROM pgmq.q_orders_queue").fetchone() != (0,):
                assert worker.poll() is None and time.monotonic() < deadline, worker.stderr
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, err
    assert out.strip().splitlines()[-1] == "stopped after 1 message(s)"
    assert "Traceback" not in err

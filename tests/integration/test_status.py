"""``pgmq-codegen status --once --json`` on a real server, with a listener stuck in a transaction."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install
from tests.unit.test_cli import cli

CONFIG = PgmqNotifyConfig()
CHANNEL = CONFIG.message_ready_channel("orders")


@pytest.fixture
def stuck_listener(dsn: str) -> Iterator[int]:
    """A session that LISTENs, then sits idle in a transaction: it reads no notification until it ends."""
    conn = psycopg.connect(dsn, autocommit=True, application_name="stuck-app")
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
    conn.autocommit = False
    conn.execute("SELECT 1")  # opens the transaction, then nothing more
    try:
        yield conn.info.backend_pid
    finally:
        conn.rollback()
        conn.close()


def _status(dsn: str) -> dict:
    result = cli("status", "--dsn", dsn, "--once", "--json", "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_shows_queues_install_the_stuck_listener_and_the_probe(dsn: str, stuck_listener: int) -> None:
    install(dsn, CONFIG)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("SELECT pgmq.send_batch('orders_queue', array_fill('{\"n\": 1}'::jsonb, ARRAY[5]))")
        conn.execute("SELECT pgmq.delete('orders_queue', 1)")
        # Over a page of distinct notifications (equal ones are sent once): usage counts whole pages.
        conn.execute("SELECT pg_notify(%s, repeat('x', 500) || g) FROM generate_series(1, 100) AS g", (CHANNEL,))

    report = _status(dsn)

    assert report["install"] == {"in_sync": True, "findings": [], "error": ""}
    (queue,) = report["queues"]
    assert (queue["name"], queue["depth"], queue["total_sent"]) == ("orders_queue", 4, 5)
    assert queue["oldest_age_seconds"] is not None
    assert queue["in_per_s"] == 0 and queue["out_per_s"] == 0  # nothing moved between the two samples
    assert report["notify_queue_usage"] > 0
    assert stuck_listener in report["holders"]
    (stuck,) = [s for s in report["sessions"] if s["pid"] == stuck_listener]
    assert stuck["state"] == "idle in transaction"
    assert stuck["application"] == "stuck-app"
    assert report["probe"]["ok"] is True
    assert report["probe"]["round_trip_ms"] > 0


def test_status_counts_messages_per_second_between_its_samples(dsn: str) -> None:
    import threading
    import time

    install(dsn, CONFIG)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    stop = threading.Event()

    def produce() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("SELECT pgmq.send('orders_queue', '{}')")
                time.sleep(0.01)

    def consume() -> None:
        # Takes half of what comes in: one message deleted, one archived, every 40 ms.
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("SELECT pgmq.delete('orders_queue', msg_id) FROM pgmq.read('orders_queue', 30, 1)")
                conn.execute("SELECT pgmq.archive('orders_queue', msg_id) FROM pgmq.read('orders_queue', 30, 1)")
                time.sleep(0.04)

    workers = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for worker in workers:
        worker.start()
    try:
        report = _status(dsn)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    (queue,) = report["queues"]
    assert queue["in_per_s"] > 0
    assert queue["out_per_s"] > 0
    assert report["seconds_between_samples"] > 0


def test_status_names_what_differs_when_the_migration_is_missing(dsn: str) -> None:
    report = _status(dsn)
    assert report["install"]["in_sync"] is False
    assert any("missing" in finding for finding in report["install"]["findings"])


def test_status_without_pgmq_is_one_error_line(bare_dsn: str) -> None:
    result = cli("status", "--dsn", bare_dsn, "--once", "--json")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "PGMQ is not installed" in result.stderr


def test_the_live_view_redraws_with_rates_and_stops_on_sigterm(dsn: str) -> None:
    import os
    import signal
    import subprocess
    import time

    install(dsn, CONFIG)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
    # As in a terminal (FORCE_COLOR: Rich redraws the view in place rather than printing the last frame).
    env = {**os.environ, "COLUMNS": "100", "FORCE_COLOR": "1", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "pgmq_codegen.cli", "status", "--dsn", dsn, "--interval", "0.2"]
    view = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        time.sleep(1.5)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(20):
                conn.execute("SELECT pgmq.send('orders_queue', '{}')")
        time.sleep(1.5)
        view.send_signal(signal.SIGTERM)
        out, _ = view.communicate(timeout=30)
    finally:
        if view.poll() is None:
            view.kill()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))  # colours and cursor moves
    assert view.returncode == 0, text
    assert text.count("notification queue") >= 3, text  # redrawn every interval
    assert "orders_queue" in text and "Traceback" not in text
    depths = re.findall(r"orders_queue\s*│\s*(\d+)", text)
    assert depths[0] == "0" and depths[-1] == "20", depths  # the view follows the queue

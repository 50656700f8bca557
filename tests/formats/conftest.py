"""Shared pieces of the migration-tool tests: find a tool or skip loudly, run it, check the database.

The tools are installed by ``tests/tools/install.sh`` into
``${PGMQ_CODEGEN_TOOLS:-~/.cache/pgmq-codegen/tools}``; its ``status.txt`` says,
per tool, ``<tool> ok <version>`` or ``<tool> failed <reason>``. A test whose
tool is missing skips with that reason (prefixed ``TOOL UNAVAILABLE``), and the
end of the run lists every such skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from pgmq_codegen import generate_migration
from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import Subscriber

REPO = Path(__file__).resolve().parents[2]
SKIP_MARK = "TOOL UNAVAILABLE"
# status.txt name -> executable in bin/
EXECUTABLES = {
    "flyway": "flyway",
    "liquibase": "liquibase",
    "dbmate": "dbmate",
    "goose": "goose",
    "golang-migrate": "migrate",
    "sqlx": "sqlx",
    "supabase": "supabase",
}
TOOL_TIMEOUT = 180
# The coalescing window the tool tests install (coalesce_ms) and assert_coalesces expects.
COALESCE_MS = 20


def tools_home() -> Path:
    return Path(os.environ.get("PGMQ_CODEGEN_TOOLS") or Path.home() / ".cache" / "pgmq-codegen" / "tools")


def tool_status(name: str) -> tuple[bool, str]:
    """``(ok, version or reason)`` for ``name`` from the installer's status.txt."""
    status = tools_home() / "status.txt"
    if not status.is_file():
        return False, f"{status} not found: run 'bash tests/tools/install.sh' (tests/run.sh does)"
    aliases = {name, "migrate"} if name == "golang-migrate" else {name}
    for line in status.read_text(encoding="utf-8").splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and parts[0] in aliases:
            detail = parts[2] if len(parts) > 2 else ""
            return parts[1] == "ok", detail
    return False, f"no line for {name} in {status}: run 'bash tests/tools/install.sh {name}'"


def require_tool(name: str) -> Path:
    """The tool's executable, or skip the test loudly with the installer's reason."""
    ok, detail = tool_status(name)
    exe = tools_home() / "bin" / EXECUTABLES[name]
    if not ok:
        pytest.skip(f"{SKIP_MARK}: {name} could not be installed: {detail}")
    if not exe.exists():
        pytest.skip(f"{SKIP_MARK}: {name}: status.txt says ok ({detail}) but {exe} is missing; rerun install.sh")
    return exe


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for a tool: its bin/ on PATH, no telemetry, no banners."""
    env = dict(os.environ)
    env["PATH"] = f"{tools_home() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("LIQUIBASE_SHOW_BANNER", "false")
    env.setdefault("LIQUIBASE_ANALYTICS_ENABLED", "false")
    env.setdefault("DBMATE_NO_DUMP_SCHEMA", "true")
    env.setdefault("SUPABASE_TELEMETRY_DISABLED", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.update(extra)
    return env


def run(cmd: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None, stdout_only: bool = False) -> str:
    """Run a command; its output (stdout and stderr, or stdout only); fail the test if it exits non-zero."""
    argv = [str(c) for c in cmd]
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env if env is not None else tool_env(),
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {proc.returncode} after {time.monotonic() - started:.1f}s:\n{output}",
            pytrace=False,
        )
    return proc.stdout if stdout_only else output


def run_failing(cmd: Sequence[str | Path], cwd: Path) -> str:
    """Run a command that must fail; its output."""
    argv = [str(c) for c in cmd]
    proc = subprocess.run(
        argv, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{' '.join(argv)} should have failed:\n{output}"
    return output


def cli_generate(fmt: str, output_dir: Path | None, cwd: Path, *extra: str) -> list[Path]:
    """``pgmq-codegen generate-migration`` through the real entry point, run in ``cwd``; the files it wrote.

    Without ``output_dir`` the format's default folder (below ``cwd``) is used.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["COLUMNS"] = "200"
    where = ["--output-dir", str(output_dir)] if output_dir is not None else []
    out = run(
        [sys.executable, "-m", "pgmq_codegen.cli", "generate-migration", "--format", fmt, *where, *extra], cwd, env
    )
    written = [Path(line.split("wrote", 1)[1].strip()) for line in out.splitlines() if line.startswith("wrote")]
    assert written, out
    return [p if p.is_absolute() else cwd / p for p in written]


def generate(
    fmt: str, output_dir: Path, now: datetime | None = None, config: PgmqNotifyConfig | None = None
) -> list[Path]:
    """``generate_migration.generate_migration`` with the default config.

    ``force``: these tests generate the same config again on purpose, to check ordering.
    """
    result = generate_migration.generate_migration(config or PgmqNotifyConfig(), fmt, output_dir, now=now, force=True)
    assert result.format == fmt
    return result.files


def same_second(path: Path) -> datetime:
    """The moment encoded in a file's leading 14-digit timestamp: to generate again "in the same second"."""
    return datetime.strptime(path.name[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


# -- database URLs for the tools ------------------------------------------------


@dataclass(frozen=True)
class Db:
    """One test database, spelled the ways the tools want it."""

    dsn: str

    @property
    def host(self) -> str:
        return urlsplit(self.dsn).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 5432

    @property
    def name(self) -> str:
        return urlsplit(self.dsn).path.lstrip("/")

    @property
    def url(self) -> str:
        """``postgres://`` URL (dbmate, goose, golang-migrate, sqlx, supabase)."""
        return f"postgres://postgres@{self.host}:{self.port}/{self.name}?sslmode=disable"

    @property
    def jdbc(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.name}"

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params or None)
            return cur.fetchall() if cur.description else []

    def execute_script(self, text: str) -> None:
        """Run a whole SQL file in one transaction, as ``psql -1 -f`` would."""
        with psycopg.connect(self.dsn) as conn:
            conn.execute(text.encode())


@pytest.fixture
def db(dsn: str) -> Db:
    return Db(dsn)


# -- what "up" and "down" must leave behind ---------------------------------------

Subscribe = Callable[[str, list[str]], Subscriber]


def assert_notifies(db: Db, subscribe: Subscribe, queue: str = "orders_queue") -> None:
    """A queue (created now, or earlier) notifies on its namespace channel when sent to."""
    config = PgmqNotifyConfig()
    namespace = config.extract_namespace(queue)
    sub = subscribe(db.dsn, [config.message_ready_channel(namespace), config.queue_created_channel()])
    if not db.query("SELECT 1 FROM pgmq.meta WHERE queue_name = %s", queue):
        db.query("SELECT pgmq.create(%s)", queue)
    ((msg_id,),) = db.query("SELECT pgmq.send(%s, %s::jsonb)", queue, json.dumps({"hello": queue}))
    got = sub.drain()
    events = [r.event for r in got if r.channel == config.message_ready_channel(namespace)]
    assert [e["msg_id"] for e in events] == [msg_id], f"expected one event for message {msg_id}, got {got}"
    assert events[0]["queue_name"] == queue and events[0]["namespace"] == namespace


def sequences(db: Db, schema: str) -> list[str]:
    """Names of the sequences in ``schema`` (coalescing keeps one per queue in ours)."""
    rows = db.query(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'S' AND n.nspname = %s ORDER BY c.relname""",
        schema,
    )
    return [str(name) for (name,) in rows]


def assert_coalesces(
    db: Db, subscribe: Subscribe, queues: Sequence[str] = ("orders_queue",), coalesce_ms: int = COALESCE_MS
) -> None:
    """With ``coalesce_ms`` installed, each queue (created now, or earlier) has its window sequence and
    notifies at most once per window, with signals marked ``"coalesced": true``.

    Each step sends to every queue, after waiting out two windows, so that each queue's first send of
    the step opens a window of its own; the queues' windows are apart, so each queue is announced.
    """
    config = PgmqNotifyConfig(coalesce_ms=coalesce_ms)
    channels = {queue: config.message_ready_channel(config.extract_namespace(queue)) for queue in queues}
    sub = subscribe(db.dsn, sorted(set(channels.values())))
    for queue in queues:
        if not db.query("SELECT 1 FROM pgmq.meta WHERE queue_name = %s", queue):
            db.query("SELECT pgmq.create(%s)", queue)
        assert f"coalesce_q_{queue}" in sequences(db, config.schema), f"no window sequence for {queue}"
    window = coalesce_ms / 1000

    def send_in_a_new_window(sql: str, *params: object) -> tuple[dict[str, Any], dict[str, Any], float]:
        """Per queue, the ids ``sql`` sent and the events that arrived; how long the sends took (seconds)."""
        time.sleep(2 * window)
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            started = time.monotonic()
            ids = {q: [msg_id for (msg_id,) in conn.execute(sql.encode(), (q, *params))] for q in queues}
            elapsed = time.monotonic() - started
        got = sub.drain()
        events = {q: [r.event for r in got if r.event["queue_name"] == q] for q in queues}
        assert sum(map(len, events.values())) == len(got), f"events of other queues: {got}"
        assert all(r.channel == channels[r.event["queue_name"]] for r in got), got
        return ids, events, elapsed

    def assert_signal(event: dict[str, Any], queue: str, msg_id: int) -> None:
        assert event["event_type"] == "message_ready" and event["msg_id"] == msg_id, event
        assert event["queue_name"] == queue and event["namespace"] == config.extract_namespace(queue), event
        assert event["payload_omitted"] is True and event["coalesced"] is True, event
        assert "message" not in event, f"a coalesced event is a signal, never the content: {event}"

    # one send alone in its window: one signal for it
    ids, events, _ = send_in_a_new_window("""SELECT pgmq.send(%s, '{"coalesce": "me"}')""")
    for queue in queues:
        assert len(events[queue]) == 1, f"{queue}: expected one event for message {ids[queue]}, got {events[queue]}"
        assert_signal(events[queue][0], queue, ids[queue][0])

    # separate sends in quick succession, in a later window: its first send notifies again,
    # the others of that window stay silent
    burst = 10
    ids, events, elapsed = send_in_a_new_window(
        "SELECT pgmq.send(%s, jsonb_build_object('n', i)) FROM generate_series(1, %s) AS i", burst
    )
    windows_touched = int(elapsed / window) + 2  # a span of that length meets at most this many windows
    for queue in queues:
        got = events[queue]
        assert len(ids[queue]) == burst and 1 <= len(got) <= min(windows_touched, burst - 1), (
            f"{queue}: {burst} sends in {elapsed * 1000:.1f} ms ({coalesce_ms} ms windows): {len(got)} events {got}"
        )
        assert_signal(got[0], queue, ids[queue][0])
        for event in got[1:]:
            assert event["msg_id"] in ids[queue][1:], event
            assert_signal(event, queue, event["msg_id"])

    # one send_batch: one batch_ready signal that carries every id
    ids, events, _ = send_in_a_new_window("""SELECT pgmq.send_batch(%s, ARRAY['{"a": 1}', '{"b": 2}']::jsonb[])""")
    for queue in queues:
        assert len(ids[queue]) == 2 and len(events[queue]) == 1, f"{queue} batch {ids[queue]}: got {events[queue]}"
        (event,) = events[queue]
        assert event["event_type"] == "batch_ready" and event["msg_ids"] == ids[queue], event
        assert event["message_count"] == 2 and event["coalesced"] is True, event


def assert_removed(db: Db, subscribe: Subscribe) -> None:
    """Nothing of ours is left (coalescing's sequences included), and PGMQ still works (silently)."""
    schema = PgmqNotifyConfig().schema
    assert sequences(db, schema) == []
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = %s", schema) == []
    triggers = db.query(
        """SELECT c.relname, t.tgname FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'pgmq' AND t.tgname LIKE %s""",
        f"{schema}%",
    )
    assert triggers == []
    functions = "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s"
    assert db.query(functions, schema) == []
    config = PgmqNotifyConfig()
    sub = subscribe(db.dsn, [config.global_message_ready_channel(), config.queue_created_channel()])
    db.query("SELECT pgmq.create('after_rollback_queue')")
    ((msg_id,),) = db.query("""SELECT pgmq.send('after_rollback_queue', '{"still": "works"}')""")
    ((read_id,),) = db.query("SELECT msg_id FROM pgmq.read('after_rollback_queue', 30, 1)")
    assert read_id == msg_id
    assert sub.drain() == []
    db.query("SELECT pgmq.drop_queue('after_rollback_queue')")


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An empty project folder (the tools' working directory)."""
    folder = tmp_path / "project"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# -- the end-of-run list of tool tests that could not run --------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if SKIP_MARK in reason:
            skipped.append((report.nodeid, reason))
    ran_tool_tests = any("tests/formats/test_tool_" in r.nodeid for r in terminalreporter.stats.get("passed", []))
    if not skipped and not ran_tool_tests:
        return
    terminalreporter.section("migration tools", sep="=", bold=True, yellow=bool(skipped), green=not skipped)
    terminalreporter.write_line(f"{len(skipped)} tool test(s) skipped because a tool could not be installed")
    for nodeid, reason in skipped:
        terminalreporter.write_line(f"  SKIPPED {nodeid}: {reason}", yellow=True)

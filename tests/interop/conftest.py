"""Fixtures that run the real tasker-pgmq 0.1.3 crate next to our SQL and runtime.

``tasker`` (session) builds the Rust side once with ``tests/interop/build.sh``
(warm: about 2 s; cold: minutes, cached under ``~/.cache/pgmq-codegen``) and
hands out the two binaries: ``tasker_listener`` (the crate's own listener,
parser and channel naming; see ``tasker_listener/src/main.rs``) and
``tasker-pgmq-cli`` (the crate's migration generator and config validator).
If the build fails and no cached binaries work, every interop test is skipped
with the reason, and the reason is repeated in the terminal summary.

``TASKER_LISTENER`` and ``TASKER_PGMQ_CLI`` in the environment point at
prebuilt binaries and skip the build.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_runtime.events import (
    BatchReadyEvent,
    InvalidEvent,
    MessageReadyEvent,
    MessageWithPayloadEvent,
    ParsedEvent,
    QueueCreatedEvent,
)

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
TASKER_VERSION = "0.1.3"
_CACHE = Path(os.environ.get("PGMQ_CODEGEN_CACHE", Path.home() / ".cache" / "pgmq-codegen"))
_CACHED_LISTENER = _CACHE / "interop-target" / "release" / "tasker_listener"
_CACHED_CLI = _CACHE / "tasker-pgmq" / "bin" / "tasker-pgmq-cli"
# A cold build compiles sqlx, tokio and friends: allow it, but not forever.
BUILD_TIMEOUT = 30 * 60

_skip_reason: list[str] = []
_notes: list[str] = []
_db_counter = itertools.count()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly that the interop proof did not run, and why."""
    if _skip_reason:
        terminalreporter.write_sep("=", "tasker-pgmq interop tests SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(f"tests/interop: {_skip_reason[0]}")
    for note in _notes:
        terminalreporter.write_line(f"tests/interop: {note}", yellow=True)


@dataclass(frozen=True)
class TaskerBinaries:
    listener: Path
    cli: Path


def _works(listener: Path, cli: Path) -> str | None:
    """None if both binaries run and the CLI is the pinned version, else why not."""
    for path in (listener, cli):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"{path} is missing or not executable"
    try:
        subprocess.run([str(listener), "--help"], capture_output=True, check=True, timeout=30)
        version = subprocess.run(
            [str(cli), "--version"], capture_output=True, text=True, encoding="utf-8", check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run the interop binaries: {exc}"
    if TASKER_VERSION not in version.stdout:
        return f"{cli} is {version.stdout.strip()!r}, not tasker-pgmq-cli {TASKER_VERSION}"
    return None


def _build() -> tuple[TaskerBinaries | None, str]:
    if os.environ.get("TASKER_LISTENER") and os.environ.get("TASKER_PGMQ_CLI"):
        given = TaskerBinaries(Path(os.environ["TASKER_LISTENER"]), Path(os.environ["TASKER_PGMQ_CLI"]))
        problem = _works(given.listener, given.cli)
        return (None, f"TASKER_LISTENER/TASKER_PGMQ_CLI: {problem}") if problem else (given, "")
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        output = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key in ("TASKER_LISTENER", "TASKER_PGMQ_CLI"):
                output[key] = value
        built_problem = f"{BUILD_SCRIPT} failed (exit {proc.returncode}): " + " | ".join(
            proc.stderr.strip().splitlines()[-3:]
        )
        if proc.returncode == 0 and len(output) == 2:
            built = TaskerBinaries(Path(output["TASKER_LISTENER"]), Path(output["TASKER_PGMQ_CLI"]))
            problem = _works(built.listener, built.cli)
            if problem is None:
                return built, ""
            built_problem = problem
    except (OSError, subprocess.TimeoutExpired) as exc:
        built_problem = f"{BUILD_SCRIPT} did not run: {exc}"
    # No cargo or no network, but an earlier build is cached: use it.
    if _works(_CACHED_LISTENER, _CACHED_CLI) is None:
        _notes.append(f"{built_problem}; used the cached binaries under {_CACHE}")
        return TaskerBinaries(_CACHED_LISTENER, _CACHED_CLI), ""
    return None, built_problem


@pytest.fixture(scope="session")
def tasker() -> TaskerBinaries:
    """The real crate's binaries; skips every interop test (loudly) when they cannot be had."""
    if _skip_reason:
        pytest.skip(_skip_reason[0])
    binaries, problem = _build()
    if binaries is None:
        _skip_reason.append(f"cannot build the tasker-pgmq {TASKER_VERSION} interop program: {problem}")
        pytest.skip(_skip_reason[0])
    return binaries


@pytest.fixture(autouse=True)
def _tasker_first(tasker: TaskerBinaries) -> None:
    """Every interop test needs the crate: resolve it before any database is made, so a skip is cheap."""


@pytest.fixture
def other_dsn(pg_server: LocalPostgres, pgmq_template: str) -> Iterator[str]:
    """A second fresh database with PGMQ, to run tasker's SQL and ours side by side."""
    name = f"interop_{os.getpid()}_{next(_db_counter)}"
    janitor = DatabaseJanitor(
        user="postgres", host="127.0.0.1", port=pg_server.port, dbname=name, template_dbname=pgmq_template
    )
    janitor.init()
    try:
        yield pg_server.dsn_for(name)
    finally:
        janitor.drop()


# -- the crate's listener as a subprocess ---------------------------------------


@dataclass
class CrateListener:
    """``tasker_listener`` in listen mode: the crate's PgmqNotifyListener, one JSON line per notification."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    channels: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"unparsed_output": line})
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def _next(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait_ready(self, timeout: float = 15.0) -> list[str]:
        line = self._next(timeout)
        if not (line and line.get("ready")):
            self.stop()
            raise AssertionError(f"tasker_listener not ready: {line!r}; stderr: {''.join(self.stderr)[-2000:]}")
        self.channels = list(line["channels"])
        return self.channels

    def collect(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` notification lines (events or parse errors), failing after ``timeout``."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            line = self._next(max(deadline - time.monotonic(), 0.01))
            if line is None or "done" in line or "fatal" in line or line.get("kind") == "connection":
                raise AssertionError(f"expected {count} notifications, got {len(got)}: {got!r}; then {line!r}")
            got.append(line)
        return got

    def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Whatever arrives within ``seconds`` (to show that nothing, or nothing more, came)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            line = self._next(left)
            if line is None or "done" in line:
                break
            got.append(line)
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def crate_listener(tasker: TaskerBinaries) -> Iterator[Any]:
    """Factory: ``crate_listener(dsn, namespaces=[...], queue_created=..., glob=..., prefix=..., pattern=...)``.

    Starts the crate's listener, waits for its ``ready`` line and returns a
    :class:`CrateListener`; every one started is stopped after the test.
    """
    started: list[CrateListener] = []

    def start(
        dsn: str,
        namespaces: Sequence[str] = (),
        *,
        queue_created: bool = False,
        glob: bool = False,
        prefix: str | None = None,
        pattern: str | None = None,
        timeout_secs: float = 30,
    ) -> CrateListener:
        args = [str(tasker.listener), "--dsn", dsn, "--timeout-secs", str(timeout_secs)]
        for ns in namespaces:
            args += ["--namespace", ns]
        if queue_created:
            args.append("--queue-created")
        if glob:
            args.append("--global")
        if prefix is not None:
            args += ["--prefix", prefix]
        if pattern is not None:
            args += ["--pattern", pattern]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        listener = CrateListener(proc)
        started.append(listener)
        listener.wait_ready()
        return listener

    yield start
    for listener in started:
        listener.stop()


def crate_channels(
    tasker: TaskerBinaries,
    *,
    prefix: str | None = None,
    pattern: str | None = None,
    queues: Sequence[str] = (),
    namespaces: Sequence[str] = (),
) -> dict[str, Any]:
    """What the crate's ``PgmqNotifyConfig`` computes (``tasker_listener --print-channels``)."""
    args = [str(tasker.listener), "--print-channels"]
    if prefix is not None:
        args += ["--prefix", prefix]
    if pattern is not None:
        args += ["--pattern", pattern]
    for q in queues:
        args += ["--queue", q]
    for ns in namespaces:
        args += ["--namespace", ns]
    proc = subprocess.run(args, capture_output=True, text=True, encoding="utf-8", check=True, timeout=30)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def tasker_cli(tasker: TaskerBinaries, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tasker-pgmq-cli`` (not checked: callers look at the exit code)."""
    return subprocess.run(
        [str(tasker.cli), *args], capture_output=True, text=True, encoding="utf-8", check=False, timeout=60, cwd=cwd
    )


def tasker_migration(tasker: TaskerBinaries, directory: Path, config_toml: str) -> str:
    """The SQL that ``tasker-pgmq-cli generate-migration --config`` writes for ``config_toml``.

    The config must say ``[migration] include_rollback = false``: with CLI flags
    the generated file always ends in its DOWN part, which undoes the UP part
    when the file is applied as a whole (see tests/interop/README.md).
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tasker.toml"
    config.write_text(config_toml, encoding="utf-8")
    out = directory / "migrations"
    proc = tasker_cli(tasker, "generate-migration", "--config", str(config), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    (sql_file,) = out.glob("*.sql")
    return sql_file.read_text(encoding="utf-8")


def tasker_config_toml(
    *,
    pattern: str = r"(?P<namespace>\w+)_queue",
    prefix: str | None = None,
    max_payload_size: int = 7800,
    include_rollback: bool = False,
) -> str:
    """A tasker-pgmq CLI config file (every key its ``validate-config`` requires)."""
    lines = [f"queue_naming_pattern = '{pattern}'"]
    if prefix is not None:
        lines.append(f'channels_prefix = "{prefix}"')
    lines += [
        f"max_payload_size = {max_payload_size}",
        "include_metadata = true",
        "",
        "[migration]",
        f"include_rollback = {'true' if include_rollback else 'false'}",
        'name_prefix = "add_pgmq_notifications"',
        "",
    ]
    return "\n".join(lines)


# -- comparing the crate's view of a notification with ours -----------------------

# The crate's PgmqNotifyEvent variant that each of our typed events corresponds to.
VARIANTS = {
    "QueueCreated": "QueueCreatedEvent",
    "MessageReady": "MessageReadyEvent",
    "MessageWithPayload": "MessageWithPayloadEvent",
    "BatchReady": "BatchReadyEvent",
}


def crate_time(text: str) -> datetime:
    """A chrono ``DateTime<Utc>`` as serde writes it (RFC 3339, ``Z``)."""
    return datetime.fromisoformat(text)


def assert_same_event(crate_line: dict[str, Any], ours: ParsedEvent) -> None:
    """The crate parsed the notification into the variant and field values that our parser did.

    Compares every field the crate's variant has: ids, names, namespace,
    payload, timestamps (as instants), delay, metadata and the visibility
    timeout. Fields that only we carry (``headers``, ``payload_omitted``) are
    not in the crate's types, which ignore unknown fields.
    """
    assert "variant" in crate_line, f"the crate rejected the notification: {crate_line!r}"
    assert not isinstance(ours, InvalidEvent), f"our parser rejected it: {ours.reason}"
    variant, event = crate_line["variant"], crate_line["event"]
    assert type(ours).__name__ == VARIANTS[variant], (variant, ours)
    assert event["event_type"] == ours.event_type
    assert (event["queue_name"], event["namespace"]) == (ours.queue_name, ours.namespace)
    if isinstance(ours, QueueCreatedEvent):
        assert crate_time(event["created_at"]) == ours.created_at
        assert event["metadata"] == dict(ours.metadata)
        return
    assert crate_time(event["ready_at"]) == ours.ready_at
    if isinstance(ours, MessageWithPayloadEvent):
        # This variant of the crate has no metadata field.
        assert (event["msg_id"], event["message"], event["delay_seconds"]) == (
            ours.msg_id,
            ours.message,
            ours.delay_seconds,
        )
    elif isinstance(ours, MessageReadyEvent):
        assert event["msg_id"] == ours.msg_id
        assert event["visibility_timeout_seconds"] == ours.visibility_timeout_seconds
        assert event["metadata"] == dict(ours.metadata)
    else:
        assert isinstance(ours, BatchReadyEvent)
        assert tuple(event["msg_ids"]) == ours.msg_ids
        assert (event["message_count"], event["delay_seconds"]) == (ours.message_count, ours.delay_seconds)
        assert event["metadata"] == dict(ours.metadata)

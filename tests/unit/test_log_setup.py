"""--log-level and --log-format: the CLI's one handler, text or JSON lines; options after the verb."""

from __future__ import annotations

import io
import json
import logging

import pytest

from pgmq_codegen import log_setup
from tests.unit.test_cli import cli


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_extras_and_the_exception(restore_root):
    stream = io.StringIO()
    log_setup.configure("info", "json", stream)
    log = logging.getLogger("pgmq_runtime.listener")
    log.debug("not shown")
    try:
        raise ValueError("boom")
    except ValueError:
        log.warning("reconnected after %.1f s", 2.5, extra={"down_seconds": 2.5}, exc_info=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "warning",
        "pgmq_runtime.listener",
        "reconnected after 2.5 s",
    )
    assert entry["down_seconds"] == 2.5
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")


def test_configuring_again_replaces_the_handler_instead_of_adding_one(restore_root):
    first, second = io.StringIO(), io.StringIO()
    log_setup.configure("warning", "text", first)
    log_setup.configure("error", "text", second)
    logging.getLogger("pgmq_runtime.consumer").error("fell back to polling")
    assert first.getvalue() == ""
    assert "ERROR   pgmq_runtime.consumer: fell back to polling" in second.getvalue()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["worker", "m:f", "--log-level", "info"], ["--log-level", "info", "worker", "m:f"]),
        (["sql", "--log-format=json", "--rollback"], ["--log-format=json", "sql", "--rollback"]),
        (["worker", "m:f", "--", "--log-level", "x"], ["worker", "m:f", "--", "--log-level", "x"]),
    ],
)
def test_the_options_may_follow_the_verb(given, expected):
    assert log_setup.hoist(given) == expected


def test_an_unknown_level_is_one_error_line_and_exit_2():
    result = cli("sql", "--log-level", "loud")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'loud' is not one of" in result.stderr

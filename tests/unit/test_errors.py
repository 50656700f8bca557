"""One helper flattens an exception to one line (issue #21): ``pgmq_runtime.errors.describe_error``."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from pgmq_runtime import db
from pgmq_runtime.errors import DatabaseError, PgmqNotInstalledError, QueueNotFoundError, describe_error

ROOT = Path(__file__).resolve().parents[2]


def test_describe_error_gives_the_first_line_with_or_without_the_class_name():
    exc = ValueError("  first line\nsecond line\n")
    assert describe_error(exc) == "ValueError: first line"
    assert describe_error(exc, with_type=False) == "first line"
    assert describe_error(ValueError()) == describe_error(ValueError(), with_type=False) == "ValueError"


def test_translate_keeps_the_first_line_of_the_driver_message():
    missing = psycopg.errors.UndefinedTable('relation "pgmq.meta" does not exist\nLINE 1: SELECT ...\n  ^')
    translated = db.translate(missing)
    assert isinstance(translated, PgmqNotInstalledError)
    assert str(translated) == 'relation "pgmq.meta" does not exist (is PGMQ installed in this database?)'
    queue = db.translate(psycopg.errors.UndefinedTable('relation "pgmq.q_x" does not exist\nLINE 1'), queue="x")
    assert isinstance(queue, QueueNotFoundError)
    assert str(queue) == "queue 'x' does not exist (relation \"pgmq.q_x\" does not exist)"
    empty = db.translate(psycopg.errors.DivisionByZero())
    assert type(empty) is DatabaseError and str(empty) == "DivisionByZero"


def test_no_other_module_flattens_exceptions_itself():
    flattening = re.compile(r"str\(\w+\)\.strip\(\)\.splitlines\(\)")
    found = sorted(
        path.relative_to(ROOT).as_posix()
        for package in ("pgmq_runtime", "pgmq_codegen")
        for path in (ROOT / package).rglob("*.py")
        if flattening.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["pgmq_runtime/errors.py"]

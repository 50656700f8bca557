"""Shared fixtures: one throwaway PostgreSQL per session, a fresh database per test.

The server is started by the test set-up itself (as the ``postgres`` system
user when we run as root). PGMQ is installed once into a template database
from the SQL the ``pgmq`` package ships; every test gets its own copy with
``CREATE DATABASE ... TEMPLATE`` (pytest-postgresql's DatabaseJanitor), so
tests stay fast and independent.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from pgmq_codegen import render
from pgmq_codegen.throwaway_postgres import LocalPostgres
from pgmq_codegen.vendored_pgmq import install_pgmq
from pgmq_runtime.config import PgmqNotifyConfig

TEMPLATE_DB = "pgmq_template"
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL server for the whole session."""
    server = LocalPostgres(settings={"max_connections": "300"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pgmq_template(pg_server: LocalPostgres) -> str:
    """Name of a template database with PGMQ installed."""
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    install_pgmq(pg_server.dsn_for(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def dsn(pg_server: LocalPostgres, pgmq_template: str) -> Iterator[str]:
    """DSN of a fresh database of this test's own, with PGMQ installed."""
    name = f"t_{os.getpid()}_{next(_db_counter)}"
    janitor = DatabaseJanitor(
        user="postgres", host="127.0.0.1", port=pg_server.port, dbname=name, template_dbname=pgmq_template
    )
    janitor.init()
    try:
        yield pg_server.dsn_for(name)
    finally:
        janitor.drop()


@pytest.fixture
def bare_dsn(pg_server: LocalPostgres) -> Iterator[str]:
    """DSN of a fresh database without PGMQ."""
    name = f"bare_{os.getpid()}_{next(_db_counter)}"
    janitor = DatabaseJanitor(user="postgres", host="127.0.0.1", port=pg_server.port, dbname=name)
    janitor.init()
    try:
        yield pg_server.dsn_for(name)
    finally:
        janitor.drop()


def apply_statements(dsn: str, statements: list[str]) -> None:
    """Run statements one by one in one transaction, as a migration tool would."""
    with psycopg.connect(dsn) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def install(dsn: str, config: PgmqNotifyConfig) -> None:
    """Apply the generated install SQL for ``config``."""
    apply_statements(dsn, render.install_statements(config))


@dataclass
class Received:
    """One notification as received."""

    channel: str
    payload: str

    @property
    def event(self) -> dict[str, object]:
        return dict(json.loads(self.payload))


@dataclass
class Subscriber:
    """A plain LISTEN connection that records what arrives (test helper, no runtime code)."""

    dsn: str
    channels: list[str]
    conn: psycopg.Connection[tuple[object, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        for channel in self.channels:
            self.conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))

    def drain(self, timeout: float = 0.3) -> list[Received]:
        """Everything that arrives until ``timeout`` seconds pass without a notification."""
        got: list[Received] = []
        while True:
            batch = [Received(n.channel, n.payload) for n in self.conn.notifies(timeout=timeout)]
            if not batch:
                return got
            got.extend(batch)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def subscribe() -> Iterator[object]:
    """Factory: ``subscribe(dsn, [channels])`` returns a Subscriber closed after the test."""
    made: list[Subscriber] = []

    def factory(dsn: str, channels: list[str]) -> Subscriber:
        sub = Subscriber(dsn, channels)
        made.append(sub)
        return sub

    yield factory
    for sub in made:
        sub.close()

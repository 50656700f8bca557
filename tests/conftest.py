"""Shared fixtures: one throwaway PostgreSQL per session, a fresh database per test.

The server is started by the test set-up itself (as the ``postgres`` system
user when we run as root). PGMQ is installed once into a template database
from the SQL the ``pgmq`` package ships; every test gets its own copy with
``CREATE DATABASE ... TEMPLATE`` (pytest-postgresql's DatabaseJanitor), so
tests stay fast and independent.

Server versions: ``--pg 15,18`` or ``PGMQ_CODEGEN_TEST_PG=15,18`` runs every
test that uses the server once per version (ids end in ``[pg15]``/``[pg18]``);
without either, the server on this machine. PGMQ is also installed as a real
extension (``pgmq.control`` in the server's extension folder): ``ext_dsn`` is
a fresh database where PGMQ came from ``CREATE EXTENSION pgmq``. A module or
test marked ``both_installs`` runs each test that uses ``dsn`` on both installs
(ids ``[pg15-sql-...]``, ``[pg15-extension-...]``); unmarked tests get loose SQL.
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
from tests import servers

#: How PGMQ gets into a test's database: its SQL run as a script, or ``CREATE EXTENSION pgmq``.
INSTALL_KINDS = ("sql", "extension")
TEMPLATE_DB = "pgmq_template"
EXTENSION_TEMPLATE_DB = "pgmq_ext_template"
_db_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg",
        default=None,
        help=f"PostgreSQL major versions to run the integration tests on, e.g. 15,18 (env {servers.ENV_VERSIONS})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_installs: run each test that uses dsn with PGMQ from loose SQL and as an extension"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pg_major" in metafunc.fixturenames:
        versions: list[int | None] = list(servers.requested_versions(metafunc.config.getoption("--pg")))
        metafunc.parametrize(
            "pg_major", versions or [None], ids=[f"pg{v}" if v else "pg" for v in versions or [None]], scope="session"
        )
    if "pgmq_install" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_installs"):
        metafunc.parametrize("pgmq_install", INSTALL_KINDS, ids=list(INSTALL_KINDS))


@pytest.fixture(scope="session")
def pg_server(pg_major: int | None) -> Iterator[LocalPostgres]:
    """A PostgreSQL server for the whole session (one per requested major version)."""
    try:
        bindir = servers.bindir_for(pg_major)
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc))
    server = LocalPostgres(settings={"max_connections": "300"}, bindir=bindir)
    server.start()
    try:
        assert server.bindir is not None  # where start() runs it from (a reachable copy of the wheel's)
        servers.install_pgmq_extension_files(server.bindir)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_partman(pg_server: LocalPostgres) -> None:
    """pg_partman can be created in the session's server; else the test skips, saying why.

    Its packaged extension files are copied in when the server has none of its
    own (see :func:`tests.servers.install_partman_extension_files`).
    """
    assert pg_server.bindir is not None
    reason = servers.install_partman_extension_files(pg_server.bindir)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def server_major(pg_server: LocalPostgres) -> int:
    """Major version of the session's server."""
    assert pg_server.bindir is not None
    return servers.server_major(pg_server.bindir)


@pytest.fixture(scope="session")
def pgmq_template(pg_server: LocalPostgres) -> str:
    """Name of a template database with PGMQ installed."""
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    install_pgmq(pg_server.dsn_for(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def pgmq_install() -> str:
    """How ``dsn`` got PGMQ: ``"sql"``, or each of :data:`INSTALL_KINDS` in a test marked ``both_installs``."""
    return "sql"


@pytest.fixture
def dsn(request: pytest.FixtureRequest, pg_server: LocalPostgres, pgmq_install: str) -> Iterator[str]:
    """DSN of a fresh database of this test's own, with PGMQ installed (see ``pgmq_install``)."""
    if pgmq_install == "extension":
        yield from _fresh_copy(pg_server, "x", request.getfixturevalue("pgmq_extension_template"))
    else:
        yield from _fresh_copy(pg_server, "t", request.getfixturevalue("pgmq_template"))


def _fresh_copy(pg_server: LocalPostgres, prefix: str, template: str) -> Iterator[str]:
    """A new database copied from ``template``, dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{next(_db_counter)}"
    janitor = DatabaseJanitor(
        user="postgres", host="127.0.0.1", port=pg_server.port, dbname=name, template_dbname=template
    )
    janitor.init()
    try:
        yield pg_server.dsn_for(name)
    finally:
        janitor.drop()


@pytest.fixture(scope="session")
def pgmq_extension_template(pg_server: LocalPostgres) -> str:
    """Name of a template database where PGMQ is installed with ``CREATE EXTENSION pgmq``."""
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{EXTENSION_TEMPLATE_DB}"')
    with psycopg.connect(pg_server.dsn_for(EXTENSION_TEMPLATE_DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgmq")
    return EXTENSION_TEMPLATE_DB


@pytest.fixture
def ext_dsn(pg_server: LocalPostgres, pgmq_extension_template: str) -> Iterator[str]:
    """DSN of a fresh database of this test's own, with PGMQ installed as an extension."""
    yield from _fresh_copy(pg_server, "x", pgmq_extension_template)


@pytest.fixture(params=INSTALL_KINDS)
def any_dsn(request: pytest.FixtureRequest, pg_server: LocalPostgres) -> str:
    """A fresh database with PGMQ from loose SQL, then (second run) as an extension."""
    del pg_server  # named so that the server version parametrises this fixture too
    return str(request.getfixturevalue("dsn" if request.param == "sql" else "ext_dsn"))


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


@dataclass
class Roles:
    """Non-superuser roles made for one test; dropped (with what they own) after it."""

    dsn: str
    made: list[str] = field(default_factory=list)

    def create(self, label: str, *grants: str) -> str:
        """A LOGIN role named after ``label``; its DSN. ``grants`` run with ``{role}`` and ``{database}`` filled in."""
        name = f"{label}_{os.getpid()}_{next(_db_counter)}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(name)))
            self.made.append(name)
            for grant in grants:
                self.run(grant, role=name)
        return self.dsn.replace("postgresql://postgres@", f"postgresql://{name}@", 1)

    def run(self, statement: str, **names: str) -> None:
        """Run ``statement`` as the superuser, with ``{database}`` and the given role names quoted in."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            database = conn.info.dbname
            quoted = {key: psycopg.sql.Identifier(value).as_string(conn) for key, value in names.items()}
            quoted["database"] = psycopg.sql.Identifier(database).as_string(conn)
            conn.execute(statement.format(**quoted).encode())

    def drop_all(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for name in reversed(self.made):
                ident = psycopg.sql.Identifier(name)
                conn.execute(psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
                conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(ident))


@pytest.fixture
def roles() -> Iterator[object]:
    """Factory: ``roles(dsn)`` gives a :class:`Roles` for that database, cleaned up after the test."""
    made: list[Roles] = []

    def factory(dsn: str) -> Roles:
        made.append(Roles(dsn))
        return made[-1]

    yield factory
    for r in made:
        r.drop_all()

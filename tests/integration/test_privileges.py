"""Least privilege: each role of README "Roles and privileges" works with exactly those grants.

The grants below are the README's, word for word (a unit test keeps them
there). Every role is a non-superuser LOGIN role made by the test; the
database hardens default privileges the way careful deployments do
(``ALTER DEFAULT PRIVILEGES ... REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC``)
before our migration runs. The app that creates a queue also sends to it; the
consumer role runs the real ``PgmqConsumer``: claims by catch-up and by event,
delete, archive, extend (our helper) and hand-back (``pgmq.set_vt``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import psycopg
import pytest

from pgmq_codegen import diff, render
from pgmq_codegen.vendored_pgmq import embedded_pgmq_sql
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import ClaimedMessage, PgmqConsumer
from tests.conftest import apply_statements
from tests.integration.test_runtime_consumer import WAIT_SECONDS

MIGRATOR = ("GRANT CREATE ON DATABASE {database} TO {role}",)
QUEUE_CREATOR = (
    "GRANT USAGE, CREATE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT, INSERT, DELETE ON pgmq.meta TO {role}",
)
SENDER = (
    "GRANT USAGE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT, INSERT ON pgmq.q_orders_queue TO {role}",
)
WRAPPER_SENDER = (
    *SENDER,
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgmq_notify TO {role}",
)
CONSUMER = (
    "GRANT USAGE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT, UPDATE, DELETE ON pgmq.q_orders_queue TO {role}",
    "GRANT SELECT, INSERT ON pgmq.a_orders_queue TO {role}",
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgmq_notify TO {role}",
)
DIFF_READER = (
    "GRANT USAGE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT ON pgmq.meta TO {role}",
)
HARDEN = "ALTER DEFAULT PRIVILEGES FOR ROLE {role} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"

CONFIGS = [
    PgmqNotifyConfig(),
    PgmqNotifyConfig(coalesce_ms=50),
    PgmqNotifyConfig(mode="wrapper"),
    PgmqNotifyConfig(mode="both", coalesce_ms=50),
]
IDS = ["trigger", "coalescing", "wrapper", "both-coalescing"]


def _as(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def _scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
        return row[0] if row else None


def _role(dsn: str) -> str:
    """The role name in a DSN made by ``roles``."""
    return dsn.split("//", 1)[1].split("@", 1)[0]


def _migrator_with_pgmq(bare_dsn: str, roles, how: str) -> tuple[object, str]:
    """A migrator role that installed PGMQ itself (it then owns pgmq.meta), and hardened defaults."""
    r = roles(bare_dsn)
    migrator = r.create("migrator", *MIGRATOR)
    if how == "extension":
        _as(migrator, "CREATE EXTENSION pgmq")
    else:
        with psycopg.connect(migrator) as conn:
            conn.execute(embedded_pgmq_sql().encode())
    r.run(HARDEN, role=_role(migrator))
    return r, migrator


@pytest.mark.parametrize("how", ["sql", "extension"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_each_role_works_with_exactly_the_readme_grants(bare_dsn, roles, subscribe, config, how):
    r, migrator = _migrator_with_pgmq(bare_dsn, roles, how)
    apply_statements(migrator, render.install_statements(config))
    creator = r.create("creator", *QUEUE_CREATOR)
    sub = subscribe(bare_dsn, [config.queue_created_channel(), config.global_message_ready_channel()])

    _as(creator, "SELECT pgmq.create('orders_queue')")
    send = (
        """SELECT pgmq_notify.send_with_notify('orders_queue', '{"a": 1}')"""
        if config.mode == "wrapper"
        else """SELECT pgmq.send('orders_queue', '{"a": 1}')"""
    )
    # The app that created the queue sends to it too; in wrapper mode through the wrapper, with its grant.
    if config.mode == "wrapper":
        for grant in WRAPPER_SENDER[len(SENDER) :]:
            r.run(grant, role=_role(creator))
    sent = [_scalar(creator, send)]
    sender = r.create("sender", *(WRAPPER_SENDER if config.mode == "wrapper" else SENDER))
    sent.append(_scalar(sender, send))
    events = [x.event for x in sub.drain()]
    assert (events[0]["event_type"], events[0]["queue_name"]) == ("queue_created", "orders_queue")
    announced = [e["msg_id"] for e in events[1:] if e["queue_name"] == "orders_queue"]
    if config.coalesce_ms:
        assert announced[:1] == sent[:1]  # later sends in the window are coalesced (consumers re-read)
    else:
        assert announced == sent

    reader = r.create("reader", *DIFF_READER)
    report = diff.compare(reader, config)
    assert report.in_sync, report.findings

    # The migrator re-applies after another role created a queue; the creator drops it.
    apply_statements(migrator, render.install_statements(config))
    _as(creator, "SELECT pgmq.drop_queue('orders_queue')")
    assert diff.compare(reader, config).in_sync


async def _next(consumer: PgmqConsumer) -> ClaimedMessage:
    return await asyncio.wait_for(anext(consumer), WAIT_SECONDS)


@pytest.mark.parametrize("how", ["sql", "extension"])
async def test_a_consumer_with_exactly_the_readme_grants_claims_and_acknowledges(bare_dsn, roles, caplog, how):
    config = PgmqNotifyConfig()
    r, migrator = _migrator_with_pgmq(bare_dsn, roles, how)
    apply_statements(migrator, render.install_statements(config))
    creator = r.create("creator", *QUEUE_CREATOR)
    _as(creator, "SELECT pgmq.create('orders_queue')")
    sender = r.create("sender", *SENDER)
    consumer_dsn = r.create("consumer", *CONSUMER)

    def send(n: int) -> int:
        return int(str(_scalar(sender, f"""SELECT pgmq.send('orders_queue', '{{"n": {n}}}')""")))

    before = [send(n) for n in range(2)]
    caplog.set_level(logging.WARNING, logger="pgmq_runtime")
    # A slow timer far away: after the start-up catch-up, only events lead to claims.
    async with PgmqConsumer(
        consumer_dsn, "orders_queue", config, visibility_timeout=300, poll_interval=600
    ) as consumer:
        caught_up = [await _next(consumer) for _ in before]
        after = [await asyncio.to_thread(send, n) for n in range(2, 5)]
        by_event = [await _next(consumer) for _ in after]
        assert [m.msg_id for m in caught_up] == before and [m.msg_id for m in by_event] == after
        assert (consumer.stats.claimed_by_catch_up, consumer.stats.claimed_from_events) == (2, 3)
        assert await caught_up[0].delete() is True
        assert await caught_up[1].archive() is True
        new_vt = await by_event[0].extend(900)
        assert new_vt is not None and new_vt >= by_event[0].vt + timedelta(seconds=500)
        assert await consumer.release([by_event[1]]) == 1  # pgmq.set_vt(..., 0): visible again at once
    logged = [(x.levelname, x.getMessage()) for x in caplog.records if x.name.startswith("pgmq_runtime")]
    assert logged == []
    with psycopg.connect(bare_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT msg_id, vt <= clock_timestamp() FROM pgmq.q_orders_queue ORDER BY msg_id")
        left = rows.fetchall()
        archived = conn.execute("SELECT msg_id FROM pgmq.a_orders_queue").fetchall()
    # The extended one is held, the released one visible, the third still claimed (300 s).
    assert left == [(after[0], False), (after[1], True), (after[2], False)]
    assert archived == [(before[1],)]


def test_without_the_public_execute_grant_diff_reports_it_and_the_repair_restores_it(bare_dsn, roles):
    config = PgmqNotifyConfig()
    r, migrator = _migrator_with_pgmq(bare_dsn, roles, "sql")
    apply_statements(migrator, render.install_statements(config))
    _as(migrator, "REVOKE EXECUTE ON FUNCTION pgmq_notify.extract_namespace_v1(text) FROM PUBLIC")
    creator = r.create("creator", *QUEUE_CREATOR)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(creator, "SELECT pgmq.create('orders_queue')")
    report = diff.compare(migrator, config)
    assert [(f.kind, f.name) for f in report.findings] == [("changed", "pgmq_notify.extract_namespace_v1(text)")]
    assert "EXECUTE is not granted to PUBLIC" in report.findings[0].detail
    apply_statements(migrator, report.repair_statements())
    _as(creator, "SELECT pgmq.create('orders_queue')")
    assert diff.compare(migrator, config).in_sync


def test_a_migrator_that_does_not_own_a_queue_table_fails_first_naming_it(bare_dsn, roles):
    config = PgmqNotifyConfig()
    r, migrator = _migrator_with_pgmq(bare_dsn, roles, "extension")
    creator = r.create("creator", *QUEUE_CREATOR)
    _as(creator, "SELECT pgmq.create('orders_queue')")  # before our migration: it needs attaching
    creator_name = _role(creator)
    with pytest.raises(psycopg.errors.RaiseException) as caught:
        apply_statements(migrator, render.install_statements(config))
    message = str(caught.value).splitlines()[0]
    assert message == f"pgmq-codegen: role {_role(migrator)} does not own " + (
        f"pgmq.q_orders_queue (owner {creator_name})"
    )
    assert caught.value.diag.message_hint is not None and "GRANT the owning role" in caught.value.diag.message_hint
    with psycopg.connect(bare_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('pgmq_notify')").fetchone() == (None,)

    # With membership in the owner's role, the install and its rollback both go through.
    r.run("GRANT {creator} TO {migrator}", creator=creator_name, migrator=_role(migrator))
    apply_statements(migrator, render.install_statements(config))
    assert diff.compare(migrator, config).in_sync
    r.run("REVOKE {creator} FROM {migrator}", creator=creator_name, migrator=_role(migrator))
    with pytest.raises(psycopg.errors.RaiseException, match=r"does not own pgmq\.q_orders_queue"):
        apply_statements(migrator, render.rollback_statements(config))

"""Deployments as production runs them: PGMQ as an extension, other roles, PGMQ upgrades.

Every test here runs with PGMQ from loose SQL and as a real extension
(``any_dsn``) where both can hold, and on every server version of the session.
"""

from __future__ import annotations

import psycopg
import pytest

from pgmq_codegen import diff, render
from pgmq_runtime.config import PgmqNotifyConfig
from tests import servers
from tests.conftest import apply_statements, install

COALESCING = PgmqNotifyConfig(coalesce_ms=50)
APP_CREATES_QUEUES = (
    "GRANT USAGE, CREATE ON SCHEMA pgmq TO {role}",
    "GRANT SELECT, INSERT, DELETE ON pgmq.meta TO {role}",
)


def _scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return row[0]


def _sequences(dsn: str, schema: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = %s::regnamespace ORDER BY 1",
            [schema],
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_pgmq_is_a_real_extension_and_our_install_notifies(ext_dsn, subscribe, server_major):
    config = PgmqNotifyConfig()
    install(ext_dsn, config)
    sub = subscribe(ext_dsn, [config.queue_created_channel(), config.global_message_ready_channel()])
    assert _scalar(ext_dsn, "SELECT extversion FROM pg_extension WHERE extname = 'pgmq'") == servers.pgmq_version()
    assert int(str(_scalar(ext_dsn, "SHOW server_version_num"))) // 10000 == server_major
    with psycopg.connect(ext_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("""SELECT pgmq.send('orders_queue', '{"a": 1}')""")
    kinds = [r.event["event_type"] for r in sub.drain()]
    assert kinds == ["queue_created", "message_with_payload"]


def test_a_role_that_does_not_own_our_schema_creates_queues_with_coalescing(any_dsn, roles, subscribe):
    install(any_dsn, COALESCING)
    app = roles(any_dsn).create("app", *APP_CREATES_QUEUES)
    sub = subscribe(any_dsn, [COALESCING.global_message_ready_channel()])
    with psycopg.connect(app, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("""SELECT pgmq.send('orders_queue', '{"a": 1}')""")
    assert [r.event["queue_name"] for r in sub.drain()] == ["orders_queue"]
    assert _sequences(any_dsn, COALESCING.schema) == ["coalesce_q_orders_queue"]
    assert diff.compare(any_dsn, COALESCING).in_sync


@pytest.mark.parametrize("config", [PgmqNotifyConfig(), COALESCING], ids=["default", "coalescing"])
def test_drop_queue_removes_what_we_added_for_the_queue(any_dsn, roles, config):
    install(any_dsn, config)
    app = roles(any_dsn).create("app", *APP_CREATES_QUEUES)
    with psycopg.connect(app, autocommit=True) as conn:
        for name in ("a_queue", "b_queue"):
            conn.execute("SELECT pgmq.create(%s)", [name])
        conn.execute("SELECT pgmq.drop_queue('a_queue')")
    expected = ["coalesce_q_b_queue"] if config.coalesce_ms else []
    assert _sequences(any_dsn, config.schema) == expected
    report = diff.compare(any_dsn, config)
    assert report.in_sync, report.findings


def test_an_extension_update_that_recreates_message_record_keeps_our_helpers(ext_dsn):
    config = PgmqNotifyConfig()
    install(ext_dsn, config)
    with psycopg.connect(ext_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute(f"ALTER EXTENSION pgmq UPDATE TO '{servers.UPGRADE_TEST_VERSION}'")
        msg_id = conn.execute("""SELECT * FROM pgmq.send('orders_queue', '{"a": 1}')""").fetchone()
        assert msg_id is not None
        claimed = conn.execute(
            "SELECT msg_id, message FROM pgmq_notify.read_specific_batch_v1('orders_queue', ARRAY[%s], 30)",
            [msg_id[0]],
        ).fetchall()
        assert claimed == [(msg_id[0], {"a": 1})]
    report = diff.compare(ext_dsn, config)
    assert report.in_sync, report.findings


def test_the_type_cascade_of_pgmq_upgrades_keeps_our_helpers(dsn):
    """The statement PGMQ's 1.9 to 1.10 script runs, on loose-SQL PGMQ."""
    config = PgmqNotifyConfig()
    install(dsn, config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TYPE IF EXISTS pgmq.message_record CASCADE")
    missing = [f.name for f in diff.compare(dsn, config).findings]
    assert missing == []


def test_drop_extension_is_not_blocked_and_a_re_created_pgmq_is_repaired_by_diff(ext_dsn):
    config = PgmqNotifyConfig()
    install(ext_dsn, config)
    with psycopg.connect(ext_dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pgmq")
        conn.execute("CREATE EXTENSION pgmq")
    report = diff.compare(ext_dsn, config)
    assert {(f.kind, f.object_type) for f in report.findings} == {("missing", "trigger")}
    apply_statements(ext_dsn, report.repair_statements())
    assert diff.compare(ext_dsn, config).in_sync


@pytest.mark.parametrize(
    "config",
    [PgmqNotifyConfig(), COALESCING, PgmqNotifyConfig(mode="wrapper"), PgmqNotifyConfig(mode="both")],
    ids=["trigger", "coalescing", "wrapper", "both"],
)
def test_apply_reapply_create_drop_and_rollback_print_no_notice(any_dsn, config):
    notices: list[str] = []
    with psycopg.connect(any_dsn) as conn:
        conn.add_notice_handler(lambda d: notices.append(f"{d.severity}: {d.message_primary}"))
        conn.execute("SELECT pgmq.create('before_queue')")
        for _ in range(2):
            for statement in render.install_statements(config):
                conn.execute(statement.encode())
        conn.execute("SELECT pgmq.create('after_queue')")
        conn.execute("""SELECT pgmq.send('after_queue', '{"a": 1}')""")
        conn.execute("SELECT pgmq.drop_queue('after_queue')")
        for statement in render.rollback_statements(config):
            conn.execute(statement.encode())
        for statement in render.rollback_statements(config):
            conn.execute(statement.encode())
    assert notices == []

"""The runtime's start-up install check, and the pg_dump restore it exists for."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from pgmq_codegen import diff, render
from pgmq_runtime.config import PgmqNotifyConfig
from pgmq_runtime.consumer import PgmqConsumer
from pgmq_runtime.errors import PgmqNotifyError
from pgmq_runtime.install_check import check_install, check_install_async
from pgmq_runtime.listener import PgmqNotifyListener
from tests.conftest import apply_statements, install

DEFAULT = PgmqNotifyConfig()


def _kinds(dsn: str, config: PgmqNotifyConfig = DEFAULT) -> list[str]:
    return [p.kind for p in check_install(dsn, config).problems]


def test_a_matching_install_is_ok_with_a_dsn_or_a_connection(any_dsn):
    install(any_dsn, DEFAULT)
    assert check_install(any_dsn, DEFAULT).ok
    with psycopg.connect(any_dsn) as conn:  # not autocommit: the check leaves no transaction open
        assert check_install(conn, DEFAULT).ok
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_each_broken_state_is_named_with_its_repair(dsn, bare_dsn):
    assert _kinds(bare_dsn) == ["pgmq_missing"]
    assert _kinds(dsn) == ["not_installed"]
    install(dsn, dataclasses.replace(DEFAULT, schema="elsewhere"))
    report = check_install(dsn, DEFAULT)
    assert [p.kind for p in report.problems] == ["not_installed"]
    assert "schema elsewhere" in report.summary() and "pgmq-codegen diff" in report.repair

    install(dsn, DEFAULT)
    assert _kinds(dsn, dataclasses.replace(DEFAULT, channels_prefix="myapp")) == ["other_config"]
    wrapper = check_install(dsn, dataclasses.replace(DEFAULT, mode="wrapper"))
    assert [p.kind for p in wrapper.problems] == ["other_config"]
    assert "installed for mode 'trigger', this config has mode 'wrapper'" in wrapper.summary()

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("ALTER TABLE pgmq.q_orders_queue DISABLE TRIGGER pgmq_notify_on_insert_v1")
        conn.execute("DROP FUNCTION pgmq_notify.read_specific_v1(text, bigint, integer)")
        conn.execute("DROP FUNCTION pgmq_notify.read_specific_batch_v1(text, bigint[], integer)")
        conn.execute("DROP TRIGGER pgmq_notify_on_queue_created_v1 ON pgmq.meta")
    report = check_install(dsn, DEFAULT)
    assert [p.kind for p in report.problems] == ["stale", "meta_trigger_missing", "untriggered_queues"]
    assert "orders_queue" in report.summary()
    apply_statements(dsn, render.install_statements(DEFAULT))
    assert check_install(dsn, DEFAULT).ok


@pytest.fixture
def restored(pg_server, ext_dsn) -> Iterator[str]:
    """``ext_dsn`` dumped with pg_dump and restored into a new database (its DSN)."""
    name = ext_dsn.rsplit("/", 1)[1] + "_restored"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.dsn_for(name)
    finally:
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _dump_and_restore(pg_server, source: str, target: str) -> None:
    dump = subprocess.run(
        [str(pg_server.bindir / "pg_dump"), "--format=custom", source], capture_output=True, check=True
    )
    subprocess.run(
        [str(pg_server.bindir / "pg_restore"), "--exit-on-error", "-d", target],
        input=dump.stdout,
        capture_output=True,
        check=True,
    )


def test_a_pg_dump_restore_of_an_extension_install_is_detected_and_reapplying_repairs_it(
    pg_server, ext_dsn, restored, subscribe
):
    install(ext_dsn, DEFAULT)
    with psycopg.connect(ext_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('old_queue')")
    _dump_and_restore(pg_server, ext_dsn, restored)

    sub = subscribe(restored, [DEFAULT.queue_created_channel(), DEFAULT.global_message_ready_channel()])
    with psycopg.connect(restored, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('new_queue')")
        conn.execute("""SELECT pgmq.send('new_queue', '{"a": 1}')""")
        conn.execute("""SELECT pgmq.send('old_queue', '{"a": 2}')""")
    # PostgreSQL's pg_dump leaves our triggers on pgmq.meta behind: the new queue is silent.
    assert [(r.event["event_type"], r.event["queue_name"]) for r in sub.drain()] == [
        ("message_with_payload", "old_queue")
    ]
    report = check_install(restored, DEFAULT)
    assert [p.kind for p in report.problems] == ["meta_trigger_missing", "untriggered_queues"]
    assert "pg_dump does not keep triggers" in report.summary()
    assert "re-apply the pgmq-codegen migration" in report.summary()
    assert not diff.compare(restored, DEFAULT).in_sync

    apply_statements(restored, render.install_statements(DEFAULT))
    assert check_install(restored, DEFAULT).ok
    with psycopg.connect(restored, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('newer_queue')")
        conn.execute("""SELECT pgmq.send('new_queue', '{"a": 3}')""")
    assert [(r.event["event_type"], r.event["queue_name"]) for r in sub.drain()] == [
        ("queue_created", "newer_queue"),
        ("message_with_payload", "new_queue"),
    ]


async def test_listener_and_consumer_log_one_error_naming_the_repair_at_start_up(dsn, caplog):
    install(dsn, DEFAULT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgmq.create('orders_queue')")
        conn.execute("DROP TRIGGER pgmq_notify_on_queue_dropped_v1 ON pgmq.meta")
    async with await psycopg.AsyncConnection.connect(dsn) as aconn:
        report = await check_install_async(aconn, DEFAULT)
    assert [p.kind for p in report.problems] == ["meta_trigger_missing"]
    caplog.set_level(logging.ERROR, logger="pgmq_runtime.install_check")
    async with PgmqNotifyListener(dsn, DEFAULT):
        pass
    async with PgmqConsumer(dsn, ["orders_queue"], DEFAULT):
        pass
    errors = [r for r in caplog.records if r.name == "pgmq_runtime.install_check"]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR  # logged once per process
    assert "pgmq_notify_on_queue_dropped_v1" in errors[0].getMessage()
    assert "re-apply the pgmq-codegen migration" in errors[0].getMessage()


async def test_the_client_logs_a_missing_install_at_start_up(dsn, caplog):
    """A client on a database with PGMQ but without our migration says so when it opens."""
    from pgmq_runtime.client import PgmqNotifyClient

    config = PgmqNotifyConfig(schema="client_check_schema")
    caplog.set_level(logging.ERROR, logger="pgmq_runtime.install_check")
    async with PgmqNotifyClient(dsn, config):
        pass
    errors = [r for r in caplog.records if r.name == "pgmq_runtime.install_check"]
    assert len(errors) == 1 and errors[0].getMessage().startswith("client: install check:")
    assert "client_check_schema" in errors[0].getMessage()


def test_an_install_made_by_another_generator_version_is_stale_as_diff_says(dsn):
    install(dsn, DEFAULT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"COMMENT ON SCHEMA pgmq_notify IS 'pgmq-codegen 0.0.1 fingerprint={DEFAULT.fingerprint()}'")
    report = check_install(dsn, DEFAULT)
    assert [p.kind for p in report.problems] == ["stale"]
    assert "made by pgmq-codegen 0.0.1" in report.summary()
    assert not diff.compare(dsn, DEFAULT).in_sync


async def test_a_listener_on_a_database_without_pgmq_logs_an_error_a_consumer_leaves_it_to_its_calls(bare_dsn, caplog):
    """A listener makes no PGMQ call that could fail: it must say that no event will come."""
    caplog.set_level(logging.DEBUG, logger="pgmq_runtime.install_check")
    async with PgmqNotifyListener(bare_dsn, DEFAULT):
        pass
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith("listener: install check:")
    assert "PGMQ is not installed" in errors[0].getMessage() and "install PGMQ" in errors[0].getMessage()


async def test_a_consumer_on_a_database_without_pgmq_fails_on_its_own_call_and_its_listener_stays_quiet(
    bare_dsn, caplog
):
    caplog.set_level(logging.DEBUG, logger="pgmq_runtime.install_check")
    consumer = PgmqConsumer(bare_dsn, ["orders_queue"], DEFAULT, poll_interval=0.05)
    async with consumer:
        with pytest.raises(PgmqNotifyError, match="PGMQ") as caught:
            await consumer.__anext__()
    assert "\n" not in str(caught.value)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

"""``diff`` against a real server: drift is reported precisely and ``--sql`` repairs it."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from rich.console import Console

from pgmq_codegen import __version__, diff, diff_output
from pgmq_codegen.errors import DatabaseError
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import apply_statements, install

DEFAULT = PgmqNotifyConfig()
META = object_names.meta_trigger_name(DEFAULT)
ON_INSERT = object_names.message_trigger_name(DEFAULT)
CLI_HAS_DIFF = "def diff(" in (Path(__file__).parents[2] / "pgmq_codegen" / "cli.py").read_text()


def _sql(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def _found(report: diff.DiffReport, *kinds: str) -> set[tuple[str, str, str]]:
    return {(f.kind, f.object_type, f.name) for f in report.findings if not kinds or f.kind in kinds}


def _repair_and_check(dsn: str, config: PgmqNotifyConfig, report: diff.DiffReport) -> None:
    """Apply the repair as a migration tool would, statement by statement; the next diff is clean."""
    assert not report.in_sync
    apply_statements(dsn, report.repair_statements())
    again = diff.compare(dsn, config)
    assert again.in_sync, again.findings
    assert again.repair_sql() == ""


def _function_names(config: PgmqNotifyConfig) -> set[str]:
    return {f"{config.schema}.{spec.name}" for spec in object_names.functions_for(config)}


# -- in sync ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        DEFAULT,
        PgmqNotifyConfig(mode="wrapper", schema="notify_custom"),
        PgmqNotifyConfig(mode="both", schema="notify_custom", channels_prefix="my.app"),
        PgmqNotifyConfig(channels_prefix="myapp", include_payload="never", global_channel=False),
        PgmqNotifyConfig(coalesce_ms=20),
        PgmqNotifyConfig(mode="wrapper", coalesce_ms=20),
    ],
    ids=[
        "trigger-defaults",
        "wrapper-custom-schema",
        "both-prefix-schema",
        "trigger-prefix-options",
        "trigger-coalescing",
        "wrapper-coalescing",
    ],
)
def test_a_fresh_install_is_in_sync_with_queues_made_before_and_after(dsn, config):
    long_name = "x" * 40 + "_queue"  # its namespace channel is shortened with an md5 suffix
    _sql(dsn, "SELECT pgmq.create('early_queue')", "SELECT pgmq.create('Mixed_Case_Queue')")
    install(dsn, config)
    _sql(dsn, "SELECT pgmq.create('late_queue')", f"SELECT pgmq.create('{long_name}')")
    report = diff.compare(dsn, config)
    assert report.findings == ()
    assert report.in_sync and report.repair_statements() == [] and report.repair_sql() == ""


def test_a_fresh_pgmq_database_misses_everything_and_the_repair_installs_it(dsn):
    _sql(dsn, "SELECT pgmq.create('orders_queue')")
    report = diff.compare(dsn, DEFAULT)
    functions = [f.name for f in report.findings if f.object_type == "function"]
    assert {name.split("(")[0] for name in functions} == _function_names(DEFAULT)
    assert len(functions) == len(object_names.functions_for(DEFAULT))
    assert _found(report) - {("missing", "function", n) for n in functions} == {
        ("missing", "schema", "pgmq_notify"),
        ("missing", "trigger", f"{META} ON pgmq.meta"),
        ("untriggered_queue", "queue", "orders_queue"),
    }
    _repair_and_check(dsn, DEFAULT, report)


def test_compare_changes_nothing_in_the_database(dsn):
    def snapshot() -> list[tuple[object, ...]]:
        with psycopg.connect(dsn) as conn:
            return conn.execute(
                "SELECT 'proc', oid::regprocedure::text FROM pg_proc WHERE pronamespace NOT IN "
                "('pg_catalog'::regnamespace, 'information_schema'::regnamespace) "
                "UNION ALL SELECT 'schema', nspname FROM pg_namespace "
                "UNION ALL SELECT 'trigger', tgname FROM pg_trigger ORDER BY 1, 2"
            ).fetchall()

    before = snapshot()
    assert not diff.compare(dsn, DEFAULT).in_sync
    assert not diff.compare(dsn, PgmqNotifyConfig(mode="both", schema="other")).in_sync
    assert snapshot() == before


# -- drift, one kind at a time -----------------------------------------------------

DRIFTS = {
    "queue created with triggers disabled": (
        [
            "SET session_replication_role = replica",
            "SELECT pgmq.create('silent_queue')",
            "RESET session_replication_role",
        ],
        {("untriggered_queue", "queue", "silent_queue")},
        "has no pgmq_notify_on_insert_v1 trigger",
    ),
    "message trigger disabled by hand": (
        ["SELECT pgmq.create('muted_queue')", f"ALTER TABLE pgmq.q_muted_queue DISABLE TRIGGER {ON_INSERT}"],
        {("untriggered_queue", "queue", "muted_queue")},
        "is disabled",
    ),
    "message trigger dropped": (
        ["SELECT pgmq.create('bare_queue')", f"DROP TRIGGER {ON_INSERT} ON pgmq.q_bare_queue"],
        {("untriggered_queue", "queue", "bare_queue")},
        "has no pgmq_notify_on_insert_v1 trigger",
    ),
    "meta trigger dropped": (
        [f"DROP TRIGGER {META} ON pgmq.meta"],
        {("missing", "trigger", f"{META} ON pgmq.meta")},
        "new queues get no trigger",
    ),
    "function body edited, comment intact": (
        [
            "CREATE OR REPLACE FUNCTION pgmq_notify.extract_namespace_v1(p_queue_name text) RETURNS text "
            "LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT 'hacked' $$"
        ],
        {("changed", "function", "pgmq_notify.extract_namespace_v1(text)")},
        "'hacked'",
    ),
    "function made SECURITY DEFINER": (
        ["ALTER FUNCTION pgmq_notify.extend_vt_v1(text, bigint, integer) SECURITY DEFINER"],
        {("changed", "function", "pgmq_notify.extend_vt_v1(text, bigint, integer)")},
        "SECURITY DEFINER",
    ),
    "trigger arguments edited": (
        [
            "SELECT pgmq.create('orders_queue')",
            f"DROP TRIGGER {ON_INSERT} ON pgmq.q_orders_queue",
            f"CREATE TRIGGER {ON_INSERT} AFTER INSERT ON pgmq.q_orders_queue REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION pgmq_notify.on_message_insert_v1('orders_queue', 'other', 'x')",
            f"COMMENT ON TRIGGER {ON_INSERT} ON pgmq.q_orders_queue IS "
            f"'pgmq-codegen {__version__} fingerprint={DEFAULT.fingerprint()}'",
        ],
        {("changed", "trigger", f"{ON_INSERT} ON pgmq.q_orders_queue")},
        "namespace argument is 'other', expected 'orders'; channel argument is 'x'",
    ),
    "meta trigger enabled always, comment replaced": (
        [f"ALTER TABLE pgmq.meta ENABLE ALWAYS TRIGGER {META}", f"COMMENT ON TRIGGER {META} ON pgmq.meta IS 'mine'"],
        {("changed", "trigger", f"{META} ON pgmq.meta"), ("stale_fingerprint", "trigger", f"{META} ON pgmq.meta")},
        "ENABLE ALWAYS",
    ),
    "schema usage revoked": (
        ["REVOKE USAGE ON SCHEMA pgmq_notify FROM PUBLIC"],
        {("changed", "schema", "pgmq_notify")},
        "USAGE",
    ),
    "our trigger on a table that is not a queue": (
        [
            "CREATE TABLE pgmq.not_a_queue (x int)",
            f"CREATE TRIGGER {ON_INSERT} AFTER INSERT ON pgmq.not_a_queue "
            "FOR EACH STATEMENT EXECUTE FUNCTION pgmq_notify.on_queue_created_v1()",
        ],
        {("extra", "trigger", f"{ON_INSERT} ON pgmq.not_a_queue")},
        "not the table of a queue",
    ),
    "left-over function of an older version": (
        [
            "CREATE FUNCTION pgmq_notify.old_helper_v0() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
            "COMMENT ON FUNCTION pgmq_notify.old_helper_v0() IS 'pgmq-codegen 0.0.1 fingerprint=0000000000000000'",
        ],
        {("extra", "function", "pgmq_notify.old_helper_v0()")},
        "not rendered by this config",
    ),
}


COALESCING = PgmqNotifyConfig(coalesce_ms=20)
COALESCING_DRIFTS = {
    "window sequence dropped": (
        ["SELECT pgmq.create('orders_queue')", "DROP SEQUENCE pgmq_notify.coalesce_q_orders_queue"],
        {("missing", "sequence", "pgmq_notify.coalesce_q_orders_queue")},
        "every send to it notifies",
    ),
    "window sequence grant revoked": (
        [
            "SELECT pgmq.create('orders_queue')",
            "REVOKE UPDATE ON SEQUENCE pgmq_notify.coalesce_q_orders_queue FROM PUBLIC",
        ],
        {("changed", "sequence", "pgmq_notify.coalesce_q_orders_queue")},
        "permission denied",
    ),
    "queue dropped, its sequence left": (
        ["SELECT pgmq.create('gone_queue')", "SELECT pgmq.drop_queue('gone_queue')"],
        {("extra", "sequence", "pgmq_notify.coalesce_q_gone_queue")},
        "no queue of pgmq.meta has this table",
    ),
}


CASES = [(DEFAULT, DRIFTS, case) for case in DRIFTS] + [(COALESCING, COALESCING_DRIFTS, c) for c in COALESCING_DRIFTS]


@pytest.mark.parametrize(("config", "drifts", "case"), CASES, ids=[c.replace(" ", "-") for _, _, c in CASES])
def test_each_drift_is_reported_precisely_and_repaired(dsn, config, drifts, case):
    setup, expected, detail = drifts[case]
    install(dsn, config)
    _sql(dsn, *setup)
    report = diff.compare(dsn, config)
    assert _found(report) == expected
    assert any(detail in f.detail for f in report.findings), [f.detail for f in report.findings]
    _repair_and_check(dsn, config, report)


def test_turning_coalescing_on_or_off_reports_the_sequences_and_the_repair_follows(dsn):
    install(dsn, DEFAULT)
    _sql(dsn, "SELECT pgmq.create('orders_queue')")
    on = diff.compare(dsn, COALESCING)
    assert ("missing", "sequence", "pgmq_notify.coalesce_q_orders_queue") in _found(on)
    _repair_and_check(dsn, COALESCING, on)
    off = diff.compare(dsn, DEFAULT)
    assert ("extra", "sequence", "pgmq_notify.coalesce_q_orders_queue") in _found(off)
    assert any("coalesce_ms is 0" in f.detail for f in off.findings)
    _repair_and_check(dsn, DEFAULT, off)


def test_functions_create_or_replace_cannot_change_are_dropped_before_the_install(dsn):
    install(dsn, DEFAULT)
    _sql(
        dsn,
        "DROP FUNCTION pgmq_notify.extract_namespace_v1(text)",
        "CREATE FUNCTION pgmq_notify.extract_namespace_v1(queue text) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$",
        "DROP FUNCTION pgmq_notify.delete_specific_v1(text, bigint)",
        "CREATE FUNCTION pgmq_notify.delete_specific_v1(p_queue_name text, p_msg_id bigint) RETURNS integer "
        "LANGUAGE sql AS $$ SELECT 1 $$",
    )
    report = diff.compare(dsn, DEFAULT)
    details = {f.name: f.detail for f in report.of_kind("changed")}
    assert "arguments (queue text), expected (p_queue_name text)" in details["pgmq_notify.extract_namespace_v1(text)"]
    assert "returns integer, expected boolean" in details["pgmq_notify.delete_specific_v1(text, bigint)"]
    assert report.drops_before_install == (
        'DROP FUNCTION IF EXISTS "pgmq_notify"."delete_specific_v1"(text, bigint);',
        'DROP FUNCTION IF EXISTS "pgmq_notify"."extract_namespace_v1"(text);',
    )
    _repair_and_check(dsn, DEFAULT, report)


# -- the story -------------------------------------------------------------


def test_drift_story_from_fresh_database_to_prefix_change(dsn, subscribe):
    # A fresh PGMQ database: everything is missing; the migration makes it clean.
    report = diff.compare(dsn, DEFAULT)
    assert report.of_kind("missing") and not report.in_sync
    _repair_and_check(dsn, DEFAULT, report)

    # Hand-made drift of four kinds at once.
    _sql(
        dsn,
        "SELECT pgmq.create('orders_queue')",
        "SET session_replication_role = replica",
        "SELECT pgmq.create('silent_queue')",
        "RESET session_replication_role",
        "SELECT pgmq.create('muted_queue')",
        f"ALTER TABLE pgmq.q_muted_queue DISABLE TRIGGER {ON_INSERT}",
        f"DROP TRIGGER {META} ON pgmq.meta",
        "CREATE OR REPLACE FUNCTION pgmq_notify.namespace_channel_v1(p_namespace text) RETURNS text "
        "LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp "
        "AS $$ BEGIN RETURN 'hijacked'; END $$",
    )
    report = diff.compare(dsn, DEFAULT)
    assert _found(report) == {
        ("missing", "trigger", f"{META} ON pgmq.meta"),
        ("changed", "function", "pgmq_notify.namespace_channel_v1(text)"),
        ("untriggered_queue", "queue", "silent_queue"),
        ("untriggered_queue", "queue", "muted_queue"),
    }

    # The config's prefix changes: every object's fingerprint is stale, the
    # functions that spell a channel and every queue trigger's channel differ.
    prefixed = dataclasses.replace(DEFAULT, channels_prefix="myapp")
    report = diff.compare(dsn, prefixed)
    channel_functions = {
        "pgmq_notify.namespace_channel_v1(text)",
        "pgmq_notify.on_queue_created_v1()",
        "pgmq_notify.announce_batch_v1(text, text, text, bigint[], timestamp with time zone, text)",
        "pgmq_notify.announce_message_v1(text, text, text, bigint, timestamp with time zone, jsonb, jsonb, text)",
        "pgmq_notify.attach_v1(text)",  # carries the marker for the triggers it attaches
        "pgmq_notify.on_message_insert_v1()",  # announces a single send inline, global channel included
    }
    assert _found(report, "changed") == {("changed", "function", name) for name in channel_functions} | {
        ("changed", "trigger", f"{ON_INSERT} ON pgmq.q_orders_queue"),
        ("changed", "trigger", f"{ON_INSERT} ON pgmq.q_muted_queue"),
    }
    trigger_detail = next(f.detail for f in report.of_kind("changed") if f.name.endswith("q_orders_queue"))
    assert trigger_detail == (
        "channel argument is 'pgmq_message_ready.orders', expected 'myapp.pgmq_message_ready.orders'"
    )
    stale = _found(report, "stale_fingerprint")
    stale_functions = [name for _, kind, name in stale if kind == "function"]
    assert {name.split("(")[0] for name in stale_functions} == _function_names(prefixed)
    assert len(stale_functions) == len(object_names.functions_for(prefixed))
    assert {(kind, name) for _, kind, name in stale if kind != "function"} == {
        ("schema", "pgmq_notify"),
        ("trigger", f"{ON_INSERT} ON pgmq.q_orders_queue"),
        ("trigger", f"{ON_INSERT} ON pgmq.q_muted_queue"),
    }
    assert _found(report, "missing", "untriggered_queue", "extra") == {
        ("missing", "trigger", f"{META} ON pgmq.meta"),
        ("untriggered_queue", "queue", "silent_queue"),
        ("untriggered_queue", "queue", "muted_queue"),
    }

    # --sql repairs it: the next diff is clean and the silent queue notifies on the new prefix.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(report.repair_sql().encode())
    assert diff.compare(dsn, prefixed).in_sync
    sub = subscribe(dsn, [prefixed.message_ready_channel("silent")])
    _sql(dsn, """SELECT pgmq.send('silent_queue', '{"n": 1}')""", "SELECT pgmq.create('new_queue')")
    assert [r.channel for r in sub.drain()] == ["myapp.pgmq_message_ready.silent"]
    assert diff.compare(dsn, prefixed).in_sync  # the restored meta trigger attached new_queue


# -- modes and schemas ---------------------------------------------------------------

MODE_CHANGES = [(a, b) for a in ("trigger", "wrapper", "both") for b in ("trigger", "wrapper", "both") if a != b]


@pytest.mark.parametrize(("before", "after"), MODE_CHANGES, ids=[f"{a}-to-{b}" for a, b in MODE_CHANGES])
def test_a_mode_change_reports_missing_and_extra_objects_and_the_repair_drops_them(dsn, before, after):
    _sql(dsn, "SELECT pgmq.create('orders_queue')")
    old, new = PgmqNotifyConfig(mode=before), PgmqNotifyConfig(mode=after)
    install(dsn, old)
    report = diff.compare(dsn, new)
    names_old, names_new = _function_names(old), _function_names(new)
    extra_functions = {f.name.split("(")[0] for f in report.of_kind("extra") if f.object_type == "function"}
    missing_functions = {f.name.split("(")[0] for f in report.of_kind("missing")}
    assert extra_functions == names_old - names_new
    assert missing_functions == names_new - names_old
    extra_triggers = {f.name for f in report.of_kind("extra") if f.object_type == "trigger"}
    assert extra_triggers == ({f"{ON_INSERT} ON pgmq.q_orders_queue"} if after == "wrapper" else set())
    untriggered = {f.name for f in report.of_kind("untriggered_queue")}
    assert untriggered == ({"orders_queue"} if before == "wrapper" else set())
    _repair_and_check(dsn, new, report)
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pgmq.q_orders_queue'::regclass AND tgname = %s",
            (ON_INSERT,),
        ).fetchone()
    assert left == ((0,) if after == "wrapper" else (1,))


def test_another_schemas_install_is_not_ours(dsn):
    custom = PgmqNotifyConfig(schema="notify_b", channels_prefix="b")
    _sql(dsn, "SELECT pgmq.create('orders_queue')")
    install(dsn, DEFAULT)
    install(dsn, custom)
    assert diff.compare(dsn, DEFAULT).in_sync
    assert diff.compare(dsn, custom).in_sync


def test_a_role_with_only_read_and_temporary_rights_can_diff(dsn):
    install(dsn, DEFAULT)
    role = "reader_" + dsn.rsplit("/", 1)[1]  # roles are cluster-wide: one per test database
    _sql(
        dsn,
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE ON SCHEMA pgmq TO {role}",
        f"GRANT SELECT ON pgmq.meta TO {role}",
        "SELECT pgmq.create('orders_queue')",
    )
    reader_dsn = re.sub(r"//[^@/]+@", f"//{role}@", dsn)
    assert diff.compare(reader_dsn, DEFAULT).in_sync
    _sql(dsn, f"ALTER TABLE pgmq.q_orders_queue DISABLE TRIGGER {ON_INSERT}")
    assert _found(diff.compare(reader_dsn, DEFAULT)) == {("untriggered_queue", "queue", "orders_queue")}


# -- errors ----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dsn_that_does_not_connect_is_a_one_line_error_without_the_password():
    dsn = f"postgresql://someone:s3cret@127.0.0.1:{_closed_port()}/app"
    with pytest.raises(DatabaseError) as caught:
        diff.compare(dsn, DEFAULT)
    message = str(caught.value)
    assert message.startswith("cannot connect to the database:") and "\n" not in message
    assert "s3cret" not in message


def test_an_invalid_dsn_is_a_one_line_error():
    with pytest.raises(DatabaseError, match="invalid DSN") as caught:
        diff.compare("host=localhost port=5432 nonsense", DEFAULT)
    assert "\n" not in str(caught.value)


def test_a_database_without_pgmq_is_a_one_line_error(bare_dsn):
    with pytest.raises(DatabaseError) as caught:
        diff.compare(bare_dsn, DEFAULT)
    message = str(caught.value)
    assert "PGMQ is not installed" in message and "pgmq.meta" in message and "\n" not in message


def test_a_held_lock_fails_fast_with_a_clear_message(dsn):
    install(dsn, DEFAULT)
    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE pgmq.meta IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="waiting 300 ms for a lock") as caught:
            diff.compare(dsn, DEFAULT, lock_timeout_ms=300)
        assert time.monotonic() - started < 5
        holder.rollback()
    assert "\n" not in str(caught.value)


# -- output ----------------------------------------------------------------------------


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None, highlight=False), buffer


def test_output_table_json_and_sql_of_a_real_report(dsn):
    install(dsn, DEFAULT)
    _sql(dsn, "SELECT pgmq.create('orders_queue')", f"ALTER TABLE pgmq.q_orders_queue DISABLE TRIGGER {ON_INSERT}")
    report = diff.compare(dsn, DEFAULT)

    out, out_buf = _console()
    err, err_buf = _console()
    diff_output.emit(report, out=out, err=err, as_json=False, with_sql=False)
    text = out_buf.getvalue()
    assert "untriggered queue" in text and "orders_queue" in text and "is disabled" in text
    assert "Drift: 1 untriggered queue" in text and err_buf.getvalue() == ""

    out, out_buf = _console()
    diff_output.emit(report, out=out, err=err, as_json=True, with_sql=True)
    data = json.loads(out_buf.getvalue())
    assert data["format"] == "pgmq-codegen-diff" and data["version"] == 1 and data["in_sync"] is False
    assert data["summary"]["untriggered_queue"] == 1
    detail = report.findings[0].detail
    assert data["findings"] == [
        {"kind": "untriggered_queue", "object_type": "queue", "name": "orders_queue", "detail": detail}
    ]
    assert data["repair_sql"] == report.repair_sql()

    out, out_buf = _console()
    err, err_buf = _console()
    diff_output.emit(report, out=out, err=err, as_json=False, with_sql=True)
    assert out_buf.getvalue() == report.repair_sql()  # nothing but SQL on stdout
    assert "orders_queue" in err_buf.getvalue()


# -- the real command line (once cli.py has the diff command) ---------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "pgmq_codegen.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )


@pytest.mark.skipif(not CLI_HAS_DIFF, reason="pgmq_codegen/cli.py has no diff command yet")
def test_cli_exit_codes_json_and_sql(dsn, bare_dsn, tmp_path):
    config_file = tmp_path / "pgmq-codegen.toml"
    config_file.write_text('channels_prefix = "myapp"\n')
    drift = _cli("diff", "--dsn", dsn, "--config", str(config_file))
    assert drift.returncode == 1 and "missing" in drift.stdout, drift.stderr
    as_json = _cli("diff", "--dsn", dsn, "--config", str(config_file), "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["in_sync"] is False
    repair = _cli("diff", "--dsn", dsn, "--config", str(config_file), "--sql")
    assert repair.returncode == 1 and repair.stdout.startswith("-- pgmq-codegen")
    _sql(dsn, repair.stdout)
    clean = _cli("diff", "--dsn", dsn, "--config", str(config_file))
    assert clean.returncode == 0 and "In sync" in clean.stdout, clean.stdout + clean.stderr
    for args in (["--dsn", f"postgresql://x@127.0.0.1:{_closed_port()}/x"], ["--dsn", bare_dsn]):
        failed = _cli("diff", *args)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('mode = "nope"\n')
    assert _cli("diff", "--dsn", dsn, "--config", str(bad)).returncode == 2

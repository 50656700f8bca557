"""diff's findings, JSON and terminal output from hand-built database states (no server)."""

from __future__ import annotations

import dataclasses
import io
import json

from rich.console import Console

from pgmq_codegen import __version__, diff, diff_output, render
from pgmq_codegen.diff_inspect import DatabaseState, FunctionState, QueueState, SchemaState, TriggerState
from pgmq_runtime import object_names
from pgmq_runtime.config import PgmqNotifyConfig

CONFIG = PgmqNotifyConfig()
MARKER = render.marker(CONFIG)
FN = FunctionState("extract_namespace_v1", "text", "p_queue_name text", "text", "f", "body\n", MARKER)
META = TriggerState(
    name=object_names.meta_trigger_name(CONFIG),
    table_schema="pgmq",
    table="meta",
    tgtype=1 | 4,
    function_schema="pgmq_notify",
    function_name="on_queue_created_v1",
    function_arg_types="",
    args=(),
    new_table=None,
    old_table=None,
    has_when=False,
    has_columns=False,
    is_constraint=False,
    enabled="O",
    comment=MARKER,
)
QUEUE_TRIGGER = dataclasses.replace(
    META,
    name=object_names.message_trigger_name(CONFIG),
    table="q_orders_queue",
    tgtype=4,
    function_name="on_message_insert_v1",
    args=("orders_queue", "orders", "pgmq_message_ready.orders"),
    new_table="new_rows",
)
QUEUE = QueueState("orders_queue", "q_orders_queue", True, ("orders_queue", "orders", "pgmq_message_ready.orders"))


def _state(**changes: object) -> DatabaseState:
    base = DatabaseState(
        database='database "app" on db:5432',
        schema=SchemaState(exists=True, comment=MARKER, public_usage=True),
        functions={FN.key: FN},
        expected_functions={FN.key: FN},
        triggers=[META, QUEUE_TRIGGER],
        queues=[QUEUE],
        sequences=[],
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_matching_state_is_in_sync():
    report = diff.build_report(CONFIG, _state())
    assert report.in_sync and report.findings == () and report.repair_sql() == ""


def test_trigger_shape_differences_are_spelled_out():
    wrong = dataclasses.replace(
        QUEUE_TRIGGER, tgtype=1 | 2 | 4, function_schema="elsewhere", args=("orders_queue", "orders"), new_table=None
    )
    report = diff.build_report(CONFIG, _state(triggers=[META, wrong]))
    (finding,) = report.findings
    assert finding.kind == "changed" and finding.name == "pgmq_notify_on_insert_v1 ON pgmq.q_orders_queue"
    assert "fires BEFORE INSERT FOR EACH ROW, expected AFTER INSERT FOR EACH STATEMENT" in finding.detail
    assert "runs elsewhere.on_message_insert_v1(), expected pgmq_notify.on_message_insert_v1()" in finding.detail
    assert "has 2 arguments" in finding.detail and "transition tables NEW None" in finding.detail


def test_fingerprint_details_name_the_installed_version():
    old = dataclasses.replace(FN, comment="pgmq-codegen 0.0.9 fingerprint=abcdef0123456789")
    report = diff.build_report(CONFIG, _state(functions={FN.key: old}))
    (finding,) = report.findings
    assert finding.kind == "stale_fingerprint"
    assert finding.detail.startswith("installed by pgmq-codegen 0.0.9 with fingerprint abcdef0123456789")
    none = diff.build_report(CONFIG, _state(functions={FN.key: dataclasses.replace(FN, comment=None)}))
    assert none.findings[0].detail.startswith("has no pgmq-codegen comment")


def test_findings_are_sorted_by_kind_then_type_then_name_and_json_is_stable():
    state = _state(
        schema=SchemaState(exists=False, comment=None, public_usage=False),
        functions={},
        triggers=[META, dataclasses.replace(QUEUE_TRIGGER, enabled="D", comment=None)],
    )
    report = diff.build_report(CONFIG, state)
    assert [(f.kind, f.object_type) for f in report.findings] == [
        ("missing", "schema"),
        ("missing", "function"),
        ("stale_fingerprint", "trigger"),
        ("untriggered_queue", "queue"),
    ]
    data = json.loads(report.to_json())
    assert list(data) == [
        "format",
        "version",
        "generator",
        "database",
        "schema",
        "mode",
        "fingerprint",
        "in_sync",
        "summary",
        "findings",
    ]
    assert data["generator"] == f"pgmq-codegen {__version__}" and data["fingerprint"] == CONFIG.fingerprint()
    assert data["summary"] == {"missing": 2, "changed": 0, "stale_fingerprint": 1, "untriggered_queue": 1, "extra": 0}
    assert "repair_sql" not in data
    assert json.loads(report.to_json(include_sql=True))["repair_sql"] == report.repair_sql()


def test_repair_is_drops_then_install_then_extra_drops():
    extra_fn = FunctionState("attach_v1", "text", "p_queue_name text", "boolean", "f", "x\n", MARKER)
    wrapper = dataclasses.replace(CONFIG, mode="wrapper")
    state = _state(functions={FN.key: FN, extra_fn.key: extra_fn}, queues=[QUEUE])
    report = diff.build_report(wrapper, state)
    assert {(f.kind, f.name) for f in report.of_kind("extra")} == {
        ("extra", "pgmq_notify.attach_v1(text)"),
        ("extra", "pgmq_notify_on_insert_v1 ON pgmq.q_orders_queue"),
    }
    statements = report.repair_statements()
    assert statements[-2:] == [
        'DROP TRIGGER IF EXISTS "pgmq_notify_on_insert_v1" ON "pgmq"."q_orders_queue";',
        'DROP FUNCTION IF EXISTS "pgmq_notify"."attach_v1"(text);',
    ]
    assert statements[:-2] == render.install_statements(wrapper)


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160, color_system=None), buffer


def test_table_prints_names_with_brackets_literally_and_in_sync_says_so():
    bracket = FunctionState("announce_batch_v1", "text, bigint[]", "a text, b bigint[]", "void", "f", "x\n", MARKER)
    report = diff.build_report(CONFIG, _state(expected_functions={FN.key: FN, bracket.key: bracket}))
    console, buffer = _console()
    diff_output.print_report(report, console)
    assert "pgmq_notify.announce_batch_v1(text, bigint[])" in buffer.getvalue()
    assert "Drift: 1 missing" in buffer.getvalue() and "--sql" in buffer.getvalue()
    console, buffer = _console()
    diff_output.print_report(diff.build_report(CONFIG, _state()), console)
    assert buffer.getvalue().startswith('In sync: database "app" on db:5432 carries exactly')


def test_emit_with_sql_when_in_sync_prints_nothing_on_stdout():
    out, out_buf = _console()
    err, err_buf = _console()
    diff_output.emit(diff.build_report(CONFIG, _state()), out=out, err=err, as_json=False, with_sql=True)
    assert out_buf.getvalue() == "" and "In sync" in err_buf.getvalue()

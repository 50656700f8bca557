"""Rendering: golden files, statement splitting, quoting, template errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgmq_codegen import lint, objects, render
from pgmq_codegen.errors import LintError, RenderError
from pgmq_runtime.config import PgmqNotifyConfig
from tests import qualified

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "trigger_default": PgmqNotifyConfig(),
    "wrapper_prefixed": PgmqNotifyConfig(mode="wrapper", channels_prefix="shop.eu", include_metadata=False),
    "both_signal_only": PgmqNotifyConfig(mode="both", include_payload="never", global_channel=False, schema="events"),
    "wrapper_coalesced": PgmqNotifyConfig(mode="wrapper", coalesce_ms=25),
    "trigger_coalesced": PgmqNotifyConfig(coalesce_ms=20),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_sql_matches_the_golden_file(case):
    """Set PGMQ_CODEGEN_UPDATE_GOLDEN=1 to rewrite the files after a deliberate change."""
    rendered = render.render(CASES[case])
    for kind, text in (("install", rendered.install_text()), ("rollback", rendered.rollback_text())):
        path = GOLDEN / f"{case}.{kind}.sql"
        if os.environ.get("PGMQ_CODEGEN_UPDATE_GOLDEN"):
            path.write_text(text, encoding="utf-8")
        assert text == path.read_text(encoding="utf-8"), f"{path.name} differs"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_variant_passes_the_lint(case):
    rendered = render.render(CASES[case])
    report = lint.lint(rendered.install)
    assert report.statements == len(rendered.install)
    assert report.pglast_available and report.plpgsql_bodies > 0
    lint.lint(rendered.rollback)


def test_statements_hold_no_markers_and_one_statement_each():
    statements = render.install_statements(PgmqNotifyConfig())
    assert all(render.STATEMENT_MARK not in s for s in statements)
    assert all(s.rstrip().endswith(";") for s in statements)


def test_sql_literals_survive_quotes_and_backslashes():
    assert render.sql_literal("it's") == "'it''s'"
    assert render.sql_literal(r"a\w") == r"E'a\\w'"
    with pytest.raises(RenderError, match="NUL"):
        render.sql_literal("a\x00b")


def test_a_config_value_that_would_close_the_dollar_quote_is_refused():
    config = PgmqNotifyConfig(default_namespace="x$pgmq_codegen$")
    with pytest.raises(RenderError, match="closes the SQL quote"):
        render.install_statements(config)


def test_template_errors_name_the_template(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "read_template", lambda name: "{{ missing_value }}")
    with pytest.raises(RenderError, match=r"sql/install\.sql\.j2"):
        render.install_statements(PgmqNotifyConfig())


def test_the_lint_catches_a_broken_plpgsql_body():
    statements = render.install_statements(PgmqNotifyConfig())
    index = next(i for i, s in enumerate(statements) if "announce_message_v1(" in s and "plpgsql" in s)
    statements[index] = statements[index].replace("END IF;", "END IFF;", 1)
    with pytest.raises(LintError, match=f"statement {index + 1}.*IFF"):
        lint.lint(statements)


def test_the_lint_catches_broken_plain_sql_and_merged_statements():
    with pytest.raises(LintError, match="statement 1"):
        lint.lint(["CREATE TRIGGER t AFTER INSERT ON pgmq.meta FOR EACH EXECUTE FUNCTION f();"])
    with pytest.raises(LintError, match="holds 2 statements"):
        lint.lint(["DROP TRIGGER IF EXISTS a ON pgmq.meta; DROP TRIGGER IF EXISTS b ON pgmq.meta;"])


@pytest.mark.parametrize(
    "config",
    [
        PgmqNotifyConfig(),
        PgmqNotifyConfig(global_channel=False, include_metadata=False),
        PgmqNotifyConfig(include_payload="never"),
        PgmqNotifyConfig(coalesce_ms=20),
        PgmqNotifyConfig(mode="both", channels_prefix="shop.eu", schema="events"),
    ],
    ids=["default", "no_global", "never", "coalescing", "both"],
)
def test_the_unpinned_queue_trigger_names_every_function_operator_and_type_with_its_schema(config):
    """It runs on the caller's search_path: an unqualified name there could be redirected."""
    statement = next(
        s for s in render.install_statements(config) if f"{objects.qualified(config, 'on_message_insert_v1')}()" in s
    )
    assert "SET search_path" not in statement.split("AS $pgmq_codegen$")[0]
    assert qualified.named(statement)
    assert qualified.unqualified(statement) == set()


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_notify_is_behind_the_full_queue_guard(case):
    """Each function that NOTIFYs first checks pg_notification_queue_usage() against NOTIFY_QUEUE_LIMIT."""
    guard = f"pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<=) {render.NOTIFY_QUEUE_LIMIT!r}"
    notifying = [s for s in render.install_statements(CASES[case]) if "pg_notify(" in s and "FUNCTION" in s]
    assert notifying
    for statement in notifying:
        head, body = statement.split("$pgmq_codegen$", 1)
        assert guard in body, head
        assert body.index(guard) < body.index("pg_notify("), head


def test_the_full_queue_limit_is_a_template_constant(monkeypatch):
    monkeypatch.setattr(render, "NOTIFY_QUEUE_LIMIT", 0.25)
    assert "OPERATOR(pg_catalog.<=) 0.25::double precision" in render.render(PgmqNotifyConfig()).install_text()

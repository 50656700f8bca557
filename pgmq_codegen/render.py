"""Pure functions from a config to SQL text. No files, no connections.

Templates separate statements with a line holding only ``-- @@``; the splitter
uses those markers and nothing else, so the SQL users get is the template's
own text, never re-rendered through a parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jinja2

from pgmq_codegen import __version__, objects
from pgmq_codegen.errors import RenderError
from pgmq_codegen.resources import read_template
from pgmq_runtime.config import PgmqNotifyConfig

STATEMENT_MARK = "-- @@"
DOLLAR_TAG = "$pgmq_codegen$"
GENERATOR = "pgmq-codegen"


@dataclass(frozen=True)
class RenderedSql:
    """Install and rollback SQL as lists of statements (each with its comments)."""

    install: list[str]
    rollback: list[str]
    config: PgmqNotifyConfig

    def install_text(self) -> str:
        return _join(self.install, header(self.config, "install"))

    def rollback_text(self) -> str:
        return _join(self.rollback, header(self.config, "rollback"))


def sql_literal(value: object) -> str:
    """A SQL string literal that reads the same whatever standard_conforming_strings says."""
    text = str(value)
    if "\x00" in text:
        raise RenderError("a config value holds a NUL character, which PostgreSQL text cannot store")
    quoted = text.replace("'", "''")
    if "\\" in quoted:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def marker(config: PgmqNotifyConfig) -> str:
    """The comment put on every generated object; ``diff`` reads it back."""
    return f"{GENERATOR} {__version__} fingerprint={config.fingerprint()}"


def header(config: PgmqNotifyConfig, kind: str) -> str:
    """The comment block opening a rendered script."""
    prefix = config.channels_prefix or "(none)"
    return "\n".join(
        [
            f"-- pgmq-codegen {__version__}: {kind} of PGMQ notifications",
            f"-- config fingerprint {config.fingerprint()}; mode {config.mode}; schema {config.schema}",
            f"-- queue_naming_pattern {config.queue_naming_pattern}; channels_prefix {prefix}",
            "-- Any role that can connect can LISTEN to these channels and read their payloads;",
            '-- set include_payload = "never" when the database is shared between tenants.',
        ]
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["lit"] = sql_literal
    env.filters["ident"] = objects.quote_ident
    return env


def _load(name: str) -> tuple[str, str, Any]:
    try:
        return read_template(name), name, lambda: True
    except FileNotFoundError as exc:
        raise jinja2.TemplateNotFound(name) from exc


def render_template(name: str, **context: Any) -> str:
    """Render one template; failures name the template and line."""
    env = _environment()
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.name or name}, line {exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        line = _template_line(exc)
        raise RenderError(f"template {name}{line}: {exc}") from exc


def _template_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<template>") or "template" in tb.tb_frame.f_code.co_filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line else ""


# Above this share of PostgreSQL's notification queue in use (pg_notification_queue_usage(),
# 0 to 1), the trigger and the wrappers send no NOTIFY: a queue that a stuck listener
# fills must not turn sends into "too many notifications in the NOTIFY queue" errors
# at commit. Consumers' catch-up reads still deliver every message.
NOTIFY_QUEUE_LIMIT = 0.5


def sql_context(config: PgmqNotifyConfig) -> dict[str, Any]:
    """What the SQL templates see: the config, quoted names and channel names."""
    names = {spec.name: objects.qualified(config, spec.name) for spec in objects.FUNCTIONS}
    n = {
        "schema": objects.quote_ident(config.schema),
        "extract_namespace": names["extract_namespace_v1"],
        "namespace_channel": names["namespace_channel_v1"],
        "announce_message": names["announce_message_v1"],
        "announce_batch": names["announce_batch_v1"],
        "on_message_insert": names["on_message_insert_v1"],
        "attach": names["attach_v1"],
        "coalesce_gate": names["coalesce_gate_v1"],
        "on_queue_created": names["on_queue_created_v1"],
        "read_specific_batch": names["read_specific_batch_v1"],
        "read_specific": names["read_specific_v1"],
        "delete_specific": names["delete_specific_v1"],
        "extend_vt": names["extend_vt_v1"],
        "send_with_notify": names["send_with_notify"],
        "send_batch_with_notify": names["send_batch_with_notify"],
    }
    return {
        "c": config,
        "n": n,
        "marker": marker(config),
        "pattern_pg": config.translated_pattern.postgres,
        "queue_created_channel": config.queue_created_channel(),
        "global_channel_name": config.global_message_ready_channel(),
        "trigger_name": objects.message_trigger_name(config),
        "meta_trigger_name": objects.meta_trigger_name(config),
        "trigger_mode": config.mode in ("trigger", "both"),
        "wrapper_functions": config.mode in ("wrapper", "both"),
        "function_signatures": [spec.signature(config.schema) for spec in objects.FUNCTIONS],
        "other_mode_signatures": [
            spec.signature(config.schema) for spec in objects.FUNCTIONS if not spec.installed_for(config)
        ],
        "coalescing": config.coalesce_ms > 0,
        "attaching": config.mode in ("trigger", "both") or config.coalesce_ms > 0,
        "coalesce_prefix": objects.coalesce_sequence_prefix(),
        "notify_queue_limit": repr(float(NOTIFY_QUEUE_LIMIT)),
    }


def split_statements(text: str) -> list[str]:
    """Split rendered template text on ``-- @@`` lines, dropping empty pieces."""
    pieces = re.split(rf"^[ \t]*{re.escape(STATEMENT_MARK)}[ \t]*$", text, flags=re.MULTILINE)
    statements = [piece.strip("\n") for piece in pieces]
    statements = [s for s in statements if s.strip()]
    for statement in statements:
        if statement.count(DOLLAR_TAG) % 2:
            raise RenderError(f"a config value closes the SQL quote {DOLLAR_TAG} early; remove it from the config")
    return statements


def install_statements(config: PgmqNotifyConfig) -> list[str]:
    """The install script, one statement (with its leading comments) per item."""
    return split_statements(render_template("sql/install.sql.j2", **sql_context(config)))


def rollback_statements(config: PgmqNotifyConfig) -> list[str]:
    """The rollback script: removes every object the install creates."""
    return split_statements(render_template("sql/rollback.sql.j2", **sql_context(config)))


def render(config: PgmqNotifyConfig) -> RenderedSql:
    """Install and rollback statements for ``config``."""
    return RenderedSql(install_statements(config), rollback_statements(config), config)


def install_sql(config: PgmqNotifyConfig) -> str:
    """The whole install script as text."""
    return render(config).install_text()


def rollback_sql(config: PgmqNotifyConfig) -> str:
    """The whole rollback script as text."""
    return render(config).rollback_text()


def _join(statements: list[str], head: str) -> str:
    return head + "\n\n" + "\n\n".join(statements) + "\n"

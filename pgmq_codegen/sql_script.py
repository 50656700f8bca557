"""``pgmq-codegen sql``: the install or rollback script, as a typed function."""

from __future__ import annotations

from pgmq_codegen import lint, render
from pgmq_runtime.config import PgmqNotifyConfig


def sql_script(config: PgmqNotifyConfig, rollback: bool = False) -> str:
    """The install (or rollback) script for ``config``, linted."""
    rendered = render.render(config)
    lint.lint(rendered.rollback if rollback else rendered.install)
    return rendered.rollback_text() if rollback else rendered.install_text()

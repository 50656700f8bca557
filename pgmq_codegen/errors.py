"""Errors of the code generator; all derive from the runtime's base exception."""

from __future__ import annotations

from pgmq_runtime.errors import ConfigError, ConfigProblem, DatabaseError, PgmqNotifyError

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DatabaseError",
    "LintError",
    "MigrationLayoutError",
    "PgmqNotifyError",
    "RenderError",
]


class RenderError(PgmqNotifyError):
    """A template failed to render; the message names the template and line."""


class LintError(PgmqNotifyError):
    """Rendered SQL failed a lint check; nothing was written."""


class MigrationLayoutError(PgmqNotifyError):
    """A migration directory cannot take a new file (clash, ambiguous head, ...)."""

"""``pgmq-codegen generate-migration``: render, lint and write one migration, as a typed function."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgmq_codegen import formats, lint, render
from pgmq_codegen.atomic_files import write_atomically
from pgmq_codegen.errors import PgmqNotifyError
from pgmq_codegen.formats.base import MigrationRequest, refuse_clash
from pgmq_runtime.config import PgmqNotifyConfig

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")


@dataclass(frozen=True)
class GenerateResult:
    """The files written by ``generate_migration`` and what the lint checked."""

    files: list[Path]
    format: str
    lint: lint.LintReport


def generate_migration(
    config: PgmqNotifyConfig,
    format_name: str,
    output_dir: Path | None = None,
    name: str | None = None,
    now: datetime | None = None,
) -> GenerateResult:
    """Render, lint and write one migration for ``format_name``.

    Nothing is written unless everything succeeds: the config is valid, the
    SQL passes the lint, and no planned file exists already.
    """
    writer = formats.get(format_name)
    migration_name = name or config.migration.name_prefix
    if not _NAME.match(migration_name):
        raise PgmqNotifyError(f"migration name {migration_name!r} must hold only letters, digits and '_'")
    rendered = render.render(config)
    report = lint.lint(rendered.install)
    lint.lint(rendered.rollback)
    directory = output_dir if output_dir is not None else Path(writer.default_dir)
    request = MigrationRequest(
        rendered=rendered,
        directory=directory,
        name=migration_name,
        now=now or datetime.now(UTC),
        include_rollback=config.migration.include_rollback,
    )
    files = writer.plan(request)
    refuse_clash(files)
    for folder in {f.path.parent for f in files}:
        folder.mkdir(parents=True, exist_ok=True)
    write_atomically(files)
    return GenerateResult([f.path for f in files], writer.name, report)

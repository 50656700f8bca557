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
# What every install we generate carries in its COMMENT statements (see render.marker);
# rollback scripts carry none.
_OUR_INSTALL = re.compile(re.escape(render.GENERATOR) + r" \S+ fingerprint=[0-9a-f]+")
_NUMBERS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class GenerateResult:
    """The files written by ``generate_migration`` and what the lint checked."""

    files: list[Path]
    format: str
    lint: lint.LintReport
    # Set instead of ``files`` when the newest migration of ours in the folder already
    # installs exactly this config: nothing was written.
    already_installed_by: Path | None = None


def generate_migration(
    config: PgmqNotifyConfig,
    format_name: str,
    output_dir: Path | None = None,
    name: str | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> GenerateResult:
    """Render, lint and write one migration for ``format_name``.

    Nothing is written unless everything succeeds: the config is valid, the
    SQL passes the lint, and no planned file exists already. Nothing is written
    either when the newest migration of ours in the folder already installs
    exactly this config (same generator version and fingerprint), unless ``force``.
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
    if not force:
        newest = newest_install(files[0].path.parent, ordered_by_name=writer.name != "alembic")
        if newest is not None and render.marker(config) in newest.read_text(encoding="utf-8", errors="replace"):
            return GenerateResult([], writer.name, report, already_installed_by=newest)
    refuse_clash(files)
    for folder in {f.path.parent for f in files}:
        folder.mkdir(parents=True, exist_ok=True)
    write_atomically(files)
    return GenerateResult([f.path for f in files], writer.name, report)


def _name_order(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Numbers compared as numbers (V10 after V9), the rest as text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _NUMBERS.split(path.name) if part)


def newest_install(folder: Path, ordered_by_name: bool = True) -> Path | None:
    """The newest migration in ``folder`` that installs our SQL, or None.

    Migration tools order files by the version in their names; Alembic's
    revision ids are random, so its files are ordered by modification time.
    """
    if not folder.is_dir():
        return None
    ours = [
        p
        for p in folder.iterdir()
        if p.is_file() and _OUR_INSTALL.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    if not ours:
        return None
    if ordered_by_name:
        return max(ours, key=_name_order)
    return max(ours, key=lambda p: (p.stat().st_mtime_ns, p.name))

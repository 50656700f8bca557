"""The typed API behind each CLI verb; callable and testable from Python.

The CLI (cli.py) is a thin shell over these functions: it parses arguments,
calls one of them, and turns results and errors into Rich output and exit codes.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgmq_codegen import formats, lint, render
from pgmq_codegen.errors import MigrationLayoutError, PgmqNotifyError
from pgmq_codegen.formats.base import MigrationFile, MigrationRequest, refuse_clash
from pgmq_codegen.resources import read_template
from pgmq_runtime.config import DEFAULT_CONFIG_FILE, PgmqNotifyConfig

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")


def default_config_text() -> str:
    """The commented default config that ``init`` writes."""
    return read_template("config/pgmq-codegen.toml")


def init_config(path: Path = Path(DEFAULT_CONFIG_FILE), force: bool = False) -> Path:
    """Write the commented default config to ``path``; refuses to overwrite unless ``force``."""
    if path.exists() and not force:
        raise PgmqNotifyError(f"{path} exists already; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically([MigrationFile(path, default_config_text())], overwrite=force)
    return path


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
    _write_atomically(files)
    return GenerateResult([f.path for f in files], writer.name, report)


def sql_script(config: PgmqNotifyConfig, rollback: bool = False) -> str:
    """The install (or rollback) script for ``config``, linted."""
    rendered = render.render(config)
    lint.lint(rendered.rollback if rollback else rendered.install)
    return rendered.rollback_text() if rollback else rendered.install_text()


def _write_atomically(files: list[MigrationFile], overwrite: bool = False) -> None:
    """Write every file or none: temp files first, then renames, undone on failure."""
    staged: list[tuple[Path, MigrationFile]] = []
    done: list[Path] = []
    try:
        for f in files:
            fd, tmp_name = tempfile.mkstemp(dir=f.path.parent, prefix=f".{f.path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(f.content)
            staged.append((Path(tmp_name), f))
        for staged_path, f in staged:
            if f.path.exists() and not overwrite:
                raise MigrationLayoutError(f"refusing to overwrite {f.path}")
            os.replace(staged_path, f.path)
            done.append(f.path)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    finally:
        for staged_path, _ in staged:
            staged_path.unlink(missing_ok=True)

"""What every migration format writer is, and the helpers they share.

A writer turns rendered SQL into the files one migration tool expects. It is
pure: it reads the target folder to order its files after the ones already
there, and returns the files to write; ``generate_migration.py`` does the writing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pgmq_codegen import render
from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.render import RenderedSql

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class MigrationFile:
    """One file to write: where, and what."""

    path: Path
    content: str


@dataclass(frozen=True)
class MigrationRequest:
    """Everything a writer needs to lay out one migration."""

    rendered: RenderedSql
    directory: Path
    name: str
    now: datetime
    include_rollback: bool

    @property
    def install_statements(self) -> list[str]:
        return self.rendered.install

    @property
    def rollback_statements(self) -> list[str]:
        return self.rendered.rollback

    def header(self, kind: str) -> str:
        return render.header(self.rendered.config, kind)


class MigrationWriter(Protocol):
    """One migration tool's file layout."""

    name: str
    default_dir: str
    description: str

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        """The files of one new migration in ``request.directory``."""
        ...


def existing_names(directory: Path) -> list[str]:
    """File names in ``directory`` (empty if it does not exist yet)."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def next_timestamp(existing_versions: Iterable[int], now: datetime) -> str:
    """A 14-digit UTC timestamp version later than ``now`` and every existing version.

    Two migrations generated within the same second (or a folder whose newest
    version lies in the future) get the next integer, so order is kept.
    """
    candidate = int(now.strftime(TIMESTAMP_FORMAT))
    highest = max(existing_versions, default=0)
    return str(max(candidate, highest + 1))


def leading_versions(names: Iterable[str], pattern: str) -> list[int]:
    """Integer versions captured by group 1 of ``pattern`` in ``names``."""
    found = []
    rx = re.compile(pattern)
    for name in names:
        match = rx.match(name)
        if match:
            found.append(int(match.group(1)))
    return found


def plain_script(header: str, statements: list[str]) -> str:
    """A plain SQL script: header comment, then each statement."""
    return render.render_template("formats/plain.sql.j2", header=header, statements=statements)


def refuse_clash(files: list[MigrationFile]) -> None:
    """Never overwrite: fail if any planned file exists."""
    clashes = [str(f.path) for f in files if f.path.exists()]
    if clashes:
        raise MigrationLayoutError(f"refusing to overwrite existing file(s): {', '.join(clashes)}")


# -- shared by the writers added for issue #4 (alembic, sqlx, dbmate, goose, ...) --

# Versions with fewer digits than this are sequence numbers (0001, 00002), longer
# ones timestamps (YYYYMMDDHHMM...). sqlx-cli infers the same way from the folder;
# goose (-s) and golang-migrate (-seq) offer sequences too.
_TIMESTAMP_MIN_DIGITS = 12


def version_prefixes(names: Iterable[str], pattern: str) -> list[str]:
    """The version text (group 1 of ``pattern``, leading zeros kept) of each matching name."""
    rx = re.compile(pattern)
    return [m.group(1) for m in (rx.match(name) for name in names) if m]


def next_version(existing: list[str], now: datetime, sequential_ok: bool = True) -> str:
    """The version for a new migration, ordered after every ``existing`` version.

    A folder numbered in sequence (every version shorter than a timestamp) gets
    the next number, zero-padded like the widest existing one, when
    ``sequential_ok``; otherwise a timestamp later than ``now`` and every
    existing version (see :func:`next_timestamp`).
    """
    numbers = [int(v) for v in existing]
    if sequential_ok and existing and all(len(v) < _TIMESTAMP_MIN_DIGITS for v in existing):
        width = max(len(v) for v in existing)
        return str(max(numbers) + 1).zfill(width)
    return next_timestamp(numbers, now)


def refuse_text(files: list[MigrationFile], needle: str, tool: str, why: str) -> None:
    """Fail if any planned file holds ``needle``, which ``tool`` would rewrite (``why``)."""
    for f in files:
        if needle in f.content:
            raise MigrationLayoutError(
                f"{f.path.name} would contain {needle!r}, which {tool} {why}; remove {needle!r} from the config values"
            )


def refuse_lines(files: list[MigrationFile], body: list[str], pattern: str, tool: str, why: str) -> None:
    """Fail if a line of the SQL in ``body`` matches ``pattern``: ``tool`` would read it as its own directive."""
    rx = re.compile(pattern, re.IGNORECASE)
    for statement in body:
        for line in statement.splitlines():
            if rx.match(line):
                names = ", ".join(f.path.name for f in files)
                raise MigrationLayoutError(
                    f"the SQL for {names} holds the line {line.strip()!r}, which {tool} reads as {why}; "
                    "remove it from the config values or templates"
                )


# The down part of a migration generated with ``[migration] include_rollback = false``,
# for tools whose file must hold a down section: rolling back fails loudly instead
# of recording a rollback that removed nothing.
NO_ROLLBACK_STATEMENT = """\
DO $pgmq_codegen$
BEGIN
    RAISE EXCEPTION 'pgmq-codegen: generated with include_rollback = false; see "pgmq-codegen sql --rollback"';
END
$pgmq_codegen$;"""


def rollback_or_refusal(request: MigrationRequest) -> list[str]:
    """The rollback statements, or one that refuses when the config asked for no rollback."""
    return request.rollback_statements if request.include_rollback else [NO_ROLLBACK_STATEMENT]

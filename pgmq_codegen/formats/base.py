"""What every migration format writer is, and the helpers they share.

A writer turns rendered SQL into the files one migration tool expects. It is
pure: it reads the target folder to order its files after the ones already
there, and returns the files to write; ``generate.py`` does the writing.
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

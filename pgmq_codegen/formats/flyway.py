"""Flyway: ``V<version>__<name>.sql`` plus the undo script ``U<version>__<name>.sql``.

Flyway compares versions as dot- or underscore-separated integers (``1``,
``1.0`` and ``001`` are one version), so the next version is one more than the
highest existing major version. It replaces ``${...}`` placeholders by default,
so SQL holding ``${`` is refused.

Undo scripts need Flyway Teams; the community edition counts a ``U`` file among
its migrations as badly named (a warning, an error with
``validateMigrationNaming``), and it scans locations recursively. So the undo
script goes to a sibling folder, ``<dir>_undo`` (``db/migration_undo``): add
it to ``locations`` with Flyway Teams, or run its SQL yourself to roll back.
"""

from __future__ import annotations

import re
from pathlib import Path

from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.formats.base import MigrationFile, MigrationRequest, existing_names, plain_script

_VERSIONED = re.compile(r"^[VU](\d+(?:[._]\d+)*)__.*\.sql$")


def _version_key(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def undo_directory(directory: Path) -> Path:
    """Where undo scripts go: beside the migrations folder, not inside it."""
    return directory.parent / f"{directory.name}_undo"


class FlywayWriter:
    name = "flyway"
    default_dir = "db/migration"
    description = "Flyway versioned migration (V…__name.sql); undo script (U…__name.sql) in <dir>_undo"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        undo_dir = undo_directory(request.directory)
        names = existing_names(request.directory) + existing_names(undo_dir)
        versions = [_version_key(m.group(1)) for m in (_VERSIONED.match(n) for n in names) if m]
        version = str(max((v[0] for v in versions), default=0) + 1)
        up = plain_script(request.header("install"), request.install_statements)
        files = [MigrationFile(request.directory / f"V{version}__{request.name}.sql", up)]
        if request.include_rollback:
            down = plain_script(request.header("rollback"), request.rollback_statements)
            files.append(MigrationFile(undo_dir / f"U{version}__{request.name}.sql", down))
        for f in files:
            if "${" in f.content:
                raise MigrationLayoutError(
                    f"{f.path.name} would contain '${{', which Flyway replaces as a placeholder; "
                    "remove '${' from the config values"
                )
        return files


WRITER = FlywayWriter()

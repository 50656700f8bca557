"""Plain SQL: ``<timestamp>_<name>.up.sql`` and ``<timestamp>_<name>.down.sql``.

For tools we do not lay out for, or for psql: ``psql -v ON_ERROR_STOP=1 -1 -f``.
"""

from __future__ import annotations

from pgmq_codegen.formats.base import (
    MigrationFile,
    MigrationRequest,
    existing_names,
    leading_versions,
    next_timestamp,
    plain_script,
)


class RawWriter:
    name = "raw"
    default_dir = "migrations"
    description = "plain SQL up and down files (<timestamp>_name.up.sql / .down.sql)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        existing = leading_versions(existing_names(request.directory), r"^(\d+)_")
        stamp = next_timestamp(existing, request.now)
        files = [
            MigrationFile(
                request.directory / f"{stamp}_{request.name}.up.sql",
                plain_script(request.header("install"), request.install_statements),
            )
        ]
        if request.include_rollback:
            files.append(
                MigrationFile(
                    request.directory / f"{stamp}_{request.name}.down.sql",
                    plain_script(request.header("rollback"), request.rollback_statements),
                )
            )
        return files


WRITER = RawWriter()

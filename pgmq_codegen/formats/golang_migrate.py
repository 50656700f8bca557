"""golang-migrate (``migrate -path DIR -database URL up``): ``<version>_<name>.up.sql`` / ``.down.sql``.

The postgres driver sends a whole file as one multi-statement query, which
PostgreSQL runs as one implicit transaction. Do not add ``x-multi-statement=true``
to the database URL: it splits files on every ``;``, also inside the function
bodies, and the migration fails. golang-migrate stores only the current version
and applies files with higher versions, so ours is a timestamp (or the next
number in a folder numbered in sequence, as ``migrate create -seq`` makes).
No empty file is ever written: without a rollback there is no down file.
"""

from __future__ import annotations

from pgmq_codegen.formats.base import (
    MigrationFile,
    MigrationRequest,
    existing_names,
    next_version,
    plain_script,
    version_prefixes,
)

# golang-migrate's source parser: ^([0-9]+)_(.*)\.(down|up)\.(.*)$
_MIGRATION = r"^([0-9]+)_(?:.*)\.(?:down|up)\.(?:.*)$"


class GolangMigrateWriter:
    name = "golang-migrate"
    default_dir = "db/migrations"
    description = "golang-migrate up and down files (<version>_name.up.sql / .down.sql)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        version = next_version(version_prefixes(existing_names(request.directory), _MIGRATION), request.now)
        files = [
            MigrationFile(
                request.directory / f"{version}_{request.name}.up.sql",
                plain_script(request.header("install"), request.install_statements),
            )
        ]
        if request.include_rollback:
            files.append(
                MigrationFile(
                    request.directory / f"{version}_{request.name}.down.sql",
                    plain_script(request.header("rollback"), request.rollback_statements),
                )
            )
        return files


WRITER = GolangMigrateWriter()

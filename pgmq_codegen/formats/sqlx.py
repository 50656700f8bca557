"""sqlx (``sqlx migrate run``): ``<version>_<name>.up.sql`` and ``<version>_<name>.down.sql``.

sqlx reads ``<VERSION>_<DESCRIPTION>.sql`` files from ``migrations/``; a pair of
``.up.sql``/``.down.sql`` files makes a reversible migration (``sqlx migrate
revert``), a single ``.sql`` file a simple one (written when the config asks for
no rollback). The version is a timestamp, or the next number when the folder is
numbered in sequence (sqlx-cli infers the same). Each file runs as one batch in
one transaction, unless its very first bytes are ``-- no-transaction`` (we never
write that). sqlx stores a checksum of every applied file and fails when one
changes, so an existing file is never rewritten.
"""

from __future__ import annotations

from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.formats.base import (
    MigrationFile,
    MigrationRequest,
    existing_names,
    next_version,
    plain_script,
    version_prefixes,
)

# sqlx-core's MigrationSource: "<i64>_<anything>.sql"; other files are ignored.
_MIGRATION = r"^(\d+)_.*\.sql$"


class SqlxWriter:
    name = "sqlx"
    default_dir = "migrations"
    description = "sqlx-cli reversible migration (<version>_name.up.sql / .down.sql)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        version = next_version(version_prefixes(existing_names(request.directory), _MIGRATION), request.now)
        up = plain_script(request.header("install"), request.install_statements)
        if up.startswith("-- no-transaction"):  # pragma: no cover - the header never starts so
            raise MigrationLayoutError("sqlx would run this migration outside a transaction")
        if not request.include_rollback:
            return [MigrationFile(request.directory / f"{version}_{request.name}.sql", up)]
        down = plain_script(request.header("rollback"), request.rollback_statements)
        return [
            MigrationFile(request.directory / f"{version}_{request.name}.up.sql", up),
            MigrationFile(request.directory / f"{version}_{request.name}.down.sql", down),
        ]


WRITER = SqlxWriter()

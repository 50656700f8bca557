"""Supabase CLI (``supabase migration up`` / ``db push``): ``supabase/migrations/<timestamp>_<name>.sql``.

The CLI splits a file into statements with its own lexer (which knows dollar
quotes) and sends them as one batch, in one implicit transaction. Supabase has
no down migrations: the rollback goes beside the migration as
``rollback_<timestamp>_<name>.sql``, a name the CLI skips (it applies only
``<digits>_<name>.sql``, and says "Skipping migration ..." for the others). To
roll back, run that file (``psql -1 -f``) and then
``supabase migration repair --status reverted <timestamp>``.
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

# supabase/cli pkg/migration: ^([0-9]+)_(.*)\.sql$
_MIGRATION = r"^([0-9]+)_.*\.sql$"


class SupabaseWriter:
    name = "supabase"
    default_dir = "supabase/migrations"
    description = "Supabase CLI migration (<timestamp>_name.sql) and its rollback (rollback_<timestamp>_name.sql)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        existing = version_prefixes(existing_names(request.directory), _MIGRATION)
        version = next_version(existing, request.now, sequential_ok=False)
        up_path = request.directory / f"{version}_{request.name}.sql"
        if not request.include_rollback:
            return [MigrationFile(up_path, plain_script(request.header("install"), request.install_statements))]
        rollback_name = f"rollback_{version}_{request.name}.sql"
        repair = f"supabase migration repair --status reverted {version}"
        up_header = "\n".join(
            [
                request.header("install"),
                f"-- Supabase has no down migrations. To roll this one back, run {rollback_name}",
                f"-- (beside this file), e.g. psql -1 -f {rollback_name}, then: {repair}",
            ]
        )
        down_header = "\n".join([request.header("rollback"), f"-- Rolls back migration {version}; then run: {repair}"])
        return [
            MigrationFile(up_path, plain_script(up_header, request.install_statements)),
            MigrationFile(request.directory / rollback_name, plain_script(down_header, request.rollback_statements)),
        ]


WRITER = SupabaseWriter()

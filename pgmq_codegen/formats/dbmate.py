"""dbmate (``dbmate up`` / ``rollback``): ``db/migrations/<timestamp>_<name>.sql``.

One file holds both blocks: ``-- migrate:up`` first (nothing but comments may
come before it) and ``-- migrate:down``, which dbmate requires. Each block runs
in its own transaction. dbmate finds the markers as lines starting with
``-- migrate:``, so SQL holding such a line is refused. Without a rollback the
down block raises, so that ``dbmate rollback`` never records a rollback that
removed nothing.
"""

from __future__ import annotations

from pgmq_codegen import render
from pgmq_codegen.formats.base import (
    MigrationFile,
    MigrationRequest,
    existing_names,
    next_version,
    refuse_lines,
    rollback_or_refusal,
    version_prefixes,
)

# dbmate: migration files match ^(\d+).*\.sql$
_MIGRATION = r"^(\d+).*\.sql$"


class DbmateWriter:
    name = "dbmate"
    default_dir = "db/migrations"
    description = "dbmate migration (<timestamp>_name.sql with -- migrate:up / -- migrate:down blocks)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        existing = version_prefixes(existing_names(request.directory), _MIGRATION)
        version = next_version(existing, request.now, sequential_ok=False)
        rollback = rollback_or_refusal(request)
        content = render.render_template(
            "formats/dbmate.sql.j2",
            up_header=request.header("install"),
            down_header=request.header("rollback"),
            install=request.install_statements,
            rollback=rollback,
        )
        files = [MigrationFile(request.directory / f"{version}_{request.name}.sql", content)]
        refuse_lines(files, request.install_statements + rollback, r"--\s*migrate:", "dbmate", "a block marker")
        return files


WRITER = DbmateWriter()

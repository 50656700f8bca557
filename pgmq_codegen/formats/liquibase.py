"""Liquibase formatted SQL (``liquibase update`` / ``rollback-count 1``): ``<timestamp>_<name>.sql``.

The file is a changelog of one changeset, so that the install is one
transaction and ``rollback-count 1`` removes all of it. Liquibase's statement
splitter knows no dollar quotes and would cut the function bodies at each
``;``: the changeset says ``splitStatements:false`` and sends the script whole;
the PostgreSQL JDBC driver, whose parser knows dollar quotes, runs its
statements in order. The rollback is written as ``-- rollback`` lines with
``rollbackSplitStatements:false``. Liquibase expands ``${...}`` as changelog
properties, so SQL holding ``${`` is refused, and so is SQL with a line that
Liquibase would read as one of its directives (``-- changeset``, ``-- rollback``,
``-- comment:`` ...).

Include the file from your master changelog (``include`` or ``includeAll``,
which orders files by name: the timestamp keeps ours after older ones).
Liquibase has no default folder; ``db/changelog`` is Spring Boot's.
"""

from __future__ import annotations

from pgmq_codegen import __version__, render
from pgmq_codegen.formats.base import (
    MigrationFile,
    MigrationRequest,
    existing_names,
    next_version,
    refuse_lines,
    refuse_text,
    version_prefixes,
)

AUTHOR = "pgmq-codegen"
_MIGRATION = r"^(\d+)_.*$"
# Lines that Liquibase's formatted-SQL parser takes for its own directives
# (AbstractFormattedChangeLogParser: changeset, rollback, comment, property,
# preconditions, validCheckSum, ignoreLines, ...; also their one-dash misspellings).
_DIRECTIVE = (
    r"\s*-+\s*(changeset|rollback|comments?\b|preconditions?|property|validchecksum|ignorelines|ignore:|liquibase)"
    r"|\s*/\*\s*liquibase"
)


class LiquibaseWriter:
    name = "liquibase"
    default_dir = "db/changelog"
    description = "Liquibase formatted SQL changelog (<timestamp>_name.sql, one changeset with its rollback)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        version = next_version(version_prefixes(existing_names(request.directory), _MIGRATION), request.now)
        rollback_lines: list[str] = []
        if request.include_rollback:
            rollback_text = request.header("rollback") + "\n" + "\n".join(request.rollback_statements)
            # Blank lines are dropped: an editor that strips the trailing space of
            # "-- rollback " would turn the line into an install comment.
            rollback_lines = [line for line in rollback_text.splitlines() if line.strip()]
        content = render.render_template(
            "formats/liquibase.sql.j2",
            author=AUTHOR,
            changeset_id=f"{version}_{request.name}",
            comment=f"pgmq-codegen {__version__}: PGMQ notifications ({request.name})",
            header=request.header("install"),
            install=request.install_statements,
            rollback_lines=rollback_lines,
        )
        files = [MigrationFile(request.directory / f"{version}_{request.name}.sql", content)]
        body = [request.header("install"), *request.install_statements, *rollback_lines]
        refuse_lines(files, body, _DIRECTIVE, "Liquibase", "one of its directives")
        refuse_text(files, "${", "Liquibase", "expands as a changelog property")
        return files


WRITER = LiquibaseWriter()

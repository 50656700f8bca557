"""goose (``goose up`` / ``down``): ``migrations/<version>_<name>.sql``.

One file: ``-- +goose Up``, then ``-- +goose Down``. goose ends a statement at
every line ending in ``;`` unless it sits between ``-- +goose StatementBegin``
and ``-- +goose StatementEnd``, so every statement is wrapped (function bodies
hold ``;``). Annotations are matched at the start of the line: never indented.
The migration runs in one transaction. The version is a timestamp, or the next
number when the folder is numbered in sequence (``goose create -s``).

goose itself looks in the working directory unless given ``-dir`` (or
GOOSE_MIGRATION_DIR); ``goose init`` creates ``migrations/``, which is our
default.
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

# goose: .sql and .go files named <int64>_<name>
_MIGRATION = r"^(\d+)_.*\.(?:sql|go)$"


class GooseWriter:
    name = "goose"
    default_dir = "migrations"
    description = "goose SQL migration (<version>_name.sql with -- +goose Up / Down, StatementBegin/End)"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        version = next_version(version_prefixes(existing_names(request.directory), _MIGRATION), request.now)
        rollback = rollback_or_refusal(request)
        content = render.render_template(
            "formats/goose.sql.j2",
            up_header=request.header("install"),
            down_header=request.header("rollback"),
            install=request.install_statements,
            rollback=rollback,
        )
        files = [MigrationFile(request.directory / f"{version}_{request.name}.sql", content)]
        refuse_lines(files, request.install_statements + rollback, r"\s*--\s*\+goose", "goose", "an annotation")
        return files


WRITER = GooseWriter()

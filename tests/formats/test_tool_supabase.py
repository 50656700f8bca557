"""Supabase CLI (npm ``supabase``): ``migration up`` against a database URL, no Docker needed.

Supabase has no down migrations, and ``supabase migration down`` is no
rollback: it *resets* the database (drops every user schema, PGMQ's included)
and re-applies the migration files, which would destroy the queues. So the
rollback is our ``rollback_<version>_<name>.sql`` run with psql, followed by
``supabase migration repair --status reverted <version>``, the CLI's own way to
un-record a migration; ``migration up`` then applies it again. A later migration
with ``coalesce_ms`` goes up and is rolled back the same way.
"""

from __future__ import annotations

from pgmq_codegen import render
from pgmq_runtime.config import PgmqNotifyConfig
from tests.formats.conftest import (
    COALESCE_MS,
    assert_coalesces,
    assert_notifies,
    assert_removed,
    cli_generate,
    generate,
    require_tool,
    run,
    same_second,
)


def test_up_rollback_up_and_a_second_migration(project, db, subscribe):
    supabase = require_tool("supabase")
    remote = f"--remote={db.url}"

    def tool(*args: str) -> str:
        return run([supabase, *args, remote, "--yes"], project)

    up, rollback = cli_generate("supabase", None, project)
    assert up.parent == project / "supabase" / "migrations"
    version = up.name.split("_")[0]
    assert rollback.name == f"rollback_{up.name}"
    out = tool("migration", "up")
    assert f"Skipping migration {rollback.name}" in out, "the CLI must skip the rollback file, not apply it"
    assert db.query("SELECT version FROM supabase_migrations.schema_migrations") == [(version,)]
    # the CLI's lexer cut the file into exactly our statements (dollar quotes and all)
    ((statements,),) = db.query("SELECT statements FROM supabase_migrations.schema_migrations")
    ours = [s.rstrip(";") for s in render.install_statements(PgmqNotifyConfig())]
    assert len(statements) == len(ours) and statements[0].endswith(ours[0]) and statements[1:] == ours[1:]
    assert_notifies(db, subscribe)

    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db.dsn, "-f", rollback], project)
    tool("migration", "repair", "--status", "reverted", version)
    assert_removed(db, subscribe)
    assert db.query("SELECT version FROM supabase_migrations.schema_migrations") == []

    tool("migration", "up")
    assert_notifies(db, subscribe)

    second_up, _ = generate("supabase", up.parent, now=same_second(up))
    assert second_up.name > up.name
    tool("migration", "up")
    applied = [v for (v,) in db.query("SELECT version FROM supabase_migrations.schema_migrations ORDER BY version")]
    assert applied == [version, second_up.name.split("_")[0]]
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third migration goes up; its rollback file plus "repair" (as above) remove it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    third_up, third_rollback = generate("supabase", up.parent, now=same_second(up), config=config)
    third_version = third_up.name.split("_")[0]
    assert third_up.name > second_up.name and third_rollback.name == f"rollback_{third_up.name}"
    out = tool("migration", "up")
    assert f"Skipping migration {third_rollback.name}" in out
    ((statements,),) = db.query(
        "SELECT statements FROM supabase_migrations.schema_migrations WHERE version = %s", third_version
    )
    coalescing = [s.rstrip(";") for s in render.install_statements(config)]
    assert len(statements) == len(coalescing) and statements[0].endswith(coalescing[0])
    assert statements[1:] == coalescing[1:]
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db.dsn, "-f", third_rollback], project)
    tool("migration", "repair", "--status", "reverted", third_version)
    assert_removed(db, subscribe)
    applied = [v for (v,) in db.query("SELECT version FROM supabase_migrations.schema_migrations ORDER BY version")]
    assert applied == [version, second_up.name.split("_")[0]]

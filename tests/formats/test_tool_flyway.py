"""Flyway (OSS edition): a folder with a user's earlier migration plus ours; ``migrate``, ``validate``.

Flyway's undo (``U`` files) needs Flyway Teams: the community edition runs the
``V`` files (and ignores the ``U`` ones), so the rollback SQL is applied
directly, as a community user would, and ``flyway repair`` is not involved: the
history keeps the version as applied, and a later generated migration (the same
install, idempotent) brings the objects back. A fourth, with ``coalesce_ms``, is
migrated and undone the same way.
"""

from __future__ import annotations

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
)


def test_migrate_validate_rollback_and_a_second_migration(project, db, subscribe):
    flyway = require_tool("flyway")
    migrations = project / "db" / "migration"
    migrations.mkdir(parents=True)
    (migrations / "V1__create_users.sql").write_text("CREATE TABLE users (id serial PRIMARY KEY, name text);\n")

    def tool(*args: str) -> str:
        return run(
            [flyway, f"-url={db.jdbc}", "-user=postgres", f"-locations=filesystem:{migrations}", *args],
            project,
        )

    tool("migrate")  # the user's migration, applied before ours exists
    up, undo = cli_generate("flyway", None, project)
    assert (up.parent, up.name, undo.parent, undo.name) == (
        migrations,
        "V2__add_pgmq_notifications.sql",
        migrations.parent / "migration_undo",  # outside the scanned location: OSS Flyway rejects U files
        "U2__add_pgmq_notifications.sql",
    )
    tool("migrate")
    tool("validate")
    assert_notifies(db, subscribe)
    versions = db.query(
        "SELECT version, success FROM flyway_schema_history WHERE version IS NOT NULL ORDER BY installed_rank"
    )
    assert versions == [("1", True), ("2", True)]

    # community edition: no "flyway undo"; the U script's SQL is the rollback
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db.dsn, "-f", undo], project)
    assert_removed(db, subscribe)
    assert db.query("SELECT to_regclass('public.users') IS NOT NULL") == [(True,)]

    # a second generated migration comes after ours and applies after it
    up3, _ = generate("flyway", migrations)
    assert up3.name == "V3__add_pgmq_notifications.sql"
    tool("migrate")
    tool("validate")
    assert_notifies(db, subscribe)
    assert db.query("SELECT max(version::int) FROM flyway_schema_history WHERE success") == [(3,)]

    # Coalescing switched on later: V4 migrates and validates; its U script (run as above) removes it.
    up4, undo4 = generate("flyway", migrations, config=PgmqNotifyConfig(coalesce_ms=COALESCE_MS))
    assert (up4.name, undo4.name) == ("V4__add_pgmq_notifications.sql", "U4__add_pgmq_notifications.sql")
    tool("migrate")
    tool("validate")
    assert db.query("SELECT max(version::int) FROM flyway_schema_history WHERE success") == [(4,)]
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db.dsn, "-f", undo4], project)
    assert_removed(db, subscribe)


def test_validate_migration_naming_passes(project, db):
    flyway = require_tool("flyway")
    migrations = project / "db" / "migration"
    generate("flyway", migrations)
    run(
        [
            flyway,
            f"-url={db.jdbc}",
            "-user=postgres",
            f"-locations=filesystem:{migrations}",
            "-validateMigrationNaming=true",
            "migrate",
        ],
        project,
    )

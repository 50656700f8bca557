"""dbmate (npm ``dbmate``): ``up``, ``rollback``, ``up``, then a second migration after ours.

Last, a third with ``coalesce_ms`` goes ``up`` and one ``rollback`` removes it.
"""

from __future__ import annotations

from pgmq_runtime.config import MigrationConfig, PgmqNotifyConfig
from tests.formats.conftest import (
    COALESCE_MS,
    assert_coalesces,
    assert_notifies,
    assert_removed,
    cli_generate,
    generate,
    require_tool,
    run,
    run_failing,
    same_second,
)


def test_up_rollback_up_and_a_second_migration(project, db, subscribe):
    dbmate = require_tool("dbmate")

    def tool(*args: str) -> str:
        # no --migrations-dir: dbmate's own default, ./db/migrations, is where we write by default
        return run([dbmate, "--url", db.url, "--no-dump-schema", *args], project)

    (first,) = cli_generate("dbmate", None, project)
    assert first.parent == project / "db" / "migrations"
    tool("up")
    assert_notifies(db, subscribe)
    tool("rollback")
    assert_removed(db, subscribe)
    tool("up")
    assert_notifies(db, subscribe)

    (second,) = generate("dbmate", first.parent, now=same_second(first))
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, second.name]
    tool("up")
    applied = [v for (v,) in db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [first.name.split("_")[0], second.name.split("_")[0]]
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third migration applies, and "rollback" (one step) removes it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    (third,) = generate("dbmate", first.parent, now=same_second(first), config=config)
    assert third.name > second.name
    tool("up")
    assert db.query("SELECT max(version) FROM schema_migrations") == [(third.name.split("_")[0],)]
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    tool("rollback")
    applied = [v for (v,) in db.query("SELECT version FROM schema_migrations ORDER BY version")]
    assert applied == [first.name.split("_")[0], second.name.split("_")[0]]
    assert_removed(db, subscribe)


def test_without_rollback_the_down_block_refuses(project, db):
    dbmate = require_tool("dbmate")
    config = PgmqNotifyConfig(migration=MigrationConfig(include_rollback=False))
    (path,) = generate("dbmate", project / "db" / "migrations", config=config)
    run([dbmate, "--url", db.url, "--no-dump-schema", "up"], project)
    out = run_failing([dbmate, "--url", db.url, "--no-dump-schema", "rollback"], project)
    assert "include_rollback = false" in out
    # dbmate still counts it applied, and the objects are still there
    assert db.query("SELECT version FROM schema_migrations") == [(path.name.split("_")[0],)]
    assert db.query("SELECT to_regnamespace('pgmq_notify') IS NOT NULL") == [(True,)]

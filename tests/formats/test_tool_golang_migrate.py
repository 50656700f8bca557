"""golang-migrate (postgres driver): ``up``, ``down 1``, ``up``, then a second migration after ours.

Last, a third with ``coalesce_ms`` goes ``up`` and ``down 1`` removes it.
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
    run_failing,
    same_second,
)


def test_up_down_up_and_a_second_migration(project, db, subscribe):
    migrate = require_tool("golang-migrate")

    def tool(*args: str) -> str:
        return run([migrate, "-path", "db/migrations", "-database", db.url, *args], project)

    first_up, first_down = cli_generate("golang-migrate", None, project)
    assert first_up.parent == project / "db" / "migrations"
    assert first_up.name.endswith(".up.sql") and first_down.name.endswith(".down.sql")
    tool("up")
    assert_notifies(db, subscribe)
    tool("down", "1")
    assert_removed(db, subscribe)
    tool("up")
    assert_notifies(db, subscribe)

    second = generate("golang-migrate", first_up.parent, now=same_second(first_up))
    assert second[0].name > first_up.name
    tool("up")
    assert db.query("SELECT version, dirty FROM schema_migrations") == [(int(second[0].name.split("_")[0]), False)]
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third migration applies, and "down 1" removes it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    third_up, third_down = generate("golang-migrate", first_up.parent, now=same_second(first_up), config=config)
    assert third_up.name > second[0].name and third_down.name.endswith(".down.sql")
    tool("up")
    assert db.query("SELECT version, dirty FROM schema_migrations") == [(int(third_up.name.split("_")[0]), False)]
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    tool("down", "1")
    assert db.query("SELECT version, dirty FROM schema_migrations") == [(int(second[0].name.split("_")[0]), False)]
    assert_removed(db, subscribe)


def test_x_multi_statement_splits_function_bodies(project, db):
    """The documented trap: x-multi-statement=true cuts the file at every ';', also inside function bodies."""
    migrate = require_tool("golang-migrate")
    generate("golang-migrate", project / "db" / "migrations")
    out = run_failing(
        [migrate, "-path", "db/migrations", "-database", db.url + "&x-multi-statement=true", "up"], project
    )
    assert "syntax error" in out or "unterminated" in out

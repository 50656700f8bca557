"""sqlx-cli (postgres): ``sqlx migrate run``, ``revert``, ``run``, then a second migration after ours.

Last, a third with ``coalesce_ms`` is ``run`` and one ``revert`` removes it.
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
    same_second,
)


def test_run_revert_run_and_a_second_migration(project, db, subscribe):
    sqlx = require_tool("sqlx")

    def tool(*args: str) -> str:
        # no --source: sqlx's own default, ./migrations, is where we write by default
        return run([sqlx, "migrate", *args, "--database-url", db.url], project)

    up, down = cli_generate("sqlx", None, project)
    assert up.parent == project / "migrations"
    assert (up.name.endswith(".up.sql"), down.name.endswith(".down.sql")) == (True, True)
    first_bytes = up.read_bytes()
    tool("run")
    assert_notifies(db, subscribe)
    tool("revert")
    assert_removed(db, subscribe)
    tool("run")
    assert_notifies(db, subscribe)

    # sqlx checksums applied files: a second generation adds files and never touches the first
    second_up, _ = generate("sqlx", up.parent, now=same_second(up))
    assert second_up.name > up.name
    assert up.read_bytes() == first_bytes
    tool("run")
    versions = db.query("SELECT version, success FROM _sqlx_migrations ORDER BY version")
    assert versions == [(int(up.name.split("_")[0]), True), (int(second_up.name.split("_")[0]), True)]
    assert "pending" not in tool("info").lower()
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third migration runs, and "revert" (one step) removes it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    third_up, _ = generate("sqlx", up.parent, now=same_second(up), config=config)
    assert third_up.name > second_up.name
    tool("run")
    assert db.query("SELECT max(version) FROM _sqlx_migrations WHERE success") == [(int(third_up.name.split("_")[0]),)]
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    tool("revert")
    assert db.query("SELECT version, success FROM _sqlx_migrations ORDER BY version") == versions
    assert_removed(db, subscribe)

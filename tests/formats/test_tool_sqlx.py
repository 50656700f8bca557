"""sqlx-cli (postgres): ``sqlx migrate run``, ``revert``, ``run``, then a second migration after ours."""

from __future__ import annotations

from tests.formats.conftest import (
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

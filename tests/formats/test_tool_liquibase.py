"""Liquibase (formatted SQL changelog): ``update``, ``rollback-count 1``, ``update`` on our changelog.

Then a master changelog that ``includeAll``s the folder applies a second
generated changelog after ours (Liquibase records the first one under the same
path, so it is not run twice); a third with ``coalesce_ms`` follows the same way and
``rollback-count 1`` on the master removes it.
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

MASTER = """<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog
    xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
        http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-latest.xsd">
    <includeAll path="db/changelog/"/>
</databaseChangeLog>
"""


def test_update_rollback_update_and_a_second_changelog(project, db, subscribe):
    liquibase = require_tool("liquibase")

    def tool(changelog: str, *args: str) -> str:
        return run(
            [
                liquibase,
                f"--search-path={project}",
                *args,
                f"--changelog-file={changelog}",
                f"--url={db.jdbc}",
                "--username=postgres",
            ],
            project,
        )

    (first,) = cli_generate("liquibase", None, project)
    assert first.parent == project / "db" / "changelog"
    ours = first.relative_to(project).as_posix()
    tool(ours, "update")
    assert_notifies(db, subscribe)
    tool(ours, "rollback-count", "--count=1")
    assert_removed(db, subscribe)
    tool(ours, "update")
    assert_notifies(db, subscribe)

    (second,) = generate("liquibase", first.parent, now=same_second(first))
    assert second.name > first.name
    (project / "changelog-master.xml").write_text(MASTER)
    tool("changelog-master.xml", "update")
    rows = db.query("SELECT filename, exectype FROM databasechangelog ORDER BY orderexecuted")
    assert rows == [(ours, "EXECUTED"), (second.relative_to(project).as_posix(), "EXECUTED")]
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third changelog applies through the master; "rollback-count 1" removes it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    (third,) = generate("liquibase", first.parent, now=same_second(first), config=config)
    assert third.name > second.name
    tool("changelog-master.xml", "update")
    (last,) = db.query("SELECT filename FROM databasechangelog ORDER BY orderexecuted DESC LIMIT 1")
    assert last == (third.relative_to(project).as_posix(),)
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    tool("changelog-master.xml", "rollback-count", "--count=1")
    assert db.query("SELECT filename, exectype FROM databasechangelog ORDER BY orderexecuted") == rows
    assert_removed(db, subscribe)

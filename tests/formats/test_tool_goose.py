"""goose: ``up``, ``down``, ``up``, then a second migration after ours.

Last, a third with ``coalesce_ms`` goes ``up`` and one ``down`` removes it.
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


def test_up_down_up_and_a_second_migration(project, db, subscribe):
    goose = require_tool("goose")

    def tool(*args: str) -> str:
        return run([goose, "-dir", "migrations", "postgres", db.url, *args], project)

    (first,) = cli_generate("goose", None, project)
    assert first.parent == project / "migrations"
    tool("up")
    assert_notifies(db, subscribe)
    tool("down")
    assert_removed(db, subscribe)
    tool("up")
    assert_notifies(db, subscribe)

    (second,) = generate("goose", first.parent, now=same_second(first))
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, second.name]
    tool("up")
    applied = db.query("SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id")
    assert [v for (v,) in applied][-1] == int(second.name.split("_")[0])
    assert "Pending" not in tool("status")
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third migration applies, and "down" (one step) removes it.
    config = PgmqNotifyConfig(coalesce_ms=COALESCE_MS)
    (third,) = generate("goose", first.parent, now=same_second(first), config=config)
    assert third.name > second.name
    tool("up")
    assert str(int(third.name.split("_")[0])) in tool("version")
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    tool("down")
    assert str(int(second.name.split("_")[0])) in tool("version")
    assert "Pending" in tool("status")
    assert_removed(db, subscribe)

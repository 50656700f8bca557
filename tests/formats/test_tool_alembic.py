"""Alembic applies, rolls back and re-applies our revision on top of a user's own revision.

Then a second revision chains to ours, and a third with ``coalesce_ms`` to that
one; ``downgrade -1`` removes it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pgmq_codegen.formats import alembic as alembic_format
from pgmq_runtime.config import PgmqNotifyConfig
from tests.formats.conftest import (
    COALESCE_MS,
    Db,
    assert_coalesces,
    assert_notifies,
    assert_removed,
    cli_generate,
    generate,
    run,
)


def alembic(project: Path, *args: str, stdout_only: bool = False) -> str:
    return run([sys.executable, "-m", "alembic", "-c", "alembic.ini", *args], project, stdout_only=stdout_only)


def init_project(project: Path, db: Db) -> str:
    """``alembic init`` plus one user revision (a users table), applied; returns its revision id."""
    run([sys.executable, "-m", "alembic", "init", "alembic"], project)
    ini = project / "alembic.ini"
    url = f"postgresql+psycopg://postgres@{db.host}:{db.port}/{db.name}"
    ini.write_text(re.sub(r"(?m)^sqlalchemy\.url = .*$", f"sqlalchemy.url = {url}", ini.read_text()))
    out = alembic(project, "revision", "-m", "create users")
    path = Path(re.search(r"Generating (\S+\.py)", out).group(1))  # type: ignore[union-attr]
    up, down = path.read_text().split("def downgrade", 1)
    up = up.replace("    pass", "    op.execute('CREATE TABLE users (id serial PRIMARY KEY, name text)')")
    down = down.replace("    pass", "    op.execute('DROP TABLE users')")
    path.write_text(up + "def downgrade" + down)
    alembic(project, "upgrade", "head")
    return path.name.split("_", 1)[0]


def heads(project: Path) -> list[str]:
    return re.findall(r"(?m)^(\w+) \(head\)", alembic(project, "heads"))


def test_upgrade_downgrade_upgrade_on_top_of_a_user_revision(project, db, subscribe):
    user_rev = init_project(project, db)
    versions = project / "alembic" / "versions"

    (ours,) = cli_generate("alembic", versions, project)
    revisions = alembic_format.read_revisions(versions)
    our_rev = ours.name.split("_", 1)[0]
    assert revisions[our_rev] == (user_rev,), "down_revision must be the user's head"

    alembic(project, "upgrade", "head")
    assert heads(project) == [our_rev]
    assert_notifies(db, subscribe)

    alembic(project, "downgrade", "-1")
    assert_removed(db, subscribe)
    assert db.query("SELECT to_regclass('public.users') IS NOT NULL") == [(True,)], "the user's table must stay"
    assert user_rev in alembic(project, "current")

    alembic(project, "upgrade", "head")
    assert_notifies(db, subscribe)

    # A second generation chains to ours, leaves one head, and applies after it.
    (second,) = generate("alembic", versions)
    second_rev = second.name.split("_", 1)[0]
    assert alembic_format.read_revisions(versions)[second_rev] == (our_rev,)
    assert heads(project) == [second_rev]
    alembic(project, "upgrade", "head")
    assert second_rev in alembic(project, "current")
    assert_notifies(db, subscribe, "billing_queue")

    # Coalescing switched on later: a third revision chains to the second, applies, and one step down removes it.
    (third,) = generate("alembic", versions, config=PgmqNotifyConfig(coalesce_ms=COALESCE_MS))
    third_rev = third.name.split("_", 1)[0]
    assert alembic_format.read_revisions(versions)[third_rev] == (second_rev,)
    alembic(project, "upgrade", "head")
    assert third_rev in alembic(project, "current")
    # a queue of before gets its sequence from the install, a new one from the pgmq.meta trigger
    assert_coalesces(db, subscribe, ["orders_queue", "coalesced_queue"])
    alembic(project, "downgrade", "-1")
    assert second_rev in alembic(project, "current")
    assert_removed(db, subscribe)


def test_bind_like_colons_survive_sqlalchemy_text(project, db):
    """op.execute(str) goes through text(), where '{"id":1}' holds a bind parameter ':1' unless escaped."""
    init_project(project, db)
    config = PgmqNotifyConfig(default_namespace='{"id":1}')
    (ours,) = generate("alembic", project / "alembic" / "versions", config=config)
    assert '"id"\\:1' in ours.read_text()
    alembic(project, "upgrade", "head")
    assert db.query("SELECT pgmq_notify.extract_namespace_v1('no-match')") == [('{"id":1}',)]
    alembic(project, "downgrade", "-1")
    assert db.query("SELECT to_regnamespace('pgmq_notify')") == [(None,)]


def test_offline_sql_mode_applies_with_psql(project, db, subscribe):
    """``alembic upgrade head --sql`` appends ';' to every op.execute text: the script must still run."""
    user_rev = init_project(project, db)
    config = PgmqNotifyConfig(default_namespace='{"id":1}')
    (ours,) = generate("alembic", project / "alembic" / "versions", config=config)
    our_rev = ours.name.split("_", 1)[0]
    script = alembic(project, "upgrade", f"{user_rev}:head", "--sql", stdout_only=True)
    assert ";;" not in script
    sql_file = project / "offline.sql"
    sql_file.write_text(script)
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn, "-f", sql_file], project)
    assert db.query("SELECT version_num FROM alembic_version") == [(our_rev,)]
    assert db.query("SELECT pgmq_notify.extract_namespace_v1('no-match')") == [('{"id":1}',)]
    assert_notifies(db, subscribe)

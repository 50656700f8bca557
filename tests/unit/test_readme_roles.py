"""README "Roles and privileges" lists exactly the grants tests/integration/test_privileges.py proves."""

from __future__ import annotations

from pathlib import Path

from tests.integration import test_privileges as proven

README = (Path(__file__).parents[2] / "README.md").read_text()
SECTION = README.split("## Roles and privileges", 1)[1].split("\n## ", 1)[0]


def test_every_proven_grant_is_in_the_readme_section():
    roles = [
        (proven.MIGRATOR, "migrator"),
        (proven.QUEUE_CREATOR, "app"),
        (proven.SENDER, "sender"),
        (proven.WRAPPER_SENDER[len(proven.SENDER) :], "sender"),
        (proven.CONSUMER, "consumer"),
        (proven.DIFF_READER, "reader"),
    ]
    for grants, role in roles:
        for grant in grants:
            assert grant.format(role=role, database="app") + ";" in SECTION
    listed = [line for line in SECTION.splitlines() if line.startswith("GRANT ")]
    assert len(listed) == sum(len(grants) for grants, _ in roles)

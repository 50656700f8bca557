"""Every option that ``pgmq-codegen --help`` and each verb's ``--help`` show is mentioned in the README.

``demo --keep`` was documented only after issue #21 found it missing; this keeps the README and
the command line from drifting apart again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_cli import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
VERBS = ["init", "validate-config", "generate-migration", "sql", "diff", "listen", "demo", "worker", "status"]
# An option row of Click's help: two spaces, an optional short form, the long form(s).
_ROW = re.compile(r"^  (?:-\w, )?(--[\w-]+)(?:\s*/\s*(--[\w-]+))?")


def help_options(*verb: str) -> list[str]:
    """The long options listed in the Options section of ``pgmq-codegen [VERB] --help``."""
    result = cli(*verb, "--help")
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    found = [name for row in section.splitlines() if (m := _ROW.match(row)) for name in m.groups() if name]
    return [name for name in found if name != "--help"]


def mentioned(option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README) is not None


@pytest.mark.parametrize("verb", [None, *VERBS], ids=["top-level", *VERBS])
def test_every_option_in_the_help_is_in_the_readme(verb: str | None):
    options = help_options(*([verb] if verb else []))
    assert [option for option in options if not mentioned(option)] == []


def test_demo_keep_is_checked():
    assert "--keep" in help_options("demo") and mentioned("--keep")

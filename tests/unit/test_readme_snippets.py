"""Every ```python block of the README is valid Python that names nothing undefined (ruff's F rules).

The README's Consume snippet once called a ``handle()`` it never defined (issue #21); nothing ran the
snippets, so nothing noticed. Snippets use top-level ``await`` (they show code inside your async
function), so each is checked wrapped in an ``async def``; that also makes its module-level
assignments locals, hence F841 (a local assigned but never used) is not checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

# Names a snippet presents as given, without defining them: the connection string, the loaded
# config and, after the Consume section, the consumer (the Metrics snippet watches it). Keep this small.
GIVEN = frozenset({"dsn", "config", "consumer"})
# Names starting with "my_" stand for the reader's own code (my_handler, my_event_loop).
YOURS = "my_"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_UNDEFINED = re.compile(r"F821 Undefined name `([^`]+)`")


def python_blocks(markdown: str) -> list[str]:
    """The text of each ```python fenced block, in order."""
    return _BLOCK.findall(markdown)


def snippet_problems(snippet: str) -> list[str]:
    """ruff's F-rule findings and syntax errors for one snippet, minus the names it may take as given."""
    wrapped = "async def _snippet() -> None:\n" + textwrap.indent(snippet, "    ", lambda _line: True)
    ruff = [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F", "--ignore", "F841"]
    done = subprocess.run(
        [*ruff, "--output-format", "concise", "--stdin-filename", "snippet.py", "-"],
        input=wrapped,
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = []
    for line in done.stdout.splitlines():
        if not line.startswith("snippet.py:"):
            continue
        undefined = _UNDEFINED.search(line)
        if undefined and (undefined.group(1) in GIVEN or undefined.group(1).startswith(YOURS)):
            continue
        problems.append(line)
    assert done.returncode == 0 or "snippet.py:" in done.stdout, done.stdout + done.stderr  # ruff itself ran
    return problems


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("snippet", BLOCKS, ids=[f"block{n + 1}" for n in range(len(BLOCKS))])
def test_readme_snippet_defines_every_name_it_uses(snippet: str):
    assert snippet_problems(snippet) == []


def test_the_check_catches_the_undefined_handle_of_issue_21():
    """The Consume snippet as it was before commit 6b960bd."""
    before = textwrap.dedent(
        """\
        import asyncio
        from pgmq_runtime import PgmqConsumer, load_config

        async def main() -> None:
            config = load_config("pgmq-codegen.toml")
            async with PgmqConsumer("postgresql://app@db/app", ["orders_queue"], config) as consumer:
                async for message in consumer:
                    await handle(message.message)      # message.msg_id, .headers, .read_ct, .vt
                    await message.delete()             # or archive(), or extend(seconds)

        asyncio.run(main())
        """
    )
    problems = snippet_problems(before)
    assert len(problems) == 1 and "Undefined name `handle`" in problems[0], problems


def test_the_check_catches_syntax_errors():
    assert any("snippet.py:" in p for p in snippet_problems("print('unclosed'\n"))

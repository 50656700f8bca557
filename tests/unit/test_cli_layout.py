"""The CLI shell is one module: cli.py defines every verb over a typed API module (issue #21)."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

from pgmq_codegen import cli

PACKAGE = Path(__file__).resolve().parents[2] / "pgmq_codegen"
VERBS = {"init", "validate-config", "generate-migration", "sql", "diff", "listen", "demo", "worker", "status"}
# The typed function behind each verb lives here, with no Typer and no Rich. (listen and demo are
# not in this list: listen.rich_line styles a line and demo.run prints its steps on a Console.)
API_MODULES = ["init_config", "validate_config", "generate_migration", "sql_script", "diff", "worker", "status"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_every_verb_is_defined_in_cli_py():
    commands = typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]
    assert set(commands) == VERBS
    where = {name: command.callback.__module__ for name, command in commands.items()}
    assert where == dict.fromkeys(VERBS, "pgmq_codegen.cli")


def test_only_cli_py_imports_typer():
    users = sorted(p.name for p in PACKAGE.glob("*.py") if any(m.split(".")[0] == "typer" for m in imported_modules(p)))
    assert users == ["cli.py"]


def test_the_api_modules_import_neither_typer_nor_rich():
    for name in API_MODULES:
        roots = {m.split(".")[0] for m in imported_modules(PACKAGE / f"{name}.py")}
        assert not roots & {"typer", "rich"}, name

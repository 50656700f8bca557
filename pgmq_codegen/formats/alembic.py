"""Alembic (``alembic upgrade head`` / ``downgrade -1``): ``<versions>/<revision>_<name>.py``.

The revision's ``down_revision`` is the current head of the versions folder,
found by reading (never importing) the revision files there; a folder with
several heads is refused until they are merged (``alembic merge heads``). Each
statement is one ``op.execute()`` call: its text goes through
``sqlalchemy.text()``, where ``:word`` after a non-word character is a bind
parameter, so those colons are escaped as ``\\:``; statements carry no trailing
``;`` because offline mode (``alembic upgrade --sql``) appends one. Alembic runs
the migration in the transaction of its ``env.py`` (one per run, or one per
migration with ``transaction_per_migration``).
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

from pgmq_codegen import render
from pgmq_codegen.errors import MigrationLayoutError
from pgmq_codegen.formats.base import MigrationFile, MigrationRequest

# SQLAlchemy's TextClause bind-parameter pattern (sqlalchemy.sql.elements), and
# the escape its compiler undoes: "\:name" becomes ":name".
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])")
# Alembic's revision files: *.py but not __init__ or editor lock files (.#name).
_REVISION_FILE = re.compile(r"(?!\.#|__init__)(.*\.py)\Z")
_SLUG_WORD = re.compile(r"\w+")
_TRUNCATE_SLUG = 40


def escape_binds(statement: str) -> str:
    """``statement`` with every colon that ``text()`` would read as a bind parameter escaped."""
    return _BIND.sub(r"\\:\1", statement)


def alembic_statement(statement: str) -> str:
    """One statement as ``op.execute`` takes it: no trailing ``;``, bind colons escaped."""
    text = statement.rstrip()
    if text.endswith(";"):
        text = text[:-1]
    return escape_binds(text)


def python_literal(text: str) -> str:
    """A Python literal for ``text``: a raw triple-quoted string where possible (readable SQL), else repr."""
    for quote in ("'''", '"""'):
        if quote in text or text.endswith((quote[0], "\\")):
            continue
        candidate = "r" + quote + text + quote
        try:
            if ast.literal_eval(candidate) == text:
                return candidate
        except (SyntaxError, ValueError):
            continue
    return repr(text)


def _literal_value(node: ast.expr, path: Path, name: str) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise MigrationLayoutError(f"cannot read {name} of {path}: it is not a literal") from exc


def read_revisions(directory: Path) -> dict[str, tuple[str, ...]]:
    """``{revision: down_revisions}`` of the revision files in ``directory``, read without importing them."""
    if not directory.is_dir():
        return {}
    if (directory / "env.py").is_file() and (directory / "versions").is_dir():
        raise MigrationLayoutError(
            f"{directory} is an Alembic script folder; pass its versions folder: --output-dir {directory / 'versions'}"
        )
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or not _REVISION_FILE.match(path.name):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            raise MigrationLayoutError(f"cannot read the Alembic revision {path}: {exc}") from exc
        values: dict[str, object] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = _literal_value(value, path, target.id)
        revision = values.get("revision")
        if not isinstance(revision, str):
            continue  # Alembic skips a .py file without a revision id too
        down = values.get("down_revision")
        if down is None:
            downs: tuple[str, ...] = ()
        elif isinstance(down, str):
            downs = (down,)
        elif isinstance(down, (tuple, list)) and all(isinstance(d, str) for d in down):
            downs = tuple(str(d) for d in down)
        else:
            raise MigrationLayoutError(f"cannot read down_revision of {path}: {down!r}")
        found[revision] = downs
    return found


def heads(revisions: dict[str, tuple[str, ...]]) -> list[str]:
    """Revisions that no other revision revises."""
    revised = {d for downs in revisions.values() for d in downs}
    return sorted(r for r in revisions if r not in revised)


def _slug(name: str) -> str:
    slug = "_".join(_SLUG_WORD.findall(name)).lower()
    if len(slug) > _TRUNCATE_SLUG:
        slug = slug[:_TRUNCATE_SLUG].rsplit("_", 1)[0] + "_"
    return slug


class AlembicWriter:
    name = "alembic"
    default_dir = "alembic/versions"
    description = "Alembic revision (<rev>_name.py) chained to the current head of the versions folder"

    def plan(self, request: MigrationRequest) -> list[MigrationFile]:
        revisions = read_revisions(request.directory)
        current = heads(revisions)
        if len(current) > 1:
            raise MigrationLayoutError(
                f"{request.directory} has {len(current)} Alembic heads ({', '.join(current)}); "
                "merge them first (alembic merge heads), then generate again"
            )
        down_revision = current[0] if current else None
        seed = f"{down_revision}|{request.name}|{request.now.isoformat()}"
        revision = hashlib.sha256(seed.encode()).hexdigest()[:12]
        while revision in revisions:
            revision = hashlib.sha256((seed + revision).encode()).hexdigest()[:12]
        downgrade = request.rollback_statements if request.include_rollback else []
        content = render.render_template(
            "formats/alembic.py.j2",
            message=request.name,
            revision=revision,
            revises=re.sub(r"[^\w.\-]", "_", down_revision or ""),
            create_date=request.now.strftime("%Y-%m-%d %H:%M:%S%z"),
            header="\n".join("# " + line for line in request.header("install").splitlines()),
            revision_literal=repr(revision),
            down_revision_literal=repr(down_revision),
            upgrade=[python_literal(alembic_statement(s)) for s in request.install_statements],
            downgrade=[python_literal(alembic_statement(s)) for s in downgrade],
        )
        path = request.directory / f"{revision}_{_slug(request.name)}.py"
        try:
            compile(content, str(path), "exec")
        except SyntaxError as exc:  # pragma: no cover - a template bug, never the config
            raise MigrationLayoutError(f"the Alembic revision for {path.name} does not compile: {exc}") from exc
        return [MigrationFile(path, content)]


WRITER = AlembicWriter()

"""Lint rendered SQL before anything is written.

Two passes over every statement:

1. sqlglot (always): each statement must parse as exactly one PostgreSQL
   statement. sqlglot reads CREATE FUNCTION and DO as opaque commands and has
   a few gaps in PostgreSQL DDL (``COMMENT ON TRIGGER``); statements of those
   known kinds are checked with its tokenizer only (balanced quotes).
2. pglast (when installed, ``pip install 'pgmq-codegen[plpgsql-lint]'``):
   PostgreSQL's own parser checks every statement, and its PL/pgSQL parser
   checks every function body and DO block, which sqlglot never looks into.

The SQL users get is never re-rendered through either parser.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
import sqlglot.errors

from pgmq_codegen.errors import LintError

# Statement kinds sqlglot cannot parse although PostgreSQL can.
_SQLGLOT_GAPS = (re.compile(r"^\s*COMMENT\s+ON\s+TRIGGER\b", re.IGNORECASE),)
_PLPGSQL = re.compile(r"\bLANGUAGE\s+plpgsql\b", re.IGNORECASE)
_DO_BLOCK = re.compile(r"^\s*DO\s", re.IGNORECASE | re.MULTILINE)
# pglast's PL/pgSQL compiler cannot resolve types outside pg_catalog/public;
# the body's syntax does not depend on the declared return type.
_FOREIGN_SETOF = re.compile(r"RETURNS\s+SETOF\s+[a-z_]+\.[a-z_]+", re.IGNORECASE)


@dataclass
class LintReport:
    """What was checked, and how."""

    statements: int = 0
    plpgsql_bodies: int = 0
    pglast_available: bool = False
    tokenizer_only: list[int] = field(default_factory=list)


def _strip_comments(statement: str) -> str:
    lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines)


def _first_line(statement: str) -> str:
    return _strip_comments(statement).strip().splitlines()[0][:80]


def _sqlglot_check(index: int, statement: str, report: LintReport) -> None:
    body = _strip_comments(statement)
    if any(gap.match(body) for gap in _SQLGLOT_GAPS):
        try:
            sqlglot.tokenize(body, read="postgres")
        except sqlglot.errors.TokenError as exc:
            raise LintError(f"statement {index + 1} ({_first_line(statement)}): {exc}") from exc
        report.tokenizer_only.append(index)
        return
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)  # "falling back to Command" is expected for functions
    try:
        parsed = sqlglot.parse(body, read="postgres")
    except sqlglot.errors.SqlglotError as exc:
        raise LintError(f"statement {index + 1} ({_first_line(statement)}): {exc}") from exc
    finally:
        logger.setLevel(previous)
    real = [p for p in parsed if p is not None]
    if len(real) != 1:
        raise LintError(f"statement {index + 1} ({_first_line(statement)}) holds {len(real)} statements; expected one")


def _pglast() -> Any:
    try:
        import pglast
    except ImportError:
        return None
    return pglast


def _pglast_check(pglast: Any, index: int, statement: str, report: LintReport) -> None:
    where = f"statement {index + 1} ({_first_line(statement)})"
    try:
        parsed = pglast.parse_sql(statement)
    except pglast.parser.ParseError as exc:
        raise LintError(f"{where}: {exc}") from exc
    if len(parsed) != 1:
        raise LintError(f"{where} holds {len(parsed)} statements; expected one")
    if not (_PLPGSQL.search(statement) or _DO_BLOCK.search(_strip_comments(statement))):
        return
    text = _FOREIGN_SETOF.sub("RETURNS SETOF record", statement)
    try:
        pglast.parse_plpgsql(text)
    except pglast.parser.ParseError as exc:
        raise LintError(f"{where}: PL/pgSQL body: {exc}") from exc
    report.plpgsql_bodies += 1


def lint(statements: list[str]) -> LintReport:
    """Check every statement; raise :class:`LintError` naming the first bad one."""
    report = LintReport(statements=len(statements))
    pglast = _pglast()
    report.pglast_available = pglast is not None
    for index, statement in enumerate(statements):
        _sqlglot_check(index, statement, report)
        if pglast is not None:
            _pglast_check(pglast, index, statement, report)
    return report

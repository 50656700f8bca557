"""What an unpinned PL/pgSQL function names: every function, operator and type, and which lack a schema.

The queue trigger runs on the caller's search_path, so each name in it must be
schema-qualified. pglast parses the function into its PL/pgSQL statements and
each statement's SQL, and this walks every function call, operator and type
name in them. The parser itself writes keyword forms (``extract``, ``AT TIME
ZONE``, ``integer``, ``bigint[]``) as ``pg_catalog`` names, so those pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pglast


def _queries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "query" and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


_ASSIGNMENT = re.compile(r"^\s*[\w.\[\]]+\s*:=\s*")


def _parse(query: str) -> Any:
    query = _ASSIGNMENT.sub("", query)
    try:
        return pglast.parser.parse_sql_json(query)
    except pglast.parser.ParseError:
        return pglast.parser.parse_sql_json(f"SELECT {query}")


def _names(node: Any) -> list[str]:
    return [part["String"]["sval"] for part in node if "String" in part]


def _walk(node: Any) -> Iterator[tuple[str, list[str]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "FuncCall":
                yield "function", _names(value["funcname"])
            elif key == "A_Expr" and "name" in value:
                yield "operator", _names(value["name"])
            elif key in ("TypeName", "typeName") and "names" in value:
                yield "type", _names(value["names"])
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def named(create_function: str) -> set[tuple[str, tuple[str, ...]]]:
    """Every (kind, name parts) the function's statements use: kind is function, operator or type."""
    tree = pglast.parse_plpgsql(create_function)
    out: set[tuple[str, tuple[str, ...]]] = set()
    for query in _queries(tree):
        for kind, parts in _walk(json.loads(_parse(query))):
            out.add((kind, tuple(parts)))
    return out


def unqualified(create_function: str) -> set[tuple[str, tuple[str, ...]]]:
    """The names the caller's search_path could redirect: those without a schema."""
    return {(kind, parts) for kind, parts in named(create_function) if len(parts) < 2}

"""Queue naming patterns that mean the same thing in Python and in PostgreSQL.

The config gives a Python-style regex with one named group ``namespace``. The
generated SQL runs it with ``regexp_match`` (PostgreSQL's ARE flavour) and the
runtime runs it with :mod:`re`. The two flavours disagree on many features, so
the pattern is parsed once with Python's own parser and re-emitted for both
engines from the same tree, admitting only a subset whose meaning is shared:

* literals, ``.``, bracket classes, ``\\w \\d \\s`` (ASCII meanings on both sides),
  ``^ $ \\A \\Z`` anchors, greedy quantifiers, groups and alternation;
* rejected: lazy and possessive quantifiers, lookaround, backreferences,
  conditionals, atomic groups, inline flags, word boundaries, ``\\W \\D \\S``
  inside brackets, and repeat counts above 255 (PostgreSQL's limit).

Both emitted forms make ``.`` match a newline and ``$`` match only at the very
end, and read ``\\w`` as ``[A-Za-z0-9_]`` whatever the database's locale.
PostgreSQL picks the longest overall match where Python picks the first
alternative that succeeds; for patterns whose alternatives or optional parts
could match text of different lengths at the same place, the two engines may
split a name differently, so prefer patterns that do not depend on that.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from pgmq_runtime.errors import PatternError

# Python's own regex parser; private but stable since 3.11, and the only parser
# that reads patterns exactly as ``re`` does. Typeshed has no stubs for it.
sre_parse: Any = importlib.import_module("re._parser")
sre_c: Any = importlib.import_module("re._constants")

NAMESPACE_GROUP = "namespace"
_PG_MAX_REPEAT = 255
_WORD = "A-Za-z0-9_"
_DIGIT = "0-9"
_SPACE = " \\t\\n\\r\\f\\v"
_FORBIDDEN_GLOBAL_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII | re.LOCALE


@dataclass(frozen=True)
class TranslatedPattern:
    """A validated pattern in its two spellings."""

    source: str
    python: str
    postgres: str

    def compiled(self) -> re.Pattern[str]:
        """The Python spelling, compiled with the flags that match PostgreSQL."""
        return re.compile(self.python, re.ASCII | re.DOTALL)


def translate(pattern: str) -> TranslatedPattern:
    """Check ``pattern`` and emit it for Python and PostgreSQL.

    Raises :class:`PatternError` naming the first unsupported feature.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PatternError(f"does not compile: {exc}") from exc
    parsed = sre_parse.parse(pattern)
    state = parsed.state
    if state.flags & _FORBIDDEN_GLOBAL_FLAGS:
        raise PatternError("inline flags such as (?i) are not supported: PostgreSQL reads them differently")
    names = dict(state.groupdict)
    if NAMESPACE_GROUP not in names:
        raise PatternError("needs exactly one named group (?P<namespace>...)")
    extra = sorted(n for n in names if n != NAMESPACE_GROUP)
    if extra:
        raise PatternError(f"only the group 'namespace' may be named; found also {', '.join(extra)}")
    ns_group = names[NAMESPACE_GROUP]
    python = _Emitter(ns_group, "python").emit(parsed)
    postgres = _Emitter(ns_group, "postgres").emit(parsed)
    return TranslatedPattern(source=pattern, python=python, postgres=postgres)


class _Emitter:
    """Writes a parsed pattern back as text for one engine."""

    def __init__(self, namespace_group: int, dialect: str) -> None:
        self.ns = namespace_group
        self.pg = dialect == "postgres"

    def emit(self, items: Any) -> str:
        return "".join(self._item(op, av) for op, av in items)

    def _atom(self, items: Any) -> str:
        """Emit ``items`` so that a following quantifier applies to all of it."""
        text = self.emit(items)
        if len(items) == 1 and items[0][0] in (
            sre_c.LITERAL,
            sre_c.NOT_LITERAL,
            sre_c.IN,
            sre_c.ANY,
            sre_c.CATEGORY,
            sre_c.SUBPATTERN,
        ):
            return text
        return f"(?:{text})"

    def _item(self, op: Any, av: Any) -> str:
        if op is sre_c.LITERAL:
            return self._literal(av)
        if op is sre_c.NOT_LITERAL:
            return f"[^{self._literal(av)}]"
        if op is sre_c.ANY:
            return "."
        if op is sre_c.IN:
            return self._bracket(av)
        if op is sre_c.CATEGORY:
            return self._category(av)
        if op is sre_c.MAX_REPEAT:
            low, high, sub = av
            return self._atom(sub) + self._quantifier(low, high)
        if op in (sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            raise PatternError("lazy (*?, +?, ??) and possessive quantifiers are not supported")
        if op is sre_c.SUBPATTERN:
            group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise PatternError("inline flags such as (?i:...) are not supported")
            inner = self.emit(sub)
            return f"({inner})" if group == self.ns else f"(?:{inner})"
        if op is sre_c.BRANCH:
            _, alternatives = av
            return "(?:" + "|".join(self.emit(alt) for alt in alternatives) + ")"
        if op is sre_c.AT:
            return self._anchor(av)
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            raise PatternError("lookahead and lookbehind are not supported")
        if op in (sre_c.GROUPREF, sre_c.GROUPREF_EXISTS):
            raise PatternError("backreferences and conditional groups are not supported")
        if op is getattr(sre_c, "ATOMIC_GROUP", None):
            raise PatternError("atomic groups (?>...) are not supported")
        raise PatternError(f"unsupported regex construct {op}")

    def _quantifier(self, low: int, high: int) -> str:
        unbounded = high == sre_c.MAXREPEAT
        if low > _PG_MAX_REPEAT or (not unbounded and high > _PG_MAX_REPEAT):
            raise PatternError(f"repeat counts above {_PG_MAX_REPEAT} are not supported by PostgreSQL")
        if (low, unbounded) == (0, True):
            return "*"
        if (low, unbounded) == (1, True):
            return "+"
        if (low, high) == (0, 1):
            return "?"
        if unbounded:
            return f"{{{low},}}"
        if low == high:
            return f"{{{low}}}"
        return f"{{{low},{high}}}"

    def _anchor(self, at: Any) -> str:
        if at in (sre_c.AT_BEGINNING, sre_c.AT_BEGINNING_STRING):
            return "^" if self.pg else r"\A"
        if at in (sre_c.AT_END, sre_c.AT_END_STRING):
            return "$" if self.pg else r"\Z"
        raise PatternError(r"word boundaries (\b, \B) are not supported: PostgreSQL has no \b")

    def _category(self, cat: Any) -> str:
        positive = {
            sre_c.CATEGORY_WORD: _WORD,
            sre_c.CATEGORY_DIGIT: _DIGIT,
            sre_c.CATEGORY_SPACE: _SPACE,
        }
        negative = {
            sre_c.CATEGORY_NOT_WORD: _WORD,
            sre_c.CATEGORY_NOT_DIGIT: _DIGIT,
            sre_c.CATEGORY_NOT_SPACE: _SPACE,
        }
        if cat in positive:
            return f"[{positive[cat]}]"
        if cat in negative:
            return f"[^{negative[cat]}]"
        raise PatternError(f"unsupported character category {cat}")

    def _bracket(self, items: Any) -> str:
        if len(items) == 1 and items[0][0] is sre_c.CATEGORY:
            # A bare \W, \D or \S outside brackets parses as a one-item class.
            return self._category(items[0][1])
        parts: list[str] = []
        negate = False
        for op, av in items:
            if op is sre_c.NEGATE:
                negate = True
            elif op is sre_c.LITERAL:
                parts.append(self._literal(av))
            elif op is sre_c.RANGE:
                low, high = av
                parts.append(f"{self._literal(low)}-{self._literal(high)}")
            elif op is sre_c.CATEGORY:
                inner = {
                    sre_c.CATEGORY_WORD: _WORD,
                    sre_c.CATEGORY_DIGIT: _DIGIT,
                    sre_c.CATEGORY_SPACE: _SPACE,
                }.get(av)
                if inner is None:
                    raise PatternError(r"\W, \D and \S are not supported inside [...]")
                parts.append(inner)
            else:
                raise PatternError(f"unsupported construct inside [...]: {op}")
        return "[" + ("^" if negate else "") + "".join(parts) + "]"

    def _literal(self, code: int) -> str:
        char = chr(code)
        if char.isascii() and (char.isalnum() or char == "_"):
            return char
        if code > 127:
            return char
        return self._escape(char)

    def _escape(self, char: str) -> str:
        named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}
        if char in named:
            return named[char]
        if ord(char) < 32 or ord(char) == 127:
            return f"\\x{ord(char):02x}" if not self.pg else f"\\u{ord(char):04x}"
        return "\\" + char

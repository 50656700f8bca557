"""Queue naming patterns re-emitted for Python and PostgreSQL from one parse."""

from __future__ import annotations

import pytest

from pgmq_runtime.errors import PatternError
from pgmq_runtime.pattern import translate


@pytest.mark.parametrize(
    ("pattern", "postgres"),
    [
        (r"(?P<namespace>\w+)_queue", r"([A-Za-z0-9_]+)_queue"),
        (r"^(?P<namespace>[a-z.-]+)\.(q|queue)$", r"^([a-z\.\-]+)\.(?:q(?:|ueue))$"),
        (r"(?P<namespace>\d{2,4})", r"([0-9]{2,4})"),
        (r"(?P<namespace>[^_]+)", r"([^_]+)"),
        (r"\A(?P<namespace>\S+)\Z", r"^([^ \t\n\r\f\v]+)$"),
    ],
)
def test_postgres_spelling(pattern, postgres):
    assert translate(pattern).postgres == postgres


def test_only_the_namespace_group_captures():
    translated = translate(r"(a|b)(?P<namespace>x)(y)")
    assert translated.postgres == "(?:[ab])(x)(?:y)"
    assert translated.compiled().search("axy").group(1) == "x"


def test_python_spelling_matches_postgres_semantics():
    compiled = translate(r"(?P<namespace>.+)$").compiled()
    # Python's $ would stop before a trailing newline and . would not cross one.
    assert compiled.search("a\nb\n").group(1) == "a\nb\n"
    assert translate(r"(?P<namespace>\w+)").compiled().search("é_x").group(1) == "_x"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(?P<namespace>\w+?)", "lazy"),
        (r"(?P<namespace>\w++)", "possessive"),
        (r"(?P<namespace>\w+)(?!x)", "lookahead"),
        (r"(?<=x)(?P<namespace>\w+)", "lookbehind"),
        (r"(?P<namespace>\w)(?P=namespace)", "backreferences"),
        (r"(?P<namespace>(?>\w+))", "atomic"),
        (r"(?P<namespace>(?i:\w+))", "inline flags"),
        (r"(?P<namespace>[\Wx])", r"\W, \D and \S"),
        (r"(?P<namespace>x{256})", "above 255"),
        (r"(?P<namespace>\w+)(?P<other>x)", "only the group 'namespace'"),
    ],
)
def test_features_that_differ_are_rejected(pattern, reason):
    with pytest.raises(PatternError, match=reason.replace("\\", "\\\\").replace("(", r"\(")):
        translate(pattern)

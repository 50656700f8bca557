"""The runtime's query catalogue: every statement composes, names only catalogued functions, and is faked."""

from __future__ import annotations

from pgmq_runtime import object_names
from pgmq_runtime.queries import QUERIES
from pgmq_runtime.testing_queries import HANDLERS as _HANDLERS

# Statements FakePgmq does not answer: LISTEN plumbing (the fake has its own listener) and PGMQ features it lacks.
NOT_FAKED = {"listen", "unlisten", "notify", "send_topic", "send_topic_with_notify", "create_partitioned"}


def test_every_query_composes_and_names_functions_of_the_catalogue():
    for query in QUERIES.values():
        identifiers = {slot: "chan" for slot in query.slots - object_names.FUNCTION_NAMES}
        assert set(identifiers) <= {"channel"}, query.name
        text = query.compose("my schema", **identifiers).as_string(None)
        for slot in query.slots & object_names.FUNCTION_NAMES:
            assert f'"my schema"."{slot}"' in text


def test_the_fake_answers_every_query_but_the_listed_ones():
    assert set(QUERIES) - set(_HANDLERS) == NOT_FAKED
    assert set(_HANDLERS) <= set(QUERIES)

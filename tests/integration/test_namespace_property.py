"""Property: the SQL and Python sides agree on namespace and channel for every name.

Hypothesis draws queue names (ASCII, punctuation, newlines, multibyte text) and
runs both implementations against the real server.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgmq_runtime.config import PgmqNotifyConfig
from tests.conftest import install

PATTERNS = [
    r"(?P<namespace>\w+)_queue",
    r"^(?P<namespace>[a-z]+)[._-]",
    r"(?P<namespace>[^.]+)\.(?:jobs|events)$",
    r"^app_(?P<namespace>\d{2,4}|[A-Z]\w*)",
    r"(?P<namespace>.+)_q$",
    r"^(?P<namespace>\S+)\W",
    r"\A(?P<namespace>[a-z]+(?:-[a-z]+)*)\Z",
]

names = st.text(
    alphabet=st.one_of(
        st.sampled_from("abcxyzABCQ019_.-$ \n\t()[]\\\"'"),
        st.characters(min_codepoint=0xA0, max_codepoint=0x1F600, blacklist_categories=("Cs",)),
    ),
    max_size=47,
) | st.builds(
    lambda a, b: f"{a}{b}",
    st.sampled_from(["orders", "app_", "app_12", "app_Zed", "x.jobs", "a-b-c", "Orders_queue"]),
    st.sampled_from(["", "_queue", "_q", ".events", "-x", "\n", "_queue_queue"]),
)


@pytest.fixture(params=PATTERNS)
def pattern_db(request, dsn):
    config = PgmqNotifyConfig(queue_naming_pattern=request.param, channels_prefix="p")
    install(dsn, config)
    conn = psycopg.connect(dsn, autocommit=True)
    yield config, conn
    conn.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names)
def test_namespace_and_channel_agree(pattern_db, name):
    config, conn = pattern_db
    row = conn.execute(
        'SELECT "pgmq_notify".extract_namespace_v1(%s), '
        '"pgmq_notify".namespace_channel_v1("pgmq_notify".extract_namespace_v1(%s))',
        [name, name],
    ).fetchone()
    namespace = config.extract_namespace(name)
    assert row == (namespace, config.message_ready_channel(namespace))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(namespace=st.text(min_size=1, max_size=60).filter(lambda s: "\x00" not in s))
def test_long_namespace_channels_agree(pattern_db, namespace):
    config, conn = pattern_db
    row = conn.execute('SELECT "pgmq_notify".namespace_channel_v1(%s)', [namespace]).fetchone()
    channel = config.message_ready_channel(namespace)
    assert row == (channel,)
    assert len(channel.encode()) <= 63

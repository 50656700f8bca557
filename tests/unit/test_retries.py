"""RetryPolicy: how long a failed message waits, when it is given up on, and what giving up sends."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from pgmq_runtime.retries import DEAD_LETTER, DEAD_LETTER_HEADER, GIVE_UP_ARCHIVE, RETRY_LATER, RetryPolicy


def test_backoff_grows_with_read_ct_up_to_the_cap_half_fixed_half_random():
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4.0)
    assert [policy.backoff(n, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5, 9)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert [policy.backoff(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_message_is_given_up_on_at_max_attempts():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"backoff_initial": 0}, {"backoff_initial": 2, "backoff_max": 1}, {"dead_letter_queue": ""}],
)
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_giving_up_archives_or_dead_letters_in_one_statement():
    archive = [(GIVE_UP_ARCHIVE, {"queue": "q", "msg_id": 7})]
    assert RetryPolicy().give_up_statements("q", 7, 5, {"a": 1}, None, "E: x") == archive
    [(query, params)] = RetryPolicy(dead_letter_queue="dlq").give_up_statements("q", 7, 5, {"a": 1}, {"h": 2}, "E: x")
    assert query == DEAD_LETTER
    assert params is not None
    message, headers = params["message"], params["headers"]
    assert (params["queue"], params["msg_id"], params["target"]) == ("q", 7, "dlq")
    assert isinstance(message, Jsonb) and message.obj == {"a": 1}
    assert isinstance(headers, Jsonb)
    assert headers.obj == {"h": 2, DEAD_LETTER_HEADER: {"queue": "q", "msg_id": 7, "read_ct": 5, "error": "E: x"}}
    assert RetryPolicy().retry_statements("q", 7, 1.5) == [(RETRY_LATER, {"queue": "q", "msg_id": 7, "delay": 1.5})]

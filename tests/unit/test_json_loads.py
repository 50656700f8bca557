"""The runtime's json/jsonb column loader gives what json.loads gives, errors included."""

from __future__ import annotations

import json
import math

import pytest

from pgmq_runtime.db import loads_json

SAME_AS_JSON = [
    b'{"order_id": 1, "items": [1, 2.5, "x", null, true, false]}',
    b'"caf\\u00e9 \xe2\x82\xac"',
    b"-0",
    b"0.30000000000000004440892098500626",
    b"123456789012345678901234567890.5",
    b"12345678901234567890123456789012345678901234567890",
    b"-9223372036854775809",
    b"4.9e-324",
    b"1E2",
    b'{"a": 1, "a": 2}',
    # What msgspec refuses and json.loads accepts:
    b'"\\ud800"',
    '"text, not bytes"',
]


@pytest.mark.parametrize("data", SAME_AS_JSON)
def test_values_are_the_ones_json_loads_gives(data: bytes | str) -> None:
    got, want = loads_json(data), json.loads(data)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("data", [b"1e400", b"-1e400", b"1.7976931348623157e309"])
def test_numbers_out_of_float_range_are_infinite_as_with_json_loads(data: bytes) -> None:
    assert math.isinf(loads_json(data)) and loads_json(data) == json.loads(data)


def test_what_json_loads_refuses_fails_the_same_way() -> None:
    with pytest.raises(ValueError, match="4300"):
        loads_json(b"1" * 5000)
    with pytest.raises(json.JSONDecodeError):
        loads_json(b"{not json")

"""Request bodies read by orjson where it reads JSON exactly as :mod:`json` does, and by
:mod:`json` everywhere else: the value, or the error, a client gets never depends on which."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from signoff.canonical import json_problem
from signoff.errors import BadRequest
from signoff.server.parsing import parse_json
from tests.helpers.strategies import json_values

AGREE = [
    b'{"a": 1, "a": 2}',  # the last of a repeated key, as json keeps it
    b"\xef\xbb\xbf" + b'{"a": 1}',  # a byte-order mark: orjson refuses, json reads
    b'{"a": "\\ud800"}',  # a lone surrogate: read, then refused as not storable (422)
    b"[1e400]",  # infinity: read, then refused as not storable
    b"123456789012345678901234567890",  # beyond 64 bits: orjson would make it a float
    b"-9223372036854775809",
    b"18446744073709551616",
    b'{"amount": 12345678901234567890.5}',
    b"-0",
    b"1.0",
    b'"\\u0000"',
    b'  {"a" : [ 1 , 2 ] }  ',
    '{"ключ": "значение", "emoji": "\U0001f600"}'.encode(),
    '{"a": 1}'.encode("utf-16"),  # another encoding: json detects it
]


@pytest.mark.parametrize("raw", AGREE)
def test_what_is_read_is_what_json_reads(raw: bytes) -> None:
    value, _ = parse_json(raw)
    expected = json.loads(raw)
    assert _typed(value) == _typed(expected)


@pytest.mark.parametrize(
    "raw", [b"[NaN]", b'{"x": -Infinity}', b'{"a": 1}garbage', b'{"a": "\x01"}', b"[" * 5000]
)
def test_what_json_refuses_is_a_bad_request_with_its_message(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="the body is not valid JSON"):
        parse_json(raw)


def _typed(value: Any) -> Any:
    """``value`` with each number's type beside it (1 == 1.0 would hide a float)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@given(json_values)
def test_any_json_text_is_read_as_json_reads_it(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert _typed(parse_json(raw)[0]) == _typed(json.loads(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"1e400",
        b"[-1e400]",
        b"[1.7976931348623157e309]",
        b'"\\ud800"',
        b'"\\udc00\\ud800"',
        b'{"\\ud800": 1}',
        b'"\\ud800x"',
        b'["ok", {"k": "\\udfff"}]',
    ],
)
def test_what_is_not_storable_is_never_taken_as_checked(raw: bytes) -> None:
    """Only what orjson read skips the storability check: it refuses all of this, which
    then goes to json and to the check (or is refused as not JSON)."""
    try:
        value, storable = parse_json(raw)
    except BadRequest:
        return
    assert not storable
    assert json_problem(value) is not None


@given(json_values)
def test_what_orjson_reads_is_storable(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parsed, storable = parse_json(raw)
    if storable:
        assert json_problem(parsed) is None

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.canonical import canonical_json, digest
from tests.helpers.strategies import json_values

# RFC 8785 appendix B and ECMAScript Number.prototype.toString vectors
NUMBERS = [
    (0.0, "0"),
    (-0.0, "0"),
    (1.0, "1"),
    (100.0, "100"),
    (1e21, "1e+21"),
    (1e20, "100000000000000000000"),
    (1e-7, "1e-7"),
    (1e-6, "0.000001"),
    (-1e-6, "-0.000001"),
    (0.1, "0.1"),
    (333333333.3333333, "333333333.3333333"),
    (5e-324, "5e-324"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
    (9007199254740992.0, "9007199254740992"),
    (295147905179352830000.0, "295147905179352830000"),
    (4.50, "4.5"),
    (2e-3, "0.002"),
    (0.000001, "0.000001"),
    (123456789012.5, "123456789012.5"),
]


@pytest.mark.parametrize(("value", "text"), NUMBERS)
def test_numbers_follow_ecmascript(value: float, text: str) -> None:
    assert canonical_json(value) == text


def test_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+E000 in UTF-16, after it in code points
    value = {"\ue000": 1, "\U0001f600": 2, "b": 3, "a": 4}
    assert canonical_json(value) == '{"a":4,"b":3,"\U0001f600":2,"\ue000":1}'


def test_strings_escape_minimally() -> None:
    assert canonical_json('é\n\t"\\\u0001/') == '"é\\n\\t\\"\\\\\\u0001/"'


def test_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="cannot be represented"):
        canonical_json(math.nan)
    with pytest.raises(TypeError):
        canonical_json({1: "x"})
    with pytest.raises(TypeError):
        canonical_json(object())


@given(json_values)
def test_canonical_form_is_stable_through_json(value: object) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


@given(st.dictionaries(st.text(), st.integers()))
def test_key_order_does_not_change_the_digest(value: dict[str, int]) -> None:
    reversed_value = dict(reversed(list(value.items())))
    assert digest(value) == digest(reversed_value)


@given(json_values)
def test_the_fast_path_agrees_with_the_exact_writer(value: object) -> None:
    from signoff.canonical import _write

    out: list[str] = []
    _write(value, out)
    assert canonical_json(value) == "".join(out)


def _exact(value: object) -> str:
    from signoff.canonical import _write

    out: list[str] = []
    _write(value, out)
    return "".join(out)


@pytest.mark.parametrize(
    "value",
    [
        {"amount": 10.0, "rate": 0.25},  # a whole float: written as an integer
        {"big": 2**64 + 1, "small": -(2**63) - 1},  # beyond what orjson writes
        {"\U0001f600": 1, "\uffff": 2, "a": 3},  # a key outside the BMP sorts by UTF-16
        {"n": [1e-4, 9.5e15, 1e-5, 1e16, 1e21, -0.0]},  # each edge of orjson's range
        ("a", ["tuple", 1.5]),  # a tuple is an array
        [[[[["deep"]]]]],
    ],
)
def test_each_way_of_writing_agrees_with_the_exact_writer(value: object) -> None:
    assert canonical_json(value) == _exact(value)


def test_nesting_beyond_orjsons_limit_is_still_written() -> None:
    value: object = "x"
    for _ in range(300):  # orjson stops at 255 levels
        value = {"k": [value]}
    assert canonical_json(value) == _exact(value)


@given(
    st.recursive(
        st.floats(min_value=-1e17, max_value=1e17) | st.integers() | st.text(max_size=3),
        lambda children: st.lists(children) | st.dictionaries(st.text(max_size=3), children),
        max_leaves=30,
    )
)
def test_floats_near_orjsons_range_agree_with_the_exact_writer(value: object) -> None:
    assert canonical_json(value) == _exact(value)

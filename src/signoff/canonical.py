"""Canonical JSON (RFC 8785, JCS) and digests over it.

The audit chain and the binding of an approval to its arguments both hash JSON, so the
same value must always give the same bytes: keys sorted by UTF-16 code units, no
insignificant white space, ECMAScript number formatting, minimal string escaping.

One deliberate difference from RFC 8785: integers beyond 2**53 are written exactly rather
than rounded through a double, because tool arguments are Python values, not JavaScript ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Any

import orjson

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be represented in JSON")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    sign, digits_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digits_tuple)).rstrip("0")
    k = len(digits)
    # ECMAScript: value = digits * 10^(n - k)
    n = exponent + len(digits_tuple)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return ("-" if sign else "") + text


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None or isinstance(value, bool):
        out.append(_CONSTANTS[value])
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, dict):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON; convert it first")


_CONSTANTS = {None: "null", True: "true", False: "false"}


def _write_object(value: dict[Any, Any], out: list[str]) -> None:
    keys = list(value)
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    if all(key.isascii() for key in keys):
        keys.sort()
    else:
        keys.sort(key=_utf16_key)
    out.append("{")
    for i, key in enumerate(keys):
        if i:
            out.append(",")
        out.append(_encode_string(key))
        out.append(":")
        _write(value[key], out)
    out.append("}")


_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
).encode


class _NeedsExactWriter(Exception):
    """The value holds something the C encoder would write differently from RFC 8785."""


def _prepare(value: Any) -> Any:  # noqa: C901 - one frame per level: see below
    """``value`` as orjson (or the C encoder) writes it canonically: a whole float becomes
    the integer it is, a tuple a list; a float whose shortest form differs from
    ECMAScript's, a key outside the Basic Multilingual Plane (where code-point order, the
    encoders', is not UTF-16 order) or a type that is not JSON sends the value to the exact
    writer instead. Copy on write: a container is copied only when something in it
    changed, so a value with nothing to change is returned as it is, walked once.

    Objects and arrays are handled here rather than in helpers so that each level of
    nesting costs one frame: a deep value stays as far from the recursion limit as the
    exact writer."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return _prepare_float(value)
    if kind is dict:
        _check_keys(value)
        copy = None
        for key, item in value.items():
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue  # the common leaves, without a call
            new = _prepare(item)
            if new is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = new
        return value if copy is None else copy
    if kind is list or kind is tuple:
        items = value if kind is list else list(value)
        copied = None
        for i, item in enumerate(items):
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                continue
            new = _prepare(item)
            if new is not item:
                if copied is None:
                    copied = list(items)
                copied[i] = new
        return items if copied is None else copied
    raise _NeedsExactWriter


def _prepare_float(value: float) -> float | int:
    magnitude = abs(value)
    if value.is_integer():
        if magnitude < 2**53:
            return int(value)
        raise _NeedsExactWriter
    # in this range the shortest repr (Python's, orjson's) is ECMAScript's toString
    if 1e-4 <= magnitude < 1e16:
        return value
    raise _NeedsExactWriter


def _check_keys(value: dict[Any, Any]) -> None:
    try:
        keys = "".join(value)
    except TypeError:
        bad = next(key for key in value if not isinstance(key, str))
        raise TypeError(f"JSON object keys must be strings, not {type(bad).__name__}") from None
    if not keys.isascii() and max(keys) > "\uffff":
        raise _NeedsExactWriter


_SORTED = orjson.OPT_SORT_KEYS


def canonical_json(value: Any) -> str:
    """The RFC 8785 canonical form of a JSON value (dicts, lists, str, int, float, bool, None).

    orjson (sorted keys) writes what :func:`_prepare` made canonical; anything else (an
    integer beyond 64 bits, a lone surrogate) goes the slower, exact way.
    tests/test_canonical.py holds each way to the exact writer."""
    try:
        prepared = _prepare(value)
    except _NeedsExactWriter:
        out: list[str] = []
        _write(value, out)
        return "".join(out)
    try:
        return orjson.dumps(prepared, option=_SORTED).decode()
    except (orjson.JSONEncodeError, TypeError):
        return _dumps(prepared)


def digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value``."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored and hashed as JSON, or None: a number that is not
    finite (NaN, Infinity), a string with a lone surrogate, a key that is not a string, or a
    value that is not JSON at all. Checked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not _is_unicode(item):
                return "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
        elif kind is float:
            if not math.isfinite(item):
                return f"{item!r} is not a JSON number"
        elif kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    return f"an object key must be a string, not {type(key).__name__}"
                if not _is_unicode(key):
                    return "an object key holds a lone surrogate"
                stack.append(child)
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif not (item is None or kind is bool or kind is int):
            return f"{kind.__name__} is not JSON"
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(value: Any) -> Any:
    """A copy of ``value`` that :func:`json_problem` accepts: non-finite numbers become
    their names as text, lone surrogates become U+FFFD. For what happened (a tool's result),
    which is recorded whatever it holds, never refused."""
    kind = type(value)
    if kind is str:
        return value if _is_unicode(value) else value.encode("utf-8", "replace").decode()
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if kind is dict:
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [storable(v) for v in value]
    return value

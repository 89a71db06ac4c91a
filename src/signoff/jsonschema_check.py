"""Validation of JSON values against a tool's JSON Schema (approvers' edits, JSON-schema tools).

A schema may come from an agent (``args_schema`` on a request), so checking against it must
cost the server a bounded amount of time, whatever the schema says:

- ``pattern`` and ``patternProperties`` run on RE2, a linear-time engine, never on Python's
  backtracking ``re`` (a 28-character pattern could otherwise hold a worker for seconds);
  a pattern RE2 cannot run (lookaround, backreferences) makes the schema invalid, as it
  does in pydantic's own default engine;
- ``$ref`` resolves only inside the schema: nothing is fetched, and a reference that does
  not resolve makes the schema invalid when it is submitted;
- the async entry points run the work in a worker thread, never on the event loop, and
  callers keep it out of write transactions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable

from signoff.types import JSONObject

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # an invalid pattern is reported to the caller, not to stderr
#: problems reported for one value at most (a huge invalid edit must not build a huge answer)
MAX_ERRORS = 20


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def _search(pattern: str, text: str) -> bool:
    try:
        return _compiled(pattern).search(text) is not None
    except re2.error as exc:
        raise SchemaError(f"pattern {pattern!r} is not supported: {exc}") from exc


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: JSONObject
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, properties: JSONObject, instance: Any, schema: JSONObject
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_Validator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties},
)
#: no retrieval: a $ref that is not inside the schema itself does not resolve
_NO_RETRIEVAL: Registry[Any] = Registry()


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every ``(keyword, value)`` pair in a schema, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                yield key, child
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    _Validator.check_schema(schema)
    validator = _Validator(schema, registry=_NO_RETRIEVAL)
    resolver = validator._resolver  # the same lookups validation will make
    for key, value in _walk(schema):
        if key == "$ref" and isinstance(value, str):
            try:
                resolver.lookup(value)
            except Unresolvable as exc:
                raise SchemaError(f"$ref {value!r} does not resolve inside the schema") from exc
        elif key in ("pattern", "patternProperties"):
            for pattern in [value] if key == "pattern" else list(value):
                if isinstance(pattern, str):
                    _search(pattern, "")  # compiles it: RE2 refuses what it cannot run
    return validator


def _key(schema: JSONObject) -> str:
    return json.dumps(schema, sort_keys=True)


def schema_problem(schema: JSONObject) -> str | None:
    """Why ``schema`` cannot be used to check arguments, or None. Synchronous: for schemas
    the operator wrote; use :func:`check_schema` for one an agent sent."""
    try:
        _validator(_key(schema))
    except SchemaError as exc:
        return exc.message
    except (Unresolvable, RecursionError, ValueError) as exc:
        return f"the schema cannot be used: {exc}"
    return None


def instance_errors(schema: JSONObject, instance: Any) -> list[str]:
    """Human-readable problems of ``instance`` against ``schema`` (empty when it fits).
    Synchronous: see :func:`schema_errors` for the event loop."""
    try:
        validator = _validator(_key(schema))
        found = []
        for error in validator.iter_errors(instance):
            found.append(error)
            if len(found) >= MAX_ERRORS:
                break
    except SchemaError as exc:
        return [f"the tool's schema cannot be used: {exc.message}"]
    except (Unresolvable, RecursionError, ValueError) as exc:
        return [f"the tool's schema cannot be used: {exc}"]
    errors = []
    for error in sorted(found, key=lambda e: [str(p) for p in e.path]):
        where = ".".join(str(p) for p in error.path) or "(arguments)"
        errors.append(f"{where}: {error.message}")
    return errors


async def check_schema(schema: JSONObject) -> str | None:
    """:func:`schema_problem`, in a worker thread."""
    return await asyncio.to_thread(schema_problem, schema)


async def schema_errors(schema: JSONObject, instance: Any) -> list[str]:
    """:func:`instance_errors`, in a worker thread."""
    return await asyncio.to_thread(instance_errors, schema, instance)

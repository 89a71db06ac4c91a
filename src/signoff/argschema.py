"""A tool's argument schema, and validation against JSON Schemas.

A tool's schema comes from its function's signature (pydantic: :class:`ArgsSchema`) or is
given as JSON Schema (:class:`JsonArgsSchema`); both parse a model's arguments into the
keyword arguments the tool is called with and the JSON values that are stored, shown to
approvers and bound to an approval by digest.

A schema may also come from an agent (``args_schema`` on a request), so checking against
one must cost the server a bounded amount of time, whatever the schema says:

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
import inspect
import json
import typing
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Annotated, Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable

from signoff.canonical import canonical_json, json_problem
from signoff.errors import ConfigError, InvalidArguments
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
    """The schema's canonical text: the cache key, and what the validator is built from. A
    schema canonical JSON cannot write (a NaN an operator's TOML may hold) keeps
    :mod:`json`'s text, which reads back the same."""
    try:
        return canonical_json(schema)
    except (ValueError, TypeError):
        return json.dumps(schema, sort_keys=True)


def schema_problem(schema: JSONObject) -> str | None:
    """Why ``schema`` cannot be used to check arguments, or None. Synchronous: for schemas
    the operator wrote; use :func:`check_schema` for one an agent sent."""
    return _problem_of(_key(schema))


def _problem_of(schema_text: str) -> str | None:
    try:
        _validator(schema_text)
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


#: schemas already checked and found usable (their canonical text): checking one again is
#: a lookup on the loop, not a trip to a worker thread (an embedded gate sends its tool's
#: schema with every call; the thread hop alone cost more than the rest of the submission)
_USABLE: dict[str, None] = {}
_USABLE_MAX = 256


async def check_schema(schema: JSONObject) -> str | None:
    """:func:`schema_problem`, in a worker thread (unless already found usable)."""
    key = _key(schema)
    if key in _USABLE:
        return None
    problem = await asyncio.to_thread(_problem_of, key)
    if problem is None:
        if len(_USABLE) >= _USABLE_MAX:
            del _USABLE[next(iter(_USABLE))]  # the oldest: dicts keep insertion order
        _USABLE[key] = None
    return problem


async def schema_errors(schema: JSONObject, instance: Any) -> list[str]:
    """:func:`instance_errors`, in a worker thread."""
    return await asyncio.to_thread(instance_errors, schema, instance)


_CONFIG = ConfigDict(
    extra="forbid",
    allow_inf_nan=False,  # arguments are stored, hashed and shown as JSON
    validate_by_alias=True,
    validate_by_name=False,
    serialize_by_alias=True,
)


class ArgsSchema:
    """Validates a model's arguments for one tool and turns them into call arguments.

    Fields are stored under private names with the parameter name as alias, so that any
    parameter name works, even one that shadows a pydantic attribute (``json``, ``copy``).
    """

    __slots__ = ("_fields", "json_schema", "model", "names")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise ConfigError(f"cannot read the type hints of tool {name!r}: {exc}") from exc
        fields: dict[str, Any] = {}
        self._fields: list[tuple[str, str]] = []
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(
                    f"tool {name!r}: *{param.name} / **{param.name} cannot be described to a "
                    "model; name every argument"
                )
            annotation = hints.get(param.name, Any)
            default = ... if param.default is param.empty else param.default
            internal = f"arg_{param.name}"
            fields[internal] = (Annotated[annotation, Field(alias=param.name)], default)
            self._fields.append((internal, param.name))
        self.names = tuple(public for _, public in self._fields)
        try:
            self.model: type[BaseModel] = create_model(name, __config__=_CONFIG, **fields)
            self.json_schema: JSONObject = self.model.model_json_schema()
        except Exception as exc:
            raise ConfigError(f"tool {name!r}: cannot build an argument schema: {exc}") from exc

    def validate(self, args: Mapping[str, Any]) -> BaseModel:
        try:
            return self.model.model_validate(args)
        except PydanticValidationError as exc:
            raise InvalidArguments(describe(exc), errors=exc.errors(include_url=False)) from exc

    def kwargs(self, parsed: BaseModel) -> dict[str, Any]:
        return {public: getattr(parsed, internal) for internal, public in self._fields}

    @staticmethod
    def dump(parsed: BaseModel) -> JSONObject:
        return parsed.model_dump(mode="json")

    def parse(self, args: Mapping[str, Any]) -> tuple[dict[str, Any], JSONObject]:
        """``(kwargs, args_json)``: what the function is called with, and the same as JSON."""
        parsed = self.validate(args)
        args_json = self.dump(parsed)
        if problem := json_problem(args_json):
            raise InvalidArguments(f"invalid arguments: {problem}")
        return self.kwargs(parsed), args_json


class JsonArgsSchema:
    """A tool described by a JSON Schema rather than a Python signature: an MCP server's
    tool, a framework's tool, a tool another process runs. The arguments stay JSON: the
    keyword arguments are the arguments themselves."""

    __slots__ = ("json_schema", "names")

    def __init__(self, json_schema: JSONObject, name: str) -> None:
        if json_schema.get("type", "object") != "object":
            raise ConfigError(f"tool {name!r}: the input schema must describe an object")
        if problem := schema_problem(json_schema):
            raise ConfigError(f"tool {name!r}: invalid input schema: {problem}")
        self.json_schema = json_schema
        properties = json_schema.get("properties")
        self.names = tuple(properties) if isinstance(properties, Mapping) else ()

    def parse(self, args: Mapping[str, Any]) -> tuple[dict[str, Any], JSONObject]:
        value = dict(args)
        if problem := json_problem(value):
            raise InvalidArguments(f"invalid arguments: {problem}")
        if errors := instance_errors(self.json_schema, value):
            raise InvalidArguments("invalid arguments: " + "; ".join(errors))
        return value, value


def describe(exc: PydanticValidationError) -> str:
    """One line per problem, naming the argument: what the model needs to correct itself."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(problems)

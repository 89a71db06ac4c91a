"""A tool's argument schema: from its function signature (pydantic), or given as JSON Schema.

Both kinds parse a model's arguments into the keyword arguments the tool is called with and
the JSON values that are stored, shown to approvers and bound to an approval by digest.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from signoff.canonical import json_problem
from signoff.errors import ConfigError, InvalidArguments
from signoff.jsonschema_check import instance_errors, schema_problem
from signoff.types import JSONObject

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
        except ValidationError as exc:
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


def describe(exc: ValidationError) -> str:
    """One line per problem, naming the argument: what the model needs to correct itself."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "(arguments)"
        problems.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(problems)

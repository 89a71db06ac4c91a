"""Reading HTTP requests: bodies as bounded JSON, query values, and answers as JSON.

Every way a request can be malformed ends in a :class:`SignoffError` (400, 408, 413, 422),
which the endpoint turns into a problem document: never a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from signoff.canonical import json_problem
from signoff.channels.inbound import read_body
from signoff.errors import BadRequest, InvalidArguments
from signoff.server.state import AppState

M = TypeVar("M", bound=BaseModel)

#: how long a client has to send a request's body
BODY_TIMEOUT_S = 30.0
#: the largest id the stores hold (a signed 64-bit integer)
MAX_ID = 2**63 - 1


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in item)
    return deepest


#: a run of digits an integer of 64 bits cannot hold (orjson reads it as a float)
_LONG_NUMBER = re.compile(rb"\d{19}")


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """``raw`` as JSON, or BadRequest; and whether it is known to be storable already.

    orjson reads what it reads exactly as :mod:`json` would (UTF-8, no constants, integers
    of 64 bits), and refuses everything :func:`json_problem` would find (a lone surrogate,
    a number that overflows to infinity): what it read is storable. The rest (a byte-order
    mark, another encoding, a lone surrogate escape, a long integer, an error to report) is
    read by :mod:`json`, whose answers and messages stay the ones clients see, and is
    checked by the caller."""
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw, parse_constant=_no_constant), False
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body is not valid JSON: {name} is not a JSON number")


async def read_json(request: Request, state: AppState) -> Any:
    """The body as JSON: 413 when too large, 400 when not JSON (NaN and Infinity included),
    422 when nested too deep or holding a string that is not Unicode."""
    limit = state.config.server.max_body_bytes
    raw = await read_body(request, limit, timeout_s=BODY_TIMEOUT_S)
    if not raw.strip():
        raise BadRequest("the request needs a JSON body")
    value, storable = parse_json(raw)
    most = state.config.server.max_args_depth + 2
    # no deeper than it has brackets: most bodies are let through without the walk
    if raw.count(b"{") + raw.count(b"[") > most and json_depth(value) > most:
        raise InvalidArguments(
            f"the body is nested more than {state.config.server.max_args_depth} levels deep"
        )
    if not storable and (problem := json_problem(value)) is not None:
        # valid JSON text, but not a value that can be stored, hashed and shown
        raise InvalidArguments(f"the body cannot be used: {problem}")
    return value


#: an OAuth request is a handful of short fields; anything much larger is not one
MAX_FORM_BYTES = 16_384
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the OAuth endpoints, RFC 6749 §3.2):
    bounded in size and time; a parameter sent twice is refused (§3.1), one sent empty is
    as if left out."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, MAX_FORM_BYTES, timeout_s=BODY_TIMEOUT_S, what="form")
    if media != FORM_TYPE and (media or raw):
        # (an empty body without a type is an empty form: every field is missing)
        raise BadRequest(f"send the parameters as {FORM_TYPE}")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, max_num_fields=20, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the form is not valid UTF-8 form encoding") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadRequest(f"the parameter {name!r} is given more than once")
        if "\x00" in value:
            raise BadRequest(f"the parameter {name!r} holds a NUL character")
        if value:
            fields[name] = value
    return fields


def parse(model: type[M], value: Any) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            _in_words(e["type"], list(e["loc"]), e["msg"], e.get("ctx") or {})
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidArguments(
            f"{where}: {first['msg']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            errors=errors,
        ) from exc


def _in_words(kind: str, loc: list[Any], msg: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One validation error as the problem lists it; a field that picks the body's shape
    (``decision``) said plainly, where pydantic speaks of tags and discriminators."""
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        field = str(ctx.get("discriminator", "")).strip("'") or "(body)"
        loc = [*loc, field]
        if kind == "union_tag_not_found":
            msg = "required"
        else:
            msg = f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    return {"loc": loc, "msg": msg, "type": kind}


def choice(value: str | None, allowed: list[str], name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidArguments(f"{name} must be one of {allowed}")
    return value


def integer(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidArguments(f"{name} must be a whole number") from exc
    if not low <= number <= high:
        raise InvalidArguments(f"{name} must be between {low} and {high}")
    return number


def via(request: Request) -> str:
    if request.scope.get("signoff.via") == "dashboard":  # set by the session hook
        return "dashboard"
    agent = request.headers.get("user-agent", "")
    return "cli" if agent.startswith("signoff-cli") else "api"


def ok(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )

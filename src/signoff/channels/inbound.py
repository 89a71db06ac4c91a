"""What every channel that takes decisions from outside does to an incoming body before
believing any of it: a bounded read, strict JSON, a pydantic model with every error
described without echoing the input (which may hold a token)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from signoff.canonical import json_problem
from signoff.errors import BadRequest, InvalidArguments, PayloadTooLarge, RequestTimeout

M = TypeVar("M", bound=BaseModel)

#: the largest decision a channel reads (a decision is small; modified arguments are the
#: bulk, and the service bounds them again)
MAX_DECISION_BYTES = 256 * 1024
#: how long a caller may take to send its body
BODY_TIMEOUT_S = 10.0
#: how deep a decision's JSON may nest
MAX_DEPTH = 64


async def read_body(
    request: Request,
    limit: int = MAX_DECISION_BYTES,
    *,
    timeout_s: float | None = None,
    what: str = "body",
) -> bytes:
    """The request's body: PayloadTooLarge past ``limit`` (declared or sent), RequestTimeout
    when it takes longer than ``timeout_s`` (default :data:`BODY_TIMEOUT_S`). The one
    bounded read of every body signoff takes (the API's, the channels'); ``what`` names it
    in the error."""
    if timeout_s is None:
        timeout_s = BODY_TIMEOUT_S
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the {what} is larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the {what} is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise RequestTimeout(f"the body did not arrive within {timeout_s:g} s") from exc
    return b"".join(chunks)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def load(raw: bytes, model: type[M], limit: int = MAX_DECISION_BYTES) -> M:
    """``raw`` as JSON validated by ``model``. Raises PayloadTooLarge, BadRequest (not JSON)
    or InvalidArguments (JSON that does not fit); no message repeats the input."""
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    if not raw.strip():
        raise BadRequest("the body is empty; it must be a JSON object")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("the body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidArguments("the body must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise InvalidArguments(f"the body is nested more than {MAX_DEPTH} levels deep")
    if (problem := json_problem(value)) is not None:
        raise InvalidArguments(f"the body cannot be used: {problem}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidArguments(f"{where}: {first['msg']}{more}", errors=errors) from exc

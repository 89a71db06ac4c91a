"""Errors as RFC 9457 problem documents: one table from error to HTTP status."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from signoff.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidArguments,
    InvalidEdit,
    MissingDependency,
    NotFound,
    OAuthClientError,
    OAuthError,
    PayloadTooLarge,
    RequestTimeout,
    SignoffError,
    StoreError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnknownTool,
    error_class,
)

PROBLEM_BASE = "https://signoff.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

#: the one place where an error becomes a status code
STATUS: dict[type[SignoffError], int] = {
    BadRequest: 400,
    OAuthClientError: 401,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    UnknownTool: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    RequestTimeout: 408,
    InvalidArguments: 422,
    InvalidEdit: 422,
    TooManyRequests: 429,
    StoreError: 503,
    Unavailable: 503,
    ConfigError: 500,
}

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each problem with the input, where there are several."
    )


def status_for(error: SignoffError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int,
    detail: str | None,
    *,
    code: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (code or TITLES.get(status, "error").lower().replace(" ", "_")),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    body.update(extra)
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="signoff"', **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def problem_dict(error: SignoffError) -> dict[str, Any]:
    """The problem document for ``error`` as a dict (batch results embed it)."""
    status = status_for(error)
    return {
        "type": PROBLEM_BASE + error.code,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": error.message,
    }


def from_error(error: SignoffError, instance: str | None = None) -> JSONResponse:
    extra = {k: v for k, v in error.detail.items() if k not in ("errors",)}
    errors = error.detail.get("errors")
    return problem(
        status_for(error),
        error.message,
        code=error.code,
        instance=instance,
        errors=_plain(errors) if errors else None,
        headers=retry_after(error),
        **_plain(extra),
    )


def retry_after(error: SignoffError) -> dict[str, str] | None:
    """The ``Retry-After`` header an error calls for, if any."""
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.retry_after)}
    return None


def _plain(value: Any) -> Any:
    """Error details made JSON-safe (pydantic error contexts may hold exceptions)."""
    from signoff._util import jsonable

    return jsonable(value)


#: the OAuth error code an error that is not an :class:`OAuthError` is answered with
_OAUTH_CODES = {400: "invalid_request", 413: "invalid_request", 422: "invalid_request"}
_OAUTH_CODES |= {401: "invalid_client", 429: "slow_down", 503: "temporarily_unavailable"}


def oauth_error(error: SignoffError) -> JSONResponse:
    """``error`` as the OAuth endpoints answer it (RFC 6749 §5.2): ``{"error",
    "error_description"}``, never cached; the status from the one table."""
    status = status_for(error)
    code = error.error if isinstance(error, OAuthError) else _OAUTH_CODES.get(status)
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **(retry_after(error) or {})}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="signoff"'
    body = {"error": code or "server_error", "error_description": error.message}
    return JSONResponse(body, status_code=status, headers=headers)


# -- the client's side: a problem document back into the error the server raised -------


def error_from(status: int, body: bytes, reason: str | None = None) -> SignoffError:
    """The SignoffError for an error response: the class named by the problem document's
    ``type`` (the error's ``code``), as the server raised it."""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    message = str(parsed.get("detail") or reason or f"HTTP {status}")
    if status >= 500:
        return Unavailable(f"the server failed ({status}): {message}")
    code = str(parsed.get("type", "")).rsplit("/", 1)[-1]
    kind = error_class(code) or _FALLBACK.get(status, SignoffError)
    if kind in (MissingDependency, TooManyRequests) or issubclass(kind, OAuthError):
        kind = SignoffError  # their constructors take other arguments: keep the message
    extra = {k: v for k, v in parsed.items() if k not in _PROBLEM_FIELDS}
    return kind(message, status=status, **extra)


#: for an error response that is not one of ours (a proxy's, say): by status alone
_FALLBACK: dict[int, type[SignoffError]] = {
    400: InvalidArguments,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidArguments,
}
_PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}

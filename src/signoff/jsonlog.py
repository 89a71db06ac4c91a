"""signoff's logs, as text or as JSON lines, each carrying the request it is about.

The request id travels in a context variable (:func:`about`): the service sets it around
each transition, the delivery worker around each delivery, so that every record logged
below them — signoff's own, a channel library's — names its request without every call
passing it along. ``configure("json")`` (``signoff serve --log-format json``) writes one
JSON object per line with ``time``, ``level``, ``logger``, ``message``, ``request_id``
(null when none) and any ``extra`` fields; python-json-logger does the encoding (escaping,
exceptions as text) rather than a formatter of our own.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO, Literal

__all__ = ["LogFormat", "about", "configure", "current_request_id"]

LogFormat = Literal["text", "json"]

_REQUEST_ID: ContextVar[str | None] = ContextVar("signoff_request_id", default=None)


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


class _About:
    """:func:`about`'s block: a class, not a generator, since it wraps every transition (a
    generator-based context manager costs several times as much to enter and leave)."""

    __slots__ = ("_request_id", "_token")

    def __init__(self, request_id: str | None) -> None:
        self._request_id = request_id

    def __enter__(self) -> None:
        self._token = _REQUEST_ID.set(self._request_id)

    def __exit__(self, *exc: object) -> None:
        _REQUEST_ID.reset(self._token)


def about(request_id: str | None) -> _About:
    """Within the block, records logged name ``request_id``."""
    return _About(request_id)


class _WithRequestId(logging.Filter):
    """Adds ``request_id`` to every record (an explicit ``extra`` one wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{text} [request {request_id}]" if request_id else text


def configure(
    fmt: LogFormat = "text", level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every logger's records (signoff's, uvicorn's, the channels' libraries') to one
    handler on ``stream`` (stderr) in ``fmt``; returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(_WithRequestId())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{request_id}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    return handler

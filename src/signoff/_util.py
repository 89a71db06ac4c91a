"""Small private helpers: ids, clocks, durations, JSON coercion."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
import ssl
import time
from datetime import UTC, datetime
from inspect import isawaitable
from typing import Any, TypeVar

from pydantic_core import to_jsonable_python

from signoff.errors import ConfigError, UsageError
from signoff.types import Clock

T = TypeVar("T")


_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def new_id(prefix: str) -> str:
    """An unguessable id: the prefix and 22 base-62 characters (~131 random bits)."""
    n = secrets.randbits(131)
    chars = []
    for _ in range(22):
        n, r = divmod(n, 62)
        chars.append(_ID_ALPHABET[r])
    return f"{prefix}_{''.join(chars)}"


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def now_utc(clock: Clock = time.time) -> datetime:
    return to_datetime(clock())


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: float | int | str) -> float:
    """Seconds from a number of seconds or a string such as ``"5m"``, ``"1h30m"``, ``"90s"``."""
    if isinstance(value, bool):
        raise ConfigError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ConfigError(
                    f"invalid duration {value!r}: use seconds or a string like '90s', '5m', '1h30m'"
                )
    if seconds <= 0:
        raise ConfigError(f"invalid duration {value!r}: it must be positive")
    return seconds


def human_duration(seconds: float) -> str:
    """``300`` → ``"5 minutes"``; ``5400`` → ``"1 hour 30 minutes"``; ``45`` → ``"45 seconds"``."""
    total = round(seconds)
    if total < 1:
        return f"{seconds:g} seconds"
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts)


def compact_duration(seconds: float) -> str:
    """``596`` → ``"9m 56s"``; ``5400`` → ``"1h 30m"``: the two largest units, for tables."""
    total = max(0, round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count or (unit == "s" and not parts):
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])


#: how long a stopping task has to stop before it is cancelled again
RECANCEL_S = 0.5


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has stopped. A background loop can swallow
    a cancellation without meaning to (a library turns it into an error, which the loop logs
    and retries after a pause): such a task is cancelled again until it stops, instead of
    holding its owner's shutdown forever."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def resolve(value: Any, *args: Any) -> Any:
    """A plain value, or the result of calling a sync or async function with ``args``."""
    if callable(value):
        value = value(*args)
        if isawaitable(value):
            value = await value
    return value


MAX_DETAIL_CHARS = 65536


def jsonable(value: Any) -> Any:
    """A JSON-compatible copy of ``value``; objects JSON cannot hold become their ``repr``."""
    return to_jsonable_python(value, fallback=repr)


def loose_args(arguments: Any) -> dict[str, Any]:
    """Arguments a model sent, as an object for reporting, whatever shape they came in."""
    if arguments is None:
        return {}
    if not isinstance(arguments, str):
        return dict(arguments)
    try:
        decoded = json.loads(arguments)
    except ValueError:
        return {"raw": arguments}
    return decoded if isinstance(decoded, dict) else {"raw": decoded}


#: the ``application_name`` of every session that LISTENs for signoff's notifications on
#: PostgreSQL begins so, followed by a token: a writer need not notify when no session but
#: its own process's listens (signoff.stores.postgres_notify)
LISTENER_PREFIX = "signoff listen "
#: a writer that believed no other session listened looks again within less than this; a
#: process that begins to listen catches up once after it, for what it was not told
LISTEN_GRACE_S = 0.5


def listener_name() -> str:
    """A new name for a LISTEN session (see :data:`LISTENER_PREFIX`)."""
    return LISTENER_PREFIX + secrets.token_hex(6)


def failure_text(exc: BaseException) -> str:
    """Why a connection failed, in words for a person: the operating system's reason where
    the error carries one ("Connection refused", "Name or service not known"; aiohttp keeps
    it as ``os_error``), "timed out" for a timeout (whose message is empty), else the
    error's message or, without one, its kind. Never its repr: that prints the client's
    internals (aiohttp's connection key, proxy settings) to the person or the model."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    cause = getattr(exc, "os_error", None)
    if not isinstance(cause, OSError) and isinstance(exc, OSError):
        cause = exc
    # TLS errors are OSErrors numbered 1, which the system would call "Operation not
    # permitted": say what TLS said instead
    if isinstance(cause, ssl.SSLError):
        said = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the server's certificate is not trusted ({said})"
        return f"TLS failed ({said})"
    if isinstance(cause, OSError):
        if isinstance(cause.errno, int) and cause.errno > 0:
            return os.strerror(cause.errno)
        if cause.strerror:
            return str(cause.strerror)
    return str(exc).strip() or type(exc).__name__


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, for uvicorn to serve on.

    Bound here, before anything says it serves, so that a port in use or an address this
    machine does not have is one clear error (left to bind, uvicorn logs the error and ends
    the process), and listening at once, so that a client told the address is queued until
    the server accepts rather than refused. ``port`` 0 takes a free port: read it from
    ``getsockname()``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except (OSError, OverflowError) as exc:  # OverflowError: a port beyond 65535
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {failure_text(exc)}") from exc
    sock.set_inheritable(True)
    return sock

"""Where ``signoff login`` keeps its tokens, and how a command gets a fresh access token.

One JSON file, ``$XDG_CONFIG_HOME/signoff/credentials.json`` (else ``~/.config/…``), mode
0600 in a 0700 folder, keyed by server URL: one sign-in per server. A file that others can
read is refused rather than used. Refreshing rotates the refresh token, and the server signs
a device out when an old refresh token comes back, so two commands must never refresh with
the same one: the refresh runs under an exclusive lock on the file, and re-reads it first.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from signoff._util import failure_text
from signoff.config import Settings
from signoff.devices import CLIENT_ID
from signoff.errors import ConfigError, OAuthError, Unauthorized, Unavailable

#: refresh when the access token has less than this left
REFRESH_MARGIN_S = 60
_TIMEOUT = aiohttp.ClientTimeout(total=30)


def credentials_path(settings: Settings) -> Path:
    home = Path(settings.config_home) if settings.config_home else Path.home() / ".config"
    return home / "signoff" / "credentials.json"


def server_key(url: str) -> str:
    return url.rstrip("/")


def load_all(path: Path) -> dict[str, dict[str, Any]]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} can be read by others: run 'chmod 600 {path}' or log in again")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; delete it and log in again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a credentials file; delete it and log in again")
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _write_all(path: Path, data: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(temporary, path)  # atomic: a reader sees the old file or the new one


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every ``signoff`` process of this user (POSIX)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def store(path: Path, url: str, entry: dict[str, Any] | None) -> None:
    """Save (or with None, remove) the sign-in for ``url``."""
    with locked(path):
        data = load_all(path)
        if entry is None:
            data.pop(server_key(url), None)
        else:
            data[server_key(url)] = entry
        _write_all(path, data)


def entry_from(tokens: dict[str, Any], name: str) -> dict[str, Any]:
    """What is kept of a token response."""
    return {
        "access_token": tokens["access_token"],
        "access_expires_at": time.time() + float(tokens["expires_in"]),
        "refresh_token": tokens["refresh_token"],
        "refresh_expires_at": tokens.get("refresh_expires_at"),
        "sub": tokens.get("sub"),
        "role": tokens.get("role"),
        "device_id": tokens.get("device_id"),
        "device_name": name,
    }


async def post_form(url: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST an OAuth form; the status and the JSON answer."""
    target = server_key(url) + path
    try:
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as http,
            http.post(target, data=form, headers={"Accept": "application/json"}) as reply,
        ):
            status, raw = reply.status, await reply.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unavailable(f"cannot reach the signoff server at {url}: {failure_text(exc)}") from exc
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if status >= 500 or (status != 200 and "error" not in body):
        raise Unavailable(f"the server at {url} answered {status}")
    return status, body


def oauth_failure(body: dict[str, Any]) -> OAuthError:
    return OAuthError(str(body.get("error")), str(body.get("error_description") or ""))


async def access_token(settings: Settings, url: str) -> str | None:
    """A valid access token for ``url`` from the stored sign-in, refreshed when it is about
    to expire; None when there is no sign-in for ``url``."""
    path = credentials_path(settings)
    entry = load_all(path).get(server_key(url))
    if entry is None:
        return None
    if float(entry.get("access_expires_at", 0)) - REFRESH_MARGIN_S > time.time():
        return str(entry["access_token"])
    with locked(path):
        entry = load_all(path).get(server_key(url))  # another command may have refreshed
        if entry is None:
            return None
        if float(entry.get("access_expires_at", 0)) - REFRESH_MARGIN_S > time.time():
            return str(entry["access_token"])
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(entry["refresh_token"]),
            "client_id": CLIENT_ID,
        }
        status, body = await post_form(url, "/oauth/token", form)
        data = load_all(path)
        if status != 200:
            data.pop(server_key(url), None)
            _write_all(path, data)
            failure = oauth_failure(body)
            raise Unauthorized(
                f"your sign-in to {url} has ended ({failure.message}): run 'signoff login'"
            )
        data[server_key(url)] = entry_from(body, str(entry.get("device_name", "")))
        _write_all(path, data)
        return str(body["access_token"])

"""Signing this machine in to a server: login, logout, whoami (docs/cli.md).

``signoff login`` is the OAuth 2.0 device authorization grant (RFC 8628) against the
server: it prints a code and a link (and opens a browser where there is one), a person
signed in to the dashboard confirms, and the approver token it receives is stored for every
later command that talks to that server (:mod:`signoff.cli.credentials`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from signoff.cli import credentials as creds
from signoff.cli._common import TokenOption, UrlOption, _run, _settings, app, console
from signoff.config import Settings
from signoff.devices import CLIENT_ID, DEVICE_CODE_GRANT, SCOPE
from signoff.errors import OAuthError, SignoffError, UsageError
from signoff.safe_text import printable, shown

#: the longest a poll may be asked to wait, whatever the server says
_MAX_INTERVAL_S = 60


def _url(url: str | None, settings: Settings) -> str:
    return creds.server_key(url or settings.server_url)


@app.command()
def login(
    url: UrlOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="This device's name, shown when you confirm.")
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only print the link; open no browser.")
    ] = False,
) -> None:
    """Sign this machine in to a server: confirm a code in the dashboard, then every
    command that talks to that server acts as you."""
    settings = _settings()
    server = _url(url, settings)
    device_name = name or f"signoff on {socket.gethostname()}"
    entry = _run(_login(settings, server, device_name, not no_browser))
    until = entry.get("refresh_expires_at") or "until you log out"
    console.print(
        shown(f"Signed in to {server} as {entry['sub']} ({entry['role']}), until {until}."),
        highlight=False,
    )
    console.print(shown(f"Token stored in {creds.credentials_path(settings)}"), highlight=False)


async def _login(settings: Settings, server: str, name: str, browser: bool) -> dict[str, Any]:
    form = {"client_id": CLIENT_ID, "scope": SCOPE, "device_name": name}
    status, codes = await creds.post_form(server, "/oauth/device", form)
    if status != 200:
        raise creds.oauth_failure(codes)
    user_code, page = str(codes["user_code"]), str(codes["verification_uri"])
    complete = str(codes.get("verification_uri_complete") or page)
    console.print(f"Your one-time code: {printable(user_code)}", highlight=False)
    console.print(f"Confirm it, signed in to the dashboard, at: {printable(page)}", highlight=False)
    if browser and settings.has_display:
        import webbrowser

        if webbrowser.open(complete):
            console.print("(opened in your browser)")
    console.print("Waiting for you to confirm…", highlight=False)
    interval = max(1, int(codes.get("interval", 5)))
    deadline = time.monotonic() + float(codes.get("expires_in", 600))
    device_code = str(codes["device_code"])
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        form = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": CLIENT_ID}
        status, body = await creds.post_form(server, "/oauth/token", form)
        if status == 200:
            entry = creds.entry_from(body, name)
            creds.store(creds.credentials_path(settings), server, entry)
            return entry
        error = body.get("error")
        if error == "slow_down":
            interval = min(interval + 5, _MAX_INTERVAL_S)  # RFC 8628 §3.5
        elif error != "authorization_pending":
            raise _refused(creds.oauth_failure(body))
    raise SignoffError("the code expired before it was confirmed: run signoff login again")


def _refused(failure: OAuthError) -> SignoffError:
    if failure.error == "access_denied":
        return SignoffError("the sign-in was denied in the dashboard")
    if failure.error == "expired_token":
        return SignoffError(f"the code expired ({failure.message}): run signoff login again")
    return SignoffError(f"the server refused the sign-in: {failure.error}: {failure.message}")


@app.command()
def logout(url: UrlOption = None) -> None:
    """Sign this machine out of a server: the server revokes the device, and its token is
    removed from here."""
    settings = _settings()
    server = _url(url, settings)
    path = creds.credentials_path(settings)
    entry = creds.load_all(path).get(server)
    if entry is None:
        raise UsageError(f"not signed in to {server}")
    form = {
        "token": str(entry.get("refresh_token", "")),
        "token_type_hint": "refresh_token",
        "client_id": CLIENT_ID,
    }
    try:
        _run(creds.post_form(server, "/oauth/revoke", form))
    except SignoffError as exc:
        creds.store(path, server, None)
        raise SignoffError(
            f"removed from this machine, but the server was not told ({exc.message}): "
            "revoke the device on the dashboard's Devices page"
        ) from exc
    creds.store(path, server, None)
    console.print(shown(f"Signed out of {server}."), highlight=False)


@app.command()
def whoami(url: UrlOption = None, token: TokenOption = None) -> None:
    """Who the commands act as on a server, and until when."""
    from signoff.cli._common import USER_AGENT, resolve_token
    from signoff.client import Client

    settings = _settings()
    server = _url(url, settings)

    async def ask() -> dict[str, Any]:
        found = await resolve_token(server, token, settings)
        async with Client(server, found, user_agent=USER_AGENT) as client:
            return await client.me()

    me = _run(ask())
    console.print(
        shown(f"{me.get('sub')} ({me.get('role') or me.get('kind')}) on {server}"),
        highlight=False,
    )
    entry = creds.load_all(creds.credentials_path(settings)).get(server)
    if token or settings.token:
        console.print("Using the token from --token / SIGNOFF_TOKEN.")
    elif entry is not None:
        until = entry.get("refresh_expires_at") or "?"
        name = entry.get("device_name") or entry.get("device_id")
        console.print(shown(f"Signed in with 'signoff login' as {name}, until {until}."))
        expires = datetime.fromtimestamp(float(entry.get("access_expires_at", 0)), UTC)
        console.print(f"Access token renewed automatically; this one until {expires:%H:%M:%S} UTC.")

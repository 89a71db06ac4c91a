"""Device login as tests drive it over HTTP: ask for codes, confirm them in a signed-in
dashboard session (the form a browser posts), poll, refresh."""

from __future__ import annotations

import re
from typing import Any

import httpx

from signoff.devices import CLIENT_ID, DEVICE_CODE_GRANT

HTML = {"Accept": "text/html"}


async def ask(client: httpx.AsyncClient, name: str = "laptop", **extra: str) -> dict[str, Any]:
    reply = await client.post(
        "/oauth/device", data={"client_id": CLIENT_ID, "device_name": name, **extra}
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def poll(client: httpx.AsyncClient, device_code: str) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": CLIENT_ID},
    )


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
        },
    )


def form_csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def confirm(
    browser: httpx.AsyncClient, user_code: str, action: str = "approve"
) -> httpx.Response:
    """What a signed-in person does on /device: enter the code, look, confirm (or deny)."""
    page = await browser.get("/device", headers=HTML)
    assert page.status_code == 200, page.text
    csrf = form_csrf(page.text)
    shown = await browser.post(
        "/device", data={"csrf": csrf, "user_code": user_code, "action": "lookup"}, headers=HTML
    )
    if shown.status_code != 200:
        return shown
    return await browser.post(
        "/device",
        data={"csrf": form_csrf(shown.text), "user_code": user_code, "action": action},
        headers=HTML,
    )

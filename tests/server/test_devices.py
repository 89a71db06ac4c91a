"""Device login over HTTP (RFC 8628): codes, confirmation on the dashboard, polling, the
tokens and what they may do, refresh rotation, listing and revoking devices."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from signoff.devices import CLIENT_ID, USER_CODE_ALPHABET
from tests.conftest import ManualClock
from tests.helpers.devices import HTML, ask, confirm, poll, refresh
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_session import link, sign_in


@pytest.fixture
async def live(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Live]:
    """The server on a clock the test moves (polling intervals, code expiry)."""
    info, server, task = await start_live(tmp_path, clock=clock)
    yield info
    await stop_live(server, task)


@pytest.fixture
async def anonymous(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    async with live.client(None) as client:
        yield client


@contextlib.asynccontextmanager
async def signed_in(
    live: Live, sub: str = "paul", role: str = "publisher"
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in to the dashboard the usual way (a login link)."""
    async with live.client(None) as client:
        reply = await sign_in(client, link(live, sub, role))
        assert reply.status_code == 303, reply.text
        yield client


async def login(live: Live, anonymous: httpx.AsyncClient, sub: str = "paul",
                role: str = "publisher") -> dict[str, object]:  # fmt: skip
    """Signs a device in; returns the token response."""
    codes = await ask(anonymous)
    async with signed_in(live, sub, role) as browser:
        done = await confirm(browser, str(codes["user_code"]))
        assert done.status_code == 200, done.text
    reply = await poll(anonymous, str(codes["device_code"]))
    assert reply.status_code == 200, reply.text
    tokens: dict[str, object] = reply.json()
    return tokens


async def test_codes_are_as_rfc_8628_says(live: Live, anonymous: httpx.AsyncClient) -> None:
    codes = await ask(anonymous)
    assert set(codes) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    user_code = str(codes["user_code"])
    assert len(user_code) == 9 and user_code[4] == "-"
    assert all(ch in USER_CODE_ALPHABET for ch in user_code.replace("-", ""))
    assert len(str(codes["device_code"])) >= 43  # 256 bits, base64url
    assert codes["verification_uri"] == f"{live.url}/device"
    assert codes["interval"] == 5 and codes["expires_in"] == 600


async def test_the_whole_flow(live: Live, anonymous: httpx.AsyncClient, clock: ManualClock) -> None:
    codes = await ask(anonymous, "paul's laptop")
    pending = await poll(anonymous, str(codes["device_code"]))
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    assert pending.headers["cache-control"] == "no-store"
    async with signed_in(live) as browser:
        page = await browser.get(f"/device?user_code={codes['user_code']}", headers=HTML)
        assert str(codes["user_code"]) in page.text
        done = await confirm(browser, str(codes["user_code"]))
        assert done.status_code == 200 and "signed in" in done.text.lower()
    # the person confirmed between two polls: the next one, after the interval, gets tokens
    clock.advance(5)
    reply = await poll(anonymous, str(codes["device_code"]))
    assert reply.status_code == 200, reply.text
    tokens = reply.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "approver"
    assert tokens["sub"] == "paul" and tokens["role"] == "publisher"
    async with live.client(tokens["access_token"]) as device:
        me = (await device.get("/v1/me")).json()
        assert (me["sub"], me["kind"], me["role"]) == ("paul", "approver", "publisher")
        listed = (await device.get("/v1/devices")).json()["items"]
        assert [d["name"] for d in listed] == ["paul's laptop"]
    # the device code works once
    again = await poll(anonymous, str(codes["device_code"]))
    assert again.status_code == 400


async def test_refresh_rotates_and_an_old_refresh_token_signs_the_device_out(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    tokens = await login(live, anonymous)
    first = str(tokens["refresh_token"])
    rotated = await refresh(anonymous, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first
    async with live.client(second["access_token"]) as device:
        assert (await device.get("/v1/me")).status_code == 200
    reused = await refresh(anonymous, first)
    assert reused.json()["error"] == "invalid_grant"
    # the reuse signed the device out: the newest tokens are refused too
    assert (await refresh(anonymous, second["refresh_token"])).status_code == 400
    async with live.client(second["access_token"]) as device:
        assert (await device.get("/v1/me")).status_code == 401
    types = [e.type for e in await live.service.store.audit_events()]
    assert "device.refresh_reused" in types


async def test_revoke_endpoint_and_the_devices_page(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    tokens = await login(live, anonymous)
    revoked = await anonymous.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": CLIENT_ID}
    )
    assert revoked.status_code == 200 and revoked.json() == {}
    async with live.client(str(tokens["access_token"])) as device:
        assert (await device.get("/v1/me")).status_code == 401
    unknown = await anonymous.post(
        "/oauth/revoke", data={"token": "nonsense", "client_id": CLIENT_ID}
    )
    assert unknown.status_code == 200  # RFC 7009 §2.2
    # the dashboard's own revocation, and who may
    tokens = await login(live, anonymous, "paul")
    async with signed_in(live, "petra", "publisher") as petra:
        listed = await petra.get("/devices", headers=HTML)
        assert "paul" not in listed.text
    async with signed_in(live, "ada", "admin") as ada:
        listed = await ada.get("/devices", headers=HTML)
        device_id = str(tokens["device_id"])
        assert device_id in listed.text
        from tests.helpers.devices import form_csrf

        gone = await ada.post(
            f"/devices/{device_id}/revoke", data={"csrf": form_csrf(listed.text)}, headers=HTML
        )
        assert gone.status_code == 303
    async with live.client(str(tokens["access_token"])) as device:
        assert (await device.get("/v1/me")).status_code == 401


async def test_only_the_owner_or_the_highest_role_revokes_over_the_api(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    tokens = await login(live, anonymous, "paul")
    device_id = str(tokens["device_id"])
    async with live.client(live.approver_token("petra", "publisher")) as petra:
        refused = await petra.delete(f"/v1/devices/{device_id}")
        assert refused.status_code == 403
        assert (await petra.get("/v1/devices")).json()["items"] == []
    async with live.client(str(tokens["access_token"])) as own:
        gone = await own.delete(f"/v1/devices/{device_id}")
        assert gone.status_code == 200 and gone.json()["status"] == "revoked"
        assert (await own.get("/v1/me")).status_code == 401


async def test_denied(live: Live, anonymous: httpx.AsyncClient) -> None:
    codes = await ask(anonymous)
    async with signed_in(live) as browser:
        done = await confirm(browser, str(codes["user_code"]), action="deny")
        assert done.status_code == 200 and "denied" in done.text.lower()
    reply = await poll(anonymous, str(codes["device_code"]))
    assert reply.json()["error"] == "access_denied"


async def test_the_endpoints_are_in_the_openapi_document(anonymous: httpx.AsyncClient) -> None:
    document = (await anonymous.get("/openapi.json")).json()
    paths = document["paths"]
    for path in ("/oauth/device", "/oauth/token", "/oauth/revoke", "/v1/devices"):
        assert path in paths
    assert "delete" in paths["/v1/devices/{id}"]
    body = paths["/oauth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in body


async def test_an_open_event_stream_ends_when_its_device_is_revoked(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    tokens = await login(live, anonymous)
    async with (
        live.client(str(tokens["access_token"])) as device,
        device.stream("GET", "/v1/events") as stream,
    ):
        assert stream.status_code == 200
        gone = await device.delete(f"/v1/devices/{tokens['device_id']}")
        assert gone.status_code == 200
        started = time.monotonic()

        async def drain() -> None:
            async for _ in stream.aiter_bytes():
                pass

        await asyncio.wait_for(drain(), timeout=15)
        assert time.monotonic() - started < 12

"""Attacks on device login (`signoff login`, RFC 8628), each refused: guessing user codes,
confirming an expired or used code, polling faster than the interval, a revoked token used
again (on another replica of one PostgreSQL database), a device token used as an agent,
refresh token reuse, CSRF on the confirmation form, and bad input on every endpoint."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from signoff.devices import CLIENT_ID, DEVICE_CODE_GRANT, MAX_WRONG_CODES, DeviceGrant
from signoff.errors import NotFound
from signoff.models import Principal
from signoff.server.device_pages import WRONG_CODES
from tests.conftest import ManualClock
from tests.helpers.devices import HTML, ask, confirm, form_csrf, poll, refresh
from tests.security.test_agent_data import cli
from tests.security.test_cli_errors import one_line_failure
from tests.server.conftest import SECRET, Live, start_live, stop_live
from tests.server.test_api import REFUND
from tests.server.test_session import link, sign_in


@pytest.fixture
async def live(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Live]:
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
    async with live.client(None) as client:
        assert (await sign_in(client, link(live, sub, role))).status_code == 303
        yield client


async def signed_in_device(live: Live, anonymous: httpx.AsyncClient) -> dict[str, str]:
    codes = await ask(anonymous)
    async with signed_in(live) as browser:
        assert (await confirm(browser, codes["user_code"])).status_code == 200
    reply = await poll(anonymous, codes["device_code"])
    assert reply.status_code == 200, reply.text
    tokens: dict[str, str] = reply.json()
    return tokens


# -- guessing ---------------------------------------------------------------------------------


async def test_wrong_codes_are_bounded_per_person_and_address(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    codes = await ask(anonymous)
    async with signed_in(live) as browser:
        csrf = form_csrf((await browser.get("/device", headers=HTML)).text)
        for _ in range(WRONG_CODES):
            wrong = await browser.post(
                "/device", data={"csrf": csrf, "user_code": "BBBB-BBBB"}, headers=HTML
            )
            assert wrong.status_code == 404
        limited = await browser.post(
            "/device", data={"csrf": csrf, "user_code": codes["user_code"]}, headers=HTML
        )
        assert limited.status_code == 429 and "retry-after" in limited.headers
    refused = [
        e for e in await live.service.store.audit_events() if e.type == "device.code_refused"
    ]
    assert len(refused) == WRONG_CODES


async def test_enough_wrong_codes_anywhere_burn_every_waiting_code(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    """Per-address limits are per replica; the store-wide bound is not: once a code has
    outlived MAX_WRONG_CODES wrong guesses it is burned, and the device is told so."""
    codes = await ask(anonymous)
    devices = _grant(live)
    for n in range(MAX_WRONG_CODES):
        with pytest.raises(NotFound, match="no device is waiting"):
            await devices.lookup("CCCC-CCCC", Principal(f"guesser{n}", "editor"), f"10.0.0.{n}")
    async with signed_in(live) as browser:
        late = await confirm(browser, codes["user_code"])
        assert late.status_code == 404
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "expired_token"


def _grant(live: Live) -> DeviceGrant:
    """A DeviceGrant on the server's store and key, for many guessers at once (from many
    addresses, past what one replica's per-address limit would let through)."""
    return DeviceGrant(
        live.service.store, SECRET, live.config, lambda: live.service.now().timestamp()
    )


# -- expired, used, too fast ------------------------------------------------------------------


async def test_an_expired_code_cannot_be_confirmed_or_exchanged(
    live: Live, anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    codes = await ask(anonymous)
    clock.advance(601)
    async with signed_in(live) as browser:
        assert (await confirm(browser, codes["user_code"])).status_code == 404
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "expired_token"


async def test_a_used_code_cannot_be_confirmed_again_or_exchanged_twice(
    live: Live, anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    codes = await ask(anonymous)
    async with signed_in(live) as browser:
        assert (await confirm(browser, codes["user_code"])).status_code == 200
    async with signed_in(live, "eve", "admin") as eve:
        assert (await confirm(eve, codes["user_code"])).status_code == 404
    first = await poll(anonymous, codes["device_code"])
    assert first.status_code == 200 and first.json()["sub"] == "paul"
    clock.advance(60)
    again = await poll(anonymous, codes["device_code"])
    assert again.json()["error"] == "invalid_grant"


async def test_polling_faster_than_the_interval_is_slow_down(
    live: Live, anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    codes = await ask(anonymous)
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "authorization_pending"
    fast = await poll(anonymous, codes["device_code"])
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
    clock.advance(6)  # the old interval is no longer enough: it grew by 5 s (to 10)
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "slow_down"
    clock.advance(16)  # 15 s now
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "authorization_pending"


# -- tokens -----------------------------------------------------------------------------------


async def test_a_device_token_is_never_an_agent(live: Live, anonymous: httpx.AsyncClient) -> None:
    tokens = await signed_in_device(live, anonymous)
    async with live.client(tokens["access_token"]) as device:
        refused = await device.post("/v1/requests", json=REFUND)
        assert refused.status_code == 403
    scoped = await anonymous.post("/oauth/device", data={"client_id": CLIENT_ID, "scope": "agent"})
    assert scoped.status_code == 400 and scoped.json()["error"] == "invalid_scope"


async def test_refresh_token_reuse_signs_the_device_out(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    tokens = await signed_in_device(live, anonymous)
    stolen = tokens["refresh_token"]
    assert (await refresh(anonymous, stolen)).status_code == 200  # the real client
    reused = await refresh(anonymous, stolen)  # the thief, later
    assert reused.json()["error"] == "invalid_grant"
    async with live.client(tokens["access_token"]) as device:
        assert (await device.get("/v1/me")).status_code == 401
    forged = tokens["refresh_token"].rsplit(".", 1)[0] + ".AAAA"
    assert (await refresh(anonymous, forged)).json()["error"] == "invalid_grant"


async def test_a_revoked_token_is_refused_at_once_on_another_replica(
    tmp_path: Path, postgres_url: str
) -> None:
    one, server_one, task_one = await start_live(tmp_path / "one", db_url=postgres_url)
    two, server_two, task_two = await start_live(tmp_path / "two", db_url=postgres_url)
    try:
        async with one.client(None) as anonymous:
            tokens = await signed_in_device(one, anonymous)
        async with two.client(tokens["access_token"]) as on_two:
            assert (await on_two.get("/v1/me")).status_code == 200  # warm: verified once
            async with one.client(tokens["access_token"]) as on_one:
                gone = await on_one.delete(f"/v1/devices/{tokens['device_id']}")
                assert gone.status_code == 200
            again = await on_two.get("/v1/me")
            assert again.status_code == 401 and "signed out" in again.json()["detail"]
        async with two.client(None) as anonymous:
            assert (await refresh(anonymous, tokens["refresh_token"])).status_code == 400
    finally:
        await stop_live(server_one, task_one)
        await stop_live(server_two, task_two)


# -- CSRF ---------------------------------------------------------------------------------------


async def test_the_confirm_form_needs_the_sessions_csrf_token(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    codes = await ask(anonymous)
    async with signed_in(live) as browser:
        for csrf in ("", "forged"):
            refused = await browser.post(
                "/device",
                data={"csrf": csrf, "user_code": codes["user_code"], "action": "approve"},
                headers=HTML,
            )
            assert refused.status_code == 403
        async with signed_in(live, "eve", "admin") as eve:
            # another session's token is not this session's
            other = form_csrf((await eve.get("/device", headers=HTML)).text)
        refused = await browser.post(
            "/device",
            data={"csrf": other, "user_code": codes["user_code"], "action": "approve"},
            headers=HTML,
        )
        assert refused.status_code == 403
    # without a session at all (a cross-site form cannot send the SameSite=Strict cookie)
    nobody = await anonymous.post(
        "/device", data={"user_code": codes["user_code"], "action": "approve"}, headers=HTML
    )
    assert nobody.status_code == 401
    assert (await poll(anonymous, codes["device_code"])).json()["error"] == "authorization_pending"
    approvals = [e for e in await live.service.store.audit_events() if e.type == "device.approved"]
    assert approvals == []


# -- bad input ----------------------------------------------------------------------------------


def _oauth_error(reply: httpx.Response, status: int, error: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == error and body["error_description"], body


@pytest.mark.parametrize(
    ("path", "data", "status", "error"),
    [
        ("/oauth/device", {}, 401, "invalid_client"),
        ("/oauth/device", {"client_id": "someone-else"}, 401, "invalid_client"),
        ("/oauth/device", {"client_id": CLIENT_ID, "scope": "admin"}, 400, "invalid_scope"),
        ("/oauth/token", {"client_id": CLIENT_ID}, 400, "invalid_request"),
        (
            "/oauth/token",
            {"grant_type": "password", "client_id": CLIENT_ID},
            400,
            "unsupported_grant_type",
        ),
        (
            "/oauth/token",
            {"grant_type": DEVICE_CODE_GRANT, "client_id": CLIENT_ID},
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            {"grant_type": DEVICE_CODE_GRANT, "client_id": CLIENT_ID, "device_code": "x" * 5000},
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            {"grant_type": DEVICE_CODE_GRANT, "client_id": CLIENT_ID, "device_code": "guess"},
            400,
            "invalid_grant",
        ),
        (
            "/oauth/token",
            {"grant_type": DEVICE_CODE_GRANT, "device_code": "guess"},
            401,
            "invalid_client",
        ),
        (
            "/oauth/token",
            {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": "a.b.c"},
            400,
            "invalid_grant",
        ),
        (
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "client_id": CLIENT_ID,
                "refresh_token": "dev_x.99999999999999.mac",
            },
            400,
            "invalid_grant",
        ),
        ("/oauth/revoke", {"client_id": CLIENT_ID}, 400, "invalid_request"),
    ],
)
async def test_bad_forms_get_oauth_errors(
    anonymous: httpx.AsyncClient, path: str, data: dict[str, str], status: int, error: str
) -> None:
    _oauth_error(await anonymous.post(path, data=data), status, error)


@pytest.mark.parametrize("path", ["/oauth/device", "/oauth/token", "/oauth/revoke"])
async def test_bodies_that_are_not_forms(anonymous: httpx.AsyncClient, path: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    _oauth_error(await anonymous.post(path, json={"client_id": CLIENT_ID}), 400, "invalid_request")
    _oauth_error(await anonymous.post(path, content=b"\xff\xfe=\x00", headers=form), 400,
                 "invalid_request")  # fmt: skip
    _oauth_error(await anonymous.post(path, content=b"a=%00", headers=form), 400,
                 "invalid_request")  # fmt: skip
    twice = b"client_id=signoff-cli&client_id=signoff-cli"
    _oauth_error(await anonymous.post(path, content=twice, headers=form), 400, "invalid_request")
    huge = b"device_name=" + b"x" * 20_000
    _oauth_error(await anonymous.post(path, content=huge, headers=form), 413, "invalid_request")
    many = b"&".join(b"f%d=1" % n for n in range(50))
    _oauth_error(await anonymous.post(path, content=many, headers=form), 400, "invalid_request")


async def test_bad_input_on_the_pages_and_the_devices_api(
    live: Live, anonymous: httpx.AsyncClient
) -> None:
    named = await anonymous.post(
        "/oauth/device", data={"client_id": CLIENT_ID, "device_name": "\x1b[31mevil\u202e" * 50}
    )
    assert named.status_code == 200
    async with signed_in(live) as browser:
        csrf = form_csrf((await browser.get("/device", headers=HTML)).text)
        for code in ("", "x" * 10_000, "\u0000", "AAAA-AAAA", "<script>"):
            page = await browser.post(
                "/device", data={"csrf": csrf, "user_code": code}, headers=HTML
            )
            assert page.status_code == 404 and "<script>" not in page.text
        odd = await browser.post("/device", data={"csrf": csrf, "action": "explode"}, headers=HTML)
        assert odd.status_code == 404
        revoke = await browser.post("/devices/nope/revoke", data={"csrf": csrf}, headers=HTML)
        assert revoke.status_code == 404
    async with live.client(live.approver_token()) as api:
        missing = await api.delete("/v1/devices/dev_nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    async with live.client(live.agent_token()) as agent:
        assert (await agent.get("/v1/devices")).status_code == 403
    assert (await anonymous.get("/v1/devices")).status_code == 401


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("login", "--url", "http://127.0.0.1:1", "--no-browser"),
        ("login", "--url", "localhost:8000", "--no-browser"),
        ("login", "--url", "ftp://x", "--no-browser"),
        ("logout", "--url", "http://127.0.0.1:1"),
        ("whoami", "--url", "http://127.0.0.1:1"),
        ("whoami", "--url", "localhost:8000", "--token", "t"),
        ("pending", "--url", "http://127.0.0.1:1"),
    ],
)
def test_login_commands_fail_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = {"SIGNOFF_TOKEN": "", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    one_line_failure(cli(*args, cwd=tmp_path, env=env))


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    stored = tmp_path / "config" / "signoff" / "credentials.json"
    stored.parent.mkdir(parents=True)
    stored.write_text("{}")
    stored.chmod(0o644)
    env = {"SIGNOFF_TOKEN": "", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    line = one_line_failure(cli("pending", "--url", "http://127.0.0.1:1", cwd=tmp_path, env=env))
    assert "can be read by others" in line
    stored.chmod(0o600)
    stored.write_text("not json")
    line = one_line_failure(cli("pending", "--url", "http://127.0.0.1:1", cwd=tmp_path, env=env))
    assert "log in again" in line


@pytest.mark.parametrize(
    "forged",
    [
        "//evil.example/steal",
        "https://evil.example/",
        "/\\evil.example",
        "/ok\tx",  # a control character (a browser cannot even send CR or LF)
        "javascript:alert(1)",
        "/" + "a" * 3000,
        "",
    ],
)
async def test_a_forged_page_to_return_to_goes_to_the_queue(live: Live, forged: str) -> None:
    """The page a sign-in returns to is a cookie the browser holds: one set by another site
    (or by hand) sends the new session only to this site's queue."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as browser:
        browser.cookies.set("signoff_next", forged)
        signed = await sign_in(browser, link(live))
    assert signed.status_code == 303 and signed.headers["location"] == "/"

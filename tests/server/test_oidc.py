"""Dashboard sign-in through an OpenID Connect provider (the authorization code flow with
PKCE), against a small provider of our own (tests/helpers/oidc_provider.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from signoff.config import parse_config
from signoff.errors import ConfigError
from signoff.server.oidc import FLOW_COOKIE
from signoff.server.session import SESSION_COOKIE
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, RunningProvider, start_provider
from tests.server.conftest import Live, start_live, stop_live
from tests.server.test_session import HTML


@pytest.fixture
async def idp() -> AsyncIterator[RunningProvider]:
    running = await start_provider()
    yield running
    await running.stop()


@pytest.fixture
async def sso(tmp_path: Path, idp: RunningProvider) -> AsyncIterator[Live]:
    config = parse_config(
        {
            "auth": {
                "oidc_discovery_url": idp.provider.discovery_url,
                "oidc_client_id": CLIENT_ID,
                "oidc_client_secret": CLIENT_SECRET,
            }
        }
    )
    info, server, task = await start_live(tmp_path, config)
    yield info
    await stop_live(server, task)


async def through_the_provider(client: httpx.AsyncClient) -> httpx.Response:
    """Start at the sign-in button and follow the redirects by hand, as a browser would."""
    start = await client.get("/login/oidc", headers=HTML)
    assert start.status_code == 303, start.text
    to_provider = start.headers["location"]
    assert to_provider.startswith("http://127.0.0.1:")
    back = await client.get(to_provider)
    assert back.status_code == 302
    return await client.get(back.headers["location"], headers=HTML)


async def test_signing_in_through_the_provider(sso: Live, idp: RunningProvider) -> None:
    async with httpx.AsyncClient(base_url=sso.url) as client:
        page = await client.get("/login", headers=HTML)
        assert 'href="/login/oidc"' in page.text
        done = await through_the_provider(client)
        assert done.status_code == 200, done.text
        assert '<meta http-equiv="refresh" content="0; url=/">' in done.text
        assert SESSION_COOKIE in client.cookies
        assert FLOW_COOKIE not in client.cookies  # spent
        me = (await client.get("/v1/me")).json()
    assert (me["sub"], me["role"], me["name"], me["auditor"]) == (
        "u-4711",
        "admin",
        "Olivia Ops",
        True,
    )
    assert idp.provider.token_requests == 1


async def test_single_sign_on_returns_to_the_page_that_asked_for_it(
    sso: Live, idp: RunningProvider
) -> None:
    async with httpx.AsyncClient(base_url=sso.url) as client:
        asked = await client.get("/devices", headers=HTML)
        assert asked.status_code == 303 and asked.headers["location"] == "/login"
        done = await through_the_provider(client)
        assert done.status_code == 200, done.text
        assert '<meta http-equiv="refresh" content="0; url=/devices">' in done.text
        assert '<a href="/devices">Continue</a>' in done.text
        assert "signoff_next" not in client.cookies  # remembered once
        assert (await client.get("/devices", headers=HTML)).status_code == 200


async def test_the_flow_cookie_is_lax_and_only_for_the_callback(sso: Live) -> None:
    async with httpx.AsyncClient(base_url=sso.url) as client:
        start = await client.get("/login/oidc")
    cookie = start.headers["set-cookie"]
    assert cookie.startswith(f"{FLOW_COOKIE}=")
    lowered = cookie.lower()
    assert "samesite=lax" in lowered and "httponly" in lowered and "path=/auth/callback" in lowered
    query = httpx.URL(start.headers["location"]).params
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == f"{sso.url}/auth/callback"


@pytest.mark.parametrize(
    ("mischief", "says"),
    [
        ("state", "state does not match"),
        ("nonce", "nonce does not match"),
        ("audience", "does not verify"),
        ("expired", "does not verify"),
        ("unknown-key", "unknown key"),
        ("forged", "Signature verification failed"),
        ("hs256", "not accepted"),
        ("deny", "refused the sign-in"),
    ],
)
async def test_a_sign_in_that_does_not_check_out_is_refused(
    sso: Live, idp: RunningProvider, mischief: str, says: str
) -> None:
    idp.provider.mischief = mischief
    async with httpx.AsyncClient(base_url=sso.url) as client:
        done = await through_the_provider(client)
        assert done.status_code == 401, done.text
        assert says in done.text
        assert "Traceback" not in done.text
        assert SESSION_COOKIE not in client.cookies
        assert (await client.get("/v1/me")).status_code == 401


async def test_a_callback_without_its_flow_cookie_is_refused(sso: Live) -> None:
    async with httpx.AsyncClient(base_url=sso.url) as client:
        r = await client.get("/auth/callback", params={"code": "c", "state": "s"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "start again" in r.json()["detail"]


async def test_an_account_without_a_role_is_told_so(sso: Live, idp: RunningProvider) -> None:
    idp.provider.user = {"sub": "u-1", "name": "Nobody"}
    async with httpx.AsyncClient(base_url=sso.url) as client:
        done = await through_the_provider(client)
    assert done.status_code == 403
    assert "no signoff role" in done.text and "Nobody" in done.text


async def test_an_unreachable_provider_is_a_clear_error(tmp_path: Path) -> None:
    config = parse_config(
        {"auth": {"oidc_discovery_url": "http://127.0.0.1:9/x", "oidc_client_id": "c"}}
    )
    info, server, task = await start_live(tmp_path, config)
    try:
        async with httpx.AsyncClient(base_url=info.url) as client:
            r = await client.get("/login/oidc", headers=HTML)
        assert r.status_code == 401
        assert "cannot be reached" in r.text
    finally:
        await stop_live(server, task)


def test_the_config_needs_a_client_id_and_the_openid_scope() -> None:
    with pytest.raises(ConfigError, match="oidc_client_id"):
        parse_config({"auth": {"oidc_discovery_url": "https://idp/x"}})
    with pytest.raises(ConfigError, match="openid"):
        parse_config(
            {
                "auth": {
                    "oidc_discovery_url": "https://i/x",
                    "oidc_client_id": "c",
                    "oidc_scopes": ["email"],
                }
            }
        )
    config = parse_config({"auth": {"oidc_discovery_url": "https://i/x", "oidc_client_id": "c"}})
    assert config.auth.oidc_enabled and config.auth.oidc_scopes == ("openid", "profile", "email")
    assert not parse_config({}).auth.oidc_enabled

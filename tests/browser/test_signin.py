"""Signing in and out in a real browser: login links and an OpenID Connect provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from signoff.config import parse_config
from tests.browser.conftest import Served, Tabs, serve
from tests.helpers.oidc_provider import CLIENT_ID, CLIENT_SECRET, start_provider

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_a_login_link_signs_in_once_and_sign_out_ends_it(tabs: Tabs, served: Served) -> None:
    link = served.link("dana", "publisher")
    scanner = await tabs.blank()  # a mail scanner opening the link first spends nothing
    await scanner.goto(link)
    await expect(scanner.get_by_role("button", name="Sign in")).to_be_visible()

    page = await tabs.blank()
    await page.goto(link)
    await expect(page.locator("main")).to_contain_text("signs you in as dana")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(served.live.url + "/")
    await expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    await expect(page.locator(".whoami")).to_contain_text("dana")
    await expect(page.locator(".whoami")).to_contain_text("publisher")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["signoff_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"

    await scanner.get_by_role("button", name="Sign in").click()  # the link is spent now
    await expect(scanner.locator("main")).to_contain_text("used already")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(served.live.url + "/login")
    await page.goto(served.live.url + "/stats")
    await page.wait_for_url(served.live.url + "/login")  # signed out: back to sign in


async def test_signing_in_with_an_identity_provider(tabs: Tabs, tmp_path: Path) -> None:
    idp = await start_provider(browser_host="idp.test")
    config = parse_config(
        {
            "auth": {
                "oidc_discovery_url": idp.provider.discovery_url,
                "oidc_client_id": CLIENT_ID,
                "oidc_client_secret": CLIENT_SECRET,
                "role_claim": "role",
            }
        }
    )
    sso = await serve(tmp_path / "sso", config)
    try:
        page = await tabs.blank()
        await page.goto(sso.live.url + "/")
        await page.wait_for_url(sso.live.url + "/login")
        await page.get_by_role("link", name="Sign in with your identity provider").click()
        # to idp.test (another site) and back: the session cookie must survive that
        await page.wait_for_url(sso.live.url + "/")
        await expect(page.locator(".whoami")).to_contain_text("Olivia Ops")
        await expect(page.locator(".whoami")).to_contain_text("admin")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        assert idp.provider.token_requests == 1
    finally:
        await sso.stop()
        await idp.stop()

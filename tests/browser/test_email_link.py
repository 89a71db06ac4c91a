"""The email channel's link in a real browser: opening it shows the request and decides
nothing (a scanner's visit changes nothing); a button on the page decides, once. The page
runs no script and breaks no Content-Security-Policy rule (the tabs fixture fails the test
on any violation)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from signoff.models import Status
from tests.browser.conftest import Tabs
from tests.channels.conftest import rigged
from tests.channels.mail import BOB, email_channel, link_in, smtp_server

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_the_link_shows_on_open_and_decides_on_a_button(tabs: Tabs) -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            edited, rejected = await rig.submit(), await rig.submit()
            for request in (edited, rejected):
                await channel.send(rig.notice(request, channel))
            first, second = (link_in(m) for m in inbox.to(BOB))

            scanner = await tabs.blank()  # a mail scanner's headless browser opens it first
            await scanner.goto(first)
            await expect(scanner.get_by_role("button", name="Approve", exact=True)).to_be_visible()
            assert (await rig.get(edited.id)).status is Status.PENDING

            page = await tabs.blank()
            await page.goto(first)
            main = page.locator("main")
            await expect(main).to_contain_text("Refund $250 for ORD-1")
            await expect(main).to_contain_text("photos are on the ticket")
            await page.get_by_label("amount").fill("40")
            await page.get_by_role("button", name="Approve with changes").click()
            await expect(page.get_by_role("heading", name="Approved")).to_be_visible()
            done = await rig.get(edited.id)
            assert done.status is Status.APPROVED and done.final_args["amount"] == 40

            await scanner.goto(first)  # the scanner again: it says who decided
            await expect(scanner.locator("main")).to_contain_text("already approved by bob")

            await page.goto(second)
            await page.get_by_label("Why not?").fill("The parcel was not damaged")
            await page.get_by_role("button", name="Reject").click()
            await expect(page.get_by_role("heading", name="Rejected")).to_be_visible()
            no = await rig.get(rejected.id)
            assert no.status is Status.REJECTED
            assert no.decisions[0].reason == "The parcel was not damaged"

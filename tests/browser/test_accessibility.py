"""Accessibility checks on every page, in the browser: labels, names, contrast, focus, one
heading, and a layout that fits a narrow phone screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, Agent, OpenPage, Served, Tabs, request_id_of

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

#: runs in the page; returns a list of problems (empty: fine)
AUDIT = (Path(__file__).parent / "audit.js").read_text()


async def audit(page: Page) -> None:
    problems = await page.evaluate(AUDIT)
    assert problems == [], f"{page.url}: {problems}"


async def focus_is_visible_all_the_way(page: Page, stops: int = 15) -> None:
    for _ in range(stops):
        await page.keyboard.press("Tab")
        style = await page.evaluate(
            """() => { const el = document.activeElement; const s = getComputedStyle(el);
                 return [el.tagName, s.outlineStyle, s.outlineWidth]; }"""
        )
        if style[0] == "BODY":
            break
        assert style[1] != "none" and style[2] != "0px", style


async def every_page(page: Page, served: Served, request_id: str) -> list[str]:
    """Visit each page; audit it once it has its content."""
    base = served.live.url
    visited = []
    for path, ready in [
        ("/", "li.card"),
        (f"/requests/{request_id}", "#decide"),
        ("/history", "#audit-status p"),
        ("/stats", "#stats-view .tiles"),
        ("/deliveries", "#deliveries-empty:not([hidden])"),
    ]:
        await page.goto(base + path)
        await page.locator(ready).first.wait_for()
        await audit(page)
        visited.append(path)
    return visited


async def test_every_page_is_labelled_named_and_readable(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("ada", "admin")
    agent.call("issue_refund", {"order_id": "ORD-31", "amount": 150}, "a11y")
    request_id = await request_id_of(page, "a11y", "issue_refund")
    visited = await every_page(page, served, request_id)
    assert len(visited) == 5
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await page.get_by_role("button", name="Approve with changes…").click()
    await page.get_by_label("amount").fill("")
    await page.get_by_role("button", name="Review changes").click()
    await audit(page)  # the edit form with an error showing
    await page.goto(served.live.url + "/")
    await focus_is_visible_all_the_way(page)


async def test_the_sign_in_pages_are_accessible(tabs: Tabs, served: Served) -> None:
    page = await tabs.blank()
    await page.goto(served.link("ada", "admin"))
    await audit(page)
    await page.goto(served.live.url + "/login")
    await audit(page)


async def test_every_page_fits_a_phone(open_page: OpenPage, agent: Agent, served: Served) -> None:
    page = await open_page("ada", "admin", viewport=PHONE)
    agent.call("issue_refund", {"order_id": "ORD-32", "amount": 150}, "a11y-phone")
    request_id = await request_id_of(page, "a11y-phone", "issue_refund")
    for path in ("/", f"/requests/{request_id}", "/history", "/stats"):
        await page.goto(served.live.url + path)
        await page.locator("main h1").wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    await page.goto(f"{served.live.url}/requests/{request_id}")
    decide = page.locator("#decide")
    await expect(decide).to_be_visible()
    box = await decide.bounding_box()
    assert box is not None and box["y"] < 600  # deciding comes before the details on a phone

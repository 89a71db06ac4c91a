"""Policy replay on the dashboard: the highest role pastes a candidate policy file and sees
what it would have done with the calls already made (the same report as the CLI's); below
the highest role the page says what is needed; a bad file is its clear message."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage, Served
from tests.browser.test_accessibility import audit

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

CANDIDATE = """[[tools]]
name = "replay_probe"
when = "args.amount > 100"
deny = "args.amount > 1000"
min_role = "admin"
"""


async def _history(served: Served) -> dict[int, str]:
    """Three calls of a tool no other test uses, each with a known fate."""
    ids: dict[int, str] = {}
    async with (
        served.live.client(served.live.agent_token()) as agent,
        served.live.client(served.live.approver_token("paul", "publisher")) as paul,
    ):
        for amount in (5, 500, 5000):
            body = {
                "tool": "replay_probe",
                "args": {"amount": amount},
                "tool_call_id": f"rp{amount}",
            }
            answer = await agent.post("/v1/requests", json=body)
            assert answer.status_code in (200, 201), answer.text
            ids[amount] = answer.json()["id"]
        for amount, decision in (
            (5, {"decision": "reject", "reason": "no"}),
            (500, {"decision": "approve"}),
        ):
            done = await paul.post(f"/v1/requests/{ids[amount]}/decisions", json=decision)
            assert done.status_code == 200, done.text
    return ids


async def test_the_highest_role_replays_a_candidate_policy(
    open_page: OpenPage, served: Served
) -> None:
    ids = await _history(served)
    page = await open_page("ada", "admin")
    await page.get_by_role("link", name="Replay", exact=True).click()
    await page.wait_for_url(served.live.url + "/replay")

    await page.get_by_label("Candidate policy file (TOML)").fill("x = [")
    await page.get_by_role("button", name="Replay", exact=True).click()
    await expect(page.locator("#replay-error")).to_contain_text("invalid TOML")

    await page.get_by_label("Candidate policy file (TOML)").fill(CANDIDATE)
    await page.get_by_label("Calls made in").select_option("")
    await page.get_by_role("button", name="Replay", exact=True).click()
    await expect(page.locator("#replay-error")).to_be_hidden()
    await expect(page.locator("[data-role=replay-total]")).to_contain_text("over the whole history")
    # by hand: 5 would run (a human rejected it: the loud change), 500 would ask an admin
    # (a publisher approved it), 5000 would be denied (it is still pending)
    row = page.locator("#replay-report tr", has=page.locator("th", has_text="replay_probe"))
    await expect(row.locator("td")).to_have_text(
        ["1", "1", "1", "0", "rejected 1, approved 1, pending 1"]
    )
    await expect(page.locator("li[data-change=run_rejected]")).to_contain_text(
        "but a human rejected it"
    )
    await expect(page.locator("li[data-change=deny]")).to_contain_text("would now be denied")
    await expect(page.locator(f'#replay-report a[href="/requests/{ids[5000]}"]')).to_be_visible()
    await expect(page.locator(f'#replay-report a[href="/requests/{ids[5]}"]')).to_be_visible()
    await audit(page)


async def test_below_the_highest_role_the_replay_page_says_what_is_needed(
    open_page: OpenPage, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    await page.goto(served.live.url + "/replay")
    await expect(page.locator("[data-role=needs-role]")).to_contain_text(
        "needs the highest role (admin)"
    )
    await expect(page.locator("#replay-form")).to_be_hidden()

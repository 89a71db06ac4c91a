"""The screenshots in README.md and docs/dashboard.md, taken from a seeded server.

A week of decisions is written "in the past" (the server's clock is shifted while they are
made), then a few requests wait in the queue, as they would on a busy afternoon.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from signoff.models import Principal, RequestSpec, Run
from tests.browser.conftest import PHONE, SCREENSHOTS, OpenPage, Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

AGENT = Principal(sub="support-bot", kind="agent")
APPROVERS = [
    Principal(sub="paul", role="publisher"),
    Principal(sub="ada", role="admin"),
    Principal(sub="sam", role="publisher"),
]
REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "The order to refund."},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000},
        "notify_customer": {"type": "boolean"},
    },
    "required": ["order_id", "amount"],
}


def spec(tool: str, args: dict[str, Any], reason: str, **extra: Any) -> RequestSpec:
    data: dict[str, Any] = {
        "tool": tool,
        "args": args,
        "run": Run(agent_id=extra.pop("agent", "support"), run_id=extra.pop("run", None)),
        "reason": reason,
        "policy": {"min_role": "publisher", "timeout_s": 1800, "editable": []},
    }
    data.update(extra)
    return RequestSpec.model_validate(data)


async def seed_history(served: Served) -> None:
    """A week of decisions: ``sam`` gets faster and approves everything (fatigue)."""
    service = served.live.service
    rng = random.Random(7)
    tools = [
        ("issue_refund", "Refund ${amount} for {order}", 0.8),
        ("publish_post", "Publish “{title}”", 0.9),
        ("delete_account", "Delete account {user}", 0.5),
    ]
    for day in range(7, 0, -1):
        for n in range(rng.randint(4, 8)):
            tool, template, approve_rate = rng.choice(tools)
            served.clock.offset = -day * 86400 + n * 1800
            text = template.format(
                amount=rng.choice([120, 250, 480]),
                order=f"ORD-{rng.randint(100, 999)}",
                title="Spring sale",
                user=f"u{rng.randint(10, 99)}",
            )
            created = await service.submit(
                spec(tool, {"n": n}, text, policy={"min_role": "publisher", "timeout_s": 3600}),
                AGENT,
            )
            approver = rng.choice(APPROVERS)
            fatigued = approver.sub == "sam"
            served.clock.offset += rng.uniform(2, 6) if fatigued else rng.uniform(20, 600)
            approve = fatigued or rng.random() < approve_rate
            await service.decide(
                created.request.id,
                approver,
                "approve" if approve else "reject",
                reason=None if approve else "Not without a ticket",
                via="dashboard",
            )
    served.clock.offset = 0


async def seed_queue(served: Served) -> str:
    service = served.live.service
    refund = await service.submit(
        spec(
            "issue_refund",
            {"order_id": "ORD-1042", "amount": 480, "notify_customer": True},
            "Refund $480 for ORD-1042",
            risk="high",
            agent="support",
            run="run-88",
            tool_call_id="toolu_01A9",
            context={
                "why": "The parcel arrived damaged; the customer sent photos.",
                "affected": "Order ORD-1042, charged to the customer's card",
                "reversible": False,
                "alternatives": ["Store credit", "Send a replacement"],
            },
            policy={"min_role": "publisher", "timeout_s": 900, "editable": ["amount"]},
            args_schema=REFUND_SCHEMA,
        ),
        AGENT,
    )
    await service.submit(
        spec(
            "delete_account",
            {"user_id": "u_5521", "hard_delete": True},
            "Delete the account of u_5521 (GDPR request)",
            risk="critical",
            agent="privacy",
            policy={"min_role": "admin", "timeout_s": 3600},
        ),
        AGENT,
    )
    await service.submit(
        spec(
            "publish_post",
            {"title": "Spring sale", "channel": "blog"},
            "Publish “Spring sale” to the blog",
            risk="medium",
            agent="marketing",
            policy={"min_role": "editor", "timeout_s": 600},
        ),
        AGENT,
    )
    await service.submit(
        spec(
            "send_email",
            {"to": "all-customers", "template": "price-change"},
            "Email every customer about the price change",
            risk="high",
            agent="marketing",
            policy={"min_role": "publisher", "timeout_s": 300, "quorum": 2},
        ),
        AGENT,
    )
    return refund.request.id


#: a candidate for the replay screenshot: let the small refunds through, ask an admin
#: about account deletions, and deny posts outright
REPLAY_CANDIDATE = """[[tools]]
name = "issue_refund"
when = "args.n > 3"
min_role = "publisher"

[[tools]]
name = "delete_account"
min_role = "admin"

[[tools]]
name = "publish_post"
deny = "true"
"""


async def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    await page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000
    return path


async def test_screenshots_of_the_queue_a_request_and_the_stats(
    open_page: OpenPage, tmp_path: Path
) -> None:
    seeded = await serve(tmp_path / "seeded")
    try:
        await seed_history(seeded)
        refund_id = await seed_queue(seeded)

        page = await open_page("paul", "publisher", target=seeded)
        await expect(page.locator("li.card")).to_have_count(4)
        await shoot(page, "queue.png")

        await page.goto(f"{seeded.live.url}/requests/{refund_id}")
        await page.get_by_role("button", name="Approve with changes…").click()
        await page.get_by_label("amount").fill("300")
        await page.get_by_role("button", name="Review changes").click()
        await expect(page.locator("table.diff")).to_contain_text("300")
        await shoot(page, "request.png")

        await page.goto(f"{seeded.live.url}/stats")
        await expect(page.locator("[data-role=approvers]")).to_contain_text("sam")
        await shoot(page, "stats.png")

        auditor = await open_page("ada", "admin", target=seeded)
        await auditor.goto(f"{seeded.live.url}/history")
        await expect(auditor.locator('[data-role="audit-ok"]')).to_be_visible()
        await expect(auditor.locator("#history li.card").first).to_be_visible()
        await shoot(auditor, "history.png", full_page=False)  # a week of it: the top

        await auditor.goto(f"{seeded.live.url}/replay")
        await auditor.get_by_label("Candidate policy file (TOML)").fill(REPLAY_CANDIDATE)
        await auditor.get_by_label("Calls made in").select_option("30d")
        await auditor.get_by_role("button", name="Replay", exact=True).click()
        await expect(auditor.locator("[data-role=replay-changed] li").first).to_be_visible()
        await shoot(auditor, "replay.png")

        phone = await open_page("paul", "publisher", target=seeded, viewport=PHONE)
        await expect(phone.locator("li.card")).to_have_count(4)
        await shoot(phone, "queue-phone.png")
        await phone.goto(f"{seeded.live.url}/requests/{refund_id}")
        await expect(phone.locator("#decide")).to_be_visible()
        await shoot(phone, "request-phone.png")
    finally:
        await seeded.stop()

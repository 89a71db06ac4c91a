"""The outbox on the dashboard: the Deliveries page (the highest role's, with filters and a
Retry button), and the escalation steps that fired, on the request page and the queue card,
arriving live. A real server with two webhook channels: one on a port where nothing
listens (its deliveries fail) and one on a real receiver on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from signoff.config import parse_config
from signoff.delivery import ChannelRuntime, build_channels
from signoff.service import ApprovalService
from tests.browser.conftest import OpenPage, Served, serve
from tests.browser.test_accessibility import audit
from tests.delivery.world import FAST
from tests.helpers.channels import Receiver, free_port, whsec
from tests.helpers.channels import serve as serve_receiver

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver(free_port(), []) as got:
        yield got


#: when the escalation step fires after a request is made
ESCALATE_AFTER_S = 6


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def outboxed(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> AsyncIterator[Served]:
    config = parse_config(
        {
            "channels": {
                "dead-hook": {
                    "type": "webhook",
                    "url": f"http://127.0.0.1:{free_port()}/hook",  # nothing listens
                    "secret": whsec(),
                    "timeout_s": 1.0,
                },
                "pager": {"type": "webhook", "url": receiver.url, "secret": whsec()},
            },
            "routes": [
                {
                    "when": "tool == 'issue_refund'",
                    "notify": ["dead-hook"],
                    # long enough for two pages to open first on a slow machine
                    "escalate": [{"after": f"{ESCALATE_AFTER_S}s", "notify": ["pager"]}],
                }
            ],
        },
        environ={},
    )

    def runtime(service: ApprovalService) -> ChannelRuntime:
        # two quick attempts: a dead channel's deliveries are failed within a second
        return ChannelRuntime(
            service, build_channels(config), options=replace(FAST, max_attempts=2)
        )

    running = await serve(tmp_path_factory.mktemp("outboxed"), config, channels=runtime)
    yield running
    await running.stop()


async def _request(served: Served, order: str) -> str:
    async with served.live.client(served.live.agent_token()) as agent:
        body = {"tool": "issue_refund", "args": {"order_id": order, "amount": 90}}
        answer = await agent.post("/v1/requests", json=body)
        assert answer.status_code in (200, 201), answer.text
        request_id: str = answer.json()["id"]
        return request_id


async def _deliveries(served: Served, **params: Any) -> list[dict[str, Any]]:
    async with served.live.client(served.live.approver_token("ada", "admin")) as admin:
        items: list[dict[str, Any]] = (await admin.get("/v1/deliveries", params=params)).json()[
            "items"
        ]
        return items


async def test_the_highest_role_sees_deliveries_filters_them_and_retries_a_failed_one(
    open_page: OpenPage, outboxed: Served
) -> None:
    request_id = await _request(outboxed, "ORD-D1")
    page = await open_page("ada", "admin", target=outboxed)
    await page.get_by_role("link", name="Deliveries").click()
    await page.wait_for_url(outboxed.live.url + "/deliveries")
    await page.get_by_label("Request id").fill(request_id)
    await page.get_by_label("Status").select_option("failed")
    failed = page.locator("#deliveries li[data-status=failed]")
    for _ in range(50):  # the page has no live stream of deliveries: refresh until it failed
        if await failed.count():
            break
        await page.get_by_role("button", name="Refresh").click()
        await page.wait_for_timeout(200)
    await expect(failed).to_have_count(1)
    await expect(failed.locator("[data-role=attempts]")).to_have_text("2")
    await expect(failed.locator("[data-role=last-error]")).to_contain_text("Last error")
    await expect(failed).to_contain_text("dead-hook")
    await audit(page)

    await failed.get_by_role("button", name="Retry").click()
    retried = page.locator("#deliveries li").first
    await expect(retried).not_to_have_attribute("data-status", "failed")
    await expect(retried.get_by_role("button", name="Retry")).to_have_count(0)
    # the server did retry it: a fresh round of attempts, which fails again in its time
    after = await _deliveries(outboxed, request_id=request_id, channel="dead-hook")
    assert after[0]["status"] == "pending" or after[0]["attempts"] >= 1

    # a filter the API refuses is shown as its clear message, not a broken page
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Channel").fill("x" * 201)
    await expect(page.locator("#deliveries-error")).to_contain_text("channel must be 1 to 200")


async def test_below_the_highest_role_the_page_says_what_is_needed(
    open_page: OpenPage, outboxed: Served
) -> None:
    page = await open_page("paul", "publisher", target=outboxed)
    await page.goto(outboxed.live.url + "/deliveries")
    message = page.locator("[data-role=needs-role]")
    await expect(message).to_contain_text("need the highest role (admin)")
    await expect(page.locator("#delivery-filters")).to_be_hidden()
    await audit(page)


async def test_escalations_arrive_live_on_the_request_page_and_the_queue_card(
    open_page: OpenPage, outboxed: Served, receiver: Receiver
) -> None:
    queue = await open_page("paul", "publisher", target=outboxed)
    request_id = await _request(outboxed, "ORD-E1")
    detail = await open_page("paul", "publisher", target=outboxed)
    await detail.goto(f"{outboxed.live.url}/requests/{request_id}")
    await detail.locator("#decide").wait_for()
    panel = detail.locator("#escalations-panel")
    await expect(panel).to_be_hidden()  # nothing fired yet: the step is not due yet

    # neither page is reloaded: the escalation comes over the live stream
    await expect(panel).to_be_visible(timeout=(ESCALATE_AFTER_S + 10) * 1000)
    await expect(panel.locator("li[data-step='1']")).to_contain_text("notified pager")
    await audit(detail)

    card = queue.locator(f'li.card[data-id="{request_id}"]')
    await expect(card.locator("[data-role=escalations]")).to_contain_text("Step 1 fired")
    await expect(card.locator("[data-role=escalations]")).to_contain_text("pager")
    await audit(queue)
    # and the escalated channel was told, through the outbox
    got = await receiver.wait_for(1)
    assert any(request_id.encode() in r.body for r in got)

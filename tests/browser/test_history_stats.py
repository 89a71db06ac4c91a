"""History, the audit chain and stats in a real browser."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Agent, OpenPage, Served, request_id_of

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def test_history_shows_who_decided_how_what_changed_and_what_ran(
    open_page: OpenPage, agent: Agent, served: Served, tmp_path: Path
) -> None:
    page = await open_page("ada", "admin")
    call = agent.call("issue_refund", {"order_id": "ORD-21", "amount": 250}, "history")
    request_id = await request_id_of(page, "history", "issue_refund")
    async with served.live.client(served.live.approver_token("paul", "publisher")) as paul:
        r = await paul.post(
            f"/v1/requests/{request_id}/decisions",
            json={"decision": "approve", "modified_args": {"amount": 99}, "reason": "half"},
        )
        assert r.status_code == 200
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "executed"

    await page.goto(served.live.url + "/history")
    entry = page.locator(f'li.card[data-id="{request_id}"]')
    await expect(entry).to_contain_text("Approved by paul (publisher) via api")
    await expect(entry).to_contain_text("“half”")
    await expect(entry).to_contain_text("Changed: amount 250 → 99")
    await expect(entry.locator('[data-role="outcome"]')).to_contain_text("succeeded")

    audit = page.locator("#audit-status")
    await expect(audit.locator('[data-role="audit-ok"]')).to_contain_text("intact")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export the audit log").click()
    download = await download_info.value
    assert download.suggested_filename.startswith("signoff-audit-")
    saved = tmp_path / "audit.jsonl"
    await download.save_as(saved)
    events = [json.loads(line) for line in saved.read_text().splitlines()]
    assert any(e["request_id"] == request_id and e["type"] == "request.approved" for e in events)
    # the sealed events first, numbered without a gap; the newest may not be sealed yet
    sealed = [e["seq"] for e in events if e["seq"] is not None]
    assert sealed == list(range(1, len(sealed) + 1))
    assert all(e["seq"] is None for e in events[len(sealed) :])


async def test_the_audit_log_is_for_the_highest_role(open_page: OpenPage, served: Served) -> None:
    page = await open_page("paul", "publisher")
    await page.goto(served.live.url + "/history")
    await expect(page.locator("#audit-status")).to_contain_text("needs the highest role (admin)")
    await expect(page.get_by_role("link", name="Export the audit log")).to_have_count(0)


async def test_stats_show_what_the_api_counts(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("publish_post", {"title": "Stats"}, "stats")
    request_id = await request_id_of(page, "stats", "publish_post")
    async with served.live.client(served.live.approver_token("sam", "editor")) as sam:
        await sam.post(f"/v1/requests/{request_id}/decisions", json={"decision": "approve"})
        await asyncio.wait_for(call, 10)
        day = (await sam.get("/v1/stats", params={"since": "24h"})).json()
        month = (await sam.get("/v1/stats", params={"since": "30d"})).json()

    await page.goto(served.live.url + "/stats?since=24h")
    await expect(page.get_by_label("Period")).to_have_value("24h")
    decisions = page.locator('[data-role="decisions"] .value')
    await expect(decisions).to_have_text(str(day["overall"]["decisions"]))
    tools = page.locator('[data-role="tools"]')
    approvers = page.locator('[data-role="approvers"]')
    for tool in day["tools"]:
        await expect(tools.locator("table")).to_contain_text(tool["tool"])
    await expect(approvers.locator("table")).to_contain_text("sam")
    chart = tools.locator(".bars[role=img]").first
    label = await chart.get_attribute("aria-label") or ""
    assert label.startswith("Time to decision per tool.")
    assert all(t["tool"] in label for t in day["tools"])

    await page.get_by_label("Period").select_option("30d")
    await page.wait_for_url("**/stats?since=30d")
    await expect(decisions).to_have_text(str(month["overall"]["decisions"]))

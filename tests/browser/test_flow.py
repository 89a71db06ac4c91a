"""The approver's main path in a real browser: a gated call arrives live, a person decides
it from the dashboard, and the agent's call resumes with exactly that decision."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from playwright.async_api import Page, Route, expect

from tests.browser.conftest import PHONE, Agent, OpenPage, Served, card_for, request_id_of

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def forced_post(page: Page, path: str, body: object) -> int:
    """A decision POSTed by hand from the signed-in page (cookie and CSRF token included),
    as a user who edited the page or called the API from the console would."""
    status = await page.evaluate(
        """async ([path, body]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
                headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}});
            return r.status;
        }""",
        [path, body],
    )
    return int(status)


async def test_a_gated_call_arrives_live_and_approving_runs_the_tool(
    open_page: OpenPage, agent: Agent
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-11", "amount": 250}, "live-approve")
    card = await card_for(page, "live-approve", "issue_refund")  # no reload: it arrived by SSE
    await expect(card).to_contain_text("Refund $250.0 for ORD-11")
    await expect(card).to_contain_text("high")
    await expect(card).to_contain_text("support")
    await expect(card.locator("time.countdown")).to_contain_text("left")
    await card.get_by_role("button", name="Approve").click()
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "executed"
    assert agent.executed["issue_refund"][-1] == {"order_id": "ORD-11", "amount": 250.0}
    assert json.loads(outcome.to_model()) == {"refund_id": "rf_ord-11", "amount": 250.0}
    await expect(card).to_have_attribute("data-status", "approved")
    assert outcome.request is not None and outcome.request.decisions[0].via == "dashboard"


async def test_reject_with_a_reason_tells_the_model_that_reason(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-12", "amount": 900}, "reject")
    request_id = await request_id_of(page, "reject", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await expect(page.get_by_role("heading", name="issue_refund")).to_be_visible()
    await expect(page.locator("#request-view")).to_contain_text("No — this cannot be undone")
    await expect(page.locator("#request-view")).to_contain_text("Store credit")
    reject = page.get_by_role("button", name="Reject", exact=True)
    await reject.click()  # without a reason: refused in the page, nothing sent
    await expect(page.locator("#reject-error")).to_contain_text("Give a reason")
    assert not call.done()
    await page.get_by_label("Reason for rejecting").fill("Refunds over $500 need a manager")
    await reject.click()
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "rejected"
    told = json.loads(outcome.to_model())
    assert told["error"] == "approval_rejected"
    assert "Refunds over $500 need a manager" in told["message"]
    assert "issue_refund" not in agent.executed or all(
        args["order_id"] != "ORD-12" for args in agent.executed["issue_refund"]
    )
    await expect(page.locator(".req-head")).to_contain_text("rejected")


async def test_approve_with_changes_runs_the_tool_with_the_new_value(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-13", "amount": 250}, "edit")
    request_id = await request_id_of(page, "edit", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await page.get_by_role("button", name="Approve with changes…").click()
    amount = page.get_by_label("amount")
    await amount.fill("")  # checked in the page against the tool's schema: a number
    await page.get_by_role("button", name="Review changes").click()
    await expect(page.locator("#edit-amount-error")).to_have_text("amount needs a number")
    await expect(amount).to_have_attribute("aria-invalid", "true")
    await amount.fill("100")
    await page.get_by_role("button", name="Review changes").click()
    diff = page.locator("table.diff")
    await expect(diff).to_contain_text("amount")
    await expect(diff.locator(".before")).to_have_text("250")
    await expect(diff.locator(".after")).to_have_text("100")
    assert not call.done()  # nothing is sent before the person confirms the diff
    await page.get_by_role("button", name="Confirm: approve with these changes").click()
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "executed"
    assert agent.executed["issue_refund"][-1] == {"order_id": "ORD-13", "amount": 100.0}
    assert outcome.modified_fields == {"amount": (250, 100)}
    await expect(page.locator("#request-view")).to_contain_text("An approver changed these")


async def test_a_field_the_policy_does_not_make_editable_cannot_be_changed(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-14", "amount": 250}, "not-editable")
    request_id = await request_id_of(page, "not-editable", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await page.get_by_role("button", name="Approve with changes…").click()
    order = page.get_by_label("order_id")
    await expect(order).to_be_disabled()
    await expect(page.get_by_label("amount")).to_be_enabled()
    await expect(page.locator("#edit-form")).to_contain_text("Not editable")
    # around the form: the server refuses the edit, and the request stays pending
    path = f"/v1/requests/{request_id}/decisions"
    edit = {"decision": "approve", "modified_args": {"order_id": "ORD-666"}}
    assert await forced_post(page, path, edit) == 422
    assert not call.done()
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Approve", exact=True).click()
    outcome = await asyncio.wait_for(call, 10)
    assert agent.executed["issue_refund"][-1] == {"order_id": "ORD-14", "amount": 250.0}
    assert outcome.status.value == "executed"


async def test_a_role_too_low_sees_disabled_buttons_and_a_forced_post_gets_403(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("erin", "editor")
    call = agent.call("issue_refund", {"order_id": "ORD-15", "amount": 250}, "too-low")
    card = await card_for(page, "too-low", "issue_refund")
    await expect(card.get_by_role("button", name="Approve")).to_be_disabled()
    await expect(card.get_by_role("button", name="Reject")).to_be_disabled()
    await expect(card.locator("input.select")).to_be_disabled()
    await expect(card).to_contain_text("Needs the role publisher or higher; you are editor")
    request_id = await card.get_attribute("data-id")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    await expect(page.get_by_role("button", name="Reject", exact=True)).to_be_disabled()
    await expect(page.get_by_role("button", name="Approve with changes…")).to_be_disabled()
    path = f"/v1/requests/{request_id}/decisions"
    assert await forced_post(page, path, {"decision": "approve"}) == 403
    assert await forced_post(page, path, {"decision": "reject", "reason": "no"}) == 403
    assert not call.done()  # still waiting for someone qualified
    request = await served.live.service.store.get(str(request_id))
    assert request is not None and request.status.value == "pending"
    call.cancel()


async def test_batch_approve_shows_each_request_result(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    await page.get_by_label("Tool").fill("publish_post")
    await page.wait_for_url("**/?tool=publish_post")
    calls = [agent.call("publish_post", {"title": f"Post {n}"}, f"batch-{n}") for n in range(4)]
    cards = [await card_for(page, f"batch-{n}", "publish_post") for n in range(4)]
    for card in cards:
        await card.locator("input.select").check()
    await expect(page.locator("#selected-count")).to_have_text("4 selected")
    ids = [str(await card.get_attribute("data-id")) for card in cards]
    other = served.live.client(served.live.approver_token("petra", "publisher"))

    # decided elsewhere before the click: the live update takes it out of the selection
    r = await other.post(f"/v1/requests/{ids[3]}/decisions", json={"decision": "approve"})
    assert r.status_code == 200
    await expect(page.locator("#selected-count")).to_have_text("3 selected")

    # decided elsewhere while the batch is on its way: the batch reports it as failed
    async def race(route: Route) -> None:
        r = await other.post(
            f"/v1/requests/{ids[2]}/decisions", json={"decision": "reject", "reason": "dup"}
        )
        assert r.status_code == 200
        await route.continue_()

    await page.route("**/v1/decisions", race)
    try:
        await page.get_by_role("button", name="Approve selected").click()
        results = page.locator("#batch-results")
        await expect(results).to_contain_text("2 of 3 approved")
    finally:
        await other.aclose()
    await expect(results.locator('li[data-status="200"]')).to_have_count(2)
    failed = results.locator(f'li[data-id="{ids[2]}"]')
    await expect(failed).to_have_attribute("data-status", "409")
    await expect(failed).to_contain_text("no longer pending")
    outcomes = await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert [o.status.value for o in outcomes] == ["executed", "executed", "rejected", "executed"]
    await expect(cards[0]).to_have_attribute("data-status", "approved")
    await expect(cards[2]).to_have_attribute("data-status", "rejected")


async def test_a_request_that_arrives_while_the_queue_reloads_stays_on_it(
    open_page: OpenPage, agent: Agent
) -> None:
    page = await open_page("paul", "publisher")
    fetched, release = asyncio.Event(), asyncio.Event()

    async def hold_the_page(route: Route) -> None:
        answer = await route.fetch()  # the queue as it is before the call below
        fetched.set()
        await release.wait()
        await route.fulfill(response=answer)

    await page.route("**/v1/requests?*", hold_the_page, times=1)
    await page.get_by_label("Tool").fill("publish_post")  # reloads the queue, filtered
    await asyncio.wait_for(fetched.wait(), 10)
    call = agent.call("publish_post", {"title": "Crossing"}, "crossing")
    card = await card_for(page, "crossing", "publish_post")  # drawn from its live event
    release.set()  # now the older page arrives and replaces the list
    await expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
    await expect(card).to_be_visible()
    await expect(card).to_have_attribute("data-status", "pending")
    call.cancel()


async def test_a_request_made_before_the_live_stream_opens_still_shows(
    open_page: OpenPage, agent: Agent
) -> None:
    page = await open_page("paul", "publisher")
    release = asyncio.Event()

    async def hold_the_stream(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/v1/events*", hold_the_stream)
    await page.reload()  # the queue is read, but the stream waits
    await expect(page.locator("#queue")).to_have_attribute("aria-busy", "false")
    await expect(page.locator("#live-status")).not_to_have_attribute("data-state", "live")
    call = agent.call("publish_post", {"title": "Early"}, "before-stream")
    request_id = await request_id_of(page, "before-stream", "publish_post")
    release.set()  # the stream opens after the request's event has passed
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await expect(page.locator(f'li.card[data-id="{request_id}"]')).to_be_visible()
    call.cancel()


async def test_the_countdown_reaching_zero_shows_the_request_expired(
    open_page: OpenPage, agent: Agent
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("rotate_key", {"service": "billing"}, "expiry")  # timeout 3 s
    card = await card_for(page, "expiry", "rotate_key")
    countdown = card.locator("time.countdown")
    await expect(countdown).to_contain_text("0:0")
    await expect(countdown).to_have_class("countdown soon")
    await expect(card).to_have_attribute("data-status", "expired", timeout=6_000)
    await expect(card.get_by_role("button", name="Approve")).to_be_disabled()
    await expect(card.locator('[data-role="status-badge"]')).to_have_text("expired")
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "timeout"
    assert json.loads(outcome.to_model())["error"] == "approval_timeout"
    assert "rotate_key" not in agent.executed


async def test_keyboard_only_approve(open_page: OpenPage, agent: Agent, served: Served) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-16", "amount": 300}, "keyboard")
    request_id = await request_id_of(page, "keyboard", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    visited = []
    for _ in range(40):
        await page.keyboard.press("Tab")
        visited.append(
            await page.evaluate(
                "document.activeElement.dataset.action || document.activeElement.textContent"
            )
        )
        if visited[-1] == "approve":
            break
    else:
        raise AssertionError(f"Tab never reached the Approve button: {visited}")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", visited  # the focus can be seen
    await page.keyboard.press("Enter")
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "executed"


async def test_on_a_phone_the_queue_fits_and_approving_works(
    open_page: OpenPage, agent: Agent
) -> None:
    page = await open_page("paul", "publisher", viewport=PHONE)
    call = agent.call("issue_refund", {"order_id": "ORD-17", "amount": 120}, "phone")
    card = await card_for(page, "phone", "issue_refund")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing to scroll sideways
    approve = card.get_by_role("button", name="Approve")
    box = await approve.bounding_box()
    assert box is not None and box["height"] >= 40 and box["x"] + box["width"] <= PHONE["width"]
    await approve.click()
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "executed"


async def test_an_approval_after_someone_else_edited_is_refused_and_shows_the_new_arguments(
    open_page: OpenPage, served: Served
) -> None:
    """Quorum 2: Paul reads amount 100; Petra approves with 99999; Paul's click is refused
    (409) and the page shows what would now run, so his second click approves that."""
    live = served.live
    async with live.client(live.agent_token("support-bot")) as agent:
        created = await agent.post(
            "/v1/requests",
            json={
                "tool": "issue_refund",
                "args": {"order_id": "ORD-Q", "amount": 100},
                "policy": {"min_role": "publisher", "quorum": 2, "editable": ["amount"]},
            },
        )
    request = created.json()
    page = await open_page("paul", "publisher")
    await page.goto(f"{live.url}/requests/{request['id']}")
    await expect(page.locator("#request-view")).to_contain_text("100")
    async with live.client(live.approver_token("petra", "publisher")) as petra:
        edited = await petra.post(
            f"/v1/requests/{request['id']}/decisions",
            json={"decision": "approve", "modified_args": {"amount": 99999}},
        )
        assert edited.status_code == 200
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.locator("#request-view [role=alert]")).to_contain_text("changed since")
    await expect(page.locator("#request-view")).to_contain_text("99999")
    await page.get_by_role("button", name="Approve", exact=True).click()
    await expect(page.locator(".req-head")).to_contain_text("approved")
    async with live.client(live.approver_token("paul", "publisher")) as paul:
        final = (await paul.get(f"/v1/requests/{request['id']}")).json()
    assert final["status"] == "approved" and final["final_args"]["amount"] == 99999
    assert [d["by"] for d in final["decisions"]] == ["petra", "paul"]


async def test_an_approver_who_keeps_approving_the_same_call_is_offered_a_grant(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    """Approval fatigue (seed 002): the third identical call in an hour suggests a standing
    grant; approving with it lets the agent's next identical call run with nobody asked."""
    page = await open_page("paul", "publisher")
    args = {"order_id": "ORD-GRANT", "amount": 7}  # arguments no other test uses
    for n in range(2):
        call = agent.call("issue_refund", args, f"grant-{n}")
        request_id = await request_id_of(page, f"grant-{n}", "issue_refund")
        decision = {"decision": "approve"}
        assert await forced_post(page, f"/v1/requests/{request_id}/decisions", decision) == 200
        assert (await asyncio.wait_for(call, 10)).status.value == "executed"
    call = agent.call("issue_refund", args, "grant-2")
    request_id = await request_id_of(page, "grant-2", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await expect(page.locator('[data-role="grant-hint"]')).to_contain_text("2 times")
    choice = page.locator("#approve-grant")
    await expect(choice).to_have_value("identical")
    how_long = page.get_by_label("For", exact=True)
    await expect(how_long).to_have_value("1h")
    await how_long.select_option("8h")
    await page.locator('#decide button[data-action="approve"]').click()
    assert (await asyncio.wait_for(call, 10)).status.value == "executed"
    await expect(page.locator('[data-role="grant"]')).to_contain_text("Granted: grt_")
    async with served.live.client(served.live.approver_token()) as paul:
        made = (await paul.get("/v1/grants", params={"tool": "issue_refund"})).json()["items"]
    lasting = [
        datetime.fromisoformat(g["expires_at"]) - datetime.fromisoformat(g["created_at"])
        for g in made
        if g["request_id"] == request_id
    ]
    assert lasting == [timedelta(hours=8)]

    # the next identical call runs at once, approved by the grant
    again = await asyncio.wait_for(agent.call("issue_refund", args, "grant-3"), 10)
    assert again.status.value == "executed" and again.request is not None
    [decision_by_grant] = again.request.decisions
    assert decision_by_grant.via == "grant" and decision_by_grant.grant_id is not None
    await page.goto(f"{served.live.url}/requests/{again.request.id}")
    await expect(page.locator('[data-role="grant"]')).to_contain_text(decision_by_grant.grant_id)
    # a different amount is not covered: it waits for a person
    other = agent.call("issue_refund", {"order_id": "ORD-GRANT", "amount": 8}, "grant-4")
    await request_id_of(page, "grant-4", "issue_refund")
    assert not other.done()
    other.cancel()


async def test_answer_in_the_tools_place_gives_the_model_that_answer(
    open_page: OpenPage, agent: Agent, served: Served
) -> None:
    page = await open_page("paul", "publisher")
    call = agent.call("issue_refund", {"order_id": "ORD-47", "amount": 120}, "answer")
    request_id = await request_id_of(page, "answer", "issue_refund")
    await page.goto(f"{served.live.url}/requests/{request_id}")
    await page.get_by_role("button", name="Answer in the tool's place…").click()
    answer = page.get_by_label("The tool's result, as the agent will receive it")
    await expect(answer).to_be_focused()
    await answer.fill("null")  # answers nothing: refused in the page, nothing sent
    await page.get_by_role("button", name="Send answer").click()
    await expect(page.locator("#answer-error")).to_contain_text("Write the answer")
    assert not call.done()
    await answer.fill('{"refund_id": null, "note": "Refunded by phone already"}')
    await page.get_by_role("button", name="Send answer").click()
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.status.value == "responded"
    assert outcome.result == {"refund_id": None, "note": "Refunded by phone already"}
    assert all(a["order_id"] != "ORD-47" for a in agent.executed.get("issue_refund", []))
    await expect(page.locator(".req-head")).to_contain_text("responded")
    await expect(page.locator("#request-view")).to_contain_text("Refunded by phone already")


async def test_the_page_offers_only_what_the_policy_lets_approvers_do(
    open_page: OpenPage, served: Served
) -> None:
    async with served.live.client(served.live.agent_token()) as agent:
        body = {
            "tool": "rotate_key",
            "args": {"service": "billing"},
            "policy": {"min_role": "publisher", "editable": ["service"], "decisions": ["approve"]},
        }
        made = await agent.post("/v1/requests", json=body)
        assert made.status_code == 201, made.text
    page = await open_page("paul", "publisher")
    await page.goto(f"{served.live.url}/requests/{made.json()['id']}")
    decide = page.locator("#decide")
    await expect(decide.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    for absent in ("Reject", "Approve with changes…", "Answer in the tool's place…"):
        await expect(decide.get_by_role("button", name=absent, exact=True)).to_have_count(0)
    await page.goto(served.live.url + "/")
    card = page.locator(f"li.card[data-id='{made.json()['id']}']")
    await expect(card.get_by_role("button", name="Approve rotate_key")).to_be_visible()
    await expect(card.get_by_role("button", name="Reject rotate_key")).to_be_hidden()

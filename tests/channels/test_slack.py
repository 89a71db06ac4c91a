"""The Slack channel against a local Slack Web API, with the real slack-sdk: a request is
posted as Block Kit; Approve, Reject (a reason) and Edit (a modal) decide it, and the
agent's call follows; a decision made anywhere updates the message; buttons keep working
on a new instance; Slack's errors become retried or refused deliveries."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from signoff import Gate, Policy
from signoff.channels.base import DeliveryFailed, DeliveryRefused, NoticeType
from signoff.channels.registry import channel_class
from signoff.channels.slack import SlackChannel, SlackSettings
from signoff.channels.slack.blocks import (
    ACTION_APPROVE,
    ACTION_EDIT,
    ACTION_GRANT,
    ACTION_REJECT,
    ACTION_RESPOND,
)
from signoff.errors import ConfigError
from signoff.models import ApprovalRequest, Principal, Status
from signoff.outcome import CallStatus
from signoff.types import JSONObject
from tests.channels.fake_slack import CHANNELS
from tests.channels.slack_world import (
    Relay,
    SlackWorld,
    buttons,
    make_context,
    notice,
    running,
    settings,
    text_of,
)
from tests.conftest import AGENT, ManualClock, refund_spec

HIGH_RISK = {
    "risk": "high",
    "run": {"agent_id": "support-bot", "run_id": "r1"},
    "context": {
        "why": "The customer was charged twice",
        "affected": "Order ORD-1, one customer",
        "reversible": False,
    },
}
PAUL = Principal(sub="paul", role="publisher")


@pytest.fixture
async def world(clock: ManualClock) -> AsyncIterator[SlackWorld]:
    async with running(clock) as w:
        yield w


async def submit(world: SlackWorld, **overrides: Any) -> ApprovalRequest:
    created = await world.service.submit(refund_spec(**{**HIGH_RISK, **overrides}), AGENT)
    return created.request


async def current(world: SlackWorld, request: ApprovalRequest) -> ApprovalRequest:
    return await world.service.get(request.id, PAUL)


# -- the message ---------------------------------------------------------------------------


async def test_a_request_is_posted_with_its_context_and_its_buttons(world: SlackWorld) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    assert receipt == {"channel": CHANNELS["#agent-approvals"], "ts": receipt["ts"]}
    [call] = world.slack.called("chat.postMessage")
    assert call["channel"] == "#agent-approvals"
    assert call["text"] == "Approval needed: issue_refund"
    shown = text_of(call["blocks"])
    for expected in (
        "Refund $250 for ORD-1",  # the reason
        '"amount": 250',  # the arguments
        "high",  # the risk
        "The customer was charged twice",  # why
        "Order ORD-1, one customer",  # affected
        "*Reversible*\nfalse",
        f"<!date^{int(request.expires_at.timestamp())}^",  # the expiry, in each reader's zone
        "publisher or higher",
        f"<https://signoff.example.com/requests/{request.id}|Open in signoff>",
    ):
        assert expected in shown, expected
    assert buttons(call["blocks"]) == [
        ACTION_APPROVE,
        ACTION_REJECT,
        ACTION_EDIT,
        ACTION_GRANT,
        ACTION_RESPOND,
    ]
    # buttons carry the request and the digest of what was shown, never the arguments
    for block in call["blocks"]:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            value = json.loads(element["value"])
            assert value["id"] == request.id and "ORD-1" not in element["value"]
            assert "url" not in element  # nothing a link scanner could follow


async def test_hidden_details_and_no_edit_for_a_configured_tool(clock: ManualClock) -> None:
    async with running(clock, hide_details=["issue_refund"]) as world:
        request = await submit(world)
        receipt = await world.post_request(request)
        shown = text_of(world.slack.message(receipt).blocks)
        for secret in ("ORD-1", "250", "charged twice"):
            assert secret not in shown
        assert "not shown in Slack" in shown and "issue_refund" in shown
        assert buttons(world.slack.message(receipt).blocks) == [ACTION_APPROVE, ACTION_REJECT]


async def test_the_buttons_are_what_the_policy_lets_approvers_do(world: SlackWorld) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"]}
    only = await submit(world, policy={**policy, "decisions": ["approve", "reject"]})
    receipt = await world.post_request(only)
    shown = buttons(world.slack.message(receipt).blocks)
    assert shown == [ACTION_APPROVE, ACTION_REJECT, ACTION_GRANT]  # no edit, no answer
    answers = await submit(world, policy={**policy, "decisions": ["respond", "reject"]})
    receipt = await world.post_request(answers)
    assert buttons(world.slack.message(receipt).blocks) == [ACTION_REJECT, ACTION_RESPOND]


# -- deciding from Slack, with the agent's call following ------------------------------------


def gated() -> tuple[Gate, list[dict[str, Any]]]:
    """A gate with one high-risk tool; ``ran`` lists the calls the tool received."""
    gate = Gate("memory://")
    ran: list[dict[str, Any]] = []
    policy = Policy(risk="high", min_role="publisher", editable=["amount"], timeout="5m")

    @gate.tool(policy=policy)
    async def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        ran.append({"order_id": order_id, "amount": amount})
        return f"refunded {amount} on {order_id}"

    return gate, ran


async def decide_in_slack(how: str, world: SlackWorld, receipt: JSONObject, gate: Gate) -> None:
    """Alice approves, rejects (with a reason) or edits and approves, the way Slack would
    tell it: a click, then the form she fills in."""
    if how == "approve":
        response = await world.interact(world.click("U0ALICE", receipt, ACTION_APPROVE))
        assert response.status_code == 200
        return
    if how == "reject":
        await world.interact(world.click("U0ALICE", receipt, ACTION_REJECT))
        modal = world.opened_view()
        assert modal["callback_id"] == "signoff_reject"
        blank = {"reason": {"reason": {"type": "plain_text_input", "value": "  "}}}
        response = await world.interact(world.submit("U0ALICE", modal, blank))
        assert response.json()["response_action"] == "errors"  # a reason is required
        assert [r.status for r in await gate.pending()] == [Status.PENDING]
        reason = {"reason": {"reason": {"type": "plain_text_input", "value": "Dup"}}}
        response = await world.interact(world.submit("U0ALICE", modal, reason))
        assert response.status_code == 200 and response.content == b""  # closes the form
        return
    if how == "grant":
        await world.interact(world.click("U0ALICE", receipt, ACTION_GRANT))
        modal = world.opened_view()
        assert modal["callback_id"] == "signoff_grant"
        assert "Later calls by" in text_of(modal["blocks"])
        unchosen: JSONObject = {"grant_scope": {"value": {"selected_option": None}}}
        response = await world.interact(world.submit("U0ALICE", modal, unchosen))
        assert set(response.json()["errors"]) == {"grant_scope", "grant_ttl"}
        chosen = {
            "grant_scope": {"value": {"selected_option": {"value": "identical"}}},
            "grant_ttl": {"value": {"selected_option": {"value": "1h"}}},
            "note": {"value": {"value": "Known customer"}},
        }
        response = await world.interact(world.submit("U0ALICE", modal, chosen))
        assert response.status_code == 200 and response.content == b""
        return
    if how == "respond":
        await world.interact(world.click("U0ALICE", receipt, ACTION_RESPOND))
        modal = world.opened_view()
        assert modal["callback_id"] == "signoff_respond"
        for text in ("   ", "null"):
            blank = {"response": {"value": {"value": text}}}
            response = await world.interact(world.submit("U0ALICE", modal, blank))
            assert set(response.json()["errors"]) == {"response"}
        answer = {"response": {"value": {"value": '{"refunded": false, "by": "phone"}'}}}
        response = await world.interact(world.submit("U0ALICE", modal, answer))
        assert response.status_code == 200 and response.content == b""
        return
    await world.interact(world.click("U0ALICE", receipt, ACTION_EDIT))
    modal = world.opened_view()
    field = modal["blocks"][1]
    assert field["element"]["type"] == "number_input"
    assert float(field["element"]["initial_value"]) == 300
    values = {"field-0": {"value": {"type": "number_input", "value": "120.5"}}}
    response = await world.interact(world.submit("U0ALICE", modal, values))
    assert response.status_code == 200


@pytest.mark.parametrize("how", ["approve", "reject", "edit", "grant", "respond"])
async def test_a_decision_in_slack_decides_the_agents_call(how: str) -> None:
    gate, ran = gated()
    async with gate:
        service = gate.approvals.service  # type: ignore[attr-defined]
        async with SlackWorld(service, service.store) as world, Relay(service, world) as relay:
            call = asyncio.create_task(
                gate.call("issue_refund", {"order_id": "ORD-7", "amount": 300})
            )
            [request] = await _pending(gate)
            await relay.until(NoticeType.REQUEST, request.id)
            receipt = relay.receipts[request.id][0]
            await decide_in_slack(how, world, receipt, gate)
            outcome = await asyncio.wait_for(call, 10)
            await relay.until(NoticeType.DECIDED, request.id)
            await world.settle()
        decided = await gate.get(request.id)
    [decision] = decided.decisions
    assert (decision.by, decision.role, decision.via) == ("alice", "publisher", "slack")
    final = world.slack.message(receipt)
    assert buttons(final.blocks) == []
    assert "<@U0ALICE> (alice, publisher)" in text_of(final.blocks)
    if how == "reject":
        assert outcome.status is CallStatus.REJECTED and ran == []
        assert "Dup" in (outcome.message or "") and decision.reason == "Dup"
        assert final.text == "Rejected: issue_refund"
    elif how == "respond":
        assert outcome.status is CallStatus.RESPONDED and ran == []
        assert outcome.result == {"refunded": False, "by": "phone"}
        assert final.text == "Responded: issue_refund"
        assert "Answered in the tool's place" in text_of(final.blocks)
    else:
        amount = 120.5 if how == "edit" else 300
        assert outcome.status is CallStatus.EXECUTED
        assert ran == [{"order_id": "ORD-7", "amount": amount}]
        assert outcome.result == f"refunded {float(amount)} on ORD-7"
        assert final.text == "Approved: issue_refund"
        if how == "edit":
            assert decision.modified_args == {"amount": 120.5}
            assert "*Edited by an approver*" in text_of(final.blocks)
        if how == "grant":
            assert decision.grant_id is not None and decision.reason == "Known customer"
            assert f"and granted `{decision.grant_id}`" in text_of(final.blocks)
            # the same call again runs at once, under the grant; other arguments still ask
            again = await gate.call("issue_refund", {"order_id": "ORD-7", "amount": 300})
            assert again.status is CallStatus.EXECUTED and len(ran) == 2
            assert again.request is not None
            [covered] = again.request.decisions
            assert (covered.via, covered.grant_id) == ("grant", decision.grant_id)
            other = await gate.call(
                "issue_refund", {"order_id": "ORD-7", "amount": 301}, wait=False
            )
            assert other.status is CallStatus.PENDING


async def _pending(gate: Gate) -> list[ApprovalRequest]:
    for _ in range(500):
        if pending := await gate.pending():
            return pending
        await asyncio.sleep(0.01)
    raise AssertionError("no request was made")


async def test_an_edit_that_breaks_the_schema_is_shown_in_the_form(world: SlackWorld) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    await world.interact(world.click("U0ALICE", receipt, ACTION_EDIT))
    modal = world.opened_view()
    for value, problem in (("-5", "exclusiveMinimum"), ("ten", "not a number")):
        values = {"field-0": {"value": {"type": "number_input", "value": value}}}
        answer = (await world.interact(world.submit("U0ALICE", modal, values))).json()
        assert answer["response_action"] == "errors"
        assert problem in answer["errors"]["field-0"] or "less than or equal" in str(answer)
    assert (await current(world, request)).status is Status.PENDING


# -- a decision made elsewhere --------------------------------------------------------------


@pytest.mark.parametrize("how", ["decided", "expired", "cancelled"])
async def test_a_decision_made_anywhere_updates_the_message(
    world: SlackWorld, clock: ManualClock, how: str
) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    if how == "decided":
        changed = await world.service.decide(request.id, PAUL, "approve", via="dashboard")
        kind, title, line = NoticeType.DECIDED, "Approved", "*Approved* by paul (publisher)"
    elif how == "expired":
        clock.advance(301)
        changed = await world.service.expire(request.id)
        kind, title, line = NoticeType.EXPIRED, "Expired", "*Expired*"
    else:
        changed = await world.service.cancel(request.id, AGENT, reason="the user left")
        kind, title, line = NoticeType.CANCELLED, "Cancelled", "the user left"
    assert await world.live.send(notice(kind, changed, [receipt])) is None
    message = world.slack.message(receipt)
    assert message.text == f"{title}: issue_refund"
    assert buttons(message.blocks) == [] and line in text_of(message.blocks)
    # a late, repeated notice about an older state changes nothing back
    assert await world.live.send(notice(NoticeType.DECIDED, request, [receipt])) is None
    assert buttons(world.slack.message(receipt).blocks) == []


async def test_escalations_and_outcomes_are_replies_in_the_thread(world: SlackWorld) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    reply = await world.live.send(notice(NoticeType.ESCALATED, request, [receipt], step=2))
    assert reply is not None and reply["thread_ts"] == receipt["ts"]
    thread = world.slack.message(reply)
    assert thread.thread_ts == receipt["ts"] and "step 2" in thread.text
    assert world.slack.called("chat.postMessage")[-1]["reply_broadcast"] is True
    # a channel that never posted the request posts it, marked as an escalation
    fresh = await world.live.send(notice(NoticeType.ESCALATED, request, [], step=1))
    assert fresh is not None and "thread_ts" not in fresh
    assert world.slack.message(fresh).text.startswith("Escalated (step 1)")
    # the tool's outcome: a note in the thread
    await world.service.decide(request.id, PAUL, "approve")
    await world.service.consume(request.id, AGENT)
    ran = await world.service.record_outcome(request.id, AGENT, "succeeded", {"refund": "re_1"})
    note = await world.live.send(notice(NoticeType.OUTCOME, ran, [receipt, reply]))
    assert note is not None and note["thread_ts"] == receipt["ts"]
    assert "succeeded" in world.slack.message(note).text


# -- buttons across restarts, quorum, stale messages -----------------------------------------


async def test_buttons_work_on_a_new_instance_after_a_restart(world: SlackWorld) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    await world.restart()  # a deploy: a new process with nothing in memory
    response = await world.interact(world.click("U0ALICE", receipt, ACTION_APPROVE))
    assert response.status_code == 200
    assert (await current(world, request)).status is Status.APPROVED
    assert buttons(world.slack.message(receipt).blocks) == []


async def test_a_quorum_keeps_the_buttons_until_it_is_met(world: SlackWorld) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"], "quorum": 2}
    request = await submit(world, policy=policy)
    receipt = await world.post_request(request)
    await world.interact(world.click("U0ALICE", receipt, ACTION_APPROVE))
    assert (await current(world, request)).status is Status.PENDING
    assert world.slack.ephemeral_to("U0ALICE")[-1].startswith("Your approval is recorded: 1 of 2")
    message = world.slack.message(receipt)
    assert ACTION_APPROVE in buttons(message.blocks) and "1 of 2 approvals" in text_of(
        message.blocks
    )
    await world.interact(world.click("U0ADA", receipt, ACTION_APPROVE))
    assert (await current(world, request)).status is Status.APPROVED
    assert buttons(world.slack.message(receipt).blocks) == []


async def test_a_second_click_is_told_who_decided(world: SlackWorld) -> None:
    request = await submit(world)
    receipt = await world.post_request(request)
    stale = world.click("U0ADA", receipt, ACTION_APPROVE)  # Ada's screen, not yet updated
    await world.interact(world.click("U0ALICE", receipt, ACTION_APPROVE))
    await world.interact(stale)
    assert world.slack.ephemeral_to("U0ADA") == [
        "This request was already approved by alice "
        f"({(await current(world, request)).decided_at:%Y-%m-%d %H:%M} UTC)."
    ]
    [decision] = (await current(world, request)).decisions
    assert decision.by == "alice"


async def test_approve_on_a_message_older_than_an_edit_is_refused(world: SlackWorld) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"], "quorum": 2}
    request = await submit(world, policy=policy)
    receipt = await world.post_request(request)
    stale = world.click("U0ADA", receipt, ACTION_APPROVE)
    await world.service.decide(request.id, PAUL, "approve", modified_args={"amount": 100})
    await world.interact(stale)
    now = await current(world, request)
    assert now.status is Status.PENDING and {d.by for d in now.approvals} == {"paul"}
    assert "The arguments changed" in world.slack.ephemeral_to("U0ADA")[0]
    # and the message was refreshed to show the arguments as they are now
    assert '"amount": 100' in text_of(world.slack.message(receipt).blocks)


# -- delivery errors ------------------------------------------------------------------------


async def test_slack_errors_become_retried_or_refused_deliveries(world: SlackWorld) -> None:
    request = await submit(world)
    first = notice(NoticeType.REQUEST, request)
    world.slack.fail_next("chat.postMessage", "ratelimited", status=429, **{"Retry-After": "7"})
    with pytest.raises(DeliveryFailed) as limited:
        await world.live.send(first)
    assert limited.value.retry_after == 7.0
    world.slack.fail_next("chat.postMessage", "internal_error", status=500)
    with pytest.raises(DeliveryFailed):
        await world.live.send(first)
    for error in ("channel_not_found", "invalid_auth", "not_in_channel"):
        world.slack.fail_next("chat.postMessage", error)
        with pytest.raises(DeliveryRefused, match=error):
            await world.live.send(first)
    assert await world.live.send(first) is not None  # and then it goes through


async def test_an_unreachable_slack_is_a_retried_delivery(clock: ManualClock) -> None:
    async with running(clock) as world:
        request = await submit(world)
        closed = SlackChannel("approvals", settings("http://127.0.0.1:9/api/", timeout_s=2))
        await closed.start(world.context)
        try:
            with pytest.raises(DeliveryFailed):
                await closed.send(notice(NoticeType.REQUEST, request))
        finally:
            await closed.aclose()


async def test_a_bad_token_is_refused(clock: ManualClock) -> None:
    async with running(clock, token="xoxb-wrong") as world:
        with pytest.raises(DeliveryRefused, match="invalid_auth"):
            await world.live.send(notice(NoticeType.REQUEST, await submit(world)))


# -- settings -------------------------------------------------------------------------------


async def test_settings_are_checked(world: SlackWorld) -> None:
    assert channel_class("slack") is SlackChannel
    base = settings("https://slack.com/api/")
    assert SlackSettings.model_validate(base).token.get_secret_value() not in repr(
        SlackSettings.model_validate(base)
    )
    with pytest.raises(ValidationError):
        SlackSettings.model_validate({**base, "webhook": "https://x"})
    with pytest.raises(ValidationError):
        SlackSettings.model_validate({**base, "users": {"alice": {"sub": "a", "role": "admin"}}})
    unknown_role = SlackChannel("x", {**base, "users": {"U0BOSS": {"sub": "a", "role": "boss"}}})
    with pytest.raises(ConfigError, match="boss"):
        await unknown_role.start(make_context(world.service, world.store, world.clock))


def test_without_slack_sdk_the_import_says_which_extra() -> None:
    code = (
        "import sys; sys.modules['slack_sdk'] = None\n"
        "from signoff.errors import MissingDependency\n"
        "try:\n    import signoff.channels.slack\n"
        "except MissingDependency as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'signoff[slack]'" in out.stdout

"""The Slack interactions endpoint under attack: forged and tampered signatures, stale and
future timestamps, replays (on the same instance and on another), other workspaces and
apps, unknown clickers, roles too low, self-approval, oversized and malformed bodies, and
agent text that tries to become Slack markup. None of them changes a request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from signoff.channels.slack.blocks import (
    ACTION_APPROVE,
    ACTION_EDIT,
    ACTION_GRANT,
    ACTION_REJECT,
    ACTION_RESPOND,
    ButtonValue,
)
from signoff.channels.slack.modals import Opened
from signoff.models import ApprovalRequest, Principal, Status
from tests.channels.slack_world import (
    SECRET,
    STRANGER,
    SlackWorld,
    buttons,
    running,
    text_of,
)
from tests.conftest import AGENT, ManualClock, refund_spec

READER = Principal(sub="auditor", role="admin")


@pytest.fixture
async def world(clock: ManualClock) -> AsyncIterator[SlackWorld]:
    async with running(clock) as w:
        yield w


async def posted(world: SlackWorld, **overrides: Any) -> tuple[ApprovalRequest, dict[str, Any]]:
    spec = refund_spec(risk="high", run={"agent_id": "support-bot", "run_id": "r1"}, **overrides)
    request = (await world.service.submit(spec, AGENT)).request
    return request, await world.post_request(request)


async def unchanged(world: SlackWorld, request: ApprovalRequest) -> None:
    now = await world.service.get(request.id, READER)
    assert now.status is Status.PENDING and now.decisions == [] and now.final_args == request.args


async def audit_types(world: SlackWorld, request: ApprovalRequest) -> list[str]:
    events = await world.service.audit_events(READER, request_id=request.id)
    return [e.body["type"] for e in events]


# -- not Slack ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forgery",
    ["wrong secret", "tampered body", "no signature", "no timestamp", "stale", "future", "junk ts"],
)
async def test_requests_that_are_not_slacks_change_nothing(
    world: SlackWorld, clock: ManualClock, forgery: str
) -> None:
    request, receipt = await posted(world)
    click = world.click("U0ALICE", receipt, ACTION_APPROVE)
    if forgery == "wrong secret":
        body, headers = world.signed(click, secret="not-the-signing-secret")
    elif forgery == "stale":
        body, headers = world.signed(click, timestamp=int(clock()) - 301)
    elif forgery == "future":
        body, headers = world.signed(click, timestamp=int(clock()) + 301)
    else:
        body, headers = world.signed(click)
        if forgery == "tampered body":
            other = world.click("U0ADA", receipt, ACTION_APPROVE)
            body = world.signed(other)[0]
        elif forgery == "no signature":
            del headers["x-slack-signature"]
        elif forgery == "no timestamp":
            del headers["x-slack-request-timestamp"]
        else:
            # "+1700000000" is an int to Python, and correctly signed, but not a Unix time
            ts = "+" + headers["x-slack-request-timestamp"]
            signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            assert signature is not None
            headers |= {"x-slack-request-timestamp": ts, "x-slack-signature": signature}
    response = await world.send(body, headers)
    await world.settle()
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    await unchanged(world, request)
    # nothing was said to anyone, and an unsigned request writes nothing to the audit log
    assert world.slack.called("chat.postEphemeral") == []
    assert await audit_types(world, request) == ["request.created"]


async def test_a_signature_just_inside_the_window_is_accepted(
    world: SlackWorld, clock: ManualClock
) -> None:
    request, receipt = await posted(world)
    click = world.click("U0ALICE", receipt, ACTION_APPROVE)
    response = await world.interact(click, timestamp=int(clock()) - 299)
    assert response.status_code == 200
    assert (await world.service.get(request.id, READER)).status is Status.APPROVED


@pytest.mark.parametrize("other", ["team", "app"])
async def test_another_workspace_or_app_is_refused(world: SlackWorld, other: str) -> None:
    request, receipt = await posted(world)
    click = world.click("U0ALICE", receipt, ACTION_APPROVE)
    if other == "team":
        click["team"] = {"id": "T0ELSEWHERE"}
    else:
        click["api_app_id"] = "A0OTHERAPP"
    response = await world.interact(click)
    assert response.status_code == 403
    await unchanged(world, request)


# -- replays --------------------------------------------------------------------------------


async def test_a_replayed_click_changes_nothing_even_on_another_instance(
    world: SlackWorld,
) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "quorum": 2}
    request, receipt = await posted(world, policy=policy)
    body, headers = world.signed(world.click("U0ALICE", receipt, ACTION_APPROVE))
    assert (await world.send(body, headers)).status_code == 200
    await world.settle()
    before = await audit_types(world, request)
    assert before == ["request.created", "decision.recorded"]
    replayed = await world.send(body, headers)
    assert replayed.status_code == 409
    await world.restart()  # another replica: the spent key is in the store, not in memory
    assert (await world.send(body, headers)).status_code == 409
    await world.settle()
    now = await world.service.get(request.id, READER)
    assert now.status is Status.PENDING and [d.by for d in now.decisions] == ["alice"]
    assert await audit_types(world, request) == before  # not even a refused decision


async def test_a_replayed_reject_form_changes_nothing(world: SlackWorld) -> None:
    request, receipt = await posted(world)
    await world.interact(world.click("U0ALICE", receipt, ACTION_REJECT))
    reason = {"reason": {"reason": {"type": "plain_text_input", "value": "no"}}}
    body, headers = world.signed(world.submit("U0ALICE", world.opened_view(), reason))
    assert (await world.send(body, headers)).status_code == 200
    assert (await world.send(body, headers)).status_code == 409
    await world.settle()
    assert len((await world.service.get(request.id, READER)).decisions) == 1


# -- who clicks -----------------------------------------------------------------------------


@pytest.mark.parametrize("action", [ACTION_APPROVE, ACTION_REJECT, ACTION_EDIT])
async def test_an_unknown_slack_user_is_told_and_changes_nothing(
    world: SlackWorld, action: str
) -> None:
    request, receipt = await posted(world)
    response = await world.interact(world.click(STRANGER, receipt, action))
    assert response.status_code == 200  # acknowledged: Slack shows nothing broken
    [told] = world.slack.ephemeral_to(STRANGER)
    assert told.startswith("You are not an approver here")
    assert world.slack.called("views.open") == []  # no form for them either
    await unchanged(world, request)
    events = await world.service.audit_events(READER, request_id=request.id)
    refused = events[-1].body
    assert refused["type"] == "decision.refused"
    assert STRANGER in json.dumps(refused)


@pytest.mark.parametrize(
    ("user", "action", "why"),
    [
        ("U0ERIN", ACTION_APPROVE, "role 'editor' may not decide this request"),
        ("U0ERIN", ACTION_REJECT, "Your role (editor) may not decide this request"),
        ("U0ERIN", ACTION_EDIT, "Your role (editor) may not decide this request"),
        ("U0ERIN", ACTION_GRANT, "Your role (editor) may not decide this request"),
        ("U0ERIN", ACTION_RESPOND, "Your role (editor) may not decide this request"),
        ("U0SUPPORT", ACTION_GRANT, "You requested this call"),
        ("U0SUPPORT", ACTION_APPROVE, "you requested this call"),
        ("U0SUPPORT", ACTION_REJECT, "You requested this call"),
    ],
)
async def test_a_role_too_low_or_the_requester_is_refused(
    world: SlackWorld, user: str, action: str, why: str
) -> None:
    request, receipt = await posted(world)
    await world.interact(world.click(user, receipt, action))
    [told] = world.slack.ephemeral_to(user)
    assert why in told and "stays pending" in told
    assert world.slack.called("views.open") == []
    await unchanged(world, request)
    assert (await audit_types(world, request))[-1] == "decision.refused"
    # the message keeps its buttons for a qualified approver
    assert ACTION_APPROVE in buttons(world.slack.message(receipt).blocks)


async def test_a_form_submitted_by_an_unknown_user_is_refused(world: SlackWorld) -> None:
    request, receipt = await posted(world)
    await world.interact(world.click("U0ALICE", receipt, ACTION_REJECT))
    reason = {"reason": {"reason": {"type": "plain_text_input", "value": "no"}}}
    response = await world.interact(world.submit(STRANGER, world.opened_view(), reason))
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert answer["errors"]["reason"].startswith("You are not an approver here")
    await unchanged(world, request)


async def test_an_edit_form_only_edits_the_editable_fields(world: SlackWorld) -> None:
    request, receipt = await posted(world)
    await world.interact(world.click("U0ALICE", receipt, ACTION_EDIT))
    values = {
        "field-0": {"value": {"type": "number_input", "value": "100"}},
        # blocks the form never had: ignored, whatever they say
        "order_id": {"value": {"type": "plain_text_input", "value": "ORD-666"}},
        "field-1": {"value": {"type": "plain_text_input", "value": "ORD-666"}},
    }
    await world.interact(world.submit("U0ALICE", world.opened_view(), values))
    now = await world.service.get(request.id, READER)
    assert now.status is Status.APPROVED
    assert now.final_args == {"order_id": "ORD-1", "amount": 100}


async def test_a_form_opened_before_an_edit_cannot_approve_the_new_arguments(
    world: SlackWorld,
) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"], "quorum": 2}
    request, receipt = await posted(world, policy=policy)
    await world.interact(world.click("U0ALICE", receipt, ACTION_EDIT))
    form = world.opened_view()
    await world.service.decide(
        request.id, Principal(sub="paul", role="publisher"), "approve", modified_args={"amount": 9}
    )
    values = {"field-0": {"value": {"type": "number_input", "value": "100"}}}
    answer = (await world.interact(world.submit("U0ALICE", form, values))).json()
    assert "The arguments changed" in answer["errors"]["field-0"]
    now = await world.service.get(request.id, READER)
    assert now.final_args["amount"] == 9 and [d.by for d in now.decisions] == ["paul"]


def forged_form(world: SlackWorld, callback: str, request: ApprovalRequest, receipt: Any) -> Any:
    """A form Slack never showed (no button offered it): its submission, made up."""
    message = world.slack.message(receipt)
    opened = Opened(request.id, request.args_digest, message.channel, message.ts)
    return {"callback_id": callback, "private_metadata": opened.encode(), "blocks": []}


GRANT_FOR_AN_HOUR = {
    "grant_scope": {"value": {"selected_option": {"value": "tool"}}},
    "grant_ttl": {"value": {"selected_option": {"value": "1h"}}},
}


@pytest.mark.parametrize(
    ("scope", "ttl"), [("everything", "1h"), ("tool", "100y"), ("tool", "0"), (None, None)]
)
async def test_a_grant_form_only_grants_what_it_offered(
    world: SlackWorld, scope: str | None, ttl: str | None
) -> None:
    request, receipt = await posted(world)
    form = forged_form(world, "signoff_grant", request, receipt)
    values = {
        "grant_scope": {"value": {"selected_option": {"value": scope}}},
        "grant_ttl": {"value": {"selected_option": {"value": ttl}}},
    }
    answer = (await world.interact(world.submit("U0ALICE", form, values))).json()
    assert answer["response_action"] == "errors"
    await unchanged(world, request)
    assert await world.service.grants.list(READER) == []


async def test_no_grant_or_answer_where_the_policy_does_not_allow_it(world: SlackWorld) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "decisions": ["reject"]}
    request, receipt = await posted(world, policy=policy)
    assert buttons(world.slack.message(receipt).blocks) == [ACTION_REJECT]
    grant = forged_form(world, "signoff_grant", request, receipt)
    await world.interact(world.submit("U0ALICE", grant, GRANT_FOR_AN_HOUR))
    answer = {"response": {"value": {"value": "done"}}}
    respond = forged_form(world, "signoff_respond", request, receipt)
    await world.interact(world.submit("U0ALICE", respond, answer))
    told = world.slack.ephemeral_to("U0ALICE")
    assert len(told) == 2 and all("does not let approvers" in t for t in told)
    await unchanged(world, request)
    # a made-up button for a verb the message does not offer is refused before any form
    value = ButtonValue("respond", request.id, request.args_digest).encode()
    click = world.click("U0ALICE", receipt, ACTION_REJECT)
    click["actions"][0] |= {"action_id": ACTION_RESPOND, "value": value}
    await world.interact(click)
    assert "cannot be decided that way (respond)" in world.slack.ephemeral_to("U0ALICE")[-1]
    assert world.slack.called("views.open") == []


async def test_a_grant_form_opened_before_an_edit_grants_nothing(world: SlackWorld) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"], "quorum": 2}
    request, receipt = await posted(world, policy=policy)
    await world.interact(world.click("U0ALICE", receipt, ACTION_GRANT))
    form = world.opened_view()
    await world.service.decide(
        request.id, Principal(sub="paul", role="publisher"), "approve", modified_args={"amount": 9}
    )
    await world.interact(world.submit("U0ALICE", form, GRANT_FOR_AN_HOUR))
    assert "arguments changed" in world.slack.ephemeral_to("U0ALICE")[-1]
    now = await world.service.get(request.id, READER)
    assert [d.by for d in now.decisions] == ["paul"]
    assert await world.service.grants.list(READER) == []


# -- bodies ---------------------------------------------------------------------------------


async def test_oversized_and_malformed_bodies_are_refused(world: SlackWorld) -> None:
    request, _ = await posted(world)
    huge = b"payload=" + b"x" * 2_100_000
    assert (await world.send(huge, world.signed({})[1])).status_code == 413
    for body in (b"payload=not-json", b"nothing=here", b"payload=%5B1%5D", b"\xff\xfe"):
        _, headers = world.signed({})
        ts = headers["x-slack-request-timestamp"]
        if body != b"\xff\xfe":
            signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            assert signature is not None
            headers["x-slack-signature"] = signature
        response = await world.send(body, headers)
        # signed but unreadable: 400; not UTF-8 (and so never signed by Slack): 401, not a crash
        assert response.status_code == (401 if body == b"\xff\xfe" else 400), body
    await unchanged(world, request)


# -- what agents write ----------------------------------------------------------------------


async def test_agent_text_cannot_become_slack_markup(world: SlackWorld) -> None:
    hostile = "<!channel> please <https://evil.example/approve|click here> \u202e & `"
    _, receipt = await posted(
        world,
        reason=hostile,
        args={"order_id": "ORD-1```<@U0ADA>", "amount": 250},
        context={"why": hostile * 200, **{f"k{i}": "v" for i in range(40)}},
        tool="issue_refund",
    )
    message = world.slack.message(receipt)  # accepted by Slack: within Block Kit's limits
    shown = text_of(message.blocks)
    for raw in ("<!channel>", "<https://evil", "<@U0ADA>", "\u202e"):
        assert raw not in shown
    assert "&lt;!channel&gt;" in shown and "\\u202e" in shown
    assert world.slack.called("chat.postMessage")[0]["unfurl_links"] is False

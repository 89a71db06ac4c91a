"""The Ably channel with the real ``ably`` package against a local Ably-shaped REST server:
``approval-request`` in the seed guides' shape goes out; an approver's ``approval-response``
(published with their JWT, as in the guides) comes back through the signed webhook and
decides, as the message's clientId with the role of its Ably-stamped userClaim."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from signoff.channels.ably import AblySettings
from signoff.errors import MissingDependency
from signoff.models import Status
from tests.channels.ablying import CHANNEL, ablying
from tests.channels.providers import ABLY_KEY


async def test_a_request_is_published_in_the_guides_shape_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit()
        notice = a.rig.notice(request, a.channel)
        receipt = await a.channel.send(notice)
        again = await a.channel.send(notice)  # the outbox retries: still one message
    assert receipt == again == {"message_id": "dlv_1:0", "channel": CHANNEL}
    [published] = a.ably.published[CHANNEL]
    assert published["name"] == "approval-request" and published["encoding"] == "json"
    data = json.loads(published["data"])
    assert data["tool"] == "issue_refund"
    assert data["arguments"] == {"order_id": "ORD-1", "amount": 250}
    assert data["requestId"] == request.id and data["riskLevel"] == "high"
    assert published["extras"]["headers"] == {"toolCallId": "toolu_01", "requestId": request.id}


async def test_the_guides_client_approves_by_tool_call_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit()
        await a.channel.send(a.rig.notice(request, a.channel))
        # exactly what the guides' client publishes: the decision, and the echoed toolCallId
        result = await a.respond(
            "alice", "publisher", {"decision": "approved"}, headers={"toolCallId": "toolu_01"}
        )
        decided = await a.rig.get(request.id)
    assert result["outcome"] == "decided" and result["status"] == "approved"
    assert decided.status is Status.APPROVED
    decision = decided.decisions[0]
    assert (decision.by, decision.role, decision.via) == ("alice", "publisher", "ably")


async def test_a_rejection_with_a_reason_and_a_json_user_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        first, second = await a.rig.submit(), await a.rig.submit()
        data = {"decision": "rejected", "requestId": first.id, "reason": "Not this order"}
        await a.respond("ada", '{"role": "admin", "permissions": ["refunds"]}', data)
        await a.respond("ada", "admin", {"decision": "rejected", "requestId": second.id})
        one, two = await a.rig.get(first.id), await a.rig.get(second.id)
    assert one.status is Status.REJECTED and one.decisions[0].reason == "Not this order"
    assert one.decisions[0].role == "admin"
    assert two.status is Status.REJECTED and "no reason given" in str(two.decisions[0].reason)


async def test_a_response_answers_in_the_tools_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit()
        only_approve = await a.rig.submit(
            policy={"min_role": "publisher", "timeout_s": 300, "decisions": ["approve"]}
        )
        answer = {"refunded": False, "note": "handled by phone"}
        empty = await a.respond(
            "alice", "publisher", {"decision": "responded", "requestId": request.id}
        )
        done = await a.respond(
            "alice",
            "publisher",
            {"decision": "responded", "requestId": request.id, "response": answer},
        )
        refused = await a.respond(
            "alice",
            "publisher",
            {"decision": "responded", "requestId": only_approve.id, "response": "done"},
        )
        answered, untouched = await a.rig.get(request.id), await a.rig.get(only_approve.id)
    assert empty["outcome"] == "refused" and "needs `response`" in empty["detail"]
    assert (done["requestId"], done["outcome"], done["status"]) == (
        request.id,
        "decided",
        "responded",
    )
    assert answered.decisions[0].response == answer and answered.decisions[0].via == "ably"
    assert refused["outcome"] == "refused" and "does not let approvers respond" in refused["detail"]
    assert untouched.status is Status.PENDING


def test_the_key_is_never_shown_and_must_go_over_tls() -> None:
    settings = AblySettings.model_validate({"key": ABLY_KEY})
    assert "ably-key-secret" not in repr(settings)
    with pytest.raises(ValidationError) as bad:
        AblySettings.model_validate({"key": ABLY_KEY, "rest_url": "http://rest.ably.io"})
    assert "ably-key-secret" not in str(bad.value)
    with pytest.raises(ValidationError):
        AblySettings.model_validate({"key": "not-a-key"})


def test_without_its_extra_the_module_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ably", None)
    monkeypatch.delitem(sys.modules, "signoff.channels.ably", raising=False)
    with pytest.raises(MissingDependency, match=r"signoff\[ably\]"):
        importlib.import_module("signoff.channels.ably")

"""The SMS channel with the real ``twilio`` package against a local Twilio-shaped server:
each number gets a short text with a code of its own; ``YES <code>`` approves and
``NO <code> <reason>`` rejects, as the number's mapped approver; the answer says what
happened."""

from __future__ import annotations

import importlib
import sys

import pytest

from signoff.channels.base import DeliveryFailed, DeliveryRefused
from signoff.errors import MissingDependency
from signoff.models import Status
from tests.channels.texts import BOB_PHONE, ERIN_PHONE, OUR_NUMBER, said, texting


async def test_each_number_gets_a_short_text_with_its_own_code() -> None:
    async with texting() as t:
        request = await t.rig.submit()
        receipt = await t.channel.send(t.rig.notice(request, t.channel))
    assert receipt is not None and set(receipt["message_sids"]) == {BOB_PHONE, ERIN_PHONE}
    assert [m["To"] for m in t.twilio.sent] == [BOB_PHONE, ERIN_PHONE]
    bob = t.twilio.sent[0]
    assert bob["From"] == OUR_NUMBER and bob["Sid"] == receipt["message_sids"][BOB_PHONE]
    assert "issue_refund" in bob["Body"] and "Refund $250 for ORD-1" in bob["Body"]
    assert "high risk" in bob["Body"] and len(bob["Body"]) <= 200
    assert t.code_for(BOB_PHONE) != t.code_for(ERIN_PHONE)


async def test_yes_approves_and_no_rejects_with_the_reason() -> None:
    async with texting() as t:
        approved, rejected = await t.rig.submit(), await t.rig.submit()
        await t.channel.send(t.rig.notice(approved, t.channel))
        yes = await t.reply(BOB_PHONE, f"yes {t.code_for(BOB_PHONE)}")
        await t.channel.send(t.rig.notice(rejected, t.channel))
        no = await t.reply(BOB_PHONE, f"NO {t.code_for(BOB_PHONE)} the parcel was fine")
        a, r = await t.rig.get(approved.id), await t.rig.get(rejected.id)
    assert yes.status_code == 200 and yes.headers["content-type"].startswith("text/xml")
    assert said(yes) == "Approved: issue_refund may run now."
    assert a.status is Status.APPROVED
    assert (a.decisions[0].by, a.decisions[0].via, a.decisions[0].role) == ("bob", "sms", "admin")
    assert "Rejected" in said(no) and r.status is Status.REJECTED
    assert r.decisions[0].reason == "the parcel was fine"


async def test_a_rejection_without_a_reason_asks_for_one() -> None:
    async with texting() as t:
        request = await t.rig.submit()
        await t.channel.send(t.rig.notice(request, t.channel))
        code = t.code_for(BOB_PHONE)
        bare = await t.reply(BOB_PHONE, f"NO {code}")
        gibberish = await t.reply(BOB_PHONE, "maybe later")
        assert said(bare) == f"Say why: NO {code} &lt;reason&gt;."
        assert "Reply YES <code>" in said(gibberish).replace("&lt;", "<").replace("&gt;", ">")
        assert (await t.rig.get(request.id)).status is Status.PENDING
        # the code still works: asking for a reason did not use it
        done = await t.reply(BOB_PHONE, f"NO {code} duplicate of ORD-0")
        assert "Rejected" in said(done)


async def test_twilio_errors_are_retried_or_given_up() -> None:
    async with texting() as t:
        request = await t.rig.submit()
        t.twilio.status = 503
        with pytest.raises(DeliveryFailed, match="503"):
            await t.channel.send(t.rig.notice(request, t.channel))
        t.twilio.status = None
        t.twilio.invalid = {BOB_PHONE, ERIN_PHONE}
        with pytest.raises(DeliveryRefused, match=r"21211|not valid"):
            await t.channel.send(t.rig.notice(request, t.channel))
        t.twilio.invalid = {ERIN_PHONE}
        receipt = await t.channel.send(t.rig.notice(request, t.channel))
    assert receipt is not None and list(receipt["message_sids"]) == [BOB_PHONE]
    assert ERIN_PHONE in receipt["refused"]


def test_without_its_extra_the_module_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "twilio.rest", None)
    monkeypatch.delitem(sys.modules, "signoff.channels.sms", raising=False)
    with pytest.raises(MissingDependency, match=r"signoff\[sms\]"):
        importlib.import_module("signoff.channels.sms")


async def test_answer_responds_in_the_tools_place_where_the_policy_allows() -> None:
    async with texting() as t:
        request = await t.rig.submit()
        await t.channel.send(t.rig.notice(request, t.channel))
        assert "ANSWER" in t.twilio.sent[-1]["Body"]
        code = t.code_for(BOB_PHONE)
        bare = await t.reply(BOB_PHONE, f"ANSWER {code}  ")
        assert said(bare) == f"Say what the agent receives: ANSWER {code} &lt;text&gt;."
        done = await t.reply(BOB_PHONE, f"answer {code} Refunded by phone: ref 991")
        assert said(done) == "Answered: issue_refund will not run; the agent receives your answer."
        answered = await t.rig.get(request.id)
        only_yes = await t.rig.submit(
            policy={"min_role": "publisher", "timeout_s": 300, "decisions": ["approve"]}
        )
        await t.channel.send(t.rig.notice(only_yes, t.channel))
        body = t.twilio.sent[-1]["Body"]
        assert "ANSWER" not in body and "NO " not in body and "Reply YES" in body
        refused = await t.reply(BOB_PHONE, f"ANSWER {t.code_for(BOB_PHONE)} done")
        assert said(refused).startswith("Not decided: the policy does not let approvers respond")
        assert (await t.rig.get(only_yes.id)).status is Status.PENDING
    assert answered.status is Status.RESPONDED
    assert answered.decisions[0].response == "Refunded by phone: ref 991"
    assert (answered.decisions[0].by, answered.decisions[0].via) == ("bob", "sms")

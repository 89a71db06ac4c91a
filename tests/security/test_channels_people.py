"""People's channels under attack: nothing but a verified sender deciding once changes a
request. Forged or altered signatures, stale and replayed messages, unknown senders, roles
too low, mail scanners that fetch links (and press buttons without the page), altered or
expired links, wrong or reused codes, and agent-written markup: each is refused, leaves the
request as it was, and (where a sender is known) is audited."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from signoff.models import Principal, Status
from tests.channels.ablying import CHANNEL, ablying
from tests.channels.conftest import rigged
from tests.channels.mail import BOB, ERIN, email_channel, form_fields, link_in, smtp_server
from tests.channels.mail import text_of as mail_text
from tests.channels.providers import ably_batch, twilio_inbound
from tests.channels.texts import BOB_PHONE, ERIN_PHONE, said, texting

QUORUM_2 = {"min_role": "publisher", "timeout_s": 600, "editable": ["amount"], "quorum": 2}

# -- email -------------------------------------------------------------------------------


async def test_scanners_and_forms_from_elsewhere_decide_nothing() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit(min_role="editor")
            await channel.send(rig.notice(request, channel))
            bob_link, erin_link = link_in(inbox.to(BOB)[0]), link_in(inbox.to(ERIN)[0])
            async with rig.client() as http:
                for _ in range(3):  # Safe Links, Proofpoint, the person: GET and HEAD
                    await http.head(bob_link)
                    page = (await http.get(bob_link)).text
                fields = form_fields(page)
                erin_fields = form_fields((await http.get(erin_link)).text)
                pressed = await http.post(bob_link, data={"decision": "approve"})
                borrowed = await http.post(bob_link, data={**erin_fields, "decision": "approve"})
                cross_site = await http.post(
                    bob_link,
                    data={**fields, "decision": "approve"},
                    headers={"Sec-Fetch-Site": "cross-site"},
                )
                other_digest = await http.post(
                    bob_link, data={**fields, "digest": "sha256:" + "0" * 64, "decision": "approve"}
                )
                assert [r.status_code for r in (pressed, borrowed, cross_site, other_digest)] == [
                    403
                ] * 4
                assert (await rig.get(request.id)).status is Status.PENDING
                # none of it used the link up
                done = await http.post(bob_link, data={**fields, "decision": "approve"})
            assert done.status_code == 200
            assert (await rig.get(request.id)).decisions[0].by == "bob"


async def test_altered_foreign_and_expired_links_are_refused_with_a_page() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(BOB)[0])
            head, _, mac = link.rpartition(".")
            flipped = head + "." + ("A" if mac[0] != "A" else "B") + mac[1:]
            payload_swapped = link.replace("oncall-email.eyJ", "oncall-email.eyK", 1)
            foreign = link.replace("/r/oncall-email.", "/r/other-email.")
            expired = channel.link(request.id, BOB, time.time() - 1)
            async with rig.client() as http:
                answers = {
                    "flipped": await http.get(flipped),
                    "swapped": await http.get(payload_swapped),
                    "foreign": await http.get(foreign),
                    "expired": await http.get(expired),
                    "expired post": await http.post(expired, data={"decision": "approve"}),
                    "cut": await http.get(link[:-10]),
                }
            statuses = {name: a.status_code for name, a in answers.items()}
            assert statuses == {
                "flipped": 404,
                "swapped": 404,
                "foreign": 404,
                "expired": 410,
                "expired post": 410,
                "cut": 404,
            }
            assert "altered" in answers["flipped"].text and "expired" in answers["expired"].text
            assert answers["flipped"].headers["cache-control"] == "no-store"
            assert (await rig.get(request.id)).status is Status.PENDING
            refused = await rig.audit("decision.refused")
            assert len(refused) >= 3 and all(
                e["data"]["attempted"] == "email.link" for e in refused
            )


async def test_a_link_decides_once_even_pressed_twice_at_the_same_time() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit(policy=QUORUM_2)
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(BOB)[0])
            async with rig.client() as http:
                fields = form_fields((await http.get(link)).text)
                form = {**fields, "decision": "approve"}
                both = await asyncio.gather(http.post(link, data=form), http.post(link, data=form))
                later = await http.get(link)
            assert sorted(a.status_code for a in both) == [200, 409]
            now = await rig.get(request.id)
            assert now.status is Status.PENDING and len(now.approvals) == 1
            assert later.status_code == 409 and "approved this already" in later.text


async def test_a_used_link_says_who_decided_and_when() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(BOB)[0])
            async with rig.client() as http:
                fields = form_fields((await http.get(link)).text)
                await http.post(link, data={**fields, "decision": "approve"})
                again = await http.post(link, data={**fields, "decision": "reject", "reason": "x"})
                shown = await http.get(link)
            for answer in (again, shown):
                assert answer.status_code == 409
                assert "already approved by bob at" in answer.text
            assert (await rig.get(request.id)).status is Status.APPROVED


async def test_a_recipient_whose_role_is_too_low_decides_nothing() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit(min_role="publisher")
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(ERIN)[0])  # erin is an editor
            async with rig.client() as http:
                fields = form_fields((await http.get(link)).text)
                answer = await http.post(link, data={**fields, "decision": "approve"})
            assert answer.status_code == 403 and "Not allowed" in answer.text
            assert (await rig.get(request.id)).status is Status.PENDING
            [refusal] = await rig.audit("decision.refused")
            assert refusal["actor"]["sub"] == "erin" and refusal["via"] == "email"


async def test_an_answer_in_the_tools_place_is_held_to_the_same_rules() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit(min_role="publisher")
            await channel.send(rig.notice(request, channel))
            erins, bobs = link_in(inbox.to(ERIN)[0]), link_in(inbox.to(BOB)[0])
            async with rig.client() as http:
                fields = form_fields((await http.get(erins)).text)
                low = {**fields, "decision": "respond", "response": "done"}
                assert (await http.post(erins, data=low)).status_code == 403  # an editor
                fields = form_fields((await http.get(bobs)).text)
                huge = {**fields, "decision": "respond", "response": "x" * 10_001}
                refused = await http.post(bobs, data=huge)
                assert refused.status_code == 422 and "longer than 10,000" in refused.text
                # refused before the link was spent: the right answer still goes through
                fine = {**fields, "decision": "respond", "response": "<b>handled</b>"}
                assert (await http.post(bobs, data=fine)).status_code == 200
            answered = await rig.get(request.id)
    assert answered.status is Status.RESPONDED
    assert [(d.by, d.response) for d in answered.decisions] == [("bob", "<b>handled</b>")]


async def test_agent_written_markup_is_shown_as_text() -> None:
    evil = "<script>alert(1)</script>"
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit(
                tool=f"refund{evil}",
                reason='"><img src=x onerror=alert(1)>\r\nBcc: everyone@example.com',
                args={"order_id": f"</pre>{evil}", "amount": 1},
                context={"why": evil},
                args_schema=None,
            )
            await channel.send(rig.notice(request, channel))
            message = inbox.to(BOB)[0]
            async with rig.client() as http:
                page = (await http.get(link_in(message))).text
    for html in (page, mail_text(message, "html")):
        assert "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;" in html
    assert message["Bcc"] is None and "\n" not in message["Subject"]
    assert inbox.recipients == [[BOB], [ERIN]]


# -- SMS ---------------------------------------------------------------------------------


async def test_forged_and_altered_replies_are_refused() -> None:
    async with texting() as t:
        request = await t.rig.submit()
        await t.channel.send(t.rig.notice(request, t.channel))
        code = t.code_for(BOB_PHONE)
        forged = await t.reply(BOB_PHONE, f"YES {code}", token="not-the-auth-token")
        # a valid signature over one body, sent with another
        form, headers = twilio_inbound(t.inbound_url, from_=ERIN_PHONE, body="NO 000000 x")
        form["From"], form["Body"] = BOB_PHONE, f"YES {code}"
        async with t.rig.client() as http:
            altered = await http.post(t.channel.inbound_path, data=form, headers=headers)
            unsigned = await http.post(t.channel.inbound_path, data=form)
        for answer in (forged, altered, unsigned):
            assert answer.status_code == 403 and said(answer) == ""
        assert (await t.rig.get(request.id)).status is Status.PENDING
        assert len(await t.rig.audit("decision.refused")) == 3


async def test_unknown_numbers_wrong_codes_and_replays_are_refused() -> None:
    async with texting(max_attempts=3) as t:
        request = await t.rig.submit(policy=QUORUM_2)
        await t.channel.send(t.rig.notice(request, t.channel))
        code = t.code_for(BOB_PHONE)
        stranger = await t.reply("+15559999999", f"YES {code}")
        assert "may not decide" in said(stranger)
        # bob's own code from erin's phone is a wrong code
        assert "No open request" in said(await t.reply(ERIN_PHONE, f"YES {code}"))
        first = await t.reply(BOB_PHONE, f"YES {code}", sid="SMreplayed")
        assert "1 of 2" in said(first)
        replayed = await t.reply(BOB_PHONE, f"YES {code}", sid="SMreplayed")
        assert said(replayed) == "This message was handled already."
        reused = await t.reply(BOB_PHONE, f"YES {code}")
        assert said(reused) == f"You used the code {code} already."
        assert len((await t.rig.get(request.id)).approvals) == 1


async def test_guessing_codes_is_bounded_per_number() -> None:
    async with texting(max_attempts=3) as t:
        request = await t.rig.submit()
        await t.channel.send(t.rig.notice(request, t.channel))
        code = t.code_for(BOB_PHONE)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        for _ in range(3):
            assert "No open request" in said(await t.reply(BOB_PHONE, f"YES {wrong}"))
        locked = await t.reply(BOB_PHONE, f"YES {code}")  # right, but too late
        assert "Too many replies" in said(locked)
        assert (await t.rig.get(request.id)).status is Status.PENDING


async def test_a_number_whose_role_is_too_low_decides_nothing() -> None:
    async with texting() as t:
        request = await t.rig.submit(min_role="publisher")
        await t.channel.send(t.rig.notice(request, t.channel))
        answer = await t.reply(ERIN_PHONE, f"YES {t.code_for(ERIN_PHONE)}")
        assert said(answer).startswith("Not decided: role 'editor'")
        assert (await t.rig.get(request.id)).status is Status.PENDING
        [refusal] = await t.rig.audit("decision.refused")
        assert refusal["actor"]["sub"] == "erin" and refusal["via"] == "sms"


async def test_an_sms_answer_needs_the_role_and_the_current_code() -> None:
    async with texting() as t:
        request = await t.rig.submit(policy=QUORUM_2)
        await t.channel.send(t.rig.notice(request, t.channel))
        low = await t.reply(ERIN_PHONE, f"ANSWER {t.code_for(ERIN_PHONE)} done")
        assert said(low).startswith("Not decided: role 'editor'")
        code = t.code_for(BOB_PHONE)
        await t.rig.service.decide(
            request.id, Principal(sub="ada", role="admin"), "approve", modified_args={"amount": 9}
        )
        stale = await t.reply(BOB_PHONE, f"ANSWER {code} done")
        assert "No open request" in said(stale)
        now = await t.rig.get(request.id)
        assert now.status is Status.PENDING and [d.by for d in now.decisions] == ["ada"]


async def test_a_code_stops_working_when_the_arguments_change() -> None:
    async with texting() as t:
        request = await t.rig.submit(policy=QUORUM_2)
        await t.channel.send(t.rig.notice(request, t.channel))
        code = t.code_for(BOB_PHONE)
        await t.rig.service.decide(
            request.id, Principal(sub="ada", role="admin"), "approve", modified_args={"amount": 9}
        )
        answer = await t.reply(BOB_PHONE, f"YES {code}")
        assert "No open request" in said(answer)
        assert len((await t.rig.get(request.id)).approvals) == 1


# -- Ably --------------------------------------------------------------------------------


def response(
    request_id: str,
    *,
    client_id: str | None = "ada",
    claim: Any = "admin",
    age_s: float = 0.0,
    message_id: str | None = None,
) -> dict[str, Any]:
    """An ``approval-response`` as Ably's webhook carries it (data JSON-encoded)."""
    message: dict[str, Any] = {
        "id": message_id or secrets.token_urlsafe(8) + ":0",
        "connectionId": "ABcDefgHIj",
        "timestamp": int((time.time() - age_s) * 1000),
        "name": "approval-response",
        "data": json.dumps({"decision": "approved", "requestId": request_id}),
        "encoding": "json",
        "extras": {} if claim is None else {"userClaim": claim},
    }
    if client_id is not None:
        message["clientId"] = client_id
    return message


async def test_unsigned_forged_and_foreign_key_webhooks_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit()
        body = ably_batch(CHANNEL, [response(request.id)])
        forged = await a.post_webhook(body, key="appId1.keyId1:someone-elses-secret-123456")
        foreign = await a.post_webhook(
            body, key="appId1.otherKey:ably-key-secret-for-the-channel-tests"
        )
        async with a.rig.client() as http:
            unsigned = await http.post(a.webhook_path, json=body)
        for answer in (forged, foreign, unsigned):
            assert answer.status_code == 401
            assert answer.headers["content-type"] == "application/problem+json"
        assert (await a.rig.get(request.id)).status is Status.PENDING


async def test_stale_replayed_anonymous_and_unclaimed_messages_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit(policy=QUORUM_2)
        bad = {
            "stale": response(request.id, age_s=600),
            "future": response(request.id, age_s=-600),
            "anonymous": response(request.id, client_id=None),
            "no claim": response(request.id, claim=None),
            "unknown role": response(request.id, claim='{"role": "superuser"}'),
        }
        other_channel = ably_batch("ai:elsewhere", [response(request.id)])
        answers = [await a.post_webhook(ably_batch(CHANNEL, [m])) for m in bad.values()]
        answers.append(await a.post_webhook(other_channel))
        for answer in answers:
            assert answer.status_code == 200
            assert answer.json()["results"][0]["outcome"] == "refused"
        assert (await a.rig.get(request.id)).decisions == []
        once = ably_batch(CHANNEL, [response(request.id, message_id="replayed:0")])
        first, replay = await a.post_webhook(once), await a.post_webhook(once)
        assert first.json()["results"][0]["outcome"] == "decided"
        assert replay.json()["results"][0]["detail"] == "a message seen before (replayed)"
        assert len((await a.rig.get(request.id)).approvals) == 1
        assert len(await a.rig.audit("decision.refused")) == len(bad) + 2


async def test_the_role_comes_only_from_the_claim_ably_stamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ablying(tmp_path, monkeypatch) as a:
        request = await a.rig.submit(min_role="publisher")
        await a.channel.send(a.rig.notice(request, a.channel))
        data = {"decision": "approved", "requestId": request.id, "role": "admin"}
        low = await a.respond("erin", "editor", data, userClaim="admin")
        unclaimed = await a.respond("mallory", None, data, userClaim="admin")
        assert low["outcome"] == "refused" and "editor" in low["detail"]
        assert unclaimed["outcome"] == "refused"
        assert (await a.rig.get(request.id)).status is Status.PENDING
        # our own approval-request came back through the webhook too: it decided nothing
        assert a.ably.webhook_answers[0].json() == {"results": []}

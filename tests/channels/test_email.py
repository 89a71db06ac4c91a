"""The email channel against a real SMTP server (aiosmtpd) and a real approval service: one
message per recipient, a page that shows and decides nothing on GET, and a POST that
decides once as the link's recipient (approve, reject with a reason, approve with
changes)."""

from __future__ import annotations

import importlib
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pydantic import ValidationError

from signoff.channels.base import DeliveryFailed
from signoff.channels.email import EmailSettings
from signoff.errors import MissingDependency
from signoff.models import DecisionKind, Status
from tests.channels.conftest import free_port, rigged
from tests.channels.mail import (
    BOB,
    ERIN,
    Inbox,
    email_channel,
    form_fields,
    link_in,
    smtp_server,
    text_of,
)
from tests.channels.providers import self_signed


async def test_a_request_mails_each_recipient_a_link_of_their_own() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            receipt = await channel.send(rig.notice(request, channel))
    assert receipt is not None and set(receipt["message_ids"]) == {BOB, ERIN}
    assert inbox.recipients == [[BOB], [ERIN]]  # one message each, nobody copied
    bob, erin = inbox.to(BOB)[0], inbox.to(ERIN)[0]
    assert "issue_refund" in bob["Subject"] and "high risk" in bob["Subject"]
    assert bob["Message-ID"] == receipt["message_ids"][BOB]
    text, page = text_of(bob), text_of(bob, "html")
    for shown in ("Refund $250 for ORD-1", "photos are on the ticket", "Reversible: no", "ORD-1"):
        assert shown in text
    assert "Expires" in text and '"amount": 250' in text
    assert "Review the request" in page and "photos are on the ticket" in page
    assert link_in(bob) != link_in(erin)
    assert link_in(bob).startswith(rig.url + "/r/oncall-email.")


async def test_the_page_shows_the_request_and_decides_nothing() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(BOB)[0])
            async with rig.client() as http:
                for _ in range(3):  # a scanner, then another, then the person
                    shown = await http.get(link)
                    head = await http.head(link)
            assert shown.status_code == 200 and head.status_code == 200
            assert "Refund $250 for ORD-1" in shown.text and "Approve with changes" in shown.text
            assert shown.headers["cache-control"] == "no-store"
            assert shown.headers["referrer-policy"] == "no-referrer"
            assert "script-src" not in shown.headers["content-security-policy"]
            assert "default-src 'none'" in shown.headers["content-security-policy"]
            assert "<script" not in shown.text
            assert (await rig.get(request.id)).status is Status.PENDING
            assert await rig.audit("request.approved") == []


async def test_approve_reject_and_edit_each_decide_as_the_recipient() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            approved, rejected, edited = [await rig.submit() for _ in range(3)]
            for request in (approved, rejected, edited):
                await channel.send(rig.notice(request, channel))
            links = [link_in(m) for m in inbox.to(BOB)]
            forms = [
                {"decision": "approve"},
                {"decision": "reject", "reason": "Wrong order: the parcel was fine"},
                {"decision": "edit", "arg.amount": "40"},
            ]
            async with rig.client() as http:
                for link, form in zip(links, forms, strict=True):
                    page = (await http.get(link)).text
                    done = await http.post(link, data={**form_fields(page), **form})
                    assert done.status_code == 200, done.text
            a, r, e = [await rig.get(x.id) for x in (approved, rejected, edited)]
    assert a.status is Status.APPROVED and a.decisions[0].by == "bob"
    assert a.decisions[0].via == "email" and a.decisions[0].role == "admin"
    assert r.status is Status.REJECTED
    assert r.decisions[0].decision is DecisionKind.REJECT
    assert r.decisions[0].reason == "Wrong order: the parcel was fine"
    assert e.status is Status.APPROVED and e.final_args == {"order_id": "ORD-1", "amount": 40}
    assert e.decisions[0].modified_args == {"amount": 40}


async def test_an_edit_that_breaks_the_schema_is_refused_and_keeps_the_link() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            await channel.send(rig.notice(request, channel))
            link = link_in(inbox.to(BOB)[0])
            async with rig.client() as http:
                fields = form_fields((await http.get(link)).text)
                bad = await http.post(link, data={**fields, "decision": "edit", "arg.amount": "-5"})
                empty = await http.post(link, data={**fields, "decision": "reject", "reason": " "})
                good = await http.post(link, data={**fields, "decision": "approve"})
            assert bad.status_code == 422 and "do not fit the tool" in bad.text
            assert empty.status_code == 422 and "needs a reason" in empty.text
            assert good.status_code == 200
            assert (await rig.get(request.id)).status is Status.APPROVED


async def test_an_answer_in_the_tools_place_from_the_page() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port)
        async with rigged(channel) as rig:
            request = await rig.submit()
            no_answers = await rig.submit(
                policy={"min_role": "publisher", "timeout_s": 300, "decisions": ["approve"]}
            )
            for each in (request, no_answers):
                await channel.send(rig.notice(each, channel))
            link, other = (link_in(m) for m in inbox.to(BOB))
            async with rig.client() as http:
                page = (await http.get(link)).text
                assert 'value="respond"' in page and "Send answer" in page
                other_page = (await http.get(other)).text
                assert 'value="respond"' not in other_page and 'value="reject"' not in other_page
                fields = form_fields(page)
                for blank in (" ", "null"):
                    refused = await http.post(
                        link, data={**fields, "decision": "respond", "response": blank}
                    )
                    assert refused.status_code == 422, refused.text  # the link is not spent
                answer = '{"refunded": false, "note": "called the customer"}'
                done = await http.post(
                    link, data={**fields, "decision": "respond", "response": answer}
                )
                assert done.status_code == 200 and "Answered" in done.text
                # a page without the form cannot answer either: the policy refuses it
                fields = form_fields(other_page)
                forged = await http.post(
                    other, data={**fields, "decision": "respond", "response": "done"}
                )
                assert forged.status_code == 403, forged.text
            answered = await rig.get(request.id)
            assert (await rig.get(no_answers.id)).status is Status.PENDING
    assert answered.status is Status.RESPONDED
    [decision] = answered.decisions
    assert decision.response == {"refunded": False, "note": "called the customer"}
    assert (decision.by, decision.via) == ("bob", "email")


def test_the_smtp_password_is_never_shown() -> None:
    settings = EmailSettings.model_validate(
        {
            "smtp_url": "smtps://mailer:hunter2-secret@mail.example.com:465",
            "from": "signoff@example.com",
            "to": {BOB: {"sub": "bob", "role": "admin"}},
        }
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    with pytest.raises(ValidationError) as bad:
        EmailSettings.model_validate(
            {
                "smtp_url": "http://u:hunter2-secret@x",
                "from": "a@b.c",
                "to": {BOB: {"sub": "b", "role": "admin"}},
            }
        )
    assert "hunter2" not in str(bad.value)
    with pytest.raises(ValidationError):
        EmailSettings.model_validate(
            {
                "smtp_url": "smtp://x",
                "from": "a@b.c",
                "to": {"Bob <b@x.y>, c@x.y": {"sub": "b", "role": "admin"}},
            }
        )


def test_without_its_extra_the_module_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtplib", None)
    monkeypatch.delitem(sys.modules, "signoff.channels.email", raising=False)
    with pytest.raises(MissingDependency, match=r"signoff\[email\]"):
        importlib.import_module("signoff.channels.email")


async def test_a_password_goes_only_over_starttls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server's cert
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        logins.append((auth.login, auth.password))
        return AuthResult(success=auth.password == b"p@ss:word")

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        channel = email_channel(port, smtp_url=f"smtp://mailer:p%40ss%3Aword@127.0.0.1:{port}")
        async with rigged(channel) as rig:
            request = await rig.submit()
            receipt = await channel.send(rig.notice(request, channel))
    finally:
        controller.stop()
    assert receipt is not None and len(inbox.messages) == 2
    assert logins == [(b"mailer", b"p@ss:word")]


async def test_a_password_is_not_sent_to_a_server_without_starttls() -> None:
    with smtp_server() as (inbox, port):
        channel = email_channel(port, smtp_url=f"smtp://mailer:secret@127.0.0.1:{port}")
        async with rigged(channel) as rig:
            request = await rig.submit()
            with pytest.raises(DeliveryFailed) as failed:
                await channel.send(rig.notice(request, channel))
    assert inbox.messages == [] and "secret" not in str(failed.value)

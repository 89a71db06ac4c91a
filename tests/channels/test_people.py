"""Seed 002's approver: a high-risk call reaches the on-call people by email and by SMS;
the first decision, from either channel, is the one that counts, and the agent waiting on
the call hears it at once."""

from __future__ import annotations

import asyncio
import tomllib

from signoff.channels.registry import channel_class
from signoff.models import Status
from tests.channels.conftest import AGENT, free_port, rigged, serving
from tests.channels.mail import BOB, email_channel, link_in, smtp_server
from tests.channels.providers import FakeTwilio
from tests.channels.texts import BOB_PHONE, Texting, said, sms_channel


async def test_a_high_risk_call_emails_and_texts_the_right_people() -> None:
    twilio = FakeTwilio()
    twilio_port = free_port()
    with smtp_server() as (inbox, smtp_port):
        async with serving(twilio.app(), twilio_port):
            mail = email_channel(smtp_port, to={BOB: {"sub": "bob", "role": "admin"}})
            sms = sms_channel(
                f"http://127.0.0.1:{twilio_port}",
                to={BOB_PHONE: {"sub": "bob", "role": "admin"}},
            )
            async with rigged(mail, sms) as rig:
                request = await rig.submit()  # risk high, as the route's rule matches
                for channel in (mail, sms):
                    await channel.send(rig.notice(request, channel))
                waiting = asyncio.create_task(rig.service.wait(request.id, AGENT, timeout=30))
                texting = Texting(rig, twilio, sms)
                answer = await texting.reply(BOB_PHONE, f"YES {texting.code_for(BOB_PHONE)}")
                decided = await asyncio.wait_for(waiting, 10)
                async with rig.client() as http:
                    page = await http.get(link_in(inbox.to(BOB)[0]))
    # one email and one text, to the on-call approver only
    assert inbox.recipients == [[BOB]] and [m["To"] for m in twilio.sent] == [BOB_PHONE]
    assert said(answer) == "Approved: issue_refund may run now."
    assert decided.status is Status.APPROVED and decided.decisions[0].via == "sms"
    # the email link now says who decided, and decides nothing more
    assert page.status_code == 409 and "already approved by bob at" in page.text


CONTRACT_TOML = """
[channels.oncall-email]
type = "email"
smtp_url = "smtp://mail.example.com:587"
from = "signoff@example.com"
to = { "bob@example.com" = { sub = "bob", role = "admin" } }
[channels.oncall-sms]
type = "sms"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "secret"
from = "+15550001111"
api_url = "https://api.twilio.com"
to = { "+15551234567" = { sub = "bob", role = "admin" } }
[channels.ably]
type = "ably"
key = "appid.keyid:secret"
channel = "ai:approvals"
rest_url = "https://rest.ably.io"
"""


def test_the_contracts_tables_load_through_the_registry() -> None:
    for name, table in tomllib.loads(CONTRACT_TOML)["channels"].items():
        cls = channel_class(table["type"])
        assert cls.kind == table["type"]
        channel = cls(name, cls.settings_model.model_validate(table))
        assert channel.routes()  # each takes decisions over HTTP

"""The SMS channel wired to a local Twilio: helpers shared by the SMS tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from signoff.channels.sms import SmsChannel, SmsSettings
from tests.channels.conftest import Rig, free_port, rigged, serving
from tests.channels.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, twilio_inbound

BOB_PHONE = "+15551234567"
ERIN_PHONE = "+15557654321"
OUR_NUMBER = "+15550001111"


def sms_channel(api_url: str, **overrides: Any) -> SmsChannel:
    settings: dict[str, Any] = {
        "type": "sms",
        "account_sid": TWILIO_SID,
        "auth_token": TWILIO_TOKEN,
        "from": OUR_NUMBER,
        "api_url": api_url,
        "to": {
            BOB_PHONE: {"sub": "bob", "role": "admin"},
            ERIN_PHONE: {"sub": "erin", "role": "editor"},
        },
    }
    settings.update(overrides)
    return SmsChannel("oncall-sms", SmsSettings.model_validate(settings))


@dataclass
class Texting:
    rig: Rig
    twilio: FakeTwilio
    channel: SmsChannel

    @property
    def inbound_url(self) -> str:
        return self.rig.url + self.channel.inbound_path

    def code_for(self, number: str, request_id: str | None = None) -> str:
        """The code in the last text to ``number`` (about ``request_id``, if given)."""
        texts = [m["Body"] for m in self.twilio.sent if m["To"] == number]
        if request_id is not None:
            texts = texts[-1:]
        found = re.search(r"(?:YES|NO|ANSWER) (\d{6})", texts[-1])
        assert found is not None, texts
        return found.group(1)

    async def reply(
        self, number: str, body: str, *, sid: str | None = None, token: str = TWILIO_TOKEN
    ) -> httpx.Response:
        """Text ``body`` from ``number``, as Twilio delivers it to the inbound webhook."""
        form, headers = twilio_inbound(
            self.inbound_url, from_=number, body=body, sid=sid, token=token
        )
        async with self.rig.client() as http:
            return await http.post(self.channel.inbound_path, data=form, headers=headers)


def said(answer: httpx.Response) -> str:
    """The text of a TwiML answer's message ("" when it has none)."""
    found = re.search(r"<Message>(.*)</Message>", answer.text, re.S)
    return found.group(1) if found else ""


@asynccontextmanager
async def texting(**overrides: Any) -> AsyncIterator[Texting]:
    twilio = FakeTwilio()
    port = free_port()
    async with serving(twilio.app(), port):
        channel = sms_channel(f"http://127.0.0.1:{port}", **overrides)
        async with rigged(channel) as rig:
            yield Texting(rig, twilio, channel)

"""A real SMTP server in-process (aiosmtpd) that keeps what it is sent, and helpers to read
the email channel's messages and pages as a person would."""

from __future__ import annotations

import email
import email.policy
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from signoff.channels.email import EmailChannel, EmailSettings
from tests.channels.conftest import free_port

BOB = "bob@example.com"
ERIN = "erin@example.com"


class Inbox:
    """aiosmtpd's handler: every message it accepts, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def email_channel(port: int, **overrides: Any) -> EmailChannel:
    settings: dict[str, Any] = {
        "type": "email",
        "smtp_url": f"smtp://127.0.0.1:{port}",
        "from": "signoff@example.com",
        "to": {
            BOB: {"sub": "bob", "role": "admin"},
            ERIN: {"sub": "erin", "role": "editor"},
        },
    }
    settings.update(overrides)
    return EmailChannel("oncall-email", EmailSettings.model_validate(settings))


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def link_in(message: EmailMessage) -> str:
    found = re.search(r"http://127\.0\.0\.1:\d+/r/\S+", text_of(message))
    assert found is not None, text_of(message)
    return found.group(0)


def form_fields(page: str) -> dict[str, str]:
    """The page's hidden fields (the same in each of its forms)."""
    fields = dict(re.findall(r'<input type="hidden" name="(csrf|digest)" value="([^"]*)">', page))
    return {k: html.unescape(v) for k, v in fields.items()}

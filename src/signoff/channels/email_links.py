"""The email channel's links and the forms on their pages.

A link's token is ``<payload>.<mac>``: the payload (base64url JSON) names the request, the
recipient (by a keyed digest of the address, so the URL carries no address), an expiry and
a nonce; the MAC is HMAC-SHA256 with the server key over the channel's name and the
payload. Nothing is stored to make or check one; the nonce is spent in the store when the
link decides. A page's form token is an HMAC of the link and of the arguments' digest the
page showed, so only a page this server rendered for this link has it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from signoff._util import to_datetime
from signoff.channels.email_page import when
from signoff.channels.people import Person, b64, mac, read_body, same, unb64
from signoff.errors import PayloadTooLarge, SignoffError

_LINK = "signoff-email-link-v1"
_PAGE = "signoff-email-page-v1"
_RCPT = "signoff-email-recipient-v1"
#: the forms on the page are a few kilobytes at most
MAX_FORM_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Link:
    """A verified link: whose it is, for which request, until when."""

    token: str
    request_id: str
    address: str
    person: Person
    expires: float
    nonce: str


class LinkRefused(SignoffError):
    """What a link's page says instead of deciding: a bad, expired or used link, a form
    that did not come from the page, a decision that cannot be made."""

    code = "link_refused"

    def __init__(self, message: str, *, status: int, title: str = "Not decided") -> None:
        super().__init__(message)
        self.status = status
        self.title = title


class Links:
    """Makes and reads one channel's links."""

    def __init__(
        self, channel: str, key: bytes, people: Mapping[str, Person], now: Callable[[], float]
    ) -> None:
        self._channel, self._key, self._people, self._now = channel, key, people, now
        self.tags = {address: b64(mac(key, _RCPT, address.lower())[:9]) for address in people}
        self._addresses = {tag: address for address, tag in self.tags.items()}

    def make(self, request_id: str, address: str, expires: float) -> str:
        payload = {
            "r": request_id,
            "a": self.tags[address],
            "e": int(expires),
            "n": secrets.token_urlsafe(12),
        }
        body = b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{b64(mac(self._key, _LINK, self._channel, body))}"

    def read(self, token: str) -> Link:
        """The link ``token`` stands for; raises :class:`LinkRefused`."""
        body, _, signature = token.partition(".")
        expected = b64(mac(self._key, _LINK, self._channel, body))
        if not signature or not same(signature, expected):
            raise LinkRefused(
                "This link is not valid: it may have been cut short or altered. Use the "
                "link exactly as it arrived in your email.",
                status=404,
                title="This link does not work",
            )
        try:
            fields: dict[str, Any] = json.loads(unb64(body) or b"")
            tag, request_id = str(fields["a"]), str(fields["r"])
            expires, nonce = float(fields["e"]), str(fields["n"])
        except (ValueError, KeyError, TypeError) as exc:  # signed by us, so never expected
            raise LinkRefused("This link is not valid.", status=404) from exc
        address = self._addresses.get(tag)
        if address is None:
            raise LinkRefused(
                "This link was made for someone who is no longer an approver here.",
                status=403,
                title="This link does not work",
            )
        if self._now() >= expires:
            raise LinkRefused(
                f"This link expired at {when(to_datetime(expires))}. The request may still "
                "be open on the dashboard.",
                status=410,
                title="This link has expired",
            )
        return Link(token, request_id, address, self._people[address], expires, nonce)

    def page_token(self, link: Link, digest: str) -> str:
        return b64(mac(self._key, _PAGE, link.token, digest))


async def read_form(request: Request) -> dict[str, str]:
    try:
        raw = (await read_body(request, MAX_FORM_BYTES)).decode()
        return dict(parse_qsl(raw, max_num_fields=100))
    except (PayloadTooLarge, UnicodeDecodeError, ValueError) as exc:
        raise LinkRefused("The form could not be read.", status=400) from exc


def typed(current: Any, text: str) -> Any:
    """A form field's text as a value of the argument's kind: a string stays text, anything
    else is read as JSON (``40``, ``true``, ``["a"]``)."""
    if isinstance(current, str):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LinkRefused(f"{text[:100]!r} is not a valid value here.", status=422) from exc

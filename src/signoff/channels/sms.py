"""SMS: a short text with a code, and a reply that decides (Twilio's API shape).

- ``send`` texts every number in ``to`` through Twilio's REST API (``POST
  /2010-04-01/Accounts/{sid}/Messages.json``) with the ``twilio`` package, its ``api``
  domain pointed at ``api_url``: the tool, a short reason, the risk, the expiry and a
  six-digit code for this request and this number.
- The code is an HMAC (server key) of the channel, the request, the number and the digest of
  the arguments, so nothing is stored, any replica knows it, and a code stops working when
  the arguments change (nobody approves arguments they were not sent).
- The reply ``YES <code>``, ``NO <code> <reason>`` or ``ANSWER <code> <text>`` (the tool's
  result in its place, where the policy's ``decisions`` allow it) arrives at ``POST
  /channels/sms/{name}/inbound``. It is believed only with a valid ``X-Twilio-Signature``
  (the auth token's HMAC over the public URL and the form), from the configured account and
  a configured number; a message id is handled once; a code decides once; each number has
  ``max_attempts`` replies per ``attempt_window_s`` (a guess at a code is one of them). The
  answer is TwiML that says what happened.
"""

from __future__ import annotations

import base64
import logging
import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote

from pydantic import ConfigDict, Field, SecretStr, field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signoff._util import to_datetime
from signoff.channels.base import (
    Channel,
    ChannelContext,
    ChannelSettings,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    NoticeType,
)
from signoff.channels.people import (
    Person,
    Seconds,
    check_people,
    context_of,
    mac,
    read_body,
    same,
    short,
)
from signoff.decisions import typed_answer
from signoff.errors import (
    ConfigError,
    InvalidArguments,
    MissingDependency,
    PayloadTooLarge,
    SignoffError,
)
from signoff.models import ApprovalRequest, DecisionKind, Status
from signoff.types import JSONObject

try:
    import aiohttp
    from twilio.base.exceptions import TwilioException
    from twilio.http import AsyncHttpClient
    from twilio.http.response import Response as TwilioResponse
    from twilio.request_validator import RequestValidator
    from twilio.rest import Client
    from twilio.twiml.messaging_response import MessagingResponse
except ImportError as exc:  # pragma: no cover - exercised by a test with the module hidden
    raise MissingDependency("twilio", "sms") from exc

_CODE = "signoff-sms-code-v1"
_E164 = r"^\+[1-9][0-9]{6,14}$"
#: Twilio's inbound form is a few hundred bytes
MAX_FORM_BYTES = 16_384
#: how long a handled message id is remembered (Twilio retries within minutes)
SEEN_FOR_S = 2 * 86_400.0
_SENT = frozenset({NoticeType.REQUEST, NoticeType.ESCALATED})
_YES = frozenset({"YES", "Y", "APPROVE"})
_NO = frozenset({"NO", "N", "REJECT"})
_ANSWER = frozenset({"ANSWER"})
_KINDS = {
    **dict.fromkeys(_YES, DecisionKind.APPROVE),
    **dict.fromkeys(_NO, DecisionKind.REJECT),
    **dict.fromkeys(_ANSWER, DecisionKind.RESPOND),
}
USAGE = (
    "Reply YES <code> to approve, NO <code> <reason> to reject, or ANSWER <code> <text> to "
    "answer in the tool's place."
)


class SmsSettings(ChannelSettings):
    """``[channels.NAME]`` with ``type = "sms"``."""

    # secrets are never echoed back in a validation error
    model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

    type: Literal["sms"] = "sms"
    account_sid: str = Field(pattern=r"^AC[0-9A-Za-z]{32}$")
    auth_token: SecretStr
    from_: str = Field(alias="from", pattern=_E164)
    #: where Twilio's REST API is (a test points it at a local server)
    api_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://[^/?#]+/?$")
    #: number (E.164) → who replies from that number are
    to: dict[str, Person] = Field(min_length=1)
    max_attempts: int = Field(default=10, ge=1, le=100)
    attempt_window_s: Seconds = 600.0
    timeout_s: Seconds = 30.0

    @field_validator("to")
    @classmethod
    def _numbers(cls, value: dict[str, Person]) -> dict[str, Person]:
        for number in value:
            if not re.fullmatch(_E164, number):
                raise ValueError(f"{number!r} is not an E.164 number (+15551234567)")
        return value


class SmsChannel(Channel):
    kind = "sms"
    settings_model = SmsSettings
    settings: SmsSettings

    async def start(self, context: ChannelContext) -> None:
        check_people(self.settings.to, context.roles, self.name)
        if context.pending is None:
            raise ConfigError(f"channel {self.name!r}: SMS replies need the pending requests")
        token = self.settings.auth_token.get_secret_value()
        self._validator = RequestValidator(token)
        self._http = _Http(self.settings.timeout_s)
        self._client = Client(
            self.settings.account_sid, token, self.settings.account_sid, http_client=self._http
        )
        # the configured address, whatever TWILIO_EDGE / TWILIO_REGION say
        self._client.edge = None
        self._client.region = None
        self._client.api.base_url = self.settings.api_url.rstrip("/")
        await super().start(context)

    async def aclose(self) -> None:
        http: _Http | None = getattr(self, "_http", None)
        if http is not None:
            await http.close()

    # -- sending ---------------------------------------------------------------------------

    def code(self, request: ApprovalRequest, number: str) -> str:
        """The six digits that let ``number`` decide ``request`` as it is now."""
        key = context_of(self).key
        raw = mac(key, _CODE, self.name, request.id, number, request.args_digest)
        return f"{int.from_bytes(raw[:8], 'big') % 1_000_000:06d}"

    def text(self, request: ApprovalRequest, number: str) -> str:
        code = self.code(request, number)
        reason = short(request.reason, 70)
        return (
            f"signoff: {short(request.tool, 40)} needs your OK"
            + (f": {reason}" if reason else "")
            + f" ({request.risk.value} risk, expires {request.expires_at:%H:%M} UTC). "
            + _choices(request, code)
        )

    async def send(self, notice: Notice) -> JSONObject | None:
        request = notice.request
        if notice.type not in _SENT or request.status is not Status.PENDING:
            return None
        if request.expires_at.timestamp() <= context_of(self).now():
            return None
        sent: dict[str, str] = {}
        refused: dict[str, str] = {}
        for number in self.settings.to:
            try:
                message = await self._client.messages.create_async(
                    to=number, from_=self.settings.from_, body=self.text(request, number)
                )
            except TwilioException as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status == 429 or status >= 500 or status == 0:
                    raise DeliveryFailed(f"Twilio answered {status}: {_said(exc)}") from exc
                # a number Twilio will not text (invalid, unsubscribed) stays that way
                refused[number] = f"{status}: {_said(exc)}"[:200]
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise DeliveryFailed(f"cannot reach Twilio: {exc}") from exc
            else:
                sent[number] = str(message.sid)
        if not sent:
            raise DeliveryRefused(f"Twilio refused every number: {refused}")
        receipt: JSONObject = {"message_sids": sent}
        if refused:
            receipt["refused"] = refused
        return receipt

    # -- replies ---------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [Route(self.inbound_path, self._inbound, methods=["POST"])]

    @property
    def inbound_path(self) -> str:
        return f"/channels/sms/{quote(self.name, safe='')}/inbound"

    async def _inbound(self, request: Request) -> Response:
        context = context_of(self)
        try:
            raw = await read_body(request, MAX_FORM_BYTES)
        except PayloadTooLarge:
            return _twiml(None, 413)
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        url = context.public_url + self.inbound_path
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not self._validator.validate(url, form, signature):
            await context.refused(None, "sms.reply", "no valid X-Twilio-Signature")
            return _twiml(None, 403)
        if not same(form.get("AccountSid", ""), self.settings.account_sid):
            await context.refused(None, "sms.reply", "another Twilio account")
            return _twiml(None, 403)
        return _twiml(await self._reply(form))

    async def _reply(self, form: dict[str, str]) -> str:
        """What to answer the sender: every path says what happened."""
        context = context_of(self)
        number, sid = form.get("From", ""), form.get("MessageSid") or form.get("SmsSid", "")
        if not sid:
            return "That message could not be read."
        if not await context.spend(f"sms:{self.name}:sid:{sid}", self._until(SEEN_FOR_S)):
            await context.refused(None, "sms.reply", f"message {sid[:64]} replayed")
            return "This message was handled already."
        person = self.settings.to.get(number)
        if person is None:
            await context.refused(None, "sms.reply", f"unknown number {number[:32]}")
            return "This number may not decide approval requests here."
        words = form.get("Body", "").split(maxsplit=2)
        kind = _KINDS.get(words[0].upper()) if words else None
        if kind is None or len(words) < 2 or not words[1].isdigit():
            return USAGE
        code, rest = words[1], words[2].strip() if len(words) > 2 else ""
        if not await self._attempt(number):
            await context.refused(None, "sms.reply", f"too many replies from {number}")
            return "Too many replies from this number; try again later or use the dashboard."
        assert context.pending is not None
        found = [r for r in await context.pending() if same(self.code(r, number), code)]
        if len(found) != 1:
            await context.refused(None, "sms.reply", f"no request with that code for {number}")
            return (
                f"No open request has the code {code[:8]} for you: it may be decided, expired or"
                " changed. Check the code."
                if not found
                else "That code matches several requests; decide on the dashboard."
            )
        target = found[0]
        said = _what_was_said(kind, code, rest)
        if isinstance(said, str):
            return said
        used = f"sms:{self.name}:code:{target.id}:{number}:{code}"
        if not await context.spend(used, target.expires_at):
            await context.refused(target.id, "sms.reply", "code used already")
            return f"You used the code {code} already."
        try:
            decided = await context.decide(
                target.id,
                person.principal(self.name, number),
                kind,
                **said,
                seen_digest=target.args_digest,
                via="sms",
            )
        except SignoffError as exc:
            return f"Not decided: {short(exc.message, 200)}"
        return _told(decided)

    async def _attempt(self, number: str) -> bool:
        """Take one of the number's replies for this window; False when none is left. The
        count lives in the store, so it holds across replicas."""
        context = context_of(self)
        window = self.settings.attempt_window_s
        slot = int(context.now() // window)
        until = to_datetime((slot + 1) * window)
        for i in range(self.settings.max_attempts):
            if await context.spend(f"sms:{self.name}:try:{number}:{slot}:{i}", until):
                return True
        return False

    def _until(self, seconds: float) -> datetime:
        return to_datetime(context_of(self).now() + seconds)


class _Http(AsyncHttpClient):  # type: ignore[misc]  # the twilio package is untyped
    """The twilio package's HTTP client abstraction on one aiohttp session. (Its own async
    client builds ``aiohttp.BasicAuth``, deprecated in aiohttp 3.14; this one writes the
    header itself and logs nothing.)"""

    def __init__(self, timeout: float) -> None:
        super().__init__(logging.getLogger(__name__), True, timeout)
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        sent = dict(headers or {})
        if auth is not None:
            pair = f"{auth[0]}:{auth[1]}".encode()
            sent["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        async with self._session.request(
            method.upper(),
            uri,
            params={k: str(v) for k, v in (params or {}).items()},
            data=data,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as response:
            return TwilioResponse(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _what_was_said(kind: DecisionKind, code: str, rest: str) -> dict[str, Any] | str:
    """Decide's keywords for a reply's text after the code, or what to ask for instead."""
    if kind is DecisionKind.REJECT and not rest:
        return f"Say why: NO {code} <reason>."
    if kind is DecisionKind.RESPOND:
        try:
            return {"response": typed_answer(rest)}
        except InvalidArguments:
            return f"Say what the agent receives: ANSWER {code} <text>."
    return {"reason": rest[:1000] or None}


def _told(decided: ApprovalRequest) -> str:
    """What the sender is told after their decision was taken."""
    tool = short(decided.tool, 40)
    if decided.status is Status.APPROVED:
        return f"Approved: {tool} may run now."
    if decided.status is Status.REJECTED:
        return f"Rejected: {tool} will not run; the agent is told why."
    if decided.status is Status.RESPONDED:
        return f"Answered: {tool} will not run; the agent receives your answer."
    return (
        f"Your approval of {tool} is recorded: {len(decided.approvals)} of "
        f"{decided.policy.quorum} so far."
    )


def _choices(request: ApprovalRequest, code: str) -> str:
    """The replies this request takes, as its policy's ``decisions`` allow."""
    allowed = request.policy.decisions
    said = [f"YES {code}"] if "approve" in allowed else []
    said += [f"NO {code} <reason>"] if "reject" in allowed else []
    said += [f"ANSWER {code} <text>"] if "respond" in allowed else []
    if len(said) > 1:
        said[-1] = "or " + said[-1]
    return "Reply " + (", " if len(said) > 2 else " ").join(said) + "."


def _said(exc: TwilioException) -> str:
    return short(str(getattr(exc, "msg", "") or exc), 200)


def _twiml(text: str | None, status: int = 200) -> Response:
    """Twilio's answer format: a reply message, or none."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return Response(str(response), status_code=status, media_type="text/xml")

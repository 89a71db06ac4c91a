"""The webhook channel: every event POSTed, signed the Standard Webhooks way, to the
operator's URL; an ``approval_request`` carries a ``callbackUrl`` through which the
receiver decides, as the channel's configured principal.

Sending (``send``) tries once and raises; the outbox retries:

- 2xx is delivered; 410 Gone is :class:`DeliveryRefused` (never again); anything else —
  3xx included, since redirects are not followed — and every timeout or connection error
  is :class:`DeliveryFailed`, with the receiver's ``Retry-After`` where it sent one.
- ``webhook-id`` is the delivery's id, the same on every retry; ``webhook-timestamp`` is
  this attempt's; ``webhook-signature`` holds one ``v1`` signature per valid secret, so a
  secret rotates without a gap (``secret`` signs, so does ``previous_secret`` while set).
- The URL is the operator's, from the config, and nothing in a request or an event can
  change where anything is sent (SSRF). Environment proxies are not used; ``proxy`` is.

The callback, ``POST {public_url}/channels/webhook/{name}/callback/{token}``, takes the seed
guides' body ``{"approved", "reason", "modifiedParams"}`` (and ``seen_digest``) and decides
through the service like any approver would (role floor, self-approval, editable fields,
schema, quorum, seen arguments), as ``principal``. Its token (:mod:`callback_token`) names
one request and this channel, expires with the request, and decides once: the first
readable POST spends it, whatever the service then answers.
"""

from __future__ import annotations

import email.utils
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signoff._version import __version__
from signoff.channels import callback_token, standard_webhooks
from signoff.channels.base import (
    Channel,
    ChannelContext,
    ChannelSettings,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    NoticeType,
    message,
)
from signoff.channels.inbound import load, read_body
from signoff.errors import InvalidArguments, SignoffError, UsageError
from signoff.models import ApprovalRequest, DecisionKind, Principal
from signoff.problems import from_error, problem
from signoff.types import JSONObject

log = logging.getLogger(__name__)

#: how long after its request's expiry a spent callback is remembered (clock skew)
SPENT_MARGIN_S = 60
#: the longest ``Retry-After`` believed (a receiver cannot park a delivery for a year)
MAX_RETRY_AFTER_S = 7 * 86400.0
_NOT_FOUND = "no such callback: it is unknown, used already or expired"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return value


def _http_secret_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value())
    return value


def _whsec(value: SecretStr) -> SecretStr:
    standard_webhooks.secret_bytes(value.get_secret_value())
    return value


WebhookSecret = Annotated[SecretStr, AfterValidator(_whsec)]


class PrincipalSettings(BaseModel):
    """Who a decision through the channel is: an approver with a role on the ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=200)


class WebhookSettings(ChannelSettings):
    """``[channels.NAME]`` with ``type = "webhook"``."""

    # secrets are validated: an error must not quote the value it rejects
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["webhook"] = "webhook"
    #: where every event is POSTed (http or https; the operator's, used as given)
    url: Annotated[str, AfterValidator(_http_url)]
    #: the Standard Webhooks signing secret, ``whsec_`` + base64 of 24-64 random bytes
    secret: WebhookSecret
    #: the secret being rotated out: messages carry its signature too while it is set
    previous_secret: WebhookSecret | None = None
    #: who decides through the callback URL; without one there is no callback
    principal: PrincipalSettings | None = None
    #: how long one attempt may take, connection included
    timeout_s: float = Field(default=15.0, gt=0, le=120)
    #: require callback POSTs to be signed with the channel's secret (Standard Webhooks
    #: headers, ±5 minutes), as well as carrying the URL's token
    signed_callbacks: bool = False
    #: an egress proxy to send through (http://…), e.g. one that blocks internal ranges
    proxy: Annotated[SecretStr, AfterValidator(_http_secret_url)] | None = None


class CallbackBody(BaseModel):
    """What a receiver POSTs to ``callbackUrl``: the seed guides' signal shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approved: StrictBool
    reason: str | None = Field(default=None, max_length=10_000)
    modifiedParams: JSONObject | None = None  # the seed's own name
    #: the ``args_digest`` the receiver decided on (409 if the arguments changed since)
    seen_digest: str | None = Field(default=None, min_length=1, max_length=100)
    #: optional; when given it must be the callback's request
    requestId: str | None = Field(default=None, max_length=200)


def retry_after(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


class WebhookChannel(Channel):
    """Signed POSTs to the operator's URL, and the callback that decides."""

    kind = "webhook"
    settings_model = WebhookSettings
    settings: WebhookSettings

    def __init__(self, name: str, settings: WebhookSettings) -> None:
        super().__init__(name, settings)
        secrets = [settings.secret, settings.previous_secret]
        self._keys = [standard_webhooks.secret_bytes(s.get_secret_value()) for s in secrets if s]
        self._session: aiohttp.ClientSession | None = None

    async def start(self, context: ChannelContext) -> None:
        if self.settings.principal is not None:
            context.roles.check(self.settings.principal.role)
        await super().start(context)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # a proxy is configured here or not at all
                headers={"User-Agent": f"signoff/{__version__}"},
            )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _context(self) -> ChannelContext:
        if self.context is None:
            raise UsageError(f"channel {self.name!r} was not started")
        return self.context

    # -- sending ----------------------------------------------------------------------------

    def callback_url(self, request: ApprovalRequest) -> str | None:
        """The URL through which ``request`` is decided, if this channel decides."""
        context = self._context()
        if self.settings.principal is None:
            return None
        token = callback_token.mint(context.key, self.name, request.id, request.expires_at)
        return f"{context.public_url}/channels/webhook/{quote(self.name, safe='')}/callback/{token}"

    def body(self, notice: Notice) -> bytes:
        """The exact bytes POSTed (and signed) for ``notice``."""
        callback = self.callback_url(notice.request) if notice.type is NoticeType.REQUEST else None
        document = message(notice, callback_url=callback)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    async def send(self, notice: Notice) -> JSONObject | None:
        context = self._context()
        session = self._session
        if session is None:
            raise DeliveryFailed(f"channel {self.name!r} is closed")
        body = self.body(notice)
        try:
            signed = standard_webhooks.headers(
                self._keys, notice.delivery_id, int(context.now()), body
            )
        except ValueError as exc:
            raise DeliveryRefused(f"cannot sign delivery {notice.delivery_id!r}: {exc}") from exc
        proxy = self.settings.proxy.get_secret_value() if self.settings.proxy else None
        try:
            async with session.post(
                self.settings.url,
                data=body,
                headers={"Content-Type": "application/json", **signed},
                allow_redirects=False,
                proxy=proxy,
            ) as response:
                # the answer's body is never read: only its status and Retry-After count
                status = response.status
                wait = retry_after(response.headers.get("Retry-After"), context.now())
        except TimeoutError as exc:
            raise DeliveryFailed(
                f"the receiver did not answer within {self.settings.timeout_s:g} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # the URL is not repeated: it may carry a credential
            raise DeliveryFailed(f"could not reach the receiver ({type(exc).__name__})") from exc
        if 200 <= status < 300:
            return None
        if status == 410:
            raise DeliveryRefused("the receiver answered 410 Gone: it wants no more deliveries")
        raise DeliveryFailed(f"the receiver answered {status}", retry_after=wait)

    # -- the callback -----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        if self.settings.principal is None:
            return []  # nobody to decide as: no callback
        path = f"/channels/webhook/{self.name}/callback/{{token}}"
        return [Route(path, self._callback, methods=["POST"], name=f"webhook:{self.name}")]

    def principal(self) -> Principal | None:
        """The identity a callback decides as (the channel vouches for it: ``iss``)."""
        configured = self.settings.principal
        if configured is None:
            return None
        return Principal(
            sub=configured.sub,
            role=configured.role,
            kind="approver",
            claims={"iss": f"signoff:channel:{self.name}"},
        )

    async def _callback(self, request: Request) -> Response:
        context, principal = self.context, self.principal()
        if context is None or principal is None:
            return problem(404, _NOT_FOUND, code="not_found")
        found = callback_token.read(context.key, self.name, str(request.path_params["token"]))
        if found is None:
            # forged or mangled: not audited, or anyone could fill the audit log
            return problem(404, _NOT_FOUND, code="not_found")
        request_id = found.request_id
        attempted = f"decide via {self.name}"
        if context.now() >= found.expires:
            await context.refused(request_id, attempted, "the callback expired with its request")
            return problem(404, _NOT_FOUND, code="not_found")
        try:
            raw = await read_body(request)
            if self.settings.signed_callbacks:
                why = standard_webhooks.verify(self._keys, request.headers, raw, context.now())
                if why is not None:
                    await context.refused(request_id, attempted, f"unsigned callback: {why}")
                    return problem(401, f"the callback's signature does not verify: {why}")
            body = load(raw, CallbackBody)
            kind = _check(body, request_id)
        except SignoffError as exc:
            await context.refused(request_id, attempted, exc.message)
            return from_error(exc)
        until = found.expires + SPENT_MARGIN_S
        if not await context.spend(callback_token.spend_key(self.name, request_id), _at(until)):
            await context.refused(request_id, attempted, "the callback was used already")
            return problem(404, _NOT_FOUND, code="not_found")
        try:
            decided = await context.decide(
                request_id,
                principal,
                kind,
                reason=body.reason,
                modified_args=body.modifiedParams,
                seen_digest=body.seen_digest,
                via="webhook",
            )
        except SignoffError as exc:
            # the service audited its own refusals (role, state, edits, seen arguments)
            log.info("webhook %s: callback for %s refused: %s", self.name, request_id, exc.code)
            return from_error(exc)
        return Response(decided.model_dump_json(), media_type="application/json")


def _check(body: CallbackBody, request_id: str) -> DecisionKind:
    """The decision ``body`` asks for; InvalidArguments for what the service would refuse
    before deciding anything (so a body with a mistake does not spend the URL)."""
    if body.requestId is not None and body.requestId != request_id:
        raise InvalidArguments("requestId is not the request this callback decides")
    if body.approved:
        return DecisionKind.APPROVE
    if body.modifiedParams:
        raise InvalidArguments("a rejection cannot carry modifiedParams")
    if not (body.reason and body.reason.strip()):
        raise InvalidArguments("a rejection needs a reason, for the model and the audit")
    return DecisionKind.REJECT


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

"""Ably: the seed guides' transport (``approval-request`` out, ``approval-response`` in).

- ``send`` publishes ``approval-request`` on ``channel`` with Ably's REST client (the
  ``ably`` package, pointed at ``rest_url``): ``data: {tool, arguments, …}`` and
  ``extras.headers.toolCallId`` / ``requestId``, as in the guides. The message id is the
  delivery's, so a retried delivery is one message (Ably's idempotent publishing).
- Decisions come back through Ably's webhook integration (batched, signed with the key) at
  ``POST /channels/ably/{name}/webhook``: ``X-Ably-Key`` names the key and
  ``X-Ably-Signature`` is the base64 HMAC-SHA256 of the raw body with its secret, checked in
  constant time before anything is parsed.
- Each ``approval-response`` is applied as the guides say: the sender is the message's
  ``clientId`` and the role is the ``extras.userClaim`` Ably stamped from the approver's
  token (a role, or a JSON object with a ``role``). Nothing else in a message is believed
  about who sent it. Without a clientId or a known role, from another channel, older than
  ``tolerance_s``, or seen before (its id), a message is refused and audited, never applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signoff._util import to_datetime
from signoff.audit import iso
from signoff.auth import role_from_claims
from signoff.channels.base import (
    Channel,
    ChannelContext,
    ChannelSettings,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    NoticeType,
)
from signoff.channels.people import Seconds, context_of, read_body, same, short
from signoff.errors import ConfigError, MissingDependency, PayloadTooLarge, SignoffError
from signoff.models import ApprovalRequest, DecisionKind, Principal, Status
from signoff.problems import problem
from signoff.types import JSONObject

try:
    import httpx
    from ably import AblyException, AblyRest
    from ably.types.message import Message
except ImportError as exc:  # pragma: no cover - exercised by a test with the module hidden
    raise MissingDependency("ably", "ably") from exc

#: a batch holds up to 1,000 events; messages are at most 64 KiB each
MAX_BODY_BYTES = 4 * 1024 * 1024
_SENT = frozenset({NoticeType.REQUEST, NoticeType.ESCALATED})
_DECISIONS = {
    "approved": DecisionKind.APPROVE,
    "approve": DecisionKind.APPROVE,
    "rejected": DecisionKind.REJECT,
    "reject": DecisionKind.REJECT,
    #: an answer in the tool's place (``data.response``), where the policy allows it
    "responded": DecisionKind.RESPOND,
    "respond": DecisionKind.RESPOND,
}


class _Refused(SignoffError):
    """A response that may not decide anything (it is audited, and answered as refused)."""

    code = "refused"

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class AblySettings(ChannelSettings):
    """``[channels.NAME]`` with ``type = "ably"``."""

    # the key is never echoed back in a validation error
    model_config = ConfigDict(hide_input_in_errors=True)

    type: Literal["ably"] = "ably"
    #: the API key, ``appId.keyId:secret``: publishes, and verifies the webhook's signature
    key: SecretStr
    channel: str = Field(default="ai:approvals", min_length=1, max_length=200)
    #: where Ably's REST API is (a test points it at a local server); https only, because
    #: the ably package never sends a key over plain http
    rest_url: str = Field(default="https://rest.ably.io", pattern=r"^https://[^/?#]+/?$")
    #: how old (or how far ahead) a response may be, by the timestamp Ably gave it
    tolerance_s: Seconds = 300.0

    @field_validator("key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        name, _, secret = value.get_secret_value().partition(":")
        if "." not in name or not secret:
            raise ValueError("must be an Ably API key: appId.keyId:secret")
        return value


class AblyChannel(Channel):
    kind = "ably"
    settings_model = AblySettings
    settings: AblySettings

    async def start(self, context: ChannelContext) -> None:
        key = self.settings.key.get_secret_value()
        self._key_name, _, secret = key.partition(":")
        self._secret = secret.encode()
        url = urlsplit(self.settings.rest_url)
        if url.hostname is None:
            raise ConfigError(f"channel {self.name!r}: rest_url names no host")
        self._rest = AblyRest(
            key=key,
            endpoint=url.hostname,
            tls=True,
            tls_port=url.port or 443,
            use_binary_protocol=False,
            idempotent_rest_publishing=True,
        )
        await super().start(context)

    async def aclose(self) -> None:
        rest = getattr(self, "_rest", None)
        if rest is not None:
            await rest.close()
            self._rest = None

    # -- publishing ------------------------------------------------------------------------

    @staticmethod
    def request_message(notice: Notice) -> dict[str, Any]:
        """The guides' ``approval-request``, with what an approver's screen needs besides."""
        request = notice.request
        return {
            "name": "approval-request",
            "data": {
                "tool": request.tool,
                "arguments": request.final_args,
                "requestId": request.id,
                "reason": request.reason,
                "riskLevel": request.risk.value,
                "context": request.context,
                "minRole": request.policy.min_role,
                "editable": request.policy.editable,
                "argsDigest": request.args_digest,
                "expiresAt": iso(request.expires_at),
            },
            "extras": {
                "headers": {
                    "toolCallId": request.tool_call_id or request.id,
                    "requestId": request.id,
                }
            },
        }

    async def send(self, notice: Notice) -> JSONObject | None:
        if notice.type not in _SENT or notice.request.status is not Status.PENDING:
            return None
        shape = self.request_message(notice)
        message_id = f"{notice.delivery_id}:0"
        message = Message(
            name=shape["name"], data=shape["data"], id=message_id, extras=shape["extras"]
        )
        try:
            await self._rest.channels.get(self.settings.channel).publish(message)
        except AblyException as exc:
            status = int(exc.status_code or 0)
            if status in (401, 403, 404, 400):
                raise DeliveryRefused(
                    f"Ably refused the message: {exc.code} {exc.message}"
                ) from exc
            raise DeliveryFailed(f"Ably answered {status}: {exc.message}") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise DeliveryFailed(f"cannot reach Ably: {exc}") from exc
        return {"message_id": message_id, "channel": self.settings.channel}

    # -- the webhook -----------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        path = f"/channels/ably/{quote(self.name, safe='')}/webhook"
        return [Route(path, self._webhook, methods=["POST"])]

    def signature(self, body: bytes) -> str:
        """What Ably sends as ``X-Ably-Signature`` for ``body``."""
        return base64.b64encode(hmac.new(self._secret, body, hashlib.sha256).digest()).decode()

    async def _webhook(self, request: Request) -> Response:
        context = context_of(self)
        instance = request.url.path
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except PayloadTooLarge as exc:
            return problem(413, exc.message, instance=instance)
        key_name = request.headers.get("x-ably-key", "")
        signature = request.headers.get("x-ably-signature", "")
        if not (
            same(key_name, self._key_name) and signature and same(signature, self.signature(raw))
        ):
            await context.refused(None, "ably.webhook", "no valid X-Ably-Signature")
            return problem(
                401, "the webhook is not signed with this channel's key", instance=instance
            )
        try:
            items = json.loads(raw)["items"]
            if not isinstance(items, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return problem(400, 'not a batched Ably webhook ({"items": […]})', instance=instance)
        results: list[JSONObject] = []
        for item in items:
            data = _object(item).get("data")
            if not isinstance(data, dict) or item.get("source") != "channel.message":
                continue
            channel = data.get("channelId")
            for message in data.get("messages") or []:
                if _object(message).get("name") != "approval-response":
                    continue  # our own approval-request comes back too: not a decision
                message_id = str(message.get("id") or "")
                try:
                    results.append({"id": message_id, **await self._apply(channel, message)})
                except _Refused as refused:
                    await context.refused(refused.request_id, "ably.response", refused.message)
                    results.append(
                        {"id": message_id, "outcome": "refused", "detail": refused.message}
                    )
        return JSONResponse({"results": results})

    async def _apply(self, channel: Any, raw: dict[str, Any]) -> JSONObject:
        """Apply one ``approval-response``; raises :class:`_Refused` for what may not be."""
        context = context_of(self)
        if channel != self.settings.channel:
            raise _Refused(f"a message on another channel ({short(str(channel), 80)})")
        message_id, timestamp = raw.get("id"), raw.get("timestamp")
        if not isinstance(message_id, str) or not message_id:
            raise _Refused("a message without an id")
        if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
            raise _Refused("a message without a timestamp")
        age, window = context.now() - timestamp / 1000, self.settings.tolerance_s
        if abs(age) > window:
            raise _Refused(f"a message {int(age)} s old: outside the {window:g} s window")
        # remembered past the window, so that a replay is refused until the window refuses it
        until = to_datetime(timestamp / 1000 + 2 * window)
        if not await context.spend(f"ably:{self.name}:msg:{message_id}", until):
            raise _Refused("a message seen before (replayed)")
        try:
            message = Message.from_encoded(raw)
        except Exception as exc:  # the package's decoders raise whatever bad input makes
            raise _Refused("a message whose data cannot be decoded") from exc
        principal = self._sender(message, raw, message_id)
        data, headers = _object(message.data), _object(_object(raw.get("extras")).get("headers"))
        kind = _DECISIONS.get(str(data.get("decision", "")).lower())
        if kind is None:
            raise _Refused(
                f"{principal.sub}: decision must be 'approved', 'rejected' or 'responded'"
            )
        if kind is DecisionKind.RESPOND and data.get("response") is None:
            raise _Refused(f"{principal.sub}: a response needs `response`: what the model gets")
        target = await self._target(data, headers)
        if target is None:
            raise _Refused(f"{principal.sub}: names no pending request")
        reason = data.get("reason") or data.get("notes")
        if not isinstance(reason, str) or not reason.strip():
            # the guides' client sends no reason; the service wants one for a rejection
            reason = (
                f"Rejected by {principal.sub} over Ably (no reason given)"
                if kind is DecisionKind.REJECT
                else None
            )
        seen = data.get("argsDigest") or headers.get("argsDigest")
        try:
            decided = await context.decide(
                target,
                principal,
                kind,
                reason=reason[:2000] if reason else None,
                seen_digest=seen if isinstance(seen, str) else None,
                via="ably",
                response=data.get("response") if kind is DecisionKind.RESPOND else None,
            )
        except SignoffError as exc:  # the service audited the refusal itself
            return {"requestId": target, "outcome": "refused", "detail": exc.message}
        return {"requestId": target, "outcome": "decided", "status": decided.status.value}

    def _sender(self, message: Any, raw: dict[str, Any], message_id: str) -> Principal:
        """Who sent it, from what Ably stamped only: the clientId and the userClaim."""
        client_id = message.client_id
        if not isinstance(client_id, str) or not client_id or client_id == "*":
            raise _Refused("a response without a verified clientId")
        claim = _object(raw.get("extras")).get("userClaim")
        roles = context_of(self).roles
        role = role_from_claims({"claim": claim}, "claim", roles) if claim is not None else None
        if role is None or role not in roles.roles:
            raise _Refused(f"{client_id}: no known role in the verified userClaim")
        return Principal(
            sub=client_id, role=role, claims={"channel": self.name, "ably_message": message_id}
        )

    async def _target(self, data: dict[str, Any], headers: dict[str, Any]) -> str | None:
        """The request a response answers: its ``requestId``, or (the guides' client echoes
        only this) the ``toolCallId`` of a pending request."""
        request_id = data.get("requestId") or headers.get("requestId")
        if isinstance(request_id, str) and request_id:
            return request_id
        tool_call_id = headers.get("toolCallId") or data.get("toolCallId")
        pending = context_of(self).pending
        if not isinstance(tool_call_id, str) or not tool_call_id or pending is None:
            return None
        found: list[ApprovalRequest] = [
            r for r in await pending() if tool_call_id in (r.tool_call_id, r.id)
        ]
        return found[0].id if len(found) == 1 else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

"""Clicks and modal submissions from Slack: ``POST /channels/slack/{name}/interactions``.

Every request is checked before anything is read from it:

1. the v0 signature over the raw body with the app's signing secret (slack-sdk's
   ``SignatureVerifier``), and a timestamp within 5 minutes either way → else 401;
2. a replay key (the timestamp and signature) spent in the store until the window ends,
   so the same signed request is applied once, on any replica → else 409;
3. the workspace and app, where configured → else 403.

Who clicked is ``payload.user.id`` (Slack vouches for it), mapped through ``users`` to a
``sub`` and role; nobody else decides. The click is answered (200) at once and the work
(the decision, a modal, an ephemeral note) runs after, within Slack's 3 seconds. Decisions
go through the service's one decide (authorize → compare-and-set → audit): a role too
low, the requester's own request, a decision already made or arguments changed since the
message was posted all leave the request as it was, and the clicker is told why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from signoff._util import to_datetime
from signoff.argschema import schema_errors
from signoff.channels.base import ChannelContext
from signoff.channels.slack.blocks import VERBS, ButtonValue, Look, clip
from signoff.channels.slack.modals import (
    CALLBACK_EDIT,
    CALLBACK_REJECT,
    REASON_BLOCK,
    Opened,
    dig,
    edit_modal,
    editable_fields,
    field_block,
    read_edit,
    read_reason,
    reject_modal,
    schema_error_block,
)
from signoff.channels.slack.settings import SlackSettings
from signoff.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SignoffError,
    UsageError,
)
from signoff.models import ApprovalRequest, DecisionKind, Principal, Status
from signoff.problems import from_error, problem
from signoff.types import JSONObject


class SlackChannel(Protocol):
    """What the handler needs of its channel (:class:`.channel.SlackChannel`)."""

    name: str
    settings: SlackSettings
    look: Look

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None: ...

    async def refresh(self, channel: str | None, ts: str | None, request_id: str) -> None: ...

    async def tell(self, channel: str | None, user: str | None, text: str) -> None: ...

    async def open_view(self, trigger_id: str, view: JSONObject) -> None: ...


log = logging.getLogger("signoff.channels.slack")

#: Slack's window for a request's timestamp, either way (seconds)
WINDOW_S = 300
#: the largest interaction accepted (a payload carries the whole message it came from)
MAX_BODY = 2_000_000
BODY_TIMEOUT_S = 10.0
VIA = "slack"
NOT_AN_APPROVER = (
    "You are not an approver here: your Slack account is not linked to a signoff identity, "
    "so this changed nothing. An admin can add you to the channel's `users`."
)


class _ContextClock(Clock):
    """slack-sdk's clock, reading the service's."""

    def __init__(self, context: ChannelContext) -> None:
        self._now = context.now

    def now(self) -> float:
        return self._now()


class Interactions:
    """The interactivity endpoint of one Slack channel."""

    def __init__(self, channel: SlackChannel) -> None:
        self.channel = channel
        self.context: ChannelContext | None = None
        self.verifier: SignatureVerifier | None = None

    def start(self, context: ChannelContext) -> None:
        self.context = context
        secret = self.channel.settings.signing_secret.get_secret_value()
        self.verifier = SignatureVerifier(secret, clock=_ContextClock(context))

    # -- the endpoint ---------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        context, verifier = self.context, self.verifier
        if context is None or verifier is None:
            return problem(503, "the Slack channel is not started")
        try:
            body = await _read_body(request)
        except SignoffError as exc:
            return from_error(exc)
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        why = _unverified(verifier, context, body, timestamp, signature)
        if why is not None or timestamp is None or signature is None:
            # not audited: an unsigned request is anyone's, and must not grow the audit log
            log.warning("slack channel %s: interaction refused: %s", self.channel.name, why)
            return problem(401, why, code="bad_signature")
        key = "slack:" + hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
        if not await context.spend(key, to_datetime(int(timestamp) + WINDOW_S + 1)):
            log.warning("slack channel %s: a replayed interaction refused", self.channel.name)
            return problem(409, "this interaction was already received", code="replayed")
        payload = _payload(body)
        if payload is None:
            return problem(400, "the body has no JSON payload", code="bad_request")
        settings = self.channel.settings
        team = dig(payload, "team", "id") or dig(payload, "user", "team_id")
        if settings.team_id is not None and team != settings.team_id:
            return problem(403, "the interaction is from another Slack workspace")
        if settings.api_app_id is not None and payload.get("api_app_id") != settings.api_app_id:
            return problem(403, "the interaction is for another Slack app")
        kind = payload.get("type")
        if kind == "block_actions":
            self._block_actions(payload)
        elif kind == "view_submission":
            return await self._view_submission(payload)
        return Response(status_code=200)

    # -- buttons --------------------------------------------------------------------------

    def _block_actions(self, payload: JSONObject) -> None:
        actions = payload.get("actions")
        action = actions[0] if isinstance(actions, list) and actions else None
        value = ButtonValue.decode(dig(action, "value"))
        if value is None or VERBS.get(str(dig(action, "action_id"))) != value.verb:
            return  # not one of our buttons
        where = _Where(
            dig(payload, "container", "channel_id") or dig(payload, "channel", "id"),
            dig(payload, "container", "message_ts"),
            dig(payload, "user", "id"),
        )
        trigger = payload.get("trigger_id")
        self.channel.spawn(
            self._click(value, where, trigger if isinstance(trigger, str) else None), value.verb
        )

    async def _click(self, value: ButtonValue, where: _Where, trigger: str | None) -> None:
        principal = await self._principal(where, value.request_id, value.verb)
        if principal is None:
            return
        if value.verb == "approve":
            await self._decide(where, value.request_id, principal, seen_digest=value.digest)
            return
        # Reject and Edit open a modal: look first, so nobody fills in a form for nothing
        request = await self._pending(where, value.request_id)
        if request is None:
            return
        refusal = self._refusal(request, principal)
        if value.verb == "edit" and refusal is None:
            if self.channel.look.hides(request) or not editable_fields(request):
                refusal = "This request cannot be edited in Slack: open it in signoff."
            elif value.digest != request.args_digest:
                await self.channel.refresh(where.channel, where.ts, request.id)
                await self._tell(where, _CHANGED)
                return
        if refusal is not None:
            await self._context().refused(request.id, value.verb, refusal)
            await self._tell(where, f"{refusal} The request stays pending.")
            return
        if trigger is None:
            await self._tell(where, "Slack sent no trigger for a form: click again.")
            return
        opened = Opened(request.id, request.args_digest, where.channel, where.ts)
        view = (
            reject_modal(request, opened) if value.verb == "reject" else edit_modal(request, opened)
        )
        try:
            await self.channel.open_view(trigger, view)
        except SignoffError as exc:
            log.warning("slack channel %s: views.open failed: %s", self.channel.name, exc)
            await self._tell(where, "Slack could not open the form in time: click again.")

    # -- modals ---------------------------------------------------------------------------

    async def _view_submission(self, payload: JSONObject) -> Response:
        view = payload.get("view")
        callback = dig(view, "callback_id")
        opened = Opened.decode(dig(view, "private_metadata"))
        if opened is None or callback not in (CALLBACK_REJECT, CALLBACK_EDIT):
            return Response(status_code=200)
        where = _Where(opened.channel, opened.ts, dig(payload, "user", "id"))
        first_block = REASON_BLOCK if callback == CALLBACK_REJECT else field_block(0)
        verb = "reject" if callback == CALLBACK_REJECT else "approve"
        user = self.channel.settings.users.get(str(where.user))
        if user is None:
            await self._context().refused(opened.request_id, verb, _unknown(where))
            return _errors({first_block: NOT_AN_APPROVER})
        principal = _as_principal(user.sub, user.role)
        values = dig(view, "state", "values")
        if callback == CALLBACK_REJECT:
            reason = read_reason(values)
            if reason is None:
                return _errors({REASON_BLOCK: "A reason is required: the agent is told it."})
            self.channel.spawn(
                self._decide(where, opened.request_id, principal, kind="reject", reason=reason),
                "reject",
            )
            return Response(status_code=200)
        try:
            request = await self._context().get_request(opened.request_id)
        except NotFound:
            return _errors({first_block: "This request no longer exists."})
        if request.status is not Status.PENDING:
            return _errors({first_block: _already(request)})
        if opened.digest != request.args_digest:
            return _errors({first_block: _CHANGED})
        changed, note, errors = read_edit(request, values)
        if not errors and changed and request.args_schema is not None:
            # checked here so the approver sees it in the form; decide checks it again
            problems = await schema_errors(request.args_schema, {**request.final_args, **changed})
            for text in problems:
                errors.setdefault(schema_error_block(request, text), clip(text, 300))
        if errors:
            return _errors(errors)
        self.channel.spawn(
            self._decide(
                where,
                request.id,
                principal,
                reason=note,
                modified_args=changed or None,
                seen_digest=opened.digest,
            ),
            "edit",
        )
        return Response(status_code=200)

    # -- deciding -------------------------------------------------------------------------

    async def _decide(
        self,
        where: _Where,
        request_id: str,
        principal: Principal,
        *,
        kind: str = "approve",
        reason: str | None = None,
        modified_args: JSONObject | None = None,
        seen_digest: str | None = None,
    ) -> None:
        try:
            decided = await self._context().decide(
                request_id,
                principal,
                DecisionKind(kind),
                reason=reason,
                modified_args=modified_args,
                seen_digest=seen_digest,
                via=VIA,
            )
        except Conflict as exc:
            await self.channel.refresh(where.channel, where.ts, request_id)
            await self._tell(where, await self._conflict(request_id, exc))
            return
        except NotFound:
            await self._tell(where, "This request no longer exists.")
            return
        except Forbidden as exc:
            await self._tell(
                where, f"signoff refused this: {exc.message}. The request stays pending."
            )
            return
        except SignoffError as exc:
            await self._tell(where, f"signoff did not accept this: {exc.message}")
            return
        # the outbox updates the message too; this shows the clicker the result at once
        await self.channel.refresh(where.channel, where.ts, request_id)
        if decided.status is Status.PENDING:
            await self._tell(
                where,
                f"Your approval is recorded: {len(decided.approvals)} of "
                f"{decided.policy.quorum} so far.",
            )

    async def _conflict(self, request_id: str, error: Conflict) -> str:
        if "args_digest" in error.detail:
            return _CHANGED
        try:
            current = await self._context().get_request(request_id)
        except SignoffError:
            return error.message
        return _already(current) if current.status.terminal else error.message

    # -- who and what ---------------------------------------------------------------------

    async def _principal(self, where: _Where, request_id: str, verb: str) -> Principal | None:
        """The clicker as a signoff approver; None (refused, audited, told) when unknown."""
        user = self.channel.settings.users.get(str(where.user))
        if user is not None:
            return _as_principal(user.sub, user.role)
        await self._context().refused(request_id, verb, _unknown(where))
        await self._tell(where, NOT_AN_APPROVER)
        return None

    async def _pending(self, where: _Where, request_id: str) -> ApprovalRequest | None:
        context = self._context()
        try:
            request = await context.get_request(request_id)
        except NotFound:
            await self._tell(where, "This request no longer exists.")
            return None
        if request.status.terminal or request.expires_at.timestamp() <= context.now():
            await self.channel.refresh(where.channel, where.ts, request_id)
            await self._tell(where, _already(request))
            return None
        return request

    def _refusal(self, request: ApprovalRequest, principal: Principal) -> str | None:
        """Why ``principal`` may not decide ``request`` (checked before a form is opened;
        the decision itself is checked again by the service)."""
        if not self._context().roles.admits(principal.role, request.policy.min_role):
            return (
                f"Your role ({principal.role}) may not decide this request: it needs "
                f"{request.policy.min_role} or higher."
            )
        if principal.sub == request.requested_by and not request.policy.allow_self_approval:
            return "You requested this call, so you may not decide it."
        return None

    def _context(self) -> ChannelContext:
        if self.context is None:
            raise UsageError("the Slack channel is not started")
        return self.context

    async def _tell(self, where: _Where, text: str) -> None:
        await self.channel.tell(where.channel, where.user, text)


class _Where:
    """Where a click came from: the message's channel and ts, and the clicker."""

    __slots__ = ("channel", "ts", "user")

    def __init__(self, channel: Any, ts: Any, user: Any) -> None:
        self.channel = channel if isinstance(channel, str) else None
        self.ts = ts if isinstance(ts, str) else None
        self.user = user if isinstance(user, str) else None


_CHANGED = (
    "The arguments changed since this was shown to you (another approver edited them). "
    "The message now shows the current ones: look again."
)


def _as_principal(sub: str, role: str) -> Principal:
    return Principal(sub=sub, role=role, kind="approver", claims={"iss": "https://slack.com"})


def _unknown(where: _Where) -> str:
    return f"Slack user {where.user} is not an approver on this channel"


def _already(request: ApprovalRequest) -> str:
    status = request.status
    if status in (Status.APPROVED, Status.REJECTED) and request.decisions:
        last = request.decisions[-1]
        when = (request.decided_at or last.at).strftime("%Y-%m-%d %H:%M UTC")
        return f"This request was already {status.value} by {last.by} ({when})."
    if status is Status.PENDING:
        return f"This request expired at {request.expires_at:%Y-%m-%d %H:%M UTC}."
    return f"This request is already {status.value}."


def _errors(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({"response_action": "errors", "errors": errors})


def _unverified(
    verifier: SignatureVerifier,
    context: ChannelContext,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
) -> str | None:
    """Why the request is not Slack's, or None."""
    if not timestamp or not signature:
        return "the X-Slack-Request-Timestamp and X-Slack-Signature headers are required"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "X-Slack-Request-Timestamp is not a Unix time"
    if abs(context.now() - int(timestamp)) > WINDOW_S:
        return "the request's timestamp is more than 5 minutes away"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return "the signature does not verify"
    return None


def _payload(body: bytes) -> JSONObject | None:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=20)
        data = json.loads(fields["payload"][0])
    except (KeyError, IndexError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:g} s") from exc
    return b"".join(chunks)

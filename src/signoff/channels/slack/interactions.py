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

import hashlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from signoff._util import to_datetime
from signoff.argschema import schema_errors
from signoff.channels.base import ChannelContext
from signoff.channels.slack.blocks import VERBS, ButtonValue, Look, clip, offers
from signoff.channels.slack.modals import (
    CALLBACK_EDIT,
    CALLBACK_GRANT,
    CALLBACK_REJECT,
    CALLBACK_RESPOND,
    REASON_BLOCK,
    RESPONSE_BLOCK,
    SCOPE_BLOCK,
    Opened,
    dig,
    edit_modal,
    field_block,
    grant_modal,
    read_edit,
    read_grant,
    read_note,
    read_reason,
    read_response,
    reject_modal,
    respond_modal,
    schema_error_block,
)
from signoff.channels.slack.settings import SlackSettings
from signoff.channels.slack.verify import (
    WINDOW_S,
    ContextClock,
    read_body,
    read_payload,
    unverified,
)
from signoff.errors import (
    Conflict,
    Forbidden,
    NotFound,
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

VIA = "slack"
NOT_AN_APPROVER = (
    "You are not an approver here: your Slack account is not linked to a signoff identity, "
    "so this changed nothing. An admin can add you to the channel's `users`."
)


class Interactions:
    """The interactivity endpoint of one Slack channel."""

    def __init__(self, channel: SlackChannel) -> None:
        self.channel = channel
        self.context: ChannelContext | None = None
        self.verifier: SignatureVerifier | None = None

    def start(self, context: ChannelContext) -> None:
        self.context = context
        secret = self.channel.settings.signing_secret.get_secret_value()
        self.verifier = SignatureVerifier(secret, clock=ContextClock(context))

    # -- the endpoint ---------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        context, verifier = self.context, self.verifier
        if context is None or verifier is None:
            return problem(503, "the Slack channel is not started")
        try:
            body = await read_body(request)
        except SignoffError as exc:
            return from_error(exc)
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        why = unverified(verifier, context, body, timestamp, signature)
        if why is not None or timestamp is None or signature is None:
            # not audited: an unsigned request is anyone's, and must not grow the audit log
            log.warning("slack channel %s: interaction refused: %s", self.channel.name, why)
            return problem(401, why, code="bad_signature")
        key = "slack:" + hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
        if not await context.spend(key, to_datetime(int(timestamp) + WINDOW_S + 1)):
            log.warning("slack channel %s: a replayed interaction refused", self.channel.name)
            return problem(409, "this interaction was already received", code="replayed")
        payload = read_payload(body)
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
        # the other verbs open a form: look first, so nobody fills in a form for nothing
        request = await self._pending(where, value.request_id)
        if request is None:
            return
        refusal = self._refusal(request, principal, value.verb)
        if refusal is None and value.verb != "reject" and value.digest != request.args_digest:
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
        try:
            await self.channel.open_view(trigger, _FORMS[value.verb](request, opened))
        except SignoffError as exc:
            log.warning("slack channel %s: views.open failed: %s", self.channel.name, exc)
            await self._tell(where, "Slack could not open the form in time: click again.")

    # -- modals ---------------------------------------------------------------------------

    async def _view_submission(self, payload: JSONObject) -> Response:
        view = payload.get("view")
        callback = dig(view, "callback_id")
        opened = Opened.decode(dig(view, "private_metadata"))
        if opened is None or callback not in _FIRST_BLOCK:
            return Response(status_code=200)
        where = _Where(opened.channel, opened.ts, dig(payload, "user", "id"))
        first_block = _FIRST_BLOCK[callback]
        verb = "reject" if callback == CALLBACK_REJECT else "approve"
        verb = "respond" if callback == CALLBACK_RESPOND else verb
        user = self.channel.settings.users.get(str(where.user))
        if user is None:
            await self._context().refused(opened.request_id, verb, _unknown(where))
            return _errors({first_block: NOT_AN_APPROVER})
        principal = _as_principal(user.sub, user.role)
        values = dig(view, "state", "values")
        decide: dict[str, Any] = {"kind": verb, "reason": read_note(values)}
        if callback == CALLBACK_REJECT:
            reason = read_reason(values)
            if reason is None:
                return _errors({REASON_BLOCK: "A reason is required: the agent is told it."})
            decide["reason"] = reason
        elif callback == CALLBACK_RESPOND:
            decide["response"], errors = read_response(values)
            if errors:
                return _errors(errors)
        elif callback == CALLBACK_GRANT:
            decide["grant"], errors = read_grant(values)
            if errors:
                return _errors(errors)
        else:
            edited = await self._edited(opened, values, first_block)
            if isinstance(edited, JSONResponse):
                return edited
            decide["modified_args"] = edited or None
        if callback != CALLBACK_REJECT:
            decide["seen_digest"] = opened.digest
        work = self._decide(where, opened.request_id, principal, **decide)
        self.channel.spawn(work, _VERB_OF.get(callback, verb))
        return Response(status_code=200)

    async def _edited(
        self, opened: Opened, values: Any, first_block: str
    ) -> JSONObject | JSONResponse:
        """The arguments an Edit form changed, or the form's errors to show."""
        try:
            request = await self._context().get_request(opened.request_id)
        except NotFound:
            return _errors({first_block: "This request no longer exists."})
        if request.status is not Status.PENDING:
            return _errors({first_block: _already(request)})
        if opened.digest != request.args_digest:
            return _errors({first_block: _CHANGED})
        changed, _, errors = read_edit(request, values)
        if not errors and changed and request.args_schema is not None:
            # checked here so the approver sees it in the form; decide checks it again
            problems = await schema_errors(request.args_schema, {**request.final_args, **changed})
            for text in problems:
                errors.setdefault(schema_error_block(request, text), clip(text, 300))
        return _errors(errors) if errors else changed

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
        grant: JSONObject | None = None,
        response: Any = None,
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
                grant=grant,
                response=response,
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

    def _refusal(self, request: ApprovalRequest, principal: Principal, verb: str) -> str | None:
        """Why ``principal`` may not ``verb`` ``request`` (checked before a form is opened;
        the decision itself is checked again by the service)."""
        if verb not in offers(request, self.channel.look):
            return f"This request cannot be decided that way ({verb}) in Slack."
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


#: the form each button opens
_FORMS = {
    "reject": reject_modal,
    "edit": edit_modal,
    "grant": grant_modal,
    "respond": respond_modal,
}
#: where a form's first problem is shown
_FIRST_BLOCK = {
    CALLBACK_REJECT: REASON_BLOCK,
    CALLBACK_EDIT: field_block(0),
    CALLBACK_GRANT: SCOPE_BLOCK,
    CALLBACK_RESPOND: RESPONSE_BLOCK,
}
#: what a form's work is called in the log
_VERB_OF = {CALLBACK_EDIT: "edit", CALLBACK_GRANT: "grant"}

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

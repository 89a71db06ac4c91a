"""The Slack channel: posts a request with Approve / Reject / Edit, keeps the message true to
the request after a decision made anywhere, and takes decisions from its buttons.

Sending (``send``, called by the outbox):

- ``approval_request`` → ``chat.postMessage``; the receipt is the message's
  ``{"channel", "ts"}``;
- ``approval_decided`` / ``_expired`` / ``_cancelled`` → ``chat.update`` of that message to
  the request's current state (who, what, when; no buttons once it is final). The current
  state, not the notice's: a late or repeated notice never brings old buttons back;
- ``approval_escalated`` → a reply in the message's thread (or, where this channel never
  posted the request, the message itself, marked as an escalation);
- ``tool_outcome`` → a short reply in the thread.

Slack's answers become :class:`DeliveryFailed` (rate limits with Slack's ``Retry-After``,
server and network errors: retried) or :class:`DeliveryRefused` (a bad token, an unknown
channel, a bot not in it: never). Clicks are handled in :mod:`.interactions`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, ClassVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.routing import BaseRoute, Route

from signoff._util import failure_text
from signoff.channels.base import (
    Channel,
    ChannelContext,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    NoticeType,
)
from signoff.channels.slack.blocks import Look, compact, date, mrkdwn, render
from signoff.channels.slack.interactions import Interactions
from signoff.channels.slack.settings import SlackSettings
from signoff.errors import SignoffError, UsageError
from signoff.models import ApprovalRequest, OutcomeRecord
from signoff.types import JSONObject

log = logging.getLogger("signoff.channels.slack")

#: Slack errors that no retry will fix: the delivery is kept as failed
REFUSED = frozenset(
    {
        "account_inactive",
        "cant_update_message",
        "channel_not_found",
        "edit_window_closed",
        "ekm_access_denied",
        "invalid_auth",
        "invalid_blocks",
        "invalid_blocks_format",
        "is_archived",
        "message_not_found",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "not_authed",
        "not_in_channel",
        "restricted_action",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
    }
)
#: how long closing waits for click work still running
CLOSE_GRACE_S = 5.0


class SlackChannel(Channel):
    """``type = "slack"``: see :mod:`signoff.channels.slack`."""

    kind: ClassVar[str] = "slack"
    settings_model: ClassVar[type[SlackSettings]] = SlackSettings

    def __init__(self, name: str, settings: SlackSettings | JSONObject) -> None:
        if not isinstance(settings, SlackSettings):
            settings = SlackSettings.model_validate(settings)
        super().__init__(name, settings)
        self.settings: SlackSettings = settings
        self.look = Look()
        self._client: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None
        #: click work running after its ack (kept so it is neither collected nor lost)
        self._tasks: set[asyncio.Task[None]] = set()
        self.interactions = Interactions(self)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, context: ChannelContext) -> None:
        await super().start(context)
        for user in self.settings.users.values():
            context.roles.check(user.role)
        people: dict[str, str] = {}
        for user_id, user in self.settings.users.items():
            people.setdefault(user.sub, user_id)
        self.look = Look(
            public_url=context.public_url.rstrip("/"),
            hidden=frozenset(self.settings.hide_details),
            people=people,
        )
        self.interactions.start(context)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
        )
        # no retries inside the client: the outbox retries deliveries, with backoff
        self._client = AsyncWebClient(
            token=self.settings.token.get_secret_value(),
            base_url=self.settings.api_url,
            session=self._session,
            timeout=int(self.settings.timeout_s),
            retry_handlers=[],
            logger=log,
        )

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._client = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                f"/channels/slack/{self.name}/interactions",
                self.interactions.handle,
                methods=["POST"],
            )
        ]

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run click work after the ack; its failures are logged, never lost."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("slack channel %s: %s failed", self.name, what)

        task = asyncio.create_task(guarded(), name=f"slack-{self.name}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until no click work is running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- sending --------------------------------------------------------------------------

    async def send(self, notice: Notice) -> JSONObject | None:
        original = _original(notice.receipts)
        request = notice.request
        if notice.type is NoticeType.REQUEST:
            return await self.post(request)
        if notice.type is NoticeType.ESCALATED:
            if original is None:
                return await self.post(request, escalation=notice.step or 1)
            # broadcast: an escalation is there to be seen, not buried in a thread
            text = _escalation_text(request, notice.step)
            return await self._reply(original, text, broadcast=True)
        if notice.type is NoticeType.OUTCOME:
            if original is None or request.outcome is None:
                return None
            return await self._reply(original, _outcome_text(request.outcome))
        current = await self._current(request)
        if original is None:
            return await self.post(current)
        await self.update(original["channel"], original["ts"], current)
        return None

    async def post(self, request: ApprovalRequest, *, escalation: int | None = None) -> JSONObject:
        text, blocks = render(request, self.look, escalation=escalation)
        data = await self.call(
            "chat_postMessage",
            channel=self.settings.channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        return {"channel": str(data["channel"]), "ts": str(data["ts"])}

    async def update(self, channel: str, ts: str, request: ApprovalRequest) -> None:
        text, blocks = render(request, self.look)
        await self.call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def refresh(self, channel: str | None, ts: str | None, request_id: str) -> None:
        """Show a request's current state in the message a click came from."""
        if channel is None or ts is None:
            return
        try:
            current = await self._require_context().get_request(request_id)
            await self.update(channel, ts, current)
        except SignoffError as exc:
            log.warning("slack channel %s: updating %s failed: %s", self.name, ts, exc)

    async def tell(self, channel: str | None, user: str | None, text: str) -> None:
        """An ephemeral message only ``user`` sees (why a click changed nothing)."""
        if channel is None or user is None:
            log.warning("slack channel %s: cannot tell %s: %s", self.name, user, text)
            return
        try:
            await self.call("chat_postEphemeral", channel=channel, user=user, text=text)
        except SignoffError as exc:
            log.warning("slack channel %s: telling %s failed: %s", self.name, user, exc)

    async def open_view(self, trigger_id: str, view: JSONObject) -> None:
        await self.call("views_open", trigger_id=trigger_id, view=view)

    async def call(self, method: str, **arguments: Any) -> JSONObject:
        """One Web API call; Slack's errors as :class:`DeliveryFailed` / ``Refused``."""
        client = self._client
        if client is None:
            raise UsageError("the Slack channel is not started")
        name = method.replace("_", ".")
        try:
            response = await getattr(client, method)(**arguments)
        except SlackApiError as exc:
            raise _failure(name, exc.response) from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryFailed(f"Slack {name} failed: {failure_text(exc)}") from exc
        data = response.data
        if not isinstance(data, dict):
            raise DeliveryFailed(f"Slack {name} answered something that is not JSON")
        return data

    # -- helpers --------------------------------------------------------------------------

    def _require_context(self) -> ChannelContext:
        if self.context is None:
            raise UsageError("the Slack channel is not started")
        return self.context

    async def _current(self, request: ApprovalRequest) -> ApprovalRequest:
        try:
            return await self._require_context().get_request(request.id)
        except SignoffError:
            return request

    async def _reply(
        self, original: JSONObject, text: str, *, broadcast: bool = False
    ) -> JSONObject:
        data = await self.call(
            "chat_postMessage",
            channel=original["channel"],
            thread_ts=original["ts"],
            reply_broadcast=broadcast,
            text=text,
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            unfurl_links=False,
        )
        return {"channel": str(data["channel"]), "ts": str(data["ts"]), "thread_ts": original["ts"]}


def _original(receipts: Sequence[JSONObject]) -> JSONObject | None:
    """The message this channel posted for the request (not a reply in its thread)."""
    for receipt in receipts:
        if (
            isinstance(receipt.get("channel"), str)
            and isinstance(receipt.get("ts"), str)
            and "thread_ts" not in receipt
        ):
            return receipt
    return None


def _escalation_text(request: ApprovalRequest, step: int | None) -> str:
    return (
        f":rotating_light: *Escalated* (step {step or 1}): still pending. Needs "
        f"{mrkdwn(request.policy.min_role, 200)} or higher; expires {date(request.expires_at)}."
    )


def _outcome_text(outcome: OutcomeRecord) -> str:
    icon = ":gear:" if outcome.status == "succeeded" else ":warning:"
    text = f"{icon} The tool ran: *{outcome.status}* · {date(outcome.at)}"
    if outcome.detail is not None:
        text += "\n>" + mrkdwn(compact(outcome.detail), 1500).replace("\n", "\n>")
    return text


def _failure(method: str, response: Any) -> SignoffError:
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    status = getattr(response, "status_code", None)
    what = f"Slack {method}: {error or f'HTTP {status}'}"
    if error == "ratelimited" or status == 429:
        headers = getattr(response, "headers", None) or {}
        try:
            retry_after: float | None = float(headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
        return DeliveryFailed(what, retry_after=retry_after)
    if error in REFUSED or status in (401, 403, 404, 410):
        return DeliveryRefused(what)
    return DeliveryFailed(what)

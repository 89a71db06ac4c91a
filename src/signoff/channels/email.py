"""Email: one message per recipient, each with its own single-use link to a page that
decides once, as that recipient.

- ``send`` mails every address in ``to`` (text and HTML: the tool, the reason, the
  arguments, the risk, the agent's context, the expiry) with a link of its own,
  ``{public_url}/r/{token}``. The token is signed with the server key, so there is nothing to
  store: it names the channel, the request, the recipient (by a keyed digest of the address:
  the URL carries no address), an expiry (the request's, capped by ``link_ttl_s``) and a
  nonce.
- ``GET /r/{token}`` (and HEAD) shows the request and its forms. It decides nothing and
  spends nothing: mail scanners fetch every link, some in a headless browser.
- ``POST /r/{token}`` needs the page's token (an HMAC of the link and of the digest of the
  arguments the page showed), spends the link's nonce (once, on every replica sharing the
  store), then decides as the recipient's mapped principal with ``seen_digest``: what the
  page showed is what is approved.
- SMTP: ``smtps://`` is implicit TLS; ``smtp://`` upgrades with STARTTLS when the server
  offers it, and insists on it when the URL carries a password, which is never sent in
  clear, logged or shown.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from signoff._util import to_datetime
from signoff.argschema import schema_errors
from signoff.channels import email_page as ui
from signoff.channels.base import (
    Channel,
    ChannelContext,
    ChannelSettings,
    DeliveryFailed,
    DeliveryRefused,
    Notice,
    NoticeType,
)
from signoff.channels.email_links import Link, LinkRefused, Links, read_form, typed
from signoff.channels.people import (
    Person,
    Seconds,
    check_people,
    context_of,
    same,
)
from signoff.decisions import typed_answer
from signoff.errors import (
    Conflict,
    Forbidden,
    InvalidArguments,
    MissingDependency,
    NotFound,
    SignoffError,
)
from signoff.models import ApprovalRequest, DecisionKind, Status
from signoff.types import JSONObject

#: the longest answer in the tool's place the page takes (its textarea's maxlength)
MAX_ANSWER_CHARS = 10_000

try:
    import aiosmtplib
except ImportError as exc:  # pragma: no cover - exercised by a test with the module hidden
    raise MissingDependency("aiosmtplib", "email") from exc

_SENT = frozenset({NoticeType.REQUEST, NoticeType.ESCALATED})


class EmailSettings(ChannelSettings):
    """``[channels.NAME]`` with ``type = "email"``."""

    # secrets are never echoed back in a validation error
    model_config = ConfigDict(populate_by_name=True, hide_input_in_errors=True)

    type: Literal["email"] = "email"
    #: ``smtp://host:587`` (STARTTLS when offered) or ``smtps://host:465`` (implicit TLS);
    #: ``user:password@`` allowed. Secret: it may carry a password.
    smtp_url: SecretStr
    from_: str = Field(alias="from", max_length=320)
    #: address → who decisions through that address's links are
    to: dict[str, Person] = Field(min_length=1)
    subject_prefix: str = Field(default="[signoff]", max_length=100)
    #: a link lives until the request expires, and at most this long
    link_ttl_s: Seconds = 86_400.0
    timeout_s: Seconds = 30.0

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            # the URL itself may hold a password: it is not repeated in the message
            raise ValueError("must be smtp://host[:port] or smtps://host[:port]")
        return value

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: dict[str, Person]) -> dict[str, Person]:
        for address in value:
            _address(address)
        return value


_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")


def _address(value: str) -> str:
    """One plain address (no display name, no list: each recipient gets a message)."""
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not one email address")
    return value


class EmailChannel(Channel):
    kind = "email"
    settings_model = EmailSettings
    settings: EmailSettings

    async def start(self, context: ChannelContext) -> None:
        check_people(self.settings.to, context.roles, self.name)
        self._links = Links(self.name, context.key, self.settings.to, context.now)
        await super().start(context)

    # -- sending ---------------------------------------------------------------------------

    async def send(self, notice: Notice) -> JSONObject | None:
        context = context_of(self)
        request = notice.request
        now = context.now()
        if notice.type not in _SENT or request.status is not Status.PENDING:
            return None
        expires = min(request.expires_at.timestamp(), now + self.settings.link_ttl_s)
        if expires <= now:
            return None
        messages = {
            address: self._message(notice, address, self.link(request.id, address, expires))
            for address in self.settings.to
        }
        sent: dict[str, str] = {}
        refused: dict[str, str] = {}
        try:
            async with self._smtp() as smtp:
                for address, message in messages.items():
                    try:
                        await smtp.send_message(message)
                    except aiosmtplib.SMTPRecipientsRefused as exc:
                        refused[address] = "; ".join(str(r.code) for r in exc.recipients)
                    except aiosmtplib.SMTPResponseException as exc:
                        if exc.code < 500:
                            raise
                        refused[address] = f"{exc.code} {exc.message}"[:200]
                    else:
                        sent[address] = str(message["Message-ID"])
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"the SMTP server answered {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"cannot send through the SMTP server: {exc}") from exc
        if not sent:
            raise DeliveryRefused(f"the SMTP server refused every recipient: {refused}")
        receipt: JSONObject = {"message_ids": sent}
        if refused:
            receipt["refused"] = refused
        return receipt

    def _smtp(self) -> aiosmtplib.SMTP:
        url = urlsplit(self.settings.smtp_url.get_secret_value())
        password = unquote(url.password) if url.password is not None else None
        return aiosmtplib.SMTP(
            hostname=url.hostname,
            port=url.port,
            username=unquote(url.username) if url.username else None,
            password=password,
            use_tls=url.scheme == "smtps",
            # None: STARTTLS if the server offers it; True: fail rather than send a password
            # in clear
            start_tls=None if url.scheme == "smtps" or password is None else True,
            timeout=self.settings.timeout_s,
        )

    def _message(self, notice: Notice, address: str, link: str) -> EmailMessage:
        context = context_of(self)
        request, now = notice.request, to_datetime(context.now())
        message = EmailMessage()
        message["Subject"] = ui.subject(request, self.settings.subject_prefix)
        message["From"] = self.settings.from_
        message["To"] = address
        domain = self.settings.from_.rpartition("@")[2]
        # the same id on every retry of the notice: mail software can drop a duplicate
        delivery = re.sub(r"[^A-Za-z0-9_.-]", "", notice.delivery_id)[:100]
        message["Message-ID"] = f"<{delivery}.{self._links.tags[address]}@{domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(ui.mail_text(request, link, now))
        message.add_alternative(ui.mail_html(request, link, now), subtype="html")
        return message

    # -- links ---------------------------------------------------------------------------

    def link(self, request_id: str, address: str, expires: float) -> str:
        """The single-use link for ``address`` to decide ``request_id`` until ``expires``."""
        token = self._links.make(request_id, address, expires)
        return f"{context_of(self).public_url}/r/{quote(self.name, safe='')}.{token}"

    # -- the routes ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        # the channel's name leads the token, so that several email channels can share /r/
        path = "/r/" + self.name + ".{token}"
        return [
            Route(path, self._show, methods=["GET", "HEAD"]),
            Route(path, self._decide, methods=["POST"]),
        ]

    async def _show(self, request: Request) -> Response:
        """Show the request; decide nothing, spend nothing."""
        try:
            link = await self._checked_link(request)
            current = await self._current(link)
        except LinkRefused as exc:
            return ui.message(exc.title, exc.message, exc.status)
        context = context_of(self)
        return ui.review(
            current,
            who=f"{link.person.sub} ({link.address})",
            csrf=self._links.page_token(link, current.args_digest),
            now=to_datetime(context.now()),
        )

    async def _decide(self, request: Request) -> Response:
        context = context_of(self)
        try:
            link = await self._checked_link(request)
            if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
                # a browser says where a form came from: another site's form cannot decide
                raise LinkRefused(
                    "Decisions are made on this link's own page.", status=403, title="Refused"
                )
            form = await read_form(request)
            digest = form.get("digest", "")
            if not same(form.get("csrf", ""), self._links.page_token(link, digest)):
                await context.refused(link.request_id, "email.decide", "page token")
                raise LinkRefused(
                    "This form did not come from the link's page. Open the link from your "
                    "email again.",
                    status=403,
                    title="Refused",
                )
            current = await self._current(link)
            asked = await self._read_decision(form, current)
            kind = asked.pop("decision")
            spent_until = to_datetime(link.expires)
            if not await context.spend(f"email:{self.name}:{link.nonce}", spent_until):
                await context.refused(link.request_id, "email.decide", "link used already")
                raise LinkRefused(
                    "This link was used already; each link decides once.",
                    status=409,
                    title="This link was used already",
                )
        except LinkRefused as exc:
            return ui.message(exc.title, exc.message, exc.status)
        try:
            decided = await context.decide(
                link.request_id,
                link.person.principal(self.name, link.address),
                kind,
                **asked,
                seen_digest=digest,
                via="email",
            )
        except SignoffError as exc:
            return await self._refusal(link, exc)
        return ui.result(decided, kind)

    async def _checked_link(self, request: Request) -> Link:
        try:
            return self._links.read(str(request.path_params["token"]))
        except LinkRefused as exc:
            if exc.status != 410:  # an expired link is no attempt at anything
                await context_of(self).refused(None, "email.link", exc.message)
            raise

    async def _current(self, link: Link) -> ApprovalRequest:
        """The request as it is now, or why this link can do nothing with it."""
        try:
            current = await context_of(self).get_request(link.request_id)
        except NotFound as exc:
            raise LinkRefused("No such request.", status=404, title="Not found") from exc
        if current.status is not Status.PENDING:
            raise LinkRefused(ui.decided_text(current), status=409, title="Already decided")
        mine = [d for d in current.approvals if d.by == link.person.sub]
        if mine:
            raise LinkRefused(
                f"You approved this already at {ui.when(mine[-1].at)}; it waits for more "
                "approvals.",
                status=409,
                title="Already approved",
            )
        return current

    async def _read_decision(
        self, form: dict[str, str], current: ApprovalRequest
    ) -> dict[str, Any]:
        """What the pressed button asks for (``decision`` and decide's keywords), checked
        before the link is spent: a typo in an edit or an answer must not cost the link."""
        choice = form.get("decision")
        if choice == "approve":
            return {"decision": DecisionKind.APPROVE}
        if choice == "reject":
            reason = form.get("reason", "").strip()
            if not reason:
                raise LinkRefused("A rejection needs a reason.", status=422, title="Not sent")
            return {"decision": DecisionKind.REJECT, "reason": reason[:2000]}
        if choice == "respond":
            text = form.get("response", "")
            if len(text) > MAX_ANSWER_CHARS:
                message = f"The answer is longer than {MAX_ANSWER_CHARS:,} characters."
                raise LinkRefused(message, status=422, title="Not sent")
            try:
                answer = typed_answer(text)
            except InvalidArguments as exc:
                message = exc.message.capitalize() + "."
                raise LinkRefused(message, status=422, title="Not sent") from exc
            return {"decision": DecisionKind.RESPOND, "response": answer}
        if choice != "edit":
            raise LinkRefused("Press one of the page's buttons.", status=400, title="Not sent")
        return {"decision": DecisionKind.APPROVE, "modified_args": await _edits(form, current)}

    async def _refusal(self, link: Link, error: SignoffError) -> HTMLResponse:
        """The decision was refused (the service audited it): say why, plainly."""
        if isinstance(error, Conflict):
            try:
                current = await context_of(self).get_request(link.request_id)
            except SignoffError:
                return ui.message("Already decided", error.message, 409)
            if current.status is not Status.PENDING:
                return ui.message("Already decided", ui.decided_text(current), 409)
            return ui.message("Not decided", error.message, 409)
        if isinstance(error, Forbidden):
            return ui.message("Not allowed", error.message, 403)
        if isinstance(error, NotFound):
            return ui.message("Not found", error.message, 404)
        return ui.message("Not decided", error.message, 422)


async def _edits(form: dict[str, str], current: ApprovalRequest) -> JSONObject:
    """The arguments an "approve with changes" form changed, checked against the tool."""
    changes: JSONObject = {}
    for field, text in form.items():
        if not field.startswith("arg."):
            continue
        name = field[4:]
        if name not in current.policy.editable or name not in current.final_args:
            raise LinkRefused(f"{name} may not be changed.", status=422, title="Not sent")
        value = typed(current.final_args[name], text)
        if value != current.final_args[name]:
            changes[name] = value
    if not changes:
        raise LinkRefused(
            "Nothing was changed; press Approve to approve as it is.",
            status=422,
            title="Not sent",
        )
    if current.args_schema is not None:
        errors = await schema_errors(current.args_schema, {**current.final_args, **changes})
        if errors:
            raise LinkRefused(
                "The changed arguments do not fit the tool: " + "; ".join(errors),
                status=422,
                title="Not sent",
            )
    return changes

"""The dashboard's device pages: ``/device``, where a signed-in person enters the code that
``signoff login`` shows, sees which device asks and what it will be able to do, and
confirms or denies; and ``/devices``, where they see and revoke their signed-in devices
(the highest role: everyone's).

Every form is a POST carrying the session's CSRF token (the cookie is SameSite=Strict as
well). Wrong codes are bounded per client address and per person (429 once over), and each
one also counts against every code then waiting (:mod:`signoff.devices`).
"""

from __future__ import annotations

import hmac
import html
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signoff.devices import REFRESH_LIFETIME, format_user_code, normalize_user_code
from signoff.errors import NotFound
from signoff.models import Principal
from signoff.server.dashboard import (
    Dashboard,
    card,
    client_address,
    html_page,
    message_card,
    message_page,
    read_form,
    redirect,
    render,
    template,
    to_sign_in,
)
from signoff.server.ratelimit import AttemptLimiter
from signoff.server.session import Sessions
from signoff.server.state import AppState

#: wrong codes per client address, and per person, in ten minutes
WRONG_CODES = 10
WRONG_CODES_WINDOW_S = 600.0


class DevicePages:
    def __init__(self, state: AppState, sessions: Sessions) -> None:
        self.state = state
        self.sessions = sessions
        self.by_address = AttemptLimiter(WRONG_CODES, WRONG_CODES_WINDOW_S, what="wrong codes")
        self.by_person = AttemptLimiter(WRONG_CODES, WRONG_CODES_WINDOW_S, what="wrong codes")

    def routes(self) -> list[BaseRoute]:
        guarded = Dashboard._guarded
        return [
            Route("/device", guarded(self.enter), methods=["GET"]),
            Route("/device", guarded(self.submit), methods=["POST"]),
            Route("/devices", guarded(self.listing), methods=["GET"]),
            Route("/devices/{id}/revoke", guarded(self.revoke), methods=["POST"]),
        ]

    async def _signed_in(self, request: Request) -> tuple[dict[str, Any], Principal] | None:
        claims = await self.sessions.claims(request)
        if claims is None:
            return None
        return claims, self.sessions.verifier.principal(claims)

    def _not_signed_in(self, request: Request) -> Response:
        return message_page(
            request,
            401,
            "Sign in first",
            "Sign in to the dashboard, then open this page again to enter the code.",
        )

    async def _checked_form(self, request: Request, claims: dict[str, Any]) -> dict[str, str]:
        form = await read_form(request)
        expected = self.sessions.csrf_token(claims)
        if not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
            raise _CsrfError
        return form

    # -- /device -----------------------------------------------------------------------------

    def _enter_page(
        self, claims: dict[str, Any], who: Principal, code: str = "", error: str = ""
    ) -> str:
        body = render(
            "device_enter.html",
            sub=who.sub,
            role=who.role or "",
            csrf=self.sessions.csrf_token(claims),
            user_code=code[:20],
            error=error,
        )
        return card("Sign in a device", body)

    async def enter(self, request: Request) -> Response:
        signed_in = await self._signed_in(request)
        if signed_in is None:
            return to_sign_in(request)  # and back here, with the code, once signed in
        claims, who = signed_in
        code = request.query_params.get("user_code", "")
        return html_page(self._enter_page(claims, who, code))

    async def submit(self, request: Request) -> Response:
        signed_in = await self._signed_in(request)
        if signed_in is None:
            return self._not_signed_in(request)
        claims, who = signed_in
        try:
            form = await self._checked_form(request, claims)
        except _CsrfError:
            return message_page(
                request, 403, "Refused", "Open the device page again and use its form.", code="csrf"
            )
        address = client_address(request)
        self.by_address.check(address)
        self.by_person.check(who.sub)
        raw, action = form.get("user_code", ""), form.get("action", "lookup")
        devices = self.state.devices
        try:
            if action in ("approve", "deny"):
                device = await devices.decide(raw, action == "approve", who, address)
                return html_page(_decided_card(device.name, action == "approve"))
            device = await devices.lookup(raw, who, address)
        except NotFound as exc:
            self.by_address.failed(address)
            self.by_person.failed(who.sub)
            return html_page(self._enter_page(claims, who, raw, exc.message), 404)
        code = normalize_user_code(raw) or ""
        body = render(
            "device_confirm.html",
            user_code=format_user_code(code),
            device=device.name,
            address=device.address,
            asked=device.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            sub=who.sub,
            role=who.role or "",
            days=str(REFRESH_LIFETIME.days),
            audit=", read the audit log" if who.role == self.state.config.roles.highest else "",
            csrf=self.sessions.csrf_token(claims),
        )
        return html_page(card("Sign in this device?", body))

    # -- /devices ----------------------------------------------------------------------------

    async def listing(self, request: Request) -> Response:
        signed_in = await self._signed_in(request)
        if signed_in is None:
            return to_sign_in(request)
        claims, who = signed_in
        devices = await self.state.devices.list(who)
        csrf = html.escape(self.sessions.csrf_token(claims), quote=True)
        rows = []
        for d in devices:
            button = ""
            if d.status == "active":
                button = (
                    f'<form method="post" action="/devices/{html.escape(d.id, quote=True)}/revoke"'
                    f' class="inline-form"><input type="hidden" name="csrf" value="{csrf}">'
                    '<button type="submit" class="btn btn-reject btn-small">Revoke</button></form>'
                )
            cells = (
                d.name,
                f"{d.sub} ({d.role})",
                d.status,
                _day(d.decided_at),
                _day(d.expires_at),
            )
            tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            row_id = html.escape(d.id, quote=True)
            rows.append(f'      <tr data-device="{row_id}">{tds}<td>{button}</td></tr>')
        everyone = who.role == self.state.config.roles.highest
        scope = "Everyone's devices (your role may revoke any)." if everyone else "Your devices."
        body = template("devices.html").substitute(
            scope=html.escape(scope),
            rows="\n".join(rows) or "      <tr><td colspan=6>None.</td></tr>",
        )
        return html_page(card("Devices", body))

    async def revoke(self, request: Request) -> Response:
        signed_in = await self._signed_in(request)
        if signed_in is None:
            return self._not_signed_in(request)
        claims, who = signed_in
        try:
            await self._checked_form(request, claims)
        except _CsrfError:
            return message_page(
                request, 403, "Refused", "Revoke from the devices page.", code="csrf"
            )
        await self.state.devices.revoke(str(request.path_params["id"]), who)
        return redirect("/devices")


class _CsrfError(Exception):
    """The form did not carry this session's CSRF token."""


def _day(at: Any) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M UTC")


def _decided_card(name: str, approved: bool) -> str:
    if approved:
        return message_card(
            "Device signed in",
            f"{name} is signed in as you. Go back to your terminal; you may close this page.",
        )
    return message_card("Sign-in denied", f"{name} was not signed in.")


def mount(state: AppState, key: bytes) -> list[BaseRoute]:
    return DevicePages(state, Sessions(key, state.config, state.service.store)).routes()

"""The approver's dashboard: its pages, sign-in and sign-out, and its static files.

The pages are small HTML shells; ES modules in ``static/js`` fill them from the JSON API
(``/v1/...``) with the session cookie, and keep them live over ``/v1/events``. There is no
build step and nothing is loaded from elsewhere: the Content-Security-Policy allows only
this origin's scripts and styles, and no inline script or style at all.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from string import Template
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signoff.errors import InvalidArguments, PayloadTooLarge, SignoffError, Unauthorized
from signoff.models import Principal
from signoff.problems import from_error, problem, retry_after
from signoff.server import session as s
from signoff.server.oidc import CALLBACK_PATH, FLOW_COOKIE, FLOW_TTL_S, Oidc
from signoff.server.ratelimit import AttemptLimiter
from signoff.server.session import Sessions
from signoff.server.state import AppState

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
#: a sign-in form is a few hundred bytes; anything much larger is not one
MAX_FORM_BYTES = 16_384

#: path → (page, title); the page's content is ``templates/<page>.html``
PAGES = {
    "/": ("queue", "Queue"),
    "/history": ("history", "History"),
    "/stats": ("stats", "Stats"),
    "/deliveries": ("deliveries", "Deliveries"),
    "/replay": ("replay", "Policy replay"),
}
NAV = (
    ("/", "Queue"),
    ("/history", "History"),
    ("/stats", "Stats"),
    ("/deliveries", "Deliveries"),
    ("/replay", "Replay"),
    ("/devices", "Devices"),
)


@cache
def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, **values: str) -> str:
    """``name`` with every value HTML-escaped (values are never trusted markup)."""
    return template(name).substitute({k: html.escape(v, quote=True) for k, v in values.items()})


def card(title: str, content: str, *, head: str = "") -> str:
    """A small page of its own (sign-in, messages) around ``content``, which is trusted
    markup from :func:`render`; ``title`` is escaped."""
    return template("card.html").substitute(
        title=html.escape(title, quote=True), head=head, content=content
    )


def html_page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**HTML_HEADERS, **(headers or {})})


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def message_page(
    request: Request, status: int, title: str, detail: str, *, code: str | None = None
) -> Response:
    """A friendly page for a person, or a problem document for a program."""
    if not wants_html(request):
        return problem(status, detail, code=code, instance=request.url.path)
    return html_page(message_card(title, detail), status)


def message_card(title: str, detail: str) -> str:
    return card(title, render("message.html", title=title, detail=detail))


def client_address(request: Request) -> str:
    """Who is asking, as far as the connection tells (behind a proxy, uvicorn's
    ``--forwarded-allow-ips`` makes this the original client)."""
    return request.client.host if request.client else "unknown"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=dict(HTML_HEADERS))


def to_sign_in(request: Request) -> RedirectResponse:
    """To the sign-in page, remembering this one to come back to."""
    response = redirect("/login")
    s.remember_page(response, request)
    return response


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (the sign-in and sign-out buttons), bounded in size."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise PayloadTooLarge("the form is too large")
        chunks.append(chunk)
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(raw, max_num_fields=20)
    except ValueError as exc:
        raise InvalidArguments("the form has too many fields") from exc
    return {k: v[0] for k, v in fields.items()}


class _SecurityHeaders:
    """Adds ``nosniff`` and a revalidation policy to the static files' responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"no-cache"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Dashboard:
    """The routes, bound to the server's state, sessions and (optional) OIDC provider."""

    def __init__(self, state: AppState, sessions: Sessions, oidc: Oidc | None) -> None:
        self.state = state
        self.sessions = sessions
        self.oidc = oidc
        self.failed_sign_ins = AttemptLimiter()

    def routes(self) -> list[BaseRoute]:
        page = self._guarded(self.page)
        return [
            *(Route(path, page, methods=["GET"]) for path in PAGES),
            Route("/requests/{id}", self._guarded(self.request_page), methods=["GET"]),
            Route("/login", self._guarded(self.login_form), methods=["GET"]),
            Route("/login", self._guarded(self.login), methods=["POST"]),
            Route("/logout", self._guarded(self.logout), methods=["POST"]),
            Route("/login/oidc", self._guarded(self.oidc_start), methods=["GET"]),
            Route(CALLBACK_PATH, self._guarded(self.oidc_callback), methods=["GET"]),
            Mount("/static", _SecurityHeaders(StaticFiles(directory=STATIC)), name="static"),
        ]

    @staticmethod
    def _guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Errors become a friendly page or a problem document, never a stack trace."""

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignoffError as exc:
                if not wants_html(request):
                    return from_error(exc, instance=request.url.path)
                status = from_error(exc).status_code
                page = message_page(request, status, "That did not work", exc.message)
                page.headers.update(retry_after(exc) or {})
                return page

        return handle

    # -- pages ----------------------------------------------------------------------------

    async def _shell(
        self, request: Request, page: str, title: str, request_id: str = ""
    ) -> Response:
        claims = await self.sessions.claims(request)
        if claims is None:
            return to_sign_in(request)
        principal = self.sessions.verifier.principal(claims)
        nav = "".join(
            f'<a href="{href}"{" aria-current=page" if href == request.url.path else ""}>'
            f"{label}</a>"
            for href, label in NAV
        )
        content = render(f"{page}.html")
        body = template("page.html").substitute(
            title=html.escape(title),
            page=page,
            request_id=html.escape(request_id, quote=True),
            csrf=html.escape(self.sessions.csrf_token(claims), quote=True),
            name=html.escape(str(claims.get("name") or principal.sub)),
            role=html.escape(principal.role or "no role"),
            nav=nav,
            content=content,
        )
        return html_page(body)

    async def page(self, request: Request) -> Response:
        page, title = PAGES[request.url.path]
        return await self._shell(request, page, title)

    async def request_page(self, request: Request) -> Response:
        request_id = str(request.path_params["id"])
        return await self._shell(request, "request", "Request", request_id=request_id)

    # -- sign-in with a link ----------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """The link's landing page: a button to press. Scanners that fetch the link (GET)
        spend nothing; only the button's POST signs in."""
        token = request.query_params.get("token")
        if not token:
            if await self.sessions.claims(request) is not None:
                return redirect("/")
            sso = (
                render("login_sso.html")
                if self.oidc is not None
                else "<p>Single sign-on is not configured on this server.</p>"
            )
            return html_page(card("Sign in", template("login.html").substitute(sso=sso)))
        self.failed_sign_ins.check(client_address(request))
        try:
            principal = await self.sessions.peek_link(token)
        except Unauthorized as exc:
            self.failed_sign_ins.failed(client_address(request))
            return html_page(message_card("This sign-in link does not work", exc.message), 401)
        nonce = s.new_login_nonce()
        body = render(
            "login_confirm.html",
            sub=principal.sub,
            role=principal.role or "",
            token=token,
            nonce=nonce,
        )
        response = html_page(card("Sign in", body))
        s.set_login_cookie(response, request, nonce)
        return response

    async def login(self, request: Request) -> Response:
        client = client_address(request)
        self.failed_sign_ins.check(client)
        form = await read_form(request)
        cookie = request.cookies.get(s.LOGIN_COOKIE, "")
        sent = form.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            self.failed_sign_ins.failed(client)
            # the form's nonce must match the cookie its own page set: another site's form
            # cannot sign this browser in as someone else (login CSRF)
            return message_page(
                request,
                403,
                "Sign-in refused",
                "Open the sign-in link again and press the button on its page.",
                code="csrf",
            )
        try:
            principal = await self.sessions.redeem_link(form.get("token", ""))
        except Unauthorized:
            self.failed_sign_ins.failed(client)
            raise
        token = self.sessions.start(principal, method="link")
        response = redirect("/")
        response.headers["location"] = s.page_after_sign_in(request, response)
        s.set_session_cookie(response, request, token)
        s.clear_login_cookie(response, request)
        return response

    async def logout(self, request: Request) -> Response:
        claims = await self.sessions.claims(request)
        if claims is not None:
            form = await read_form(request)
            sent = request.headers.get(s.CSRF_HEADER) or form.get("csrf", "")
            expected = self.sessions.csrf_token(claims)
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                return message_page(
                    request, 403, "Sign-out refused", "Sign out from the dashboard.", code="csrf"
                )
            await self.sessions.end(request)
        response = redirect("/login")
        s.clear_session_cookie(response, request)
        return response

    # -- sign-in with an identity provider -------------------------------------------------

    def _redirect_uri(self, request: Request) -> str:
        public = self.state.config.server.public_url
        base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
        return base + CALLBACK_PATH

    async def oidc_start(self, request: Request) -> Response:
        if self.oidc is None:
            return message_page(
                request, 404, "Not configured", "Single sign-on is not configured on this server."
            )
        url, flow = await self.oidc.start(self._redirect_uri(request))
        response = RedirectResponse(url, status_code=303, headers=dict(HTML_HEADERS))
        response.set_cookie(
            FLOW_COOKIE,
            flow,
            max_age=FLOW_TTL_S,
            path=CALLBACK_PATH,
            httponly=True,
            samesite="lax",
            secure=s.is_https(request),
        )
        return response

    async def oidc_callback(self, request: Request) -> Response:
        if self.oidc is None:
            return message_page(
                request, 404, "Not configured", "Single sign-on is not configured on this server."
            )
        params = dict(request.query_params)
        signed_in = await self.oidc.finish(params, request.cookies.get(FLOW_COOKIE))
        if signed_in.role is None or signed_in.role not in self.state.config.roles.roles:
            return message_page(
                request,
                403,
                "No approver role",
                f"You are signed in at the identity provider as {signed_in.name or signed_in.sub}"
                ", but your account has no signoff role. Ask an administrator for one.",
            )
        principal = Principal(sub=signed_in.sub, role=signed_in.role, kind="approver")
        token = self.sessions.start(principal, method="oidc", name=signed_in.name)
        # A 200 page that moves on by itself, not a redirect: the provider sent us here
        # cross-site, and RFC 6265bis lets a browser keep a SameSite=Strict cookie off every
        # request of a redirect chain that began on another site (some browsers do).
        page = s.page_after_sign_in(request)
        refresh = f'<meta http-equiv="refresh" content="0; url={html.escape(page, quote=True)}">\n'
        response = html_page(card("Signed in", render("signed_in.html", page=page), head=refresh))
        s.page_after_sign_in(request, response)  # remembered no longer
        s.set_session_cookie(response, request, token)
        response.delete_cookie(FLOW_COOKIE, path=CALLBACK_PATH, httponly=True, samesite="lax")
        return response


def mount(state: AppState, key: bytes) -> list[BaseRoute]:
    """Set up sessions on ``state`` and return the dashboard's routes."""
    sessions = Sessions(key, state.config, state.service.store)
    auth = state.config.auth
    oidc = Oidc(auth, state.config.roles, key) if auth.oidc_enabled else None
    state.session_hook = sessions.principal
    return Dashboard(state, sessions, oidc).routes()

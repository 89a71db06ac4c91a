"""The approval server: ``create_app`` builds it; ``signoff serve`` runs it with uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signoff.auth import Issuer, Verifier, load_or_create_key
from signoff.config import DEFAULT_SERVER_URL, Config
from signoff.delivery import ChannelRuntime, build_channels, make_context
from signoff.problems import problem
from signoff.server import dashboard, device_pages
from signoff.server.endpoints import Endpoint, handler_for
from signoff.server.routes import ENDPOINTS
from signoff.server.state import AppState
from signoff.service import ApprovalService

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    service: ApprovalService,
    *,
    key: bytes,
    config: Config | None = None,
    channels: ChannelRuntime | None = None,
    public_url: str | None = None,
) -> Starlette:
    """The server's ASGI app around ``service``; ``key`` signs and checks HS256 tokens.

    The configured channels (``channels``, else built from ``config``) start and stop with
    the app, their routes are mounted, and their deliveries are sent by the worker in this
    replica; ``public_url`` (else ``[server] public_url``) is where links point."""
    config = config or service.config
    issuer = Issuer(key, config.auth, config.roles)
    verifier = Verifier(key, config.auth, config.roles)
    state = AppState(service=service, config=config, issuer=issuer, verifier=verifier, key=key)
    routes: list[BaseRoute] = [
        Route(path, _by_method(handlers), methods=list(handlers))
        for path, handlers in _group(ENDPOINTS, state).items()
    ]
    routes += dashboard.mount(state, key)  # the pages; also sets the cookie-session hook
    if channels is None and config.channels:
        channels = ChannelRuntime(service, build_channels(config))
    if channels is not None:
        if channels.worker.observe is None:
            channels.worker.observe = state.metrics.observe_delivery
        routes += channels.routes()
        state.channels = channels
    address = public_url or config.server.public_url or DEFAULT_SERVER_URL
    routes += device_pages.mount(state, key)  # /device (confirm a login), /devices

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            if channels is not None:
                await channels.start(make_context(service, verifier, key, address))
            yield
        finally:
            if channels is not None:
                await channels.aclose()
            await service.aclose()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.signoff = state
    return app


def _group(endpoints: Sequence[Endpoint], state: AppState) -> dict[str, dict[str, Handler]]:
    """One route per path, so that a wrong method gets a 405 listing every right one."""
    grouped: dict[str, dict[str, Handler]] = {}
    for endpoint in endpoints:
        grouped.setdefault(endpoint.path, {})[endpoint.method] = handler_for(endpoint, state)
    return grouped


def _by_method(handlers: dict[str, Handler]) -> Handler:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: "no such endpoint", 405: "this endpoint does not take that method"}
    headers = dict(exc.headers or {})
    if "Allow" in headers:
        # HEAD is answered for every GET, but only the documented methods are listed
        headers["Allow"] = ", ".join(m for m in headers["Allow"].split(", ") if m != "HEAD")
    return problem(
        exc.status_code,
        detail.get(exc.status_code, exc.detail),
        instance=request.url.path,
        headers=headers,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("signoff: unhandled error on %s", request.url.path, exc_info=exc)
    detail = "the server failed; the error has been logged"
    return problem(500, detail, instance=request.url.path)


def key_for(data_dir: Path, secret: str | None) -> bytes:
    return load_or_create_key(data_dir, secret)

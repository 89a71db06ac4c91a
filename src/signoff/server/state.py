"""What the server's handlers share: the service, identity, tickets, metrics."""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import jwt
from starlette.requests import Request

from signoff.auth import STREAM_TICKET_AUDIENCE, Issuer, Verifier
from signoff.config import Config
from signoff.delivery import ChannelRuntime
from signoff.devices import DEVICE_AUDIENCE, DeviceGrant
from signoff.errors import Unauthorized
from signoff.models import Principal
from signoff.server.metrics import Metrics
from signoff.server.ratelimit import AttemptLimiter
from signoff.server.stats import StatsCache
from signoff.service import ApprovalService
from signoff.stores.base import Store

TICKET_TTL_S = 60


class Tickets:
    """Single-use, short-lived tickets for opening the event stream from a browser, which
    cannot send an Authorization header. Never a long-lived token in a URL."""

    def __init__(self, issuer: Issuer, verifier: Verifier, store: Store) -> None:
        self._issuer = issuer
        self._verifier = verifier
        self._store = store  # spent tickets, shared by every replica

    def issue(self, principal: Principal) -> tuple[str, int]:
        token = self._issuer.token(
            principal.sub,
            kind=principal.kind,
            role=principal.role,
            ttl=TICKET_TTL_S,
            audience=STREAM_TICKET_AUDIENCE,
            extra={"nonce": secrets.token_urlsafe(8)},
        )
        return token, TICKET_TTL_S

    async def redeem(self, ticket: str) -> Principal:
        claims = self._verifier.claims(ticket, audience=STREAM_TICKET_AUDIENCE)
        jti = str(claims.get("jti", ""))
        if not jti or not await self._store.spend(
            f"ticket:{jti}", self._verifier.valid_until(claims)
        ):
            raise Unauthorized("this stream ticket was used already")
        return self._verifier.principal(claims)


@dataclass
class AppState:
    service: ApprovalService
    config: Config
    issuer: Issuer
    verifier: Verifier
    #: the server's own signing key (tickets, sessions, login links)
    key: bytes = b""
    metrics: Metrics = field(default_factory=Metrics)
    stats: StatsCache = field(default_factory=StatsCache)
    tickets: Tickets = field(init=False)
    #: the configured channels and their delivery worker (None: no channels)
    channels: ChannelRuntime | None = None
    #: device codes asked for, per client address (each is a row in the store)
    device_requests: AttemptLimiter = field(
        default_factory=lambda: AttemptLimiter(30, 600.0, what="device codes asked for")
    )
    #: devices signed in with `signoff login`
    devices: DeviceGrant = field(init=False)
    #: the dashboard's session lookup (set by create_app); None: no cookie sessions
    session_hook: Callable[[Request], Awaitable[Principal | None]] | None = None

    def __post_init__(self) -> None:
        # tickets are the server's own tokens: HS256 with its key, whatever [auth] says
        from signoff.server.session import own_tokens

        self.tickets = Tickets(*own_tokens(self.key, self.config), self.service.store)
        service = self.service
        self.devices = DeviceGrant(
            service.store, self.key, self.config, lambda: service.now().timestamp()
        )

    async def verify(self, token: str) -> Principal:
        if _is_device_token(token):
            # checked against the store on every use: a revoked device is refused at once
            return await self.devices.principal(token)
        if self.verifier.needs_thread:
            # fetching the provider's keys blocks: keep it off the event loop
            return await asyncio.to_thread(self.verifier.verify, token)
        return self.verifier.verify(token)

    async def session_principal(self, request: Request) -> Principal | None:
        """The dashboard's signed-in person, if any (set up by the dashboard)."""
        return None if self.session_hook is None else await self.session_hook(request)


@functools.lru_cache(maxsize=4096)
def _is_device_token(token: str) -> bool:
    """Whether ``token`` says it is a device's access token (its audience). Only a hint
    for which check to run: the device check verifies the signature itself. Remembered per
    token (a client sends the same one with every request; decoding it again cost about a
    tenth of a busy server's time)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return claims.get("aud") == DEVICE_AUDIENCE

"""Signing a device in: the OAuth 2.0 device authorization grant (RFC 8628), refresh token
rotation (RFC 6749 §6, OAuth 2.0 Security BCP §4.14) and revocation (RFC 7009).

``signoff login`` asks for a code (:meth:`DeviceGrant.authorize`); a person signed in to
the dashboard enters the user code and confirms (:meth:`DeviceGrant.decide`), which binds
the device to that person's ``sub`` and role; the command polls the token endpoint
(:meth:`DeviceGrant.poll`) and receives a short-lived access token and a refresh token.

- **Approvers only.** Every token issued here is ``kind=approver``; no agent token can be
  obtained this way (agents are not people, and there is no scope that asks for one).
- **Codes.** The device code has 256 bits and is stored only as its SHA-256. The user code
  is 8 letters from a 20-consonant alphabet (RFC 8628 §6.1: no vowels, so no words; no
  digits, so no 0/O or 1/I), about 34.6 bits, stored as an HMAC with the server key. Only a
  signed-in person may enter one, each client address and person only a few wrong times in
  a while, and every wrong code counts against every code then waiting: a code that has
  outlived :data:`MAX_WRONG_CODES` wrong guesses is burned.
- **Refresh tokens** are ``<device id>.<generation>.<MAC>``, a MAC with the server key:
  nothing secret is stored, and only the newest generation is accepted. Presenting an
  older one (a stolen copy used after the real client refreshed, or the other way round)
  revokes the device (the BCP's reuse detection).
- **Revocation is read from the store on every use** of an access token (its ``dev``
  claim names the device): no process keeps an answer that could outlive a revocation,
  so it takes effect at once on every replica that shares the database.
- **Every step is audited**: each is an audit event that changes no request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from signoff._util import to_datetime
from signoff.audit import AuditEntry
from signoff.auth import Issuer, Verifier
from signoff.config import Config
from signoff.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OAuthClientError,
    OAuthError,
    Unauthorized,
)
from signoff.models import Principal
from signoff.safe_text import printable
from signoff.stores.base import Store
from signoff.stores.device_base import DeviceRecord
from signoff.types import Clock, JSONObject

DEVICE_AUDIENCE = "signoff:device"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CLIENT_ID = "signoff-cli"
#: the one scope: decide as the person who confirmed, with their role
SCOPE = "approver"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
CODE_TTL_S = 600
POLL_INTERVAL_S = 5
ACCESS_TTL_S = 900
REFRESH_LIFETIME = timedelta(days=30)
#: wrong user codes a waiting code may outlive before it is burned: bounds the chance that
#: guessing finds any one code to 20 / 20**8 ≈ 8e-10
MAX_WRONG_CODES = 20
MAX_NAME = 100
_REFRESH_DOMAIN = b"signoff-refresh-v1\x00"
_USER_CODE_DOMAIN = b"signoff-user-code-v1\x00"


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the device authorization endpoint answers (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    expires_in: int
    interval: int
    device: DeviceRecord


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the token endpoint answers (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    refresh_token: str
    device: DeviceRecord


def normalize_user_code(raw: str) -> str | None:
    """``bcdf-ghjk`` → ``BCDFGHJK``; None when it cannot be a user code at all."""
    code = "".join(ch for ch in raw.upper() if ch not in " -\t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def device_name(raw: str | None) -> str:
    """The name a device gives itself, made safe to show: one line, printable, bounded."""
    name = printable(" ".join((raw or "").split()))[:MAX_NAME]
    return name or "unnamed device"


class DeviceGrant:
    """The device flow's steps, each checked against (and written to) the store."""

    def __init__(self, store: Store, key: bytes, config: Config, clock: Clock = time.time) -> None:
        self.store = store
        self.roles = config.roles
        self._key = key
        self._clock = clock
        # the server's own tokens: HS256 with its key, whatever [auth] says for others
        auth = replace(config.auth, algorithms=("HS256",), jwks_url=None, issuer=None)
        auth = replace(auth, audience=None)
        self.issuer = Issuer(key, auth, config.roles)
        self.verifier = Verifier(key, auth, config.roles)

    def now(self) -> datetime:
        return to_datetime(self._clock())

    # -- hashing ----------------------------------------------------------------------------

    def _user_code_hash(self, code: str) -> str:
        return hmac.new(self._key, _USER_CODE_DOMAIN + code.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _device_code_hash(code: str) -> str:
        return hashlib.sha256(code.encode()).hexdigest()

    def _refresh_mac(self, device_id: str, gen: int) -> str:
        message = _REFRESH_DOMAIN + f"{device_id}\x00{gen}".encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def refresh_token(self, device_id: str, gen: int) -> str:
        return f"{device_id}.{gen}.{self._refresh_mac(device_id, gen)}"

    def _parse_refresh(self, token: str) -> tuple[str, int] | None:
        """The device and generation a refresh token this server issued names; None for
        anything else (a forged token never revokes anything)."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 9:
            return None
        device_id, gen = parts[0], int(parts[1])
        if not hmac.compare_digest(parts[2].encode(), self._refresh_mac(device_id, gen).encode()):
            return None
        return device_id, gen

    # -- audit ------------------------------------------------------------------------------

    async def _audit(
        self, type_: str, device: DeviceRecord, actor: JSONObject | None = None, **data: Any
    ) -> None:
        who = actor or {"sub": f"device:{device.id}", "kind": "device", "role": None}
        body: JSONObject = {
            "device_id": device.id,
            "name": device.name,
            "sub": device.sub,
            "role": device.role,
        }
        body.update(data)
        await self.store.append_audit(AuditEntry(type_, None, who, self.now(), "device", body))

    # -- 1. the device asks for codes -------------------------------------------------------

    async def authorize(
        self, client_id: str | None, scope: str | None, name: str | None, address: str
    ) -> Authorization:
        check_client(client_id)
        if scope not in (None, "", SCOPE):
            raise OAuthError(
                "invalid_scope", f"the only scope is {SCOPE!r}: device login never issues agent "
                "tokens",
            )  # fmt: skip
        now = self.now()
        for _ in range(8):  # a user code already waiting elsewhere: draw another
            device_code = secrets.token_urlsafe(32)
            user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            device = DeviceRecord(
                id="dev_" + secrets.token_urlsafe(12),
                name=device_name(name),
                address=address[:100],
                status="pending",
                sub=None,
                role=None,
                created_at=now,
                expires_at=now + timedelta(seconds=CODE_TTL_S),
                interval_s=POLL_INTERVAL_S,
                last_poll_at=None,
                failures=0,
                refresh_gen=0,
                decided_at=None,
                used_at=None,
            )
            hashes = self._device_code_hash(device_code), self._user_code_hash(user_code)
            if await self.store.device_insert(device, *hashes):
                await self._audit("device.requested", device, address=device.address)
                return Authorization(device_code, user_code, CODE_TTL_S, POLL_INTERVAL_S, device)
        raise OAuthError("temporarily_unavailable", "no free user code was found; try again")

    # -- 2. a person confirms or denies ------------------------------------------------------

    async def lookup(self, raw_code: str, principal: Principal, address: str) -> DeviceRecord:
        """The device waiting for ``raw_code``; a wrong code is counted against every
        waiting code (and audited) before :class:`NotFound` is raised."""
        require_person(principal, self)
        code = normalize_user_code(raw_code)
        found = None
        if code is not None:
            found = await self.store.device_by_user_code(self._user_code_hash(code), self.now())
        if found is not None:
            return found
        burned = await self.store.device_failed_guess(self.now(), MAX_WRONG_CODES)
        actor = principal.audit_actor()
        entry = AuditEntry(
            "device.code_refused",
            None,
            actor,
            self.now(),
            "device",
            {"address": address, "burned": [d.id for d in burned]},
        )
        await self.store.append_audit(entry)
        raise NotFound("no device is waiting for that code: check it, or run signoff login again")

    async def decide(
        self, raw_code: str, approve: bool, principal: Principal, address: str
    ) -> DeviceRecord:
        device = await self.lookup(raw_code, principal, address)
        assert principal.role is not None
        decided = await self.store.device_decide(
            device.id, approve, principal.sub, principal.role, self.now()
        )
        if decided is None:
            raise Conflict("this code was confirmed, denied or has expired in the meantime")
        kind = "device.approved" if approve else "device.denied"
        await self._audit(kind, decided, principal.audit_actor(), address=address)
        return decided

    # -- 3. the device polls, then refreshes ------------------------------------------------

    async def poll(self, client_id: str | None, device_code: str) -> Tokens:
        check_client(client_id)
        polled = await self.store.device_poll(self._device_code_hash(device_code), self.now())
        if polled is None:
            raise OAuthError("invalid_grant", "unknown device code")
        device, too_fast = polled
        if too_fast:
            await self._audit("device.slow_down", device, interval=device.interval_s)
            raise OAuthError(
                "slow_down", f"polled too soon: wait {device.interval_s} s between polls"
            )
        expired = device.expires_at <= self.now()
        if device.status == "pending":
            if expired:
                raise OAuthError("expired_token", "the code expired: run signoff login again")
            raise OAuthError("authorization_pending", "waiting for the person to confirm")
        if device.status == "denied":
            raise OAuthError("access_denied", "the sign-in was denied")
        if device.status in ("burned", "revoked"):
            raise OAuthError("expired_token", f"the code was {device.status}: sign in again")
        if device.status == "active":
            raise OAuthError("invalid_grant", "this device code was exchanged already")
        ends = self.now() + REFRESH_LIFETIME
        active = await self.store.device_activate(device.id, self.now(), ends)
        if active is None:
            raise OAuthError("invalid_grant", "this device code was exchanged or has expired")
        await self._audit("device.signed_in", active)
        return self._tokens(active)

    def _tokens(self, device: DeviceRecord) -> Tokens:
        assert device.sub is not None and device.role is not None
        access = self.issuer.token(
            device.sub,
            kind="approver",
            role=device.role,
            ttl=ACCESS_TTL_S,
            audience=DEVICE_AUDIENCE,
            extra={"dev": device.id},
        )
        refresh = self.refresh_token(device.id, device.refresh_gen)
        return Tokens(access, ACCESS_TTL_S, refresh, device)

    async def refresh(self, client_id: str | None, token: str) -> Tokens:
        check_client(client_id)
        parsed = self._parse_refresh(token)
        device = None if parsed is None else await self.store.device_get(parsed[0])
        if parsed is None or device is None:
            raise OAuthError("invalid_grant", "unknown refresh token")
        gen = parsed[1]
        if device.status != "active":
            raise OAuthError("invalid_grant", f"this device was {device.status}: sign in again")
        if device.expires_at <= self.now():
            raise OAuthError("invalid_grant", "this sign-in has ended: run signoff login again")
        rotated = None
        if gen == device.refresh_gen:
            rotated = await self.store.device_rotate(device.id, gen, self.now())
        if rotated is None:
            # an older refresh token, or this one used twice: one of the two holders is not
            # the client, and which one cannot be told, so the device is signed out
            revoked = await self.store.device_revoke(device.id)
            await self._audit("device.refresh_reused", revoked or device, generation=gen)
            raise OAuthError("invalid_grant", "this refresh token was used already: signed out")
        await self._audit("device.refreshed", rotated, generation=rotated.refresh_gen)
        return self._tokens(rotated)

    # -- 4. using, listing and revoking ------------------------------------------------------

    def device_of(self, token: str) -> str | None:
        """The device an access or refresh token of this server names (verified), if any."""
        parsed = self._parse_refresh(token)
        if parsed is not None:
            return parsed[0]
        try:
            claims = self.verifier.claims(token, audience=DEVICE_AUDIENCE)
        except Unauthorized:
            return None
        dev = claims.get("dev")
        return dev if isinstance(dev, str) else None

    async def principal(self, token: str) -> Principal:
        """Who a device's access token speaks for, checked against the store on every
        use: a revoked device's tokens stop working at once, on every replica."""
        claims = self.verifier.claims(token, audience=DEVICE_AUDIENCE)
        device_id = claims.get("dev")
        device = await self.store.device_get(device_id) if isinstance(device_id, str) else None
        if device is None or device.status != "active" or device.expires_at <= self.now():
            raise Unauthorized("this device was signed out: run signoff login again")
        principal = self.verifier.principal(claims)
        if (principal.sub, principal.role, principal.kind) != (
            device.sub,
            device.role,
            "approver",
        ):
            raise Unauthorized("the token does not match its device")
        return replace(principal, claims={**principal.claims, "dev": device.id})

    async def is_active(self, device_id: str) -> bool:
        """Whether the device is still signed in (read from the store, every time)."""
        device = await self.store.device_get(device_id)
        return device is not None and device.status == "active" and device.expires_at > self.now()

    async def revoke_token(self, client_id: str | None, token: str) -> None:
        """RFC 7009: revoke the device a token names; an unknown token is not an error."""
        check_client(client_id)
        device_id = self.device_of(token)
        if device_id is None:
            return
        revoked = await self.store.device_revoke(device_id)
        if revoked is not None:
            await self._audit("device.revoked", revoked, by="token")

    async def list(self, principal: Principal) -> list[DeviceRecord]:
        """``principal``'s devices; everyone's for the highest role."""
        require_person(principal, self)
        everyone = principal.role == self.roles.highest
        return await self.store.device_list(None if everyone else principal.sub)

    async def revoke(self, device_id: str, principal: Principal) -> DeviceRecord:
        """Sign a device out: its owner, or anyone with the highest role."""
        require_person(principal, self)
        device = await self.store.device_get(device_id)
        if device is None or device.status not in ("active", "revoked"):
            raise NotFound(f"no device {device_id}")
        if device.sub != principal.sub and principal.role != self.roles.highest:
            await self._audit("device.revoke_refused", device, principal.audit_actor())
            raise Forbidden(f"only its owner or the role {self.roles.highest!r} may revoke it")
        revoked = await self.store.device_revoke(device_id)
        if revoked is None:
            return device  # revoked already: nothing more to do
        await self._audit("device.revoked", revoked, principal.audit_actor(), by="person")
        return revoked


def check_client(client_id: str | None) -> None:
    if client_id != CLIENT_ID:
        raise OAuthClientError(f"unknown client_id: the signoff command line is {CLIENT_ID!r}")


def require_person(principal: Principal, grant: DeviceGrant) -> None:
    if principal.kind != "approver" or grant.roles.rank(principal.role) < 0:
        raise Forbidden("only a person with a known approver role may do this")

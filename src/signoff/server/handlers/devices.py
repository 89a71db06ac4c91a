"""Device login (RFC 8628): the OAuth endpoints a device talks to, and the devices a person
has signed in (``/v1/devices``). The confirmation page is the dashboard's
(:mod:`signoff.server.device_pages`)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from signoff.devices import DEVICE_CODE_GRANT, Tokens, format_user_code
from signoff.errors import OAuthError
from signoff.server.device_bodies import (
    DeviceAuthorizationOut,
    DeviceOut,
    DevicesOut,
    TokenOut,
)
from signoff.server.endpoints import Ctx
from signoff.server.parsing import ok

#: RFC 6749 §5.1: token responses are never cached
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _fields(ctx: Ctx) -> dict[str, str]:
    body: Any = ctx.body
    return body if isinstance(body, dict) else {}


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise OAuthError("invalid_request", f"the parameter {name!r} is required")
    if len(value) > 4096:
        raise OAuthError("invalid_request", f"the parameter {name!r} is too long")
    return value


def _address(ctx: Ctx) -> str:
    client = ctx.request.client
    return client.host if client else "unknown"


def base_url(ctx: Ctx) -> str:
    public = ctx.state.config.server.public_url
    return (public or str(ctx.request.base_url)).rstrip("/")


async def device_authorization(ctx: Ctx) -> Response:
    address = _address(ctx)
    ctx.state.device_requests.check(address)
    ctx.state.device_requests.failed(address)  # every request counts: each is a stored row
    fields = _fields(ctx)
    granted = await ctx.state.devices.authorize(
        fields.get("client_id"), fields.get("scope"), fields.get("device_name"), address
    )
    page = base_url(ctx) + "/device"
    shown = format_user_code(granted.user_code)
    body = DeviceAuthorizationOut(
        device_code=granted.device_code,
        user_code=shown,
        verification_uri=page,
        verification_uri_complete=f"{page}?user_code={shown}",
        expires_in=granted.expires_in,
        interval=granted.interval,
    )
    return ok(body, headers=dict(_NO_STORE))


def _token_response(tokens: Tokens) -> Response:
    device = tokens.device
    assert device.sub is not None and device.role is not None
    body = TokenOut(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        sub=device.sub,
        role=device.role,
        device_id=device.id,
        refresh_expires_at=device.expires_at,
    )
    return ok(body, headers=dict(_NO_STORE))


async def token(ctx: Ctx) -> Response:
    fields = _fields(ctx)
    grant = _required(fields, "grant_type")
    devices = ctx.state.devices
    if grant == DEVICE_CODE_GRANT:
        code = _required(fields, "device_code")
        return _token_response(await devices.poll(fields.get("client_id"), code))
    if grant == "refresh_token":
        refresh = _required(fields, "refresh_token")
        return _token_response(await devices.refresh(fields.get("client_id"), refresh))
    raise OAuthError(
        "unsupported_grant_type", f"grant_type must be {DEVICE_CODE_GRANT} or refresh_token"
    )


async def revoke(ctx: Ctx) -> Response:
    fields = _fields(ctx)
    await ctx.state.devices.revoke_token(fields.get("client_id"), _required(fields, "token"))
    return JSONResponse({}, headers=dict(_NO_STORE))


async def list_devices(ctx: Ctx) -> Response:
    devices = await ctx.state.devices.list(ctx.who)
    return ok(DevicesOut(items=[DeviceOut.of(d) for d in devices]))


async def revoke_device(ctx: Ctx) -> Response:
    device = await ctx.state.devices.revoke(ctx.path("id"), ctx.who)
    return ok(DeviceOut.of(device))

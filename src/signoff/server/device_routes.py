"""The device login endpoints (docs/api.md), declared like the rest of the API: the same
table builds their routes and their part of the OpenAPI document."""

from __future__ import annotations

from signoff.server.device_bodies import (
    DeviceAuthorizationIn,
    DeviceAuthorizationOut,
    DeviceOut,
    DevicesOut,
    RevokeIn,
    RevokeOut,
    TokenIn,
    TokenOut,
)
from signoff.server.endpoints import Endpoint
from signoff.server.handlers.devices import (
    device_authorization,
    list_devices,
    revoke,
    revoke_device,
    token,
)

DEVICE_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        method="POST",
        path="/oauth/device",
        name="device_authorization",
        summary="Device authorization (RFC 8628 §3.1): a device code and a user code",
        handler=device_authorization,
        body=DeviceAuthorizationIn,
        responses={200: DeviceAuthorizationOut},
        errors=(400, 401, 408, 413, 429),
        public=True,
        form=True,
        oauth=True,
    ),
    Endpoint(
        method="POST",
        path="/oauth/token",
        name="token",
        summary="Token (RFC 8628 §3.4 polling, RFC 6749 §6 refresh with rotation)",
        handler=token,
        body=TokenIn,
        responses={200: TokenOut},
        errors=(400, 401, 408, 413),
        public=True,
        form=True,
        oauth=True,
    ),
    Endpoint(
        method="POST",
        path="/oauth/revoke",
        name="revoke",
        summary="Revoke a device's refresh or access token (RFC 7009): signs the device out",
        handler=revoke,
        body=RevokeIn,
        responses={200: RevokeOut},
        errors=(400, 401, 408, 413),
        public=True,
        form=True,
        oauth=True,
    ),
    Endpoint(
        method="GET",
        path="/v1/devices",
        name="list_devices",
        summary="Signed-in devices: your own (everyone's for the highest role)",
        handler=list_devices,
        responses={200: DevicesOut},
        errors=(401, 403),
    ),
    Endpoint(
        method="DELETE",
        path="/v1/devices/{id}",
        name="revoke_device",
        summary="Sign a device out (its owner, or the highest role), at once on every replica",
        handler=revoke_device,
        responses={200: DeviceOut},
        errors=(401, 403, 404),
    ),
)

"""The device login endpoints' bodies (docs/api.md): forms in, OAuth JSON out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff.devices import CLIENT_ID, DEVICE_CODE_GRANT, SCOPE
from signoff.stores.device_base import DeviceRecord


class _Form(BaseModel):
    """A form: the OpenAPI document's description of it (the handlers read the fields
    themselves, so that every problem is an OAuth error)."""

    model_config = ConfigDict(extra="allow")


class DeviceAuthorizationIn(_Form):
    client_id: Literal["signoff-cli"] = Field(description=f"Always {CLIENT_ID!r}.")
    scope: Literal["approver"] | None = Field(default=None, description=f"Only {SCOPE!r}.")
    device_name: str | None = Field(
        default=None, max_length=100, description="Shown to the person who confirms."
    )


class DeviceAuthorizationOut(BaseModel):
    """RFC 8628 §3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class TokenIn(_Form):
    grant_type: Literal["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"] = Field(
        description=f"{DEVICE_CODE_GRANT} (polling) or refresh_token."
    )
    client_id: Literal["signoff-cli"]
    device_code: str | None = None
    refresh_token: str | None = None


class TokenOut(BaseModel):
    """RFC 6749 §5.1, with who the token speaks for."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    scope: Literal["approver"] = "approver"
    sub: str
    role: str
    device_id: str
    refresh_expires_at: datetime = Field(description="When the sign-in ends (log in again).")


class RevokeIn(_Form):
    token: str = Field(description="A refresh or access token of a signed-in device.")
    token_type_hint: Literal["refresh_token", "access_token"] | None = None
    client_id: Literal["signoff-cli"]


class RevokeOut(BaseModel):
    """Always empty: RFC 7009 answers 200 whether or not the token was known."""


class OAuthErrorOut(BaseModel):
    """RFC 6749 §5.2 / RFC 8628 §3.5."""

    error: str = Field(
        description="authorization_pending, slow_down, expired_token, access_denied, "
        "invalid_grant, invalid_request, invalid_client, invalid_scope, "
        "unsupported_grant_type …"
    )
    error_description: str | None = None


class DeviceOut(BaseModel):
    id: str
    name: str
    sub: str | None
    role: str | None
    status: Literal["active", "revoked"] | str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    address: str

    @classmethod
    def of(cls, device: DeviceRecord) -> DeviceOut:
        return cls(
            id=device.id,
            name=device.name,
            sub=device.sub,
            role=device.role,
            status=device.status,
            created_at=device.created_at,
            expires_at=device.expires_at,
            last_used_at=device.used_at,
            address=device.address,
        )


class DevicesOut(BaseModel):
    items: list[DeviceOut]

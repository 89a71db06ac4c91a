"""The policy file's shape, as pydantic models: every key, its type and its rules, checked
before anything runs. :mod:`signoff.config` turns a checked file into the runtime Config.

The models are strict (TOML is typed: ``max_body_bytes = "big"`` is an error, not a
coercion) and forbid unknown keys, so a misspelt key is reported rather than ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from signoff.roles import DEFAULT_ROLES


def _duration(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of seconds or a duration such as '90s', '5m', '1h30m'")
    return value


def _condition(value: object) -> object:
    if not isinstance(value, bool | str) or value == "":
        raise ValueError("must be true, false or a CEL expression string")
    return value


def _reject_only(value: object) -> object:
    if value != "reject":
        raise ValueError("only 'reject' is supported: a request nobody decided is never approved")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
#: a channel's name: it is part of URLs and of environment variables' names
ChannelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
#: seconds, or a duration such as "90s", "5m", "1h30m"
Duration = Annotated[float | str, BeforeValidator(_duration)]
#: true, false, or a CEL expression over the call
Condition = Annotated[bool | str, BeforeValidator(_condition)]

HS_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
Algorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


def _hs256() -> list[Algorithm]:
    return ["HS256"]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DefaultsTable(_Table):
    timeout: Duration | None = None
    on_timeout: Annotated[Literal["reject"], BeforeValidator(_reject_only)] = "reject"
    min_role: Name | None = None


class ToolTable(_Table):
    name: Name
    when: Condition = True
    deny: Condition = False
    min_role: Name | None = None
    timeout: Duration | None = None
    risk: Literal["low", "medium", "high", "critical"] = "medium"
    editable: list[Name] | None = None
    quorum: Annotated[int, Field(ge=1, le=100)] = 1
    reason: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    reject_message: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    allow_self_approval: bool | None = None
    channels: list[Name] = Field(default_factory=list)
    #: what approvers may do with this tool's requests (default: all four)
    decisions: (
        Annotated[list[Literal["approve", "edit", "reject", "respond"]], Field(min_length=1)] | None
    ) = None
    #: "shadow": calls run without waiting; what the policy would have done is audited
    mode: Literal["enforce", "shadow"] = "enforce"


class AuthTable(_Table):
    role_claim: Name = "role"
    issuer: Name | None = None
    audience: Name | None = None
    algorithms: list[Algorithm] = Field(default_factory=_hs256, min_length=1)
    jwks_url: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    leeway_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    oidc_discovery_url: Annotated[str, StringConstraints(pattern=r"^https?://")] | None = None
    oidc_client_id: Name | None = None
    oidc_client_secret: Annotated[str, StringConstraints(min_length=1)] | None = None
    oidc_scopes: list[Name] = Field(default_factory=lambda: ["openid", "profile", "email"])

    @field_validator("algorithms")
    @classmethod
    def _one_family(cls, algorithms: list[str]) -> list[str]:
        hs = any(a in HS_ALGORITHMS for a in algorithms)
        asym = any(a in ASYMMETRIC_ALGORITHMS for a in algorithms)
        if hs and asym:
            raise ValueError("do not mix HS* with RS*/ES* (key confusion)")
        return algorithms

    @field_validator("oidc_scopes")
    @classmethod
    def _openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("must include 'openid'")
        return scopes


class ServerTable(_Table):
    max_body_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000
    max_args_depth: Annotated[int, Field(ge=1, le=1000)] = 32
    public_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")] | None = None


class RunsTable(_Table):
    apps: list[Annotated[str, StringConstraints(pattern=r"^[\w.]+:[\w.]+$")]] = Field(
        default_factory=list
    )


class AuditTable(_Table):
    #: public Ed25519 keys (base64url, 32 bytes) whose checkpoints verify besides this
    #: server's own: other replicas' keys, keys retired elsewhere
    trusted_keys: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}=?$")]] = Field(
        default_factory=list
    )
    seal_interval: Duration = "1s"
    receipt_ttl: Duration = "1h"


class ChannelTable(BaseModel):
    """``[channels.NAME]``: a type and that type's own keys, which the channel checks when
    it is built (signoff.channels.setup); any key may come from the environment instead."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Name


class EscalationTable(_Table):
    #: how long after the request was made the step fires, if it is still pending
    after: Duration
    notify: list[Name] = Field(min_length=1)


class RouteTable(_Table):
    #: a CEL expression over tool, risk, args, run and policy (or true / false)
    when: Condition = True
    notify: list[Name] = Field(default_factory=list)
    escalate: list[EscalationTable] = Field(default_factory=list, max_length=20)


class ConfigFile(_Table):
    """The whole policy file."""

    roles: list[Name] = Field(default_factory=lambda: list(DEFAULT_ROLES), min_length=1)
    always_require_approval: list[Name] = Field(default_factory=list)
    defaults: DefaultsTable = Field(default_factory=DefaultsTable)
    tools: list[ToolTable] = Field(default_factory=list)
    auth: AuthTable = Field(default_factory=AuthTable)
    server: ServerTable = Field(default_factory=ServerTable)
    runs: RunsTable = Field(default_factory=RunsTable)
    audit: AuditTable = Field(default_factory=AuditTable)
    channels: dict[ChannelName, ChannelTable] = Field(default_factory=dict)
    routes: list[RouteTable] = Field(default_factory=list)

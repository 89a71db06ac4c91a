"""Settings and the policy config file. The only module that reads the environment.

The config file is TOML::

    roles = ["editor", "publisher", "admin"]          # lowest first
    always_require_approval = ["process-refund"]      # these always ask a human

    [defaults]
    timeout = "5m"                                    # when a tool's policy names none
    on_timeout = "reject"                             # the only choice: fail closed
    min_role = "editor"

    [[tools]]
    name = "issue_refund"
    when = "args.amount > 100 || run.metadata.environment == 'production'"
    min_role = "publisher"
    timeout = "10m"
    risk = "high"
    editable = ["amount"]
    quorum = 1
    reason = "Refund ${args.amount} for {args.order_id}"

    [auth]
    role_claim = "role"            # or a path: "ably.channel.*", "realm_access.role"
    issuer = "https://idp.example"   # checked when set
    audience = "signoff"             # checked when set
    algorithms = ["HS256"]
    jwks_url = "https://idp.example/.well-known/jwks.json"
    leeway_s = 30
    # dashboard sign-in with an OIDC provider (authorization code flow with PKCE)
    oidc_discovery_url = "https://idp.example/.well-known/openid-configuration"
    oidc_client_id = "signoff"
    oidc_client_secret = "…"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from signoff._util import parse_duration
from signoff.errors import ConfigError
from signoff.policy import DEFAULT_TIMEOUT_S, Policy, Template
from signoff.roles import DEFAULT_ROLES, RoleLadder

DEFAULT_DB_URL = "sqlite:///./.signoff/signoff.db"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"

_TOOL_KEYS = {
    "name",
    "when",
    "deny",
    "min_role",
    "timeout",
    "risk",
    "editable",
    "quorum",
    "reason",
    "reject_message",
    "allow_self_approval",
    "channels",
}
_TOP_KEYS = {"roles", "always_require_approval", "defaults", "tools", "auth", "server", "runs"}
_DEFAULT_KEYS = {"timeout", "on_timeout", "min_role"}
_AUTH_KEYS = {
    "role_claim",
    "issuer",
    "audience",
    "algorithms",
    "jwks_url",
    "leeway_s",
    "oidc_discovery_url",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_scopes",
}
_SERVER_KEYS = {"max_body_bytes", "max_args_depth", "public_url"}


@dataclass(frozen=True, slots=True)
class AuthConfig:
    role_claim: str = "role"
    issuer: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("HS256",)
    jwks_url: str | None = None
    leeway_s: float = 30.0
    #: dashboard sign-in through an OIDC provider; off unless the discovery URL is set
    oidc_discovery_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: tuple[str, ...] = ("openid", "profile", "email")

    @property
    def oidc_enabled(self) -> bool:
        return self.oidc_discovery_url is not None


@dataclass(frozen=True, slots=True)
class ServerConfig:
    max_body_bytes: int = 1_000_000
    max_args_depth: int = 32
    #: the address people reach the server at (links in emails, login links)
    public_url: str | None = None


@dataclass(frozen=True, slots=True)
class RunsConfig:
    #: the "module:factory" apps `signoff runs resume` may import when a run names one (a
    #: run's recorded app is agent-written: never imported unless it is listed here)
    apps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    roles: RoleLadder = field(default_factory=RoleLadder)
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    default_min_role: str | None = None
    #: the operator's policy per tool: a floor that code and agents cannot lower
    tools: Mapping[str, Policy] = field(default_factory=dict)
    auth: AuthConfig = field(default_factory=AuthConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    source: str | None = None

    def operator_policy(self, tool: str) -> Policy | None:
        """The operator's policy for ``tool``: its entry, with the defaults where it names
        none; None when the config says nothing that applies to it."""
        policy = self.tools.get(tool)
        if self.default_min_role is None:
            return policy
        if policy is None:
            return Policy(when=False, min_role=self.default_min_role)
        return policy if policy.min_role else replace(policy, min_role=self.default_min_role)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return parse_config(data, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def parse_config(data: Mapping[str, Any], *, source: str | None = None) -> Config:
    _only(data, _TOP_KEYS, "the top level")
    roles = RoleLadder(_strings(data.get("roles", list(DEFAULT_ROLES)), "roles"))

    defaults = _table(data.get("defaults", {}), "[defaults]")
    _only(defaults, _DEFAULT_KEYS, "[defaults]")
    on_timeout = defaults.get("on_timeout", "reject")
    if on_timeout != "reject":
        raise ConfigError(
            f"[defaults] on_timeout = {on_timeout!r}: only 'reject' is supported; a request "
            "nobody decided is never approved"
        )
    timeout_s = parse_duration(defaults.get("timeout", DEFAULT_TIMEOUT_S))
    default_min_role = defaults.get("min_role")
    if default_min_role is not None:
        roles.check(default_min_role)

    always = _strings(data.get("always_require_approval", []), "always_require_approval")
    tools: dict[str, Policy] = {}
    entries = data.get("tools", [])
    if not isinstance(entries, list):
        raise ConfigError("tools must be an array of tables: [[tools]]")
    for i, entry in enumerate(entries):
        entry = _table(entry, f"[[tools]] #{i + 1}")
        tool_name = entry.get("name")
        if not isinstance(tool_name, str) or not tool_name:
            raise ConfigError(f"[[tools]] #{i + 1} needs a name")
        if tool_name in tools:
            raise ConfigError(f"tool {tool_name!r} is configured twice")
        tools[tool_name] = _tool_policy(entry, roles, where=f"[[tools]] {tool_name!r}")
    for name in always:
        # "always" stays always: an entry of its own may add terms, never a `when` that
        # lets some calls through
        tools[name] = replace(tools[name], when=True) if name in tools else Policy(when=True)

    return Config(
        roles=roles,
        default_timeout_s=timeout_s,
        default_min_role=default_min_role,
        tools=tools,
        auth=_auth(_table(data.get("auth", {}), "[auth]")),
        server=_server(_table(data.get("server", {}), "[server]")),
        runs=_runs(_table(data.get("runs", {}), "[runs]")),
        source=source,
    )


def _tool_policy(entry: Mapping[str, Any], roles: RoleLadder, *, where: str) -> Policy:
    _only(entry, _TOOL_KEYS, where)
    min_role = entry.get("min_role")
    if min_role is not None:
        roles.check(min_role)
    try:
        return Policy(
            when=_condition(entry.get("when", True), where, "when"),
            deny=_condition(entry.get("deny", False), where, "deny"),
            min_role=min_role,
            reason=Template(entry["reason"]) if "reason" in entry else None,
            reject_message=Template(entry["reject_message"]) if "reject_message" in entry else None,
            timeout=entry.get("timeout"),
            risk=entry.get("risk", "medium"),
            editable=_strings(entry["editable"], "editable") if "editable" in entry else None,
            quorum=entry.get("quorum", 1),
            allow_self_approval=entry.get("allow_self_approval"),
            channels=_strings(entry.get("channels", []), "channels"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from exc


def _condition(value: Any, where: str, key: str) -> bool | str:
    if isinstance(value, bool | str):
        return value
    raise ConfigError(f"{where}: {key} must be true, false or a CEL expression string")


def _auth(table: Mapping[str, Any]) -> AuthConfig:
    _only(table, _AUTH_KEYS, "[auth]")
    algorithms = tuple(_strings(table.get("algorithms", ["HS256"]), "[auth] algorithms"))
    allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}
    bad = [a for a in algorithms if a not in allowed]
    if bad or not algorithms:
        raise ConfigError(
            f"[auth] algorithms: {bad or 'none given'}; choose from {sorted(allowed)}"
        )
    hs = any(a.startswith("HS") for a in algorithms)
    asym = any(not a.startswith("HS") for a in algorithms)
    if hs and asym:
        raise ConfigError("[auth] algorithms: do not mix HS* with RS*/ES* (key confusion)")
    if asym and not table.get("jwks_url"):
        raise ConfigError("[auth] RS*/ES* algorithms need jwks_url")
    if table.get("oidc_discovery_url") and not table.get("oidc_client_id"):
        raise ConfigError("[auth] oidc_discovery_url needs oidc_client_id")
    scopes = tuple(
        _strings(table.get("oidc_scopes", ["openid", "profile", "email"]), "oidc_scopes")
    )
    if "openid" not in scopes:
        raise ConfigError("[auth] oidc_scopes must include 'openid'")
    return AuthConfig(
        role_claim=str(table.get("role_claim", "role")),
        issuer=table.get("issuer"),
        audience=table.get("audience"),
        algorithms=algorithms,
        jwks_url=table.get("jwks_url"),
        leeway_s=float(table.get("leeway_s", 30.0)),
        oidc_discovery_url=table.get("oidc_discovery_url"),
        oidc_client_id=table.get("oidc_client_id"),
        oidc_client_secret=table.get("oidc_client_secret"),
        oidc_scopes=scopes,
    )


def _server(table: Mapping[str, Any]) -> ServerConfig:
    _only(table, _SERVER_KEYS, "[server]")
    return ServerConfig(
        max_body_bytes=int(table.get("max_body_bytes", 1_000_000)),
        max_args_depth=int(table.get("max_args_depth", 32)),
        public_url=table.get("public_url"),
    )


def _runs(table: Mapping[str, Any]) -> RunsConfig:
    _only(table, {"apps"}, "[runs]")
    apps = _strings(table.get("apps", []), "[runs] apps")
    for app in apps:
        module, sep, attribute = app.partition(":")
        if not (module and sep and attribute):
            raise ConfigError(f"[runs] apps: {app!r} must be 'package.module:factory'")
    return RunsConfig(apps=tuple(apps))


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return list(value)


# -- the environment -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment says. Command-line flags override these."""

    db_url: str = DEFAULT_DB_URL
    config_path: str | None = None
    secret: str | None = None
    server_url: str = DEFAULT_SERVER_URL
    token: str | None = None
    #: whether the demo may use a real model (the SDKs read the keys themselves)
    anthropic_api_key: bool = False
    openai_api_key: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            db_url=env.get("SIGNOFF_DB") or DEFAULT_DB_URL,
            config_path=env.get("SIGNOFF_CONFIG") or None,
            secret=env.get("SIGNOFF_SECRET") or None,
            server_url=env.get("SIGNOFF_URL") or DEFAULT_SERVER_URL,
            token=env.get("SIGNOFF_TOKEN") or None,
            anthropic_api_key=bool(env.get("ANTHROPIC_API_KEY")),
            openai_api_key=bool(env.get("OPENAI_API_KEY")),
        )


def data_dir(db_url: str) -> Path:
    """The folder that holds a store's files (the SQLite file, the server key)."""
    if db_url.startswith("sqlite:"):
        from signoff.stores.sqlite import path_from_url

        path = path_from_url(db_url)
        if path != ":memory:":
            return Path(path).resolve().parent
    return Path(".signoff").resolve()

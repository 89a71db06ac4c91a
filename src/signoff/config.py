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
    mode = "enforce"                                  # or "shadow": audit, never wait

    [audit]
    trusted_keys = ["…"]           # other replicas' public keys (base64url Ed25519)
    seal_interval = "1s"           # how often new audit events are sealed and signed
    receipt_ttl = "1h"             # how long an approval's signed receipt is good for

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

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from signoff._util import parse_duration
from signoff.config_file import HS_ALGORITHMS, ConfigFile, RouteTable, ToolTable
from signoff.errors import ConfigError
from signoff.policy import DEFAULT_TIMEOUT_S, Policy, Template
from signoff.roles import RoleLadder
from signoff.routing import Route, Routing

DEFAULT_DB_URL = "sqlite:///./.signoff/signoff.db"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"


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
class AuditConfig:
    #: public keys (base64url) whose checkpoints verify besides this server's own
    trusted_keys: tuple[str, ...] = ()
    #: how often the leader seals new audit events and signs a checkpoint
    seal_interval_s: float = 1.0
    #: how long an approval's signed receipt is good for (signoff.receipts)
    receipt_ttl_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A ``[channels.NAME]`` table with the environment's values merged in; the channel
    checks ``settings`` against its own model when it is built."""

    name: str
    type: str
    settings: Mapping[str, Any]

    def __repr__(self) -> str:
        # the settings hold secrets: never printed
        return f"ChannelConfig({self.name!r}, type={self.type!r})"


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
    audit: AuditConfig = field(default_factory=AuditConfig)
    #: the configured channels, by name, and the routes to them
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    routing: Routing = field(default_factory=Routing)
    source: str | None = None
    #: tools in shadow mode: never wait, the verdict they would have had is audited
    shadow_tools: frozenset[str] = frozenset()

    def operator_policy(self, tool: str) -> Policy | None:
        """The operator's policy for ``tool``: its entry, with the defaults where it names
        none; None when the config says nothing that applies to it."""
        policy = self.tools.get(tool)
        if self.default_min_role is None:
            return policy
        if policy is None:
            return Policy(when=False, min_role=self.default_min_role)
        return policy if policy.min_role else replace(policy, min_role=self.default_min_role)


def config_from(value: Config | str | os.PathLike[str] | None) -> Config:
    """A Config as given, or read from a path; None: the file ``SIGNOFF_CONFIG`` names, or
    the defaults when it names none."""
    if isinstance(value, Config):
        return value
    return load_config(value if value is not None else Settings.from_env().config_path)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read a TOML config file; ``None`` gives the defaults. Every problem is one
    :class:`ConfigError` naming the file, the key and what is wrong."""
    if path is None:
        return Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return parse_config(data, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Check a parsed config (the TOML's tables) and build the runtime Config. A channel's
    key may come from ``environ`` (default: the process's) as ``SIGNOFF_CHANNEL_<NAME>_<KEY>``."""
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc)) from exc
    roles = RoleLadder(file.roles)
    for where, role in _roles_named(file):
        if role not in roles.roles:
            raise ConfigError(f"{where}: unknown role {role!r}; the roles are {list(roles.roles)}")
    timeout_s = parse_duration(file.defaults.timeout or DEFAULT_TIMEOUT_S)
    tools: dict[str, Policy] = {}
    for entry in file.tools:
        if entry.name in tools:
            raise ConfigError(f"tool {entry.name!r} is configured twice")
        try:
            tools[entry.name] = _tool_policy(entry)
        except ConfigError as exc:
            raise ConfigError(f"[[tools]] {entry.name!r}: {exc.message}") from exc
    for entry in file.tools:
        if entry.mode == "shadow" and entry.name in file.always_require_approval:
            # shadow never waits; "always" must not be loosened by a key further down
            raise ConfigError(
                f"[[tools]] {entry.name!r}: mode: 'shadow' contradicts always_require_approval"
            )
    for name in file.always_require_approval:
        # "always" stays always: an entry of its own may add terms, never a `when` that
        # lets some calls through
        tools[name] = replace(tools[name], when=True) if name in tools else Policy(when=True)
    auth = file.auth
    if any(a not in HS_ALGORITHMS for a in auth.algorithms) and not auth.jwks_url:
        raise ConfigError("auth.jwks_url: RS*/ES* algorithms need a JWKS URL")
    if auth.oidc_discovery_url and not auth.oidc_client_id:
        raise ConfigError("auth.oidc_client_id: oidc_discovery_url needs a client id")
    channels = _channels(file, os.environ if environ is None else environ)
    routing = _routing(file, set(channels))
    return Config(
        roles=roles,
        default_timeout_s=timeout_s,
        default_min_role=file.defaults.min_role,
        tools=tools,
        auth=AuthConfig(
            role_claim=auth.role_claim,
            issuer=auth.issuer,
            audience=auth.audience,
            algorithms=tuple(auth.algorithms),
            jwks_url=auth.jwks_url,
            leeway_s=auth.leeway_s,
            oidc_discovery_url=auth.oidc_discovery_url,
            oidc_client_id=auth.oidc_client_id,
            oidc_client_secret=auth.oidc_client_secret,
            oidc_scopes=tuple(auth.oidc_scopes),
        ),
        server=ServerConfig(
            max_body_bytes=file.server.max_body_bytes,
            max_args_depth=file.server.max_args_depth,
            public_url=file.server.public_url,
        ),
        runs=RunsConfig(apps=tuple(file.runs.apps)),
        channels=channels,
        routing=routing,
        audit=AuditConfig(
            trusted_keys=tuple(file.audit.trusted_keys),
            seal_interval_s=parse_duration(file.audit.seal_interval),
            receipt_ttl_s=parse_duration(file.audit.receipt_ttl),
        ),
        source=source,
        shadow_tools=frozenset(t.name for t in file.tools if t.mode == "shadow"),
    )


def _first_problem(exc: ValidationError) -> str:
    """``tools.0.quorum: Input should be a valid integer`` (and how many more there are)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return f"{where}: {message}" + (more if len(errors) > 1 else "")


def _roles_named(file: ConfigFile) -> list[tuple[str, str]]:
    named = [("defaults.min_role", file.defaults.min_role)]
    named += [(f"[[tools]] {t.name!r}: min_role", t.min_role) for t in file.tools]
    return [(where, role) for where, role in named if role is not None]


def _channels(file: ConfigFile, environ: Mapping[str, str]) -> dict[str, ChannelConfig]:
    """Each ``[channels.NAME]`` table, with ``SIGNOFF_CHANNEL_<NAME>_<KEY>`` values over
    the file's (the longest name that fits wins: ``ops`` and ``ops-hook`` both exist)."""
    prefixes = {
        f"SIGNOFF_CHANNEL_{name.upper().replace('-', '_')}_": name for name in file.channels
    }
    from_env: dict[str, dict[str, Any]] = {}
    for variable, value in environ.items():
        fits = [p for p in prefixes if variable.startswith(p) and len(variable) > len(p)]
        if fits:
            prefix = max(fits, key=len)
            key = variable[len(prefix) :].lower()
            from_env.setdefault(prefixes[prefix], {})[key] = _env_value(value)
    out: dict[str, ChannelConfig] = {}
    for name, table in file.channels.items():
        settings = {**table.model_dump(), **from_env.get(name, {})}
        if "type" in from_env.get(name, {}):
            raise ConfigError(
                f"channels.{name}.type: the type is the file's, not the environment's"
            )
        out[name] = ChannelConfig(name, table.type, settings)
    return out


def _env_value(value: str) -> Any:
    """An environment variable's value: a table or a list when it is written as JSON."""
    if value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _routing(file: ConfigFile, channels: set[str]) -> Routing:
    def known(where: str, names: list[str]) -> None:
        for name in names:
            if name not in channels:
                raise ConfigError(
                    f"{where}: unknown channel {name!r}; the channels are {sorted(channels)}"
                )

    # a tool's `channels` that names no configured channel reaches nobody (as an agent's
    # proposal does): files written before channels existed name them freely
    routes = []
    for n, route in enumerate(file.routes):
        routes.append(_route(route, f"routes.{n}", known))
    return Routing(channels=frozenset(channels), routes=tuple(routes))


def _route(route: RouteTable, where: str, known: Any) -> Route:
    known(f"{where}.notify", route.notify)
    steps = []
    for k, step in enumerate(route.escalate):
        known(f"{where}.escalate.{k}.notify", step.notify)
        try:
            after = parse_duration(step.after)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"{where}.escalate.{k}.after: {exc}") from exc
        steps.append((after, step.notify))
    if not route.notify and not steps:
        raise ConfigError(f"{where}: a route needs notify or escalate")
    try:
        return Route.build(route.when, route.notify, steps)
    except ConfigError as exc:
        raise ConfigError(f"{where}.when: {exc.message}") from exc


def _tool_policy(entry: ToolTable) -> Policy:
    return Policy(
        when=entry.when,
        deny=entry.deny,
        min_role=entry.min_role,
        reason=None if entry.reason is None else Template(entry.reason),
        reject_message=None if entry.reject_message is None else Template(entry.reject_message),
        timeout=entry.timeout,
        risk=entry.risk,
        editable=entry.editable,
        quorum=entry.quorum,
        allow_self_approval=entry.allow_self_approval,
        channels=entry.channels,
        decisions=entry.decisions,
    )


# -- the environment -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What the environment says. Command-line flags override these."""

    db_url: str = DEFAULT_DB_URL
    config_path: str | None = None
    secret: str | None = None
    #: the Ed25519 seed (base64url) that signs the audit log's checkpoints, for replicas
    #: on several machines; otherwise a key file in the data folder
    signing_key: str | None = None
    server_url: str = DEFAULT_SERVER_URL
    token: str | None = None
    #: where `signoff login` keeps its credentials: $XDG_CONFIG_HOME, else ~/.config
    config_home: str | None = None
    #: whether a graphical browser can be opened here (`signoff login` opens one)
    has_display: bool = False
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
            signing_key=env.get("SIGNOFF_SIGNING_KEY") or None,
            server_url=env.get("SIGNOFF_URL") or DEFAULT_SERVER_URL,
            token=env.get("SIGNOFF_TOKEN") or None,
            config_home=env.get("XDG_CONFIG_HOME") or None,
            has_display=bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")),
            anthropic_api_key=bool(env.get("ANTHROPIC_API_KEY")),
            openai_api_key=bool(env.get("OPENAI_API_KEY")),
        )

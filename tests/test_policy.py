from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signoff.config import Settings, load_config, parse_config
from signoff.errors import ConfigError
from signoff.models import Run, ToolCall
from signoff.policy import Policy, Template, Terms, VerdictKind, floor
from signoff.roles import RoleLadder


def call(amount: float = 250, environment: str | None = None) -> ToolCall:
    metadata = {} if environment is None else {"environment": environment}
    args = {"order_id": "ORD-1", "amount": amount}
    return ToolCall("issue_refund", args, run=Run(agent_id="support", metadata=metadata))


async def verdict(policy: Policy, c: ToolCall | None = None) -> VerdictKind:
    return (await policy.verdict(c or call())).kind


async def test_default_policy_always_asks() -> None:
    assert await verdict(Policy()) is VerdictKind.ASK


async def test_when_false_runs() -> None:
    assert await verdict(Policy(when=False)) is VerdictKind.RUN


async def test_sync_predicate() -> None:
    policy = Policy(when=lambda ctx: ctx.args["amount"] > 100)
    assert await verdict(policy, call(250)) is VerdictKind.ASK
    assert await verdict(policy, call(50)) is VerdictKind.RUN


async def test_async_predicate() -> None:
    async def over_limit(ctx: ToolCall) -> bool:
        await asyncio.sleep(0)
        return bool(ctx.args["amount"] > 100)

    policy = Policy(when=over_limit)
    assert await verdict(policy, call(250)) is VerdictKind.ASK
    assert await verdict(policy, call(50)) is VerdictKind.RUN


async def test_predicate_sees_the_whole_context() -> None:
    seen: list[ToolCall] = []

    def record(ctx: ToolCall) -> bool:
        seen.append(ctx)
        return False

    c = ToolCall("t", {"a": 1}, tool_call_id="toolu_1", run=Run(agent_id="x", run_id="r"))
    await Policy(when=record).verdict(c)
    [ctx] = seen
    assert ctx.tool_name == "t"
    assert ctx.raw_args == '{"a": 1}'
    assert ctx.tool_call_id == "toolu_1"
    assert ctx.internal_call_id.startswith("call_")
    assert ctx.run.run_id == "r"


@pytest.mark.parametrize(
    "broken",
    [
        lambda ctx: 1 / 0,
        lambda ctx: "yes",  # not a bool
        lambda ctx: ctx.args["missing"],
        "args.missing > 1",  # CEL: no such key
        "args.order_id + 1 > 0",  # CEL: type error
    ],
)
async def test_a_failing_condition_fails_closed(broken: object) -> None:
    result = await Policy(when=broken).verdict(call(5))  # type: ignore[arg-type]
    assert result.kind is VerdictKind.ASK
    assert result.note is not None


def explode(ctx: ToolCall) -> bool:
    raise ZeroDivisionError("division by zero")


def explode_text(ctx: ToolCall) -> str:
    raise ZeroDivisionError("division by zero")


async def test_a_failing_deny_condition_asks() -> None:
    result = await Policy(when=False, deny=explode).verdict(call())
    assert result.kind is VerdictKind.ASK


async def test_deny() -> None:
    policy = Policy(when=False, deny="args.amount > 10000")
    assert await verdict(policy, call(20000)) is VerdictKind.DENY
    assert await verdict(policy, call(20)) is VerdictKind.RUN
    assert await verdict(Policy(deny=True)) is VerdictKind.DENY


async def test_cel_condition() -> None:
    policy = Policy(
        when="args.amount > 100 || "
        "(has(run.metadata.environment) && run.metadata.environment == 'production')"
    )
    assert await verdict(policy, call(250)) is VerdictKind.ASK
    assert await verdict(policy, call(50)) is VerdictKind.RUN
    assert await verdict(policy, call(50, "production")) is VerdictKind.ASK
    assert await verdict(policy, call(50, "staging")) is VerdictKind.RUN


async def test_cel_without_has_fails_closed_on_missing_metadata() -> None:
    policy = Policy(when="args.amount > 100 || run.metadata.environment == 'production'")
    assert await verdict(policy, call(50)) is VerdictKind.ASK


def test_invalid_cel_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid CEL"):
        Policy(when="args.amount >")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quorum": 0}, "quorum"),
        ({"quorum": True}, "quorum"),
        ({"timeout": "soon"}, "invalid duration"),
        ({"timeout": -1}, "positive"),
        ({"risk": "extreme"}, "risk"),
        ({"editable": "amount"}, "list"),
        ({"when": 3}, "condition"),
    ],
)
def test_bad_policies(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Policy(**kwargs)  # type: ignore[arg-type]


async def test_reason_and_reject_message_take_values_and_functions() -> None:
    async def async_reason(ctx: ToolCall) -> str:
        return f"async {ctx.args['order_id']}"

    c = call()
    assert await Policy(reason="fixed").reason_text(c) == "fixed"
    assert await Policy(reason=lambda ctx: f"Refund ${ctx.args['amount']}").reason_text(c) == (
        "Refund $250"
    )
    assert await Policy(reason=async_reason).reason_text(c) == "async ORD-1"
    assert await Policy(reject_message=lambda ctx: "no").reject_text(c) == "no"
    assert await Policy().reason_text(c) is None
    failing = await Policy(reason=explode_text).reason_text(c)
    assert failing is not None and "could not be computed" in failing


def test_template() -> None:
    c = call()
    assert Template("Refund ${args.amount} for {args.order_id}")(c) == "Refund $250 for ORD-1"
    assert (
        Template("{args.nope} {tool} {args.__class__}")(c)
        == "{args.nope} issue_refund {args.__class__}"
    )


def test_durations() -> None:
    assert Policy(timeout="5m").timeout_s == 300
    assert Policy(timeout="1h30m").timeout_s == 5400
    assert Policy(timeout=90).timeout_s == 90
    assert Policy(timeout="250ms").timeout_s == 0.25


# -- floors --------------------------------------------------------------------------------


async def test_the_floor_keeps_the_stronger_of_each() -> None:
    roles = RoleLadder()
    code = Policy(
        when=lambda ctx: ctx.args["amount"] > 100,
        min_role="editor",
        timeout="1h",
        quorum=1,
        editable=["amount", "order_id"],
        allow_self_approval=True,
        reason="code reason",
        channels=["slack"],
    )
    operator = Policy(
        when="args.amount > 10",
        min_role="admin",
        timeout="5m",
        quorum=2,
        editable=["amount"],
        allow_self_approval=False,
        risk="high",
        channels=["sms"],
    )
    floored = floor(code.terms(), operator.terms(), roles=roles, default_timeout_s=300)
    assert floored.policy.min_role == "admin"
    assert floored.policy.timeout_s == 300
    assert floored.policy.quorum == 2
    assert floored.policy.editable == ["amount"]
    assert floored.policy.allow_self_approval is False
    assert floored.risk == "high"
    assert floored.channels == ["slack", "sms"]
    # the conditions: either asks
    merged = code.under(operator)
    assert await verdict(merged, call(50)) is VerdictKind.ASK
    assert await verdict(merged, call(5)) is VerdictKind.RUN


def test_the_floor_takes_the_operators_terms_where_the_proposal_says_nothing() -> None:
    roles = RoleLadder()
    operator = Policy(min_role="publisher", timeout="10m", editable=["amount"], quorum=2)
    floored = floor(Terms(), operator.terms(), roles=roles, default_timeout_s=300)
    # a per-tool timeout longer than the default applies; editable comes from the config
    assert floored.policy.timeout_s == 600
    assert floored.policy.editable == ["amount"]
    assert (floored.policy.min_role, floored.policy.quorum) == ("publisher", 2)
    # nothing said anywhere: the default timeout, the lowest role, nothing editable
    bare = floor(Terms(), None, roles=roles, default_timeout_s=300)
    assert (bare.policy.timeout_s, bare.policy.min_role, bare.policy.editable) == (
        300,
        "editor",
        [],
    )


@pytest.mark.parametrize(
    ("proposed", "operator", "from_operator", "allowed"),
    [
        (True, None, False, False),  # an agent's word alone never allows it
        (True, Terms(), False, False),  # nor where the config's entry is silent
        (None, Terms(allow_self_approval=True), False, True),
        (True, Terms(allow_self_approval=True), False, True),
        (False, Terms(allow_self_approval=True), False, False),
        (True, None, True, True),  # the operator's own code, with no config entry
        (True, Terms(allow_self_approval=False), True, False),
        (None, None, True, False),
    ],
)
def test_self_approval_only_where_the_operator_allows_it(
    proposed: bool | None, operator: Terms | None, from_operator: bool, allowed: bool
) -> None:
    floored = floor(
        Terms(allow_self_approval=proposed),
        operator,
        roles=RoleLadder(),
        default_timeout_s=300,
        proposer_is_operator=from_operator,
    )
    assert floored.policy.allow_self_approval is allowed


def test_always_stays_always_even_with_an_entry_of_its_own() -> None:
    config = parse_config(
        {
            "always_require_approval": ["issue_refund"],
            "tools": [{"name": "issue_refund", "when": "args.amount > 100", "min_role": "admin"}],
        }
    )
    policy = config.operator_policy("issue_refund")
    assert policy is not None and policy.min_role == "admin"
    assert asyncio.run(verdict(policy, call(5))) is VerdictKind.ASK


def test_role_ladder() -> None:
    roles = RoleLadder(["viewer", "editor", "admin"])
    assert roles.admits("admin", "editor")
    assert roles.admits("editor", "editor")
    assert not roles.admits("viewer", "editor")
    assert not roles.admits(None, "viewer")
    assert not roles.admits("root", "viewer")
    assert roles.higher("viewer", "admin", None) == "admin"
    with pytest.raises(ConfigError):
        RoleLadder([])
    with pytest.raises(ConfigError):
        RoleLadder(["a", "a"])


# -- the config file -------------------------------------------------------------------


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "signoff.toml"
    path.write_text(
        """
roles = ["viewer", "editor", "publisher", "admin"]
always_require_approval = ["process-refund", "delete-account"]

[defaults]
timeout = "5m"
on_timeout = "reject"

[[tools]]
name = "issue_refund"
when = "args.amount > 100"
min_role = "publisher"
timeout = "10m"
risk = "high"
editable = ["amount"]
quorum = 1
reason = "Refund ${args.amount} for {args.order_id}"

[auth]
role_claim = "ably.channel.*"
audience = "signoff"
"""
    )
    config = load_config(path)
    assert config.roles.roles == ("viewer", "editor", "publisher", "admin")
    assert config.default_timeout_s == 300
    assert set(config.tools) == {"process-refund", "delete-account", "issue_refund"}
    refund = config.tools["issue_refund"]
    assert refund.min_role == "publisher" and refund.timeout_s == 600
    assert isinstance(refund.reason, Template)
    assert config.tools["process-refund"].when is True
    assert config.auth.role_claim == "ably.channel.*"
    assert config.auth.audience == "signoff"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "blue"}, "unknown key"),
        ({"defaults": {"on_timeout": "approve"}}, "only 'reject'"),
        ({"tools": [{"when": True}]}, "tools.0.name: Field required"),
        ({"tools": [{"name": "t", "min_role": "god"}]}, "unknown role"),
        ({"tools": [{"name": "t", "when": "args.x >"}]}, "invalid CEL"),
        ({"tools": [{"name": "t", "when": 5}]}, "CEL expression"),
        ({"tools": [{"name": "t", "colour": "red"}]}, "unknown key"),
        ({"tools": [{"name": "t"}, {"name": "t"}]}, "configured twice"),
        ({"tools": {"name": "t"}}, "tools: Input should be a valid list"),
        ({"roles": "admin"}, "roles: Input should be a valid list"),
        ({"server": {"max_body_bytes": "big"}}, "server.max_body_bytes: Input should be a valid"),
        ({"auth": {"leeway_s": "x"}}, "auth.leeway_s: Input should be a valid number"),
        ({"defaults": {"timeout": "soon"}}, "invalid duration"),
        ({"tools": [{"name": "t", "quorum": 0}]}, "tools.0.quorum"),
        ({"runs": {"apps": ["not a spec"]}}, "runs.apps.0"),
        ({"auth": {"algorithms": ["none"]}}, "algorithms"),
        ({"auth": {"algorithms": ["HS256", "RS256"], "jwks_url": "http://x"}}, "mix"),
        ({"auth": {"algorithms": ["RS256"]}}, "jwks_url"),
    ],
)
def test_bad_config(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("roles = [")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("colour = 1")
    with pytest.raises(ConfigError, match=r"wrong\.toml: colour: unknown key"):
        load_config(wrong)


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {"SIGNOFF_DB": "sqlite:///x.db", "SIGNOFF_URL": "http://h:1", "SIGNOFF_TOKEN": "t"}
    )
    assert (settings.db_url, settings.server_url, settings.token) == (
        "sqlite:///x.db",
        "http://h:1",
        "t",
    )
    assert Settings.from_env({}).db_url == "sqlite:///./.signoff/signoff.db"

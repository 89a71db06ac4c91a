"""When a call needs a human, and which human.

A :class:`Policy` sits on a tool (in code) or comes from the config file (TOML, with CEL
conditions). For each call it gives one :class:`Verdict`: run now, deny, or ask. It fails
closed: a condition that raises, returns a non-boolean, or cannot be evaluated means "ask".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeAlias

from signoff._util import parse_duration, resolve
from signoff.errors import ConfigError
from signoff.history import (
    History,
    WithHistory,
    cel_lookback,
    lookback,
    positional_args,
    window_seconds,
)
from signoff.models import ALL_DECISIONS, DecisionName, PolicySnapshot, Risk, ToolCall
from signoff.roles import RoleLadder
from signoff.types import JSONObject

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 300.0

Predicate: TypeAlias = Callable[..., "bool | Awaitable[bool]"]
#: a fixed value, a CEL expression (a string), or a sync/async function of the call (or of
#: the call and the agent's :class:`~signoff.history.History`)
Condition: TypeAlias = "bool | str | Predicate"
TextFn: TypeAlias = Callable[[ToolCall], "str | Awaitable[str | None] | None"]
Text: TypeAlias = "str | TextFn | None"
ContextFn: TypeAlias = Callable[[ToolCall], "JSONObject | Awaitable[JSONObject]"]


class CelCondition:
    """A CEL expression over ``args``, ``tool``, ``tool_call_id`` and ``run``.

    Example: ``args.amount > 100 || run.metadata.environment == 'production'``. A name
    that is not there is an error, and an error means "ask"; guard optional fields with
    ``has(run.metadata.environment)``.
    """

    __slots__ = ("_program", "history_lookback", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._program = compile_cel(source)
        #: seconds of history its session functions read (signoff.history), or None
        self.history_lookback = cel_lookback(source)

    def __call__(self, call: ToolCall, history: History | None = None) -> bool:
        if self.history_lookback is None:
            result = self._program.execute(activation(call))
        else:
            import cel

            if history is None:
                raise RuntimeError("the agent's history of calls could not be read")
            context = cel.Context(variables=activation(call), functions=history.functions())
            result = self._program.execute(context)
        if not isinstance(result, bool):
            raise TypeError(f"CEL condition {self.source!r} gave {result!r}, not true or false")
        return result

    def __repr__(self) -> str:
        return f"CelCondition({self.source!r})"


def compile_cel(source: str) -> Any:
    """A CEL program (``.execute(variables)``); ConfigError when ``source`` is not CEL."""
    import cel

    try:
        return cel.compile(source)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"invalid CEL condition {source!r}: {first}") from exc


def activation(call: ToolCall) -> JSONObject:
    """The variables a CEL condition or a reason template sees."""
    return {
        "args": call.args_json,
        "tool": call.tool_name,
        "tool_call_id": call.tool_call_id,
        "run": call.run.model_dump(mode="json"),
    }


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


class Template:
    """A reason text with ``{args.amount}``-style placeholders (from the config file).

    Only dotted lookups into the call's variables are allowed: no attribute access, no
    format specs, so a template cannot reach anything but the call's own data.
    """

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, call: ToolCall) -> str:
        scope = activation(call)

        def lookup(match: re.Match[str]) -> str:
            value: Any = scope
            for part in match.group(1).split("."):
                if not isinstance(value, Mapping) or part not in value:
                    return match.group(0)
                value = value[part]
            return str(value)

        return _PLACEHOLDER.sub(lookup, self.source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def condition(value: Condition, history_window: float | None = None) -> bool | Predicate:
    """A condition ready to evaluate: CEL strings are compiled here, once; a function of
    ``(call, history)`` is marked to be given the history of ``history_window`` seconds."""
    if isinstance(value, str):
        return CelCondition(value)
    if isinstance(value, bool):
        return value
    if callable(value):
        if positional_args(value) >= 2 and getattr(value, "history_lookback", None) is None:
            return WithHistory(value, history_window or 86400.0)
        return value
    raise ConfigError(f"a condition must be a bool, a CEL string or a function, not {value!r}")


class VerdictKind(Enum):
    RUN = "run"
    DENY = "deny"
    ASK = "ask"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    #: why the verdict was reached when it was not by the policy's own answer (a failure)
    note: str | None = None


RUN = Verdict(VerdictKind.RUN)
DENY = Verdict(VerdictKind.DENY)
ASK = Verdict(VerdictKind.ASK)


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """The approval policy of one tool.

    ``when`` says whether a call needs a human (default: always); ``deny`` refuses a call
    outright, without asking. Both take a bool, a CEL string or a sync/async function of the
    call. ``reason`` and ``reject_message`` take a string or a sync/async function of the
    call. ``timeout`` takes seconds or a string such as ``"5m"``. ``editable`` names the
    arguments an approver may change. ``min_role`` is the lowest role that may approve
    (default: the lowest role of the ladder). ``quorum`` distinct qualified approvers must
    approve. ``context`` (a dict or a function of the call) is shown to approvers: why,
    what is affected, whether it is reversible, the alternatives. ``decisions`` names what
    approvers may do: ``approve``, ``edit`` (with ``editable``), ``reject``, ``respond``
    (answer in the tool's place); default all four.
    """

    when: Condition = True
    deny: Condition = False
    min_role: str | None = None
    reason: Text = None
    reject_message: Text = None
    timeout: float | str | None = None
    risk: Risk | str = Risk.MEDIUM
    editable: Sequence[str] | None = None
    quorum: int = 1
    allow_self_approval: bool | None = None
    channels: Sequence[str] = ()
    context: JSONObject | ContextFn | None = None
    decisions: Sequence[DecisionName] | None = None
    #: the longest window a code condition of ``(call, history)`` may ask about (default
    #: 24h): what the gate reads before evaluating it
    history_window: float | str | None = None
    # compiled forms, filled in by __post_init__
    _when: bool | Predicate = field(init=False, repr=False, compare=False)
    _deny: bool | Predicate = field(init=False, repr=False, compare=False)
    timeout_s: float | None = field(init=False, repr=False, compare=False)
    #: seconds of the agent's history its conditions read (signoff.history), or None:
    #: only then does the gate read history and record the calls it lets run
    history_lookback: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        window = None
        if self.history_window is not None:
            window = (
                window_seconds(self.history_window)
                if isinstance(self.history_window, str)
                else float(self.history_window)
            )
        for key in ("when", "deny"):
            try:
                set_(self, f"_{key}", condition(getattr(self, key), window))
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc.message}") from exc
        needs = [n for n in (lookback(self._when), lookback(self._deny)) if n is not None]
        set_(self, "history_lookback", max(needs) if needs else None)
        set_(self, "timeout_s", None if self.timeout is None else parse_duration(self.timeout))
        try:
            set_(self, "risk", Risk(self.risk))
        except ValueError as exc:
            raise ConfigError(f"risk must be one of {[r.value for r in Risk]}") from exc
        quorum: Any = self.quorum  # checked at run time: it may come from a config file
        if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 1:
            raise ConfigError(f"quorum must be a whole number of at least 1, not {self.quorum!r}")
        if self.editable is not None:
            if isinstance(self.editable, str):
                raise ConfigError("editable takes a list of argument names, not one string")
            set_(self, "editable", tuple(self.editable))
        set_(self, "channels", tuple(self.channels))
        if self.decisions is not None:
            set_(self, "decisions", _decisions(self.decisions))

    async def verdict(self, call: ToolCall, history: History | None = None) -> Verdict:
        """Run, deny or ask. Fails closed: any failure to evaluate means ask, and so does a
        condition over the agent's history without ``history`` (it could not be read)."""
        if self._deny is True:
            return DENY
        if self._when is False and self._deny is False:
            return RUN
        try:
            if await _check(self._deny, call, history):
                return DENY
        except Exception as exc:
            log.warning("signoff: deny condition of %s failed: %r", call.tool_name, exc)
            return Verdict(VerdictKind.ASK, note=f"the deny condition failed: {exc!r}")
        try:
            return ASK if await _check(self._when, call, history) else RUN
        except Exception as exc:
            log.warning("signoff: approval condition of %s failed: %r", call.tool_name, exc)
            return Verdict(VerdictKind.ASK, note=f"the approval condition failed: {exc!r}")

    async def denies(self, call: ToolCall) -> bool:
        """Whether ``deny`` refuses the call, where only a refusal matters (a submission). A
        deny over the agent's history cannot be evaluated without it, so does not refuse
        here: the gate that reads the history applies it."""
        try:
            return await _check(self._deny, call, None)
        except Exception as exc:
            log.warning("signoff: deny condition of %s failed: %r", call.tool_name, exc)
            return False

    async def reason_text(self, call: ToolCall) -> str | None:
        return await _text(self.reason, call, "reason")

    async def reject_text(self, call: ToolCall) -> str | None:
        return await _text(self.reject_message, call, "reject_message")

    async def context_for(self, call: ToolCall) -> JSONObject:
        if self.context is None:
            return {}
        try:
            value = await resolve(self.context, call)
        except Exception as exc:
            log.warning("signoff: context of %s failed: %r", call.tool_name, exc)
            return {"context_error": repr(exc)}
        return dict(value) if isinstance(value, Mapping) else {"value": value}

    def terms(self) -> Terms:
        """What this policy holds a request to (the floor compares these)."""
        return Terms(
            min_role=self.min_role,
            quorum=self.quorum,
            timeout_s=self.timeout_s,
            editable=None if self.editable is None else tuple(self.editable),
            allow_self_approval=self.allow_self_approval,
            risk=Risk(self.risk),
            channels=tuple(self.channels),
            decisions=None if self.decisions is None else tuple(self.decisions),
        )

    def under(self, operator: Policy | None) -> Policy:
        """This policy's conditions joined with the operator's (the config's entry for the
        tool): either ``when`` asks, either ``deny`` refuses. Only the conditions: the terms
        a request is held to are floored once, by :func:`floor`, where it is submitted."""
        if operator is None:
            return self
        return replace(
            self,
            when=_any(self._when, operator._when),
            deny=_any(self._deny, operator._deny),
            reject_message=(
                operator.reject_message
                if operator.reject_message is not None
                else self.reject_message
            ),
            context=self.context if self.context is not None else operator.context,
        )


@dataclass(frozen=True, slots=True)
class Terms:
    """The terms a request is held to: what a policy, a hook or an agent proposes, and what
    the operator's config sets as a floor. ``None`` means "not said"."""

    min_role: str | None = None
    quorum: int | None = None
    timeout_s: float | None = None
    editable: tuple[str, ...] | None = None
    allow_self_approval: bool | None = None
    risk: Risk | None = None
    channels: tuple[str, ...] = ()
    decisions: tuple[DecisionName, ...] | None = None


@dataclass(frozen=True, slots=True)
class Floored:
    """A request's terms after the floor: what it is created with."""

    policy: PolicySnapshot
    risk: Risk
    channels: list[str]


def floor(
    proposed: Terms,
    operator: Terms | None,
    *,
    roles: RoleLadder,
    default_timeout_s: float,
    proposer_is_operator: bool = False,
) -> Floored:
    """The one policy floor (docs/configuration.md): ``proposed`` (by an agent, or by code) held to
    ``operator`` (the config's entry for the tool), on every path a call can take.

    The higher ``min_role``; the larger ``quorum``; the smaller ``timeout_s`` (the config's
    own when the proposal names none, the default when neither does); the narrower
    ``editable``; the higher ``risk``; every channel either names. Self-approval only where
    the operator allows it: ``proposer_is_operator`` marks a proposal written by the
    operator's own code (an embedded gate), which may allow it where the config is silent;
    an agent's word alone never does.
    """
    op = operator if operator is not None else Terms()
    for role in (proposed.min_role, op.min_role):
        if role is not None:
            roles.check(role)
    min_role = roles.higher(proposed.min_role, op.min_role)
    timeouts = [t for t in (proposed.timeout_s, op.timeout_s) if t is not None]
    if proposed.editable is None:
        editable: tuple[str, ...] = op.editable or ()
    elif op.editable is None:
        editable = proposed.editable
    else:
        allowed = set(op.editable)
        editable = tuple(name for name in proposed.editable if name in allowed)
    if proposer_is_operator:
        allow_self = bool(proposed.allow_self_approval) and op.allow_self_approval is not False
    else:
        allow_self = op.allow_self_approval is True and proposed.allow_self_approval is not False
    risks = [r for r in (proposed.risk, op.risk) if r is not None] or [Risk.MEDIUM]
    # the narrower: what both allow (a proposal cannot widen what the operator allows)
    decisions = [
        d
        for d in ALL_DECISIONS
        if d in (proposed.decisions or ALL_DECISIONS) and d in (op.decisions or ALL_DECISIONS)
    ]
    return Floored(
        policy=PolicySnapshot(
            min_role=min_role,
            quorum=max(proposed.quorum or 1, op.quorum or 1),
            timeout_s=min(timeouts) if timeouts else default_timeout_s,
            editable=list(dict.fromkeys(editable)),
            allow_self_approval=allow_self,
            decisions=decisions,
        ),
        risk=max(risks, key=lambda r: r.rank),
        channels=list(dict.fromkeys((*proposed.channels, *op.channels))),
    )


def _decisions(value: Sequence[str]) -> tuple[DecisionName, ...]:
    if isinstance(value, str):
        raise ConfigError("decisions takes a list, such as ['approve', 'reject'], not one string")
    unknown = [d for d in value if d not in ALL_DECISIONS]
    if unknown or not value:
        raise ConfigError(f"decisions must name some of {list(ALL_DECISIONS)}, not {list(value)}")
    return tuple(d for d in ALL_DECISIONS if d in value)


async def _check(cond: bool | Predicate, call: ToolCall, history: History | None) -> bool:
    if isinstance(cond, bool):
        return cond
    # without a history every kind of condition takes the call alone (one over the history
    # then raises: it asks); the common case skips the look at what the condition needs
    if history is None or lookback(cond) is None:
        result = await resolve(cond, call)
    else:
        result = await resolve(cond, call, history)
    if not isinstance(result, bool):
        raise TypeError(f"the condition returned {result!r}, not True or False")
    return result


async def _text(value: Text, call: ToolCall, what: str) -> str | None:
    if value is None:
        return None
    try:
        text = await resolve(value, call)
    except Exception as exc:
        log.warning("signoff: %s of %s failed: %r", what, call.tool_name, exc)
        return f"({what} could not be computed: {exc!r})"
    return None if text is None else str(text)


def _any(a: bool | Predicate, b: bool | Predicate) -> bool | Predicate:
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return _Either(a, b)


class _Either:
    """Either condition asks; both are evaluated so that a failure in either fails closed."""

    __slots__ = ("first", "history_lookback", "second")

    def __init__(self, first: Predicate, second: Predicate) -> None:
        self.first, self.second = first, second
        needs = [n for n in (lookback(first), lookback(second)) if n is not None]
        self.history_lookback = max(needs) if needs else None

    async def __call__(self, call: ToolCall, history: History | None = None) -> bool:
        first = await _check(self.first, call, history)
        return bool(first) | bool(await _check(self.second, call, history))

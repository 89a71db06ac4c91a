"""A tool behind the gate: the function, its argument schema, its declared policy.

Call it like the function (always awaited): the call goes through its gate. ``running(run)``
attributes calls made that way inside a block to a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from signoff.argschema import ArgsSchema, JsonArgsSchema
from signoff.errors import ConfigError, SignoffError, UsageError
from signoff.models import Run
from signoff.outcome import ApprovalTimeout, CallStatus, Cancelled, NotRun, Outcome, Rejected
from signoff.policy import Policy
from signoff.types import JSONObject


class Runner(Protocol):
    """What a tool needs from its gate."""

    def policy_for(self, tool: GatedTool[Any, Any]) -> Policy: ...

    async def _run(
        self, tool: GatedTool[Any, Any], args: dict[str, Any], *, run: Run | None
    ) -> Outcome: ...


P = ParamSpec("P")
R = TypeVar("R")

_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "signoff_run", default=None
)


@contextlib.contextmanager
def running(run: Run) -> Iterator[Run]:
    """Attribute gated calls made directly (``await tool(...)``) inside the block to ``run``."""
    token = _current_run.set(run)
    try:
        yield run
    finally:
        _current_run.reset(token)


class GatedTool(Generic[P, R]):
    """A tool behind the gate. Call it like the function (always awaited).

    A tool made with :meth:`Gate.tool` takes its argument schema from the function's
    signature; one made with :meth:`Gate.add_tool` is described by a JSON Schema, and its
    function (if any) receives the arguments as one dict. A tool without a function is run
    elsewhere (an MCP server, a framework's own executor): the gate only authorizes it
    (:meth:`Gate.authorize`) and records what happened (:meth:`Gate.report`).
    """

    def __init__(
        self,
        gate: Runner,
        fn: Callable[P, R] | Callable[P, Awaitable[R]] | None,
        *,
        name: str,
        description: str,
        policy: Policy | None,
        input_schema: JSONObject | None = None,
    ) -> None:
        self.gate = gate
        self.fn = fn
        self.name = name
        self.description = description
        #: the policy as written on the tool (None: none given)
        self.declared_policy = policy
        self.schema: ArgsSchema | JsonArgsSchema
        if input_schema is not None:
            self.schema = JsonArgsSchema(input_schema, name)
        elif fn is None:
            raise ConfigError(f"tool {name!r} needs a function or an input schema")
        else:
            self.schema = ArgsSchema(fn, name)
        #: the function takes the arguments as one dict (a JSON Schema tool)
        self._takes_dict = input_schema is not None
        target = inspect.unwrap(fn) if fn is not None else None
        self.is_async = target is not None and inspect.iscoroutinefunction(target)
        self._signature = inspect.signature(fn) if fn is not None and not self._takes_dict else None
        if fn is not None:
            functools.update_wrapper(self, fn)

    @property
    def policy(self) -> Policy:
        """The effective policy: the tool's own, no weaker than the gate's config for it."""
        return self.gate.policy_for(self)

    @property
    def json_schema(self) -> JSONObject:
        return self.schema.json_schema

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if args:
            if self._signature is None:
                raise UsageError(f"{self.name} takes keyword arguments only")
            bound = self._signature.bind_partial(*args, **kwargs)
            kwargs = bound.arguments  # type: ignore[assignment]
        outcome = await self.gate._run(self, dict(kwargs), run=_current_run.get())
        return unwrap(outcome)  # type: ignore[no-any-return]

    async def invoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Run the tool body itself, without the gate."""
        if self.fn is None:
            raise UsageError(
                f"tool {self.name!r} has no function here: authorize it with gate.authorize, "
                "run it where it lives, and report with gate.report"
            )
        fn: Callable[..., Any] = self.fn
        call: Callable[[], Any] = (
            functools.partial(fn, dict(kwargs))
            if self._takes_dict
            else functools.partial(fn, **kwargs)
        )
        if self.is_async:
            return await call()
        result = await asyncio.to_thread(call)  # a sync tool may block; keep the loop free
        if inspect.isawaitable(result):  # a sync-looking wrapper around a coroutine function
            result = await result
        return result

    def __repr__(self) -> str:
        return f"<GatedTool {self.name}>"


def unwrap(outcome: Outcome) -> Any:
    status = outcome.status
    if status in (CallStatus.EXECUTED, CallStatus.SKIPPED, CallStatus.RESPONDED):
        return outcome.result
    if status is CallStatus.FAILED and outcome.error is not None:
        raise outcome.error
    if status is CallStatus.REJECTED:
        raise Rejected(outcome)
    if status is CallStatus.TIMEOUT:
        raise ApprovalTimeout(outcome)
    if status is CallStatus.CANCELLED:
        raise Cancelled(outcome)
    if isinstance(outcome.error, SignoffError):
        raise outcome.error
    raise NotRun(outcome)

"""Before-tool hooks: code that sees every call first and may answer for the tool.

A hook is a sync or async function of the call (a :class:`~signoff.models.ToolCall`) that
returns ``None`` to carry on, or one of:

- :func:`skip` — do not run the tool; hand ``result`` to the model as the tool's result;
- :func:`cancel` — do not run the tool; tell the model it was cancelled, with ``message``;
- :func:`request_approval` — ask a human, whatever the tool's own policy says.

After ``skip`` or ``cancel`` no policy is evaluated. A hook that raises fails closed: the
call needs approval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from signoff.models import ToolCall
from signoff.types import JSONObject


@dataclass(frozen=True, slots=True)
class Skip:
    result: Any


@dataclass(frozen=True, slots=True)
class Cancel:
    message: str


@dataclass(frozen=True, slots=True)
class RequestApproval:
    reason: str | None = None
    min_role: str | None = None
    risk: str | None = None
    timeout: float | str | None = None
    quorum: int | None = None
    context: JSONObject | None = None


HookResult: TypeAlias = Skip | Cancel | RequestApproval | None
Hook: TypeAlias = Callable[[ToolCall], "HookResult | Awaitable[HookResult]"]


def skip(result: Any = None) -> Skip:
    """Answer in the tool's place: the tool does not run and the model gets ``result``."""
    return Skip(result)


def cancel(message: str) -> Cancel:
    """Cancel the call: the tool does not run and the model is told ``message``."""
    return Cancel(message)


def request_approval(
    reason: str | None = None,
    *,
    min_role: str | None = None,
    risk: str | None = None,
    timeout: float | str | None = None,
    quorum: int | None = None,
    context: JSONObject | None = None,
) -> RequestApproval:
    """Ask a human for this call. Unset fields come from the tool's policy."""
    return RequestApproval(reason, min_role, risk, timeout, quorum, context)

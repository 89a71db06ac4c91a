"""What the framework adapters share: framework tools declared on the gate, and how a
signoff request is shown to the framework's own pause.

The adapters keep each framework's loop and native pause; signoff keeps the decision. They
all rest on three public gate seams: ``gate.add_tool`` (a tool described by JSON Schema and
run by the framework), ``gate.authorize(..., wait=False)`` (ask, or find the request asked
before under the same ``run_id`` and ``tool_call_id``, and claim its approval once) and
``gate.report`` (record what the framework's run of the tool returned).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

from signoff._util import jsonable
from signoff.errors import ConfigError
from signoff.gate import Gate, GatedTool
from signoff.models import ApprovalRequest, Run, Status
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy
from signoff.types import JSONObject

ContextT = TypeVar("ContextT")

#: a fixed run, or one worked out from the framework's context for each call
RunSource: TypeAlias = Run | Callable[[ContextT], Run]
#: a policy for every tool, or one per tool name (a tool left out asks a human)
Policies: TypeAlias = Policy | Mapping[str, Policy] | None

#: what a run of an approved call may not be called: its decision was not "approve"
DECIDED_NOT_RUN = (Status.REJECTED, Status.EXPIRED, Status.CANCELLED, Status.RESPONDED)


def declare(
    gate: Gate,
    name: str,
    *,
    input_schema: JSONObject,
    description: str | None,
    policies: Policies,
) -> GatedTool[..., Any]:
    """The gate's tool for a framework tool, declared on first sight (the framework runs it).

    A tool already on the gate (declared by the application with its own policy) is kept.
    """
    existing = gate.tools.get(name)
    if existing is not None:
        return existing
    policy = policies if isinstance(policies, Policy) else (policies or {}).get(name)
    return gate.add_tool(name, input_schema=input_schema, description=description, policy=policy)


def resolve_run(source: RunSource[ContextT], context: ContextT) -> Run:
    run = source(context) if callable(source) else source
    if not isinstance(run, Run):
        raise ConfigError(f"the run for a gated framework call must be a signoff Run, not {run!r}")
    if not run.run_id:
        # without a run id a resumed call could not find its request: it would ask again
        raise ConfigError("a gated framework call needs a Run with a run_id (e.g. the thread id)")
    return run


def request_view(request: ApprovalRequest) -> JSONObject:
    """The parts of a signoff request a framework's pause shows (JSON only)."""
    return {
        "request_id": request.id,
        "tool": request.tool,
        "args": jsonable(request.args),
        "reason": request.reason,
        "risk": request.risk.value,
        "editable": list(request.policy.editable),
        "min_role": request.policy.min_role,
        "expires_at": request.expires_at.isoformat(),
    }


def result_for_model(outcome: Outcome, result: Any) -> Any:
    """The tool's own result, or (after an approver's edit) the result with the note that
    tells the model which arguments were changed (docs/guide.md)."""
    if outcome.status is CallStatus.EXECUTED and outcome.modified_fields:
        return outcome.to_model_json()
    return result

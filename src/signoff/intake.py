"""What a submission becomes: the operator's policy applied to what an agent asks for.

Every submission passes here, from every path (an embedded gate, the HTTP API, an
adapter): the values must be storable JSON; an agent's run is its own; the operator's
``deny`` refuses the call; the operator's reason template replaces the agent's text; and
the proposed terms are held to the operator's with :func:`signoff.policy.floor`. No I/O
but the policy's own conditions (CEL, or the operator's functions).
"""

from __future__ import annotations

from signoff.argschema import check_schema, schema_errors
from signoff.canonical import json_problem
from signoff.config import Config
from signoff.decisions import not_editable
from signoff.errors import InvalidArguments, PolicyDenied
from signoff.lifecycle import Proposal
from signoff.models import ApprovalRequest, Principal, RequestSpec, Run, ToolCall
from signoff.policy import Terms, floor
from signoff.types import JSONObject


async def proposal(
    spec: RequestSpec, agent: Principal, config: Config, *, from_operator: bool = False
) -> Proposal:
    """``spec`` held to the operator's policy; raises InvalidArguments or PolicyDenied.
    ``from_operator`` marks a proposal written by the operator's own code (an embedded
    gate): it may allow self-approval where the config is silent."""
    for what, value in (
        ("args", spec.args),
        ("context", spec.context),
        ("reason", spec.reason),
        ("run", spec.run.model_dump(mode="python") if spec.run else None),
        ("args_schema", spec.args_schema),
        ("tool", spec.tool),
        ("tool_call_id", spec.tool_call_id),
    ):
        if (problem := json_problem(value)) is not None:
            raise InvalidArguments(f"{what}: {problem}")
    roles = config.roles
    proposed = spec.policy
    if proposed is not None and proposed.min_role not in (None, *roles.roles):
        raise InvalidArguments(
            f"unknown min_role {proposed.min_role!r}; the roles are {list(roles.roles)}"
        )
    if spec.args_schema is not None and (problem := await check_schema(spec.args_schema)):
        raise InvalidArguments(f"args_schema is not a valid JSON schema: {problem}")
    # an agent's run is its own: whatever it wrote, the agent is its token's subject
    run = (spec.run or Run()).model_copy(update={"agent_id": agent.sub})
    operator = config.operator_policy(spec.tool)
    reason = spec.reason
    if operator is not None:
        call = ToolCall(spec.tool, spec.args, tool_call_id=spec.tool_call_id, run=run)
        if await operator.denies(call):
            message = await operator.reject_text(call)
            raise PolicyDenied(message or f"the policy for {spec.tool!r} refuses this call")
        reason = await operator.reason_text(call) or reason
    floored = floor(
        Terms(
            min_role=proposed.min_role if proposed else None,
            quorum=proposed.quorum if proposed else None,
            timeout_s=proposed.timeout_s if proposed else None,
            editable=None
            if proposed is None or proposed.editable is None
            else tuple(proposed.editable),
            allow_self_approval=proposed.allow_self_approval if proposed else None,
            decisions=None
            if proposed is None or proposed.decisions is None
            else tuple(proposed.decisions),
            risk=spec.risk,
            channels=tuple(spec.channels),
        ),
        None if operator is None else operator.terms(),
        roles=roles,
        default_timeout_s=config.default_timeout_s,
        proposer_is_operator=from_operator,
    )
    return Proposal(
        spec=spec,
        run=run,
        reason=reason,
        policy=floored.policy,
        risk=floored.risk,
        channels=floored.channels,
    )


async def edit_problem(req: ApprovalRequest, modified: JSONObject) -> str | None:
    """Why an approver's edit of ``req`` is refused (outside ``editable``, or breaking the
    tool's schema: checked off the event loop, the schema may be an agent's), or None."""
    if (problem := not_editable(req, modified)) is not None:
        return problem
    if req.args_schema is not None:
        errors = await schema_errors(req.args_schema, {**req.final_args, **modified})
        if errors:
            return "the modified arguments do not fit the tool's schema: " + "; ".join(errors)
    return None

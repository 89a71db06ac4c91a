"""A decision as an approver asks it: its shape checked before anything is read or written.

What the policy's ``decisions`` allow (``approve``, ``edit``, ``reject``, ``respond``) is
checked against the request as stored, inside the transition (:func:`disallowed`, called by
:func:`signoff.lifecycle.decide`); what can be told from the asking alone (a rejection
without a reason, a response that is not storable JSON) is refused here, before the write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from signoff._util import MAX_DETAIL_CHARS
from signoff.canonical import json_problem
from signoff.errors import Forbidden, InvalidArguments, InvalidEdit, SignoffError
from signoff.grants import GrantAsk, parse_ask
from signoff.models import ApprovalRequest, DecisionKind, Principal
from signoff.types import JSONObject

__all__ = ["DecisionInput", "asked", "disallowed", "json_or_text", "not_editable", "typed_answer"]


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """A decision as asked, with what the service checked before the write."""

    principal: Principal
    kind: DecisionKind
    reason: str | None = None
    modified_args: JSONObject | None = None
    #: the ``args_digest`` the approver was shown, when they said
    seen_digest: str | None = None
    #: the ``args_digest`` the edit was validated against (set with ``modified_args``)
    checked_digest: str | None = None
    #: why the edit does not fit the tool's schema (validated before the write), or None
    edit_problem: str | None = None
    via: str = "api"
    #: a ``respond`` decision's answer (JSON, checked storable before the write)
    response: Any = None
    #: a standing grant asked for with an approval (signoff.granting), or None
    grant: GrantAsk | None = None


def asked(
    principal: Principal,
    decision: DecisionKind | str,
    *,
    reason: str | None,
    modified_args: JSONObject | None,
    seen_digest: str | None,
    response: Any,
    via: str,
    grant: GrantAsk | JSONObject | None = None,
) -> DecisionInput:
    """The decision, or InvalidArguments / InvalidEdit for one that cannot be taken as
    asked, whoever asks and whatever the request."""
    try:
        kind = DecisionKind(decision)
    except ValueError as exc:
        raise InvalidArguments("decision must be 'approve', 'reject' or 'respond'") from exc
    if kind is not DecisionKind.APPROVE and modified_args:
        raise InvalidEdit(f"a decision to {kind.value} cannot carry modified arguments")
    if kind is DecisionKind.REJECT and not (reason and reason.strip()):
        raise InvalidArguments("a rejection needs a reason, for the model and the audit")
    if kind is DecisionKind.RESPOND:
        if response is None:
            raise InvalidArguments("a response needs `response`: what the model receives")
        if (problem := json_problem(response)) is not None:
            raise InvalidArguments(f"response: {problem}")
        if len(json.dumps(response, ensure_ascii=False)) > MAX_DETAIL_CHARS:
            raise InvalidArguments(f"response: longer than {MAX_DETAIL_CHARS} characters of JSON")
    elif response is not None:
        raise InvalidArguments(f"only a decision to respond carries a response, not {kind.value}")
    if modified_args is not None and not isinstance(modified_args, dict):
        raise InvalidEdit("modified_args must be a JSON object")
    for what, value in (("modified_args", modified_args), ("reason", reason)):
        if (problem := json_problem(value)) is not None:
            raise InvalidArguments(f"{what}: {problem}")
    return DecisionInput(
        principal,
        kind,
        reason,
        modified_args,
        seen_digest,
        via=via,
        response=response,
        grant=parse_ask(grant),
    )


def disallowed(req: ApprovalRequest, asked: DecisionInput) -> SignoffError | None:
    """Why the policy's ``decisions`` do not let approvers decide ``asked`` this way: an
    edit where ``edit`` is not named is an invalid edit (422, as an edit outside
    ``editable`` is), any other kind is 403."""
    allowed = req.policy.decisions
    if asked.kind is DecisionKind.APPROVE and asked.modified_args:
        if "edit" not in allowed:
            return InvalidEdit(f"the policy does not let approvers edit; it allows {allowed}")
        return None
    if asked.kind.value not in allowed:
        return Forbidden(
            f"the policy does not let approvers {asked.kind.value}; it allows {allowed}",
            allowed=list(allowed),
        )
    return None


def not_editable(req: ApprovalRequest, modified: JSONObject) -> str | None:
    """Why ``modified`` touches arguments the policy does not let be edited, or None."""
    outside = sorted(set(modified) - set(req.policy.editable))
    if outside:
        allowed = req.policy.editable or "none"
        return f"not editable: {outside}; the policy allows editing {allowed}"
    return None


def json_or_text(text: str) -> Any:
    """What a person typed (a form, a terminal, a text message): JSON where it parses
    (an object, a number, true), else the text itself. NaN and Infinity are text."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return text


def typed_answer(text: str) -> Any:
    """A tool's answer as a person typed it (:func:`json_or_text`); InvalidArguments for
    nothing, or ``null``, which answers nothing."""
    if not text.strip():
        raise InvalidArguments("write the answer the agent receives in the tool's place")
    value = json_or_text(text.strip())
    if value is None:
        raise InvalidArguments("null is no answer: write what the tool would have returned")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")

"""Block Kit for the Slack channel: the request message (pending, then final) and its text.

Everything shown comes from the request, and most of it is agent-written: it goes through
:func:`mrkdwn` (control characters made visible, ``& < >`` escaped so that no agent text
becomes a link, a mention or ``<!channel>``) and is clipped to Block Kit's limits, so that
a long or hostile value cannot make Slack refuse the message.

Buttons carry the verb, the request id and the digest of the arguments shown (never the
arguments): that, with the message's own channel and ts, is all a click needs, so buttons
keep working after a restart and on any replica.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signoff.models import ApprovalRequest, Decision, DecisionKind, Status
from signoff.safe_text import printable
from signoff.types import JSONObject

#: Block Kit's limits (characters)
SECTION_MAX = 3000
FIELD_MAX = 2000
HEADER_MAX = 150
PLAIN_MAX = 75
FIELDS_PER_SECTION = 10
#: how much of the arguments' JSON a message shows (the rest is in the dashboard)
ARGUMENTS_MAX = 2500
#: context entries shown at most
CONTEXT_ITEMS_MAX = 20

ACTION_APPROVE = "signoff_approve"
ACTION_REJECT = "signoff_reject"
ACTION_EDIT = "signoff_edit"
#: approve, and trust the same agent's later calls for a while (a standing grant)
ACTION_GRANT = "signoff_grant"
#: answer in the tool's place (the tool does not run)
ACTION_RESPOND = "signoff_respond"
VERBS = {
    ACTION_APPROVE: "approve",
    ACTION_REJECT: "reject",
    ACTION_EDIT: "edit",
    ACTION_GRANT: "grant",
    ACTION_RESPOND: "respond",
}
#: the policy's ``decisions`` entry each verb needs (a grant is an approval)
NEEDS = {
    "approve": "approve",
    "reject": "reject",
    "edit": "edit",
    "grant": "approve",
    "respond": "respond",
}

_RISK = {
    "low": ":large_green_circle:",
    "medium": ":large_yellow_circle:",
    "high": ":large_orange_circle:",
    "critical": ":red_circle:",
}
#: context keys shown first, in this order (seed 002's why / affected / reversible)
_CONTEXT_FIRST = ("why", "affected", "reversible", "alternatives")


def mrkdwn(text: str, limit: int = SECTION_MAX) -> str:
    """Agent text made safe for a mrkdwn field: visible controls, no markup, clipped."""
    safe = printable(text, one_line=False)
    safe = safe.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return clip(safe, limit)


def plain(text: str, limit: int = PLAIN_MAX) -> str:
    """Agent text for a plain_text field (Slack shows it as is): visible controls, clipped."""
    return clip(printable(text), limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def date(at: datetime) -> str:
    """A time every reader sees in their own time zone (the fallback is UTC)."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ButtonValue:
    """What a button carries: the verb, the request, the digest of the arguments shown."""

    verb: str
    request_id: str
    digest: str | None = None

    def encode(self) -> str:
        return json.dumps({"v": self.verb, "id": self.request_id, "d": self.digest})

    @staticmethod
    def decode(text: object) -> ButtonValue | None:
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        verb, request_id, digest = data.get("v"), data.get("id"), data.get("d")
        if not isinstance(verb, str) or verb not in VERBS.values():
            return None
        if not isinstance(request_id, str) or not request_id:
            return None
        return ButtonValue(verb, request_id[:200], digest if isinstance(digest, str) else None)


@dataclass(frozen=True, slots=True)
class Look:
    """How this channel shows requests (from its settings and the server)."""

    public_url: str = ""
    #: tools whose arguments, reason and context are not shown
    hidden: frozenset[str] = frozenset()
    #: sub → Slack user id, to show deciders as Slack mentions
    people: Mapping[str, str] = field(default_factory=dict)

    def who(self, sub: str, role: str | None = None) -> str:
        """A decider as Slack shows them: a mention where the sub is a mapped Slack user,
        with the sub and role they decided as."""
        user = self.people.get(sub)
        name = mrkdwn(sub, 200)
        if user is not None:
            return f"<@{user}> ({name}, {mrkdwn(role, 100)})" if role else f"<@{user}> ({name})"
        return f"{name} ({mrkdwn(role, 100)})" if role else name

    def hides(self, request: ApprovalRequest) -> bool:
        return request.tool in self.hidden

    def link(self, request: ApprovalRequest) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}/requests/{request.id}"


def render(
    request: ApprovalRequest, look: Look, *, escalation: int | None = None
) -> tuple[str, list[JSONObject]]:
    """The message for ``request`` as it stands: ``(fallback text, blocks)``. Pending: the
    context and the buttons; decided, expired or cancelled: who, what, when, no buttons."""
    pending = request.status is Status.PENDING
    title = "Approval needed" if pending else request.status.value.capitalize()
    text = f"{title}: {plain(request.tool, 100)}"
    if escalation is not None and pending:
        text = f"Escalated (step {escalation}): {text}"
    blocks: list[JSONObject] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_MAX)}}
    ]
    hidden = look.hides(request)
    if hidden:
        reason = "_The details of this tool are not shown in Slack: open it in signoff._"
    else:
        reason = mrkdwn(request.reason) if request.reason else "_No reason given._"
    blocks.append(_section(reason))
    blocks.append({"type": "section", "fields": _facts(request)})
    if not hidden:
        blocks.append(_section(_arguments(request)))
    if request.modified_fields and not hidden:
        edits = [
            f"`{mrkdwn(name, 100)}`: {mrkdwn(compact(old), 300)} → {mrkdwn(compact(new), 300)}"
            for name, (old, new) in request.modified_fields.items()
        ]
        blocks.append(_section(clip("*Edited by an approver*\n" + "\n".join(edits), SECTION_MAX)))
    if not hidden:
        blocks.extend(_context_sections(request))
    status = _status_lines(request, look)
    if status:
        blocks.append(_section(clip("\n".join(status), SECTION_MAX)))
    if pending:
        blocks.append(_actions(request, look))
    footer = f"Request `{request.id}`"
    if (url := look.link(request)) is not None:
        footer += f" · <{url}|Open in signoff>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return text, blocks


def _section(text: str) -> JSONObject:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _facts(request: ApprovalRequest) -> list[JSONObject]:
    policy = request.policy
    needs = f"{mrkdwn(policy.min_role, 200)} or higher"
    if policy.quorum > 1:
        needs += f" ({policy.quorum} approvers)"
    agent = mrkdwn(request.run.agent_id, 300)
    if request.run.run_id:
        agent += f" · run {mrkdwn(request.run.run_id, 300)}"
    risk = request.risk.value
    facts = [
        ("Tool", f"`{mrkdwn(request.tool, 300)}`"),
        ("Risk", f"{_RISK.get(risk, '')} {risk}"),
        ("Agent", agent),
        ("Needs", needs),
        ("Expires", date(request.expires_at)),
    ]
    return [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in facts]


def _arguments(request: ApprovalRequest) -> str:
    text = json.dumps(request.final_args, indent=2, ensure_ascii=False)
    # a ``` in a value would end the code block early
    body = mrkdwn(text, ARGUMENTS_MAX).replace("```", "`\u02cb`")
    return f"*Arguments*\n```{body}```"


def _context_sections(request: ApprovalRequest) -> list[JSONObject]:
    items = sorted(
        request.context.items(),
        key=lambda kv: (_CONTEXT_FIRST.index(kv[0]) if kv[0] in _CONTEXT_FIRST else 99, kv[0]),
    )
    fields = [
        {
            "type": "mrkdwn",
            "text": clip(
                f"*{mrkdwn(key.replace('_', ' ').capitalize(), 100)}*\n"
                f"{mrkdwn(compact(value), FIELD_MAX - 110)}",
                FIELD_MAX,
            ),
        }
        for key, value in items[:CONTEXT_ITEMS_MAX]
    ]
    return [
        {"type": "section", "fields": fields[i : i + FIELDS_PER_SECTION]}
        for i in range(0, len(fields), FIELDS_PER_SECTION)
    ]


def _decided(decision: Decision, look: Look) -> str:
    via = f" via {mrkdwn(decision.via, 50)}" if decision.via else ""
    line = f"by {look.who(decision.by, decision.role)}{via} · {date(decision.at)}"
    if decision.grant_id:
        what = "under standing grant" if decision.via == "grant" else "and granted"
        line += f" · {what} `{mrkdwn(decision.grant_id, 100)}`"
    if decision.reason:
        line += "\n>" + mrkdwn(decision.reason, 1000).replace("\n", "\n>")
    return line


def _status_lines(request: ApprovalRequest, look: Look) -> list[str]:
    status = request.status
    if status is Status.APPROVED:
        return [f":white_check_mark: *Approved* {_decided(d, look)}" for d in request.approvals]
    if status is Status.REJECTED:
        rejections = [d for d in request.decisions if d.decision is DecisionKind.REJECT]
        return [f":x: *Rejected* {_decided(d, look)}" for d in rejections[-1:]]
    if status is Status.RESPONDED:
        answered = [d for d in request.decisions if d.decision is DecisionKind.RESPOND]
        return [
            f":speech_balloon: *Answered in the tool's place* {_decided(d, look)}"
            for d in answered[-1:]
        ]
    if status is Status.EXPIRED:
        when = date(request.decided_at or request.expires_at)
        return [f":hourglass: *Expired* {when}: nobody decided in time, so the call did not run."]
    if status is Status.CANCELLED:
        when = date(request.decided_at or request.expires_at)
        line = f":no_entry_sign: *Cancelled* by the agent · {when}"
        if request.cancel_reason:
            line += "\n>" + mrkdwn(request.cancel_reason, 1000)
        return [line]
    approvals = request.approvals
    if not approvals:
        return []
    return [
        f":ballot_box_with_check: {len(approvals)} of {request.policy.quorum} approvals so far",
        *(f"• {_decided(d, look)}" for d in approvals),
    ]


def offers(request: ApprovalRequest, look: Look) -> list[str]:
    """The verbs this message offers for ``request``: what its policy's ``decisions``
    allow, and nothing that needs the details where this channel hides them (an edit, a
    grant, an answer in the tool's place)."""
    allowed = request.policy.decisions
    verbs = [verb for verb, needs in NEEDS.items() if needs in allowed]
    if look.hides(request):
        return [verb for verb in verbs if verb in ("approve", "reject")]
    return [verb for verb in verbs if verb != "edit" or request.policy.editable]


def _actions(request: ApprovalRequest, look: Look) -> JSONObject:
    def button(action: str, label: str, digest: str | None) -> JSONObject:
        value = ButtonValue(VERBS[action], request.id, digest).encode()
        return {
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": value,
        }

    offered = offers(request, look)
    elements: list[JSONObject] = []
    if "approve" in offered:
        approve = {**button(ACTION_APPROVE, "Approve", request.args_digest), "style": "primary"}
        if request.risk.value == "critical":
            approve["confirm"] = {
                "title": {"type": "plain_text", "text": "Approve this call?"},
                "text": {"type": "mrkdwn", "text": f"`{mrkdwn(request.tool, 200)}` will run."},
                "confirm": {"type": "plain_text", "text": "Approve"},
                "deny": {"type": "plain_text", "text": "Not yet"},
            }
        elements.append(approve)
    if "reject" in offered:
        elements.append({**button(ACTION_REJECT, "Reject", None), "style": "danger"})
    more = ((ACTION_EDIT, "Edit"), (ACTION_GRANT, "Approve for…"), (ACTION_RESPOND, "Answer"))
    for action, label in more:
        if VERBS[action] in offered:
            elements.append(button(action, label, request.args_digest))
    # a new block id on every update, so Slack clients drop the old buttons' state
    return {
        "type": "actions",
        "block_id": f"signoff-actions-{secrets.token_hex(4)}",
        "elements": elements,
    }

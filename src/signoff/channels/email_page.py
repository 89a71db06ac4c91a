"""What the email channel shows: the message (text and HTML) and the link's pages.

Everything in a request is agent-written (the tool, the reason, the arguments, the
context), so every value is HTML-escaped here, and nothing here is markup from elsewhere.
The pages need no JavaScript at all (nothing auto-submits: scanners run scripts) and carry
their one stylesheet inline, allowed by its hash in the Content-Security-Policy, so that
they look the same wherever the routes are mounted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from html import escape
from typing import Any

from starlette.responses import HTMLResponse

from signoff._util import human_duration
from signoff.models import ApprovalRequest, Decision, DecisionKind, Status
from signoff.safe_text import printable

CSS = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f5f4;color:#1c1917}
main{max-width:44rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;
box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}
dt{font-weight:600}dd{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
pre{background:#f5f5f4;padding:.75rem;border-radius:.25rem;overflow:auto;white-space:pre-wrap;
overflow-wrap:anywhere}
form{margin:1rem 0;padding:1rem;border:1px solid #d6d3d1;border-radius:.5rem}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
textarea,input[type=text]{width:100%;box-sizing:border-box;font:inherit;padding:.4rem}
button{font:inherit;font-weight:600;padding:.5rem 1rem;border:0;border-radius:.35rem;
margin-top:.5rem;cursor:pointer;color:#fff}
.approve{background:#15803d}.reject{background:#b91c1c}.edit{background:#1d4ed8}
.risk-high,.risk-critical{color:#b91c1c;font-weight:700}.muted{color:#57534e}
""".strip()
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def e(value: Any) -> str:
    """Escaped for HTML text and attributes, control characters shown as escapes."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return escape(printable(text, one_line=False), quote=True)


def when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def arguments_text(args: dict[str, Any]) -> str:
    return json.dumps(args, indent=2, ensure_ascii=False, sort_keys=True)


def facts(request: ApprovalRequest, now: datetime) -> list[tuple[str, str]]:
    """The request's context as (label, text): the tool, the reason, the risk, what the
    agent said about why, what is affected, whether it can be undone …, and the expiry."""
    rows = [("Tool", request.tool)]
    if request.reason:
        rows.append(("Reason", request.reason))
    rows.append(("Risk", request.risk.value))
    for key, value in request.context.items():
        label = key.replace("_", " ").capitalize()
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = "; ".join(value)
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        rows.append((label, text))
    agent = request.run.agent_id + (f" (run {request.run.run_id})" if request.run.run_id else "")
    rows.append(("Agent", agent))
    needs = f"{request.policy.min_role} or higher"
    if request.policy.quorum > 1:
        needs += f", {len(request.approvals)} of {request.policy.quorum} approvals so far"
    rows.append(("Needs", needs))
    left = (request.expires_at - now).total_seconds()
    expiry = f"in {human_duration(left)}, " if left > 0 else ""
    rows.append(("Expires", f"{expiry}{when(request.expires_at)}"))
    return rows


def _facts_html(request: ApprovalRequest, now: datetime) -> str:
    items = []
    for label, text in facts(request, now):
        css = f' class="risk-{e(text)}"' if label == "Risk" else ""
        items.append(f"<dt>{e(label)}</dt><dd{css}>{e(text)}</dd>")
    return "<dl>" + "".join(items) + "</dl>"


# -- the message ---------------------------------------------------------------------------


def subject(request: ApprovalRequest, prefix: str) -> str:
    tool = printable(" ".join(request.tool.split()))[:80]
    return f"{prefix} Approval needed: {tool} ({request.risk.value} risk)".strip()


def mail_text(request: ApprovalRequest, link: str, now: datetime) -> str:
    lines = ["An AI agent asks for your sign-off before it runs a tool.", ""]
    lines += [f"{label}: {printable(text)}" for label, text in facts(request, now)]
    lines += ["", "Arguments:", printable(arguments_text(request.final_args), one_line=False)]
    lines += [
        "",
        "Review it, then approve, reject or change it here (the link works once, for you):",
        link,
        "",
        "Opening the link decides nothing; only a button on its page does.",
    ]
    return "\n".join(lines) + "\n"


def mail_html(request: ApprovalRequest, link: str, now: datetime) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>'
        f"<p>An AI agent asks for your sign-off before it runs <strong>{e(request.tool)}"
        f"</strong>.</p>{_facts_html(request, now)}<h3>Arguments</h3>"
        f"<pre>{e(arguments_text(request.final_args))}</pre>"
        f'<p><a href="{e(link)}">Review the request</a> (the link works once, for you). '
        "Opening it decides nothing; only a button on its page does.</p></body></html>"
    )


# -- the pages -----------------------------------------------------------------------------


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{e(title)} · signoff</title><style>{CSS}</style></head>"
        f"<body><main><h1>{e(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def message(title: str, detail: str, status: int) -> HTMLResponse:
    return page(title, f"<p>{e(detail)}</p>", status)


def decided_text(request: ApprovalRequest) -> str:
    """ "approved by bob at …", "expired at …": what became of a request that is not pending."""
    if request.status is Status.EXPIRED:
        return f"It expired at {when(request.decided_at or request.expires_at)}."
    if request.status is Status.CANCELLED:
        return f"The agent cancelled it at {when(request.decided_at or request.expires_at)}."
    last: Decision | None = request.decisions[-1] if request.decisions else None
    if last is None:
        return f"It is {request.status.value}."
    verbs = {Status.APPROVED: "approved", Status.RESPONDED: "answered in the tool's place"}
    verb = verbs.get(request.status, "rejected")
    return f"It was already {verb} by {last.by} at {when(last.at)}."


def review(request: ApprovalRequest, *, who: str, csrf: str, now: datetime) -> HTMLResponse:
    """The link's page: the request in full and a form for each decision its policy allows
    (approve, reject, answer in the tool's place, approve with changes). Each posts back to this
    same URL with the page's token and the digest of the arguments shown."""
    hidden = (
        f'<input type="hidden" name="csrf" value="{e(csrf)}">'
        f'<input type="hidden" name="digest" value="{e(request.args_digest)}">'
    )
    allowed = request.policy.decisions
    forms = []
    if "approve" in allowed:
        forms.append(
            f'<form method="post">{hidden}<input type="hidden" name="decision" value="approve">'
            '<button type="submit" class="approve">Approve</button></form>'
        )
    if "reject" in allowed:
        forms.append(
            f'<form method="post">{hidden}<input type="hidden" name="decision" value="reject">'
            '<label for="reason">Why not? (the agent is told)</label>'
            '<textarea id="reason" name="reason" rows="3" required maxlength="2000"></textarea>'
            '<button type="submit" class="reject">Reject</button></form>'
        )
    if "respond" in allowed:
        forms.append(
            f'<form method="post">{hidden}<input type="hidden" name="decision" value="respond">'
            '<label for="response">Answer in the tool\'s place: the tool does not run, the '
            "agent receives this as its result (JSON, or plain text)</label>"
            '<textarea id="response" name="response" rows="4" required maxlength="10000">'
            '</textarea><button type="submit" class="respond">Send answer</button></form>'
        )
    editable = [name for name in request.policy.editable if name in request.final_args]
    if editable and "edit" in allowed:
        fields = "".join(
            f'<label for="arg-{e(name)}">{e(name)}</label>'
            f'<input type="text" id="arg-{e(name)}" name="arg.{e(name)}" '
            f'value="{e(request.final_args[name])}">'
            for name in editable
        )
        forms.append(
            f'<form method="post">{hidden}<input type="hidden" name="decision" value="edit">'
            f"{fields}"
            '<button type="submit" class="edit">Approve with changes</button></form>'
        )
    body = (
        f'<p class="muted">For {e(who)}. Nothing has been decided yet: a button below '
        "decides, once.</p>"
        f"{_facts_html(request, now)}<h2>Arguments</h2>"
        f"<pre>{e(arguments_text(request.final_args))}</pre>{''.join(forms)}"
    )
    return page(f"Approve {printable(request.tool)[:80]}?", body)


def result(request: ApprovalRequest, kind: DecisionKind) -> HTMLResponse:
    if request.status is Status.APPROVED:
        detail = "Approved. The agent may now run the tool with the arguments shown."
    elif request.status is Status.REJECTED:
        detail = "Rejected. The agent is told your reason."
    elif request.status is Status.RESPONDED:
        detail = "Answered. The tool does not run; the agent receives your answer."
    else:
        have, need = len(request.approvals), request.policy.quorum
        detail = f"Your approval is recorded: {have} of {need} approvals so far."
    titles = {DecisionKind.REJECT: "Rejected", DecisionKind.RESPOND: "Answered"}
    title = titles.get(kind, "Approved")
    return page(title, f"<p>{e(detail)}</p><pre>{e(arguments_text(request.final_args))}</pre>")
